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

# two outputs on one file: new, and existing
check "--o X --lse X (new file): usage error" 2 $kat $run --o ol.npy --lse ./ol.npy
says "names --o and --lse" "$(cat "$err")" "kat attn run: --o and --lse name the same file: ol.npy"
if [ -e ol.npy ]; then _cli_fail "ol.npy was written"; else _cli_ok "ol.npy not written"; fi
cp q.npy ex.npy
check "--o X --lse X (existing file): usage error" 2 $kat $run --o ex.npy --lse ex.npy
says "names --o and --lse" "$(cat "$err")" "kat attn run: --o and --lse name the same file: ex.npy"
unchanged ex.npy q.npy

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

# the other commands that write files
check "sweep --out X --plot X: usage error" 2 $kat sweep --n 8 --out r.csv --plot ./r.csv
says "names --out and --plot" "$(cat "$err")" \
    "kat sweep: --out and --plot name the same file: r.csv"
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
