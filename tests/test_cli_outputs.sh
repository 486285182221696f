#!/bin/sh
# Outputs can never destroy inputs: every command that writes files refuses, before any work,
# an output that is the same file as an input or as another output (exit 2, one line naming
# both options and the path; files compared by device and inode, new ones by directory and
# name), and writes each file to a temporary name renamed into place only when complete, so a
# failed write (a missing directory, a file-size limit) leaves the old file intact.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

npy_python "$tmp" <<'PY'
import random, sys
random.seed(5)
r = lambda n: [random.gauss(0, 1) for _ in range(n)]
d = sys.argv[1]
save(d + "/q.npy", (1, 2, 64, 16), r(2048)); save(d + "/k.npy", (1, 2, 64, 16), r(2048))
save(d + "/v.npy", (1, 2, 64, 16), r(2048)); save(d + "/do.npy", (1, 2, 64, 16), r(2048))
PY
cd "$tmp" || exit 1
run="attn run --q q.npy --k k.npy --v v.npy"
grad="attn grad --q q.npy --k k.npy --v v.npy --do do.npy"

# says "description" "$(cat "$err")" "expected": the message, word for word
says() {
    if [ "$2" = "$3" ]; then _cli_ok "$1"; else _cli_fail "$1: got '$2', expected '$3'"; fi
}
# unchanged FILE COPY: FILE has the bytes of COPY
unchanged() {
    if cmp -s "$1" "$2"; then _cli_ok "$1 unchanged"; else _cli_fail "$1 was changed"; fi
}
# no_temporaries: no ".NAME.XXXXXX" left in the scratch directory
no_temporaries() {
    if ls -A | grep -q '^\..*\.\(npy\|csv\)\.'; then
        _cli_fail "$1: a temporary file was left: $(ls -A)"
    else _cli_ok "$1: no temporary file left"; fi
}

# --o on an input's path (the output directory of --lse does not exist either)
cp q.npy S.npy && cp q.npy S.orig
check "--o on the input --q: usage error" 2 $kat attn run --q S.npy --k k.npy --v v.npy \
    --o S.npy --lse nodir/l.npy
says "the message names both options and the path" "$(cat "$err")" \
    "kat attn run: --o and --q name the same file: S.npy"
unchanged S.npy S.orig
# the same file under another name: ./ and a symbolic link
ln -s S.npy link.npy
check "--o as ./S.npy: usage error" 2 $kat attn run --q S.npy --k k.npy --v v.npy --o ./S.npy
says "./S.npy is the input" "$(cat "$err")" \
    "kat attn run: --o and --q name the same file: ./S.npy"
check "--o through a symbolic link to the input: usage error" 2 $kat attn run --q S.npy \
    --k k.npy --v v.npy --o link.npy
says "the link is the input" "$(cat "$err")" \
    "kat attn run: --o and --q name the same file: link.npy"
unchanged S.npy S.orig

# a hard link to the input is the input
ln S.npy hard.npy
check "--o as a hard link to the input: usage error" 2 $kat attn run --q S.npy --k k.npy \
    --v v.npy --o hard.npy
says "the hard link is the input" "$(cat "$err")" \
    "kat attn run: --o and --q name the same file: hard.npy"
unchanged S.npy S.orig

# two outputs on one file: new, and existing
check "--o X --lse X (new file): usage error" 2 $kat $run --o ol.npy --lse ./ol.npy
says "names --o and --lse" "$(cat "$err")" "kat attn run: --o and --lse name the same file: ol.npy"
if [ -e ol.npy ]; then _cli_fail "ol.npy was written"; else _cli_ok "ol.npy not written"; fi
cp q.npy ex.npy
check "--o X --lse X (existing file): usage error" 2 $kat $run --o ex.npy --lse ex.npy
says "names --o and --lse" "$(cat "$err")" "kat attn run: --o and --lse name the same file: ex.npy"
unchanged ex.npy q.npy
# ... through a symbolic link (to an existing file, and to one not made yet) and a hard link
ln -s ex.npy exlink.npy
check "--o X --lse link-to-X: usage error" 2 $kat $run --o ex.npy --lse exlink.npy
says "the link is --o's file" "$(cat "$err")" \
    "kat attn run: --o and --lse name the same file: ex.npy"
ln -s new.npy newlink.npy
check "--o new --lse dangling-link-to-new: usage error" 2 $kat $run --o new.npy --lse newlink.npy
says "the dangling link is --o's new file" "$(cat "$err")" \
    "kat attn run: --o and --lse name the same file: new.npy"
if [ -e new.npy ]; then _cli_fail "new.npy was written"; else _cli_ok "new.npy not written"; fi
mkdir sub
check "--o sub/new --lse ./sub/../sub/new: usage error" 2 $kat $run --o sub/n.npy \
    --lse ./sub/../sub/n.npy
says "one new file by two paths" "$(cat "$err")" \
    "kat attn run: --o and --lse name the same file: sub/n.npy"
ln ex.npy exhard.npy
check "attn grad --dq X --dv hard-link-to-X: usage error" 2 $kat $grad --dq ex.npy \
    --dk dk.npy --dv exhard.npy
says "the hard link is --dq's file" "$(cat "$err")" \
    "kat attn grad: --dq and --dv name the same file: ex.npy"
unchanged ex.npy q.npy
# a dangling link as an output: the file it names is written, the link stays
check "--o through a dangling link writes its target" 0 $kat $run --o newlink.npy
if [ -L newlink.npy ] && [ -f new.npy ]; then _cli_ok "new.npy made, newlink.npy still a link"
else _cli_fail "the link was replaced or its target not made"; fi

# the sparse modes' mask files are inputs too (given as a flag or in --params)
cp q.npy keep.npy
check "--o on --q-keep: usage error" 2 $kat $run --mode qk --q-keep keep.npy --o keep.npy
says "names --o and --q-keep" "$(cat "$err")" \
    "kat attn run: --o and --q-keep name the same file: keep.npy"
check "--lse on --params k_buckets: usage error" 2 $kat $run --mode hash \
    --params k_buckets=keep.npy --o o3.npy --lse keep.npy
says "names --lse and --k-buckets" "$(cat "$err")" \
    "kat attn run: --lse and --k-buckets name the same file: keep.npy"
unchanged keep.npy q.npy

# attn grad: --dq / --dk on an input, a later output failing
cp k.npy k.orig
check "attn grad --dk on --k: usage error" 2 $kat $grad --dq dq.npy --dk k.npy --dv nodir/dv.npy
says "names --dk and --k" "$(cat "$err")" "kat attn grad: --dk and --k name the same file: k.npy"
unchanged k.npy k.orig
check "attn grad --dq on --do: usage error" 2 $kat $grad --dq do.npy --dk dk.npy --dv dv.npy
says "names --dq and --do" "$(cat "$err")" "kat attn grad: --dq and --do name the same file: do.npy"
check "attn grad --dv on --dq: usage error" 2 $kat $grad --dq g.npy --dk dk.npy --dv ./g.npy
says "names --dq and --dv" "$(cat "$err")" "kat attn grad: --dq and --dv name the same file: g.npy"
cp q.npy dq.npy && cp q.npy dq.orig
check "attn grad with --dv in a missing directory: exit 1" 1 $kat $grad --dq dq.npy \
    --dk dk.npy --dv nodir/dv.npy
expect_err "names the path it cannot write" "cannot open 'nodir/dv.npy' for writing"
unchanged dq.npy dq.orig
no_temporaries "attn grad failing on --dv"

# a full disk: a file-size limit below the output's size (64 KiB of o over a 16 KiB file)
cp q.npy o.npy
cp q.npy o.orig
check "attn run past ulimit -f: exit 1" 1 sh -c "ulimit -f 16 && exec $kat $run --o o.npy"
expect_err "says the file is too large" "cannot write '.*o.npy': File too large"
unchanged o.npy o.orig
no_temporaries "attn run past ulimit -f"
check "the old file still loads" 0 $kat $run --q o.npy --o o2.npy
# and --o on an input past the limit: refused before writing
check "--o on the input past ulimit -f: usage error" 2 \
    sh -c "ulimit -f 16 && exec $kat $run --o q.npy"
check "a complete write replaces the old file" 0 $kat $run --o o.npy
if cmp -s o.npy o.orig; then _cli_fail "o.npy still holds the old bytes"
else _cli_ok "o.npy holds the new output"; fi
no_temporaries "successful writes"

# all outputs or none: a small dq is written, then dk (64 KiB) passes the file-size limit
npy_python "$tmp" <<'PY'
import sys
d = sys.argv[1]
save(d + "/sq.npy", (1, 2, 8, 16), [0.01 * i for i in range(256)])
save(d + "/bk.npy", (1, 2, 512, 16), [((i * 7) % 13) * 0.1 for i in range(16384)])
save(d + "/sdo.npy", (1, 2, 8, 16), [1.0] * 256)
PY
cp q.npy gq.npy && cp q.npy gq.orig
check "attn grad with dk past ulimit -f: exit 1" 1 sh -c "ulimit -f 16 && exec $kat attn grad \
    --q sq.npy --k bk.npy --v bk.npy --do sdo.npy --dq gq.npy --dk gk.npy --dv gv.npy"
expect_err "says the file is too large" "cannot write 'gk.npy': File too large"
unchanged gq.npy gq.orig
for f in gk.npy gv.npy; do
    if [ -e $f ]; then _cli_fail "$f was written"; else _cli_ok "$f not written"; fi
done
no_temporaries "attn grad past ulimit -f"
check "the same without the limit writes all three" 0 $kat attn grad --q sq.npy --k bk.npy \
    --v bk.npy --do sdo.npy --dq gq.npy --dk gk.npy --dv gv.npy
if cmp -s gq.npy gq.orig; then _cli_fail "gq.npy still holds the old bytes"
else _cli_ok "gq.npy replaced"; fi

# permissions: a new file as a plain create gives (0666 less the umask), an old one keeps its
check "a new output under umask 027" 0 sh -c "umask 027 && exec $kat $run --o perm.npy"
says "perm.npy is rw-r-----" "$(stat -c %a perm.npy)" "640"
chmod 604 perm.npy
check "an existing output keeps its mode" 0 sh -c "umask 077 && exec $kat $run --o perm.npy"
says "perm.npy is still rw----r--" "$(stat -c %a perm.npy)" "604"

# ended by a signal while writing: the old file stays, the temporary file is removed
# sig_during "description" SIGNAL NUMBER TARGET command...: starts the command, waits for its
# temporary file next to TARGET, sends SIGNAL, and checks the exit (128 + the signal's
# NUMBER), that TARGET keeps its old line and that no temporary file is left
sig_during() {
    _d=$1 _sig=$2 _want=$((128 + $3)) _t=$4
    shift 4
    printf 'old\n' >"$_t"
    "$@" >"$out" 2>"$err" &
    _pid=$!
    _i=0
    while [ $_i -lt 200 ] && ! ls -A | grep -q "^\.$_t\."; do sleep 0.05; _i=$((_i + 1)); done
    kill -s "$_sig" $_pid
    wait $_pid
    _rc=$?
    if [ $_rc = $_want ]; then _cli_ok "$_d: exit $_rc"
    else _cli_fail "$_d: exit $_rc, expected $_want"; fi
    says "$_d: $_t keeps its old line" "$(cat "$_t")" "old"
    no_temporaries "$_d"
}
sweep_long="$kat sweep --n 3000 --f exp --out sw.csv"
sig_during "sweep --out ended by SIGTERM" TERM 15 sw.csv $sweep_long
sig_during "sweep --out ended by SIGHUP" HUP 1 sw.csv $sweep_long
# a background job of a script ignores SIGINT; env --default-signal (coreutils 8.31) undoes
# that, as a terminal's Ctrl-C would find it
if env --default-signal=INT true 2>/dev/null; then
    sig_during "sweep --out ended by SIGINT (Ctrl-C)" INT 2 sw.csv \
        env --default-signal=INT $sweep_long
else
    echo "ok: SIGINT left out (env --default-signal is missing)"
fi

# the other commands that write files
check "sweep --out X --plot X: usage error" 2 $kat sweep --n 8 --out r.csv --plot ./r.csv
says "names --out and --plot" "$(cat "$err")" \
    "kat sweep: --out and --plot name the same file: r.csv"
check "sweep --out on --plot's script: usage error" 2 $kat sweep --n 8 --out r.gp --plot r.png
says "names --out and the plot's script" "$(cat "$err")" \
    "kat sweep: --out and --plot's script name the same file: r.gp"
# a gnuplot that fails midway: the old PNG and script's figure stay, nothing half-written
mkdir fakebin
cat >fakebin/gnuplot <<'SH'
#!/bin/sh
case "$*" in *kat_stdout*) printf 'half a PNG' ;; *) printf 'half a PNG' >fig.png ;; esac
exit 1
SH
chmod +x fakebin/gnuplot
printf 'old\n' >fig.png
check "sweep --plot with gnuplot failing: exit 1" 1 env PATH="$PWD/fakebin:$PATH" \
    $kat sweep --n 8 --out fig.csv --plot fig.png
expect_err "says gnuplot failed" "kat sweep: gnuplot failed on ./fig.gp"
says "fig.png keeps its old line" "$(cat fig.png)" "old"
if ls -A | grep -q '^\.fig\.png\.'; then _cli_fail "a temporary PNG was left"
else _cli_ok "no temporary PNG left"; fi

# kat reproduce --out: a directory of the user's is refused, before any work
mkdir mine && printf 'mine\n' >mine/report.md
check "reproduce --out a directory of other files: usage error" 2 $kat reproduce --quick \
    --only spectra --out mine
expect_usage "says what it would overwrite" "kat reproduce: --out 'mine' holds files that are \
not a report of kat reproduce, which it could overwrite; name a new or empty directory, or one \
an earlier run wrote" "kat reproduce"
says "mine/report.md untouched" "$(cat mine/report.md)" "mine"
check "reproduce --out a file: usage error" 2 $kat reproduce --quick --only spectra --out fig.csv
expect_usage "says it is not a directory" "kat reproduce: --out 'fig.csv' is not a directory" \
    "kat reproduce"
mkdir rep
check "reproduce --out an empty directory" 0 $kat reproduce --quick --only spectra --out rep
check "reproduce --out its own earlier report" 0 $kat reproduce --quick --only spectra --out rep
if ls -A rep | grep -q '^\..*\.'; then _cli_fail "a temporary file left in rep: $(ls -A rep)"
else _cli_ok "rep holds no temporary file"; fi
printf 'old\n' >emb.csv
check "embed --out in a missing directory: exit 1" 1 $kat embed l1 --f 'sqrt(x)' --a 1,2 \
    --out nodir/e.csv
expect_err "names the path it cannot write" "cannot open 'nodir/e.csv' for writing"
check "embed --out writes" 0 $kat embed l1 --f 'sqrt(x)' --a 1,2 --out e.csv
check "embed --out past ulimit -f: exit 1" 1 \
    sh -c "ulimit -f 0 && exec $kat embed l1 --f 'sqrt(x)' --a 1,2 --out emb.csv"
says "emb.csv still holds its old line" "$(cat emb.csv)" "old"
no_temporaries "embed past ulimit -f"

exit "$fail"
