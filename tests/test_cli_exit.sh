#!/bin/sh
# The exit status rule of docs/kat.1 (EXIT STATUS), command by command: every command and
# action gets (a) an unknown option and (b) a bad value - exit 2, nothing on stdout, and on
# stderr exactly the line naming the option and the value, then "see kat CMD --help" (never
# the whole help) - and (c), where it reads input, a missing file or bad data - exit 1 and one
# line naming the file, without the help line.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# usage "kat CMD" "first line" args...: a usage error of kat CMD
usage() {
    _u_cmd=$1; _u_line=$2; shift 2
    check "$* (exit 2)" 2 "$kat" "$@" && expect_usage "$* (two lines)" "$_u_line" "$_u_cmd"
}
# failure "pattern" args...: a failure of the data (exit 1), one line on stderr that matches
# pattern, nothing on stdout
failure() {
    _f_pat=$1; shift
    check "$* (exit 1)" 1 "$kat" "$@" || return
    if [ ! -s "$out" ] && [ "$(wc -l <"$err")" -eq 1 ] && grep -q -- "$_f_pat" "$err"; then
        _cli_ok "$* (one line: $_f_pat)"
    else
        _cli_fail "$*: expected no stdout and one line on stderr matching '$_f_pat'"
    fi
}

npy_python "$tmp" <<'PY'
import sys
d = sys.argv[1]
save(d + "/q.npy", (2, 5, 4), [0.1 * i for i in range(40)])
save(d + "/k.npy", (2, 6, 4), [0.05 * i for i in range(48)])
save(d + "/v.npy", (2, 6, 3), [0.2 * i for i in range(36)])
save(d + "/do.npy", (2, 5, 3), [0.3 * i for i in range(30)])
PY
cd "$tmp" || exit 1
printf '1 2\n3 x\n' >bad.txt
printf '1,2\n3,4\n' >q.csv
printf 'not an npy file\n' >bad.npy
A="--q q.npy --k k.npy --v v.npy --o o.npy"
G="--q q.npy --k k.npy --v v.npy --do do.npy --dq dq.npy --dk dk.npy --dv dv.npy"

# (a) an unknown option, for every command and action
for c in reproduce version rank sweep features spectrum embed theorem; do
    usage "kat $c" "kat $c: unknown option '--bogus'" "$c" --bogus
done
usage "kat attn" "kat attn: unknown option '--bogus'" attn run --bogus
usage "kat attn" "kat attn: unknown option '--bogus'" attn grad --bogus
usage "kat bench attn" "kat bench attn: unknown option '--bogus'" bench attn --bogus

# (b) a bad value
usage "kat reproduce" "kat reproduce: --only: unknown step 'bogus' (the steps: theorems, rank, \
eps-rank, spectra, dense, sparse, linear, accuracy)" reproduce --only bogus --out "$tmp/never"
[ ! -e "$tmp/never" ] || { echo "FAIL: reproduce made its --out before the usage error"; fail=1; }
usage "kat version" "kat version: --json takes no value, got 'x'" version --json=x
usage "kat rank" "kat rank: --rtol must be >= 0, got -1" rank --n 20 --rtol -1
usage "kat rank" "kat rank: --power-iters must be in [0, 32], got 40" rank --power-iters 40
usage "kat sweep" "kat sweep: --eps must be >= 0, got -0.5" sweep --n 20 --eps -0.5
usage "kat sweep" "kat sweep: --n '1,x' is not a comma-separated list of numbers (at 'x')" \
    sweep --n 1,x
usage "kat features" "kat features: --map: unknown map 'bogus' (taylor:P, taylorP, poly:EXPR, \
rff:M[:pair], rff-laplace:M[:pair], favor:M[:ortho][:stable], elu1, group[:R])" \
    features --map bogus --d 3
usage "kat features" "kat features: --n must be >= 1, got 0" features --map taylor2 --d 3 --n 0
usage "kat features" "kat features: --f 'exp((': parse error: column 6: unexpected end of input: \
expected a number, x, pi, e, a function call or '('" features --map group --d 3 --f 'exp(('
usage "kat features" "kat features: --a '1,x' is not a comma-separated list of numbers (at 'x')" \
    features --map group --a 1,x
usage "kat spectrum" "kat spectrum: hyperrect: group_hyperrect_values: side a[1] = -1 must be \
> 0" spectrum hyperrect --f x --a 1,-1
usage "kat spectrum" "kat spectrum: --points: matrix_read: 'pts.dat' has the unknown extension \
'.dat' (kat reads .npy, .csv and .txt)" spectrum points --f x --points pts.dat
usage "kat embed" "kat embed: --d expects a non-negative integer, got 'x'" embed l1 --f x --d x
usage "kat theorem" "kat theorem: list takes no theorem ID, got 'extra' (only run does)" \
    theorem list extra
usage "kat theorem" "kat theorem: the verb must be list, run or all, not 'check'" theorem check
usage "kat theorem" "kat theorem: run: no theorem with id 'nosuch' (kat theorem list shows \
them)" theorem run nosuch
# shellcheck disable=SC2086 # $A and $G are lists of words
{
usage "kat attn" "kat attn: --scale expects a finite number, got 'x'" attn run $A --scale x
usage "kat attn" "kat attn: --params chunk=0 must be an integer in [1, 4096]" \
    attn run $A --mode linear --params chunk=0
usage "kat attn" "kat attn: --params foo is not a setting of kat attn --mode linear (its \
settings: map,chunk,norm,unnormalized,intra)" attn run $A --mode linear --params foo=1
usage "kat attn" "kat attn: linear mode: --lse: linear attention has no softmax and so no \
logsumexp; leave out --lse" attn run $A --mode linear --lse lse.npy
usage "kat attn" "kat attn: window mode: --params window=W is required" attn run $A --mode window
usage "kat attn" "kat attn: --threads must be >= 0, got -1" attn grad $G --threads -1
usage "kat attn" "kat attn: --map is not a setting of kat attn --mode dense (it has none)" \
    attn grad $G --map taylor2
}
usage "kat bench attn" "kat bench attn: D = 300: the head dimension must be in 1..256" \
    bench attn --h 1 --n 8 --d 300
usage "kat bench attn" "kat bench attn: qk mode: --params drop=2 must be in [0, 1]" \
    bench attn --mode qk --h 1 --n 8 --d 4 --drop 2 --sgemm 0
usage "kat bench attn" "kat bench attn: --params foo is not a setting of kat bench attn --mode \
linear (its settings: map,chunk,norm,unnormalized,intra,flash,crossover,pass)" \
    bench attn --mode linear --h 1 --n 8 --d 4 --params foo=1 --sgemm 0

# (--sgemm 0: a mode checks its settings after the sgemm reference has been measured.)

# (c) a missing input file or bad data; the commands that read no file fail on a value the
# computation refuses
failure "cannot open 'none.npy'" rank --q none.npy --f x
failure "'bad.txt': csv: line 2, column 2: 'x' is not a number" rank --matrix bad.txt
failure "'q.npy': a 3-D array of shape (2, 5, 4) is not a matrix" rank --matrix q.npy
: >empty.txt
printf '# a comment\n' >comment.txt
printf 'a,b\n' >header.csv
failure "^kat rank: --matrix 'empty.txt' holds no numbers (0 rows, 0 columns)$" \
    rank --matrix empty.txt
failure "^kat rank: --q 'comment.txt' holds no numbers (0 rows, 0 columns)$" \
    rank --q comment.txt --f x
failure "^kat rank: --k 'header.csv' holds no numbers (0 rows, 2 columns)$" \
    rank --q q.csv --k header.csv --f x
failure "^kat spectrum: --points 'empty.txt' holds no numbers (0 rows, 0 columns)$" \
    spectrum points --f x --points empty.txt
failure "cannot open 'nodir/s.csv' for writing" sweep --n 10 --d 2 --f x --out nodir/s.csv
failure "cannot open 'none.csv'" spectrum points --f x --points none.csv
failure "f(0) = 1 must be 0 for the l1 embedding" embed l1 --f 'exp(-x)' --d 2
failure "cannot create directory" reproduce --only theorems --out /proc/kat-never
# shellcheck disable=SC2086
{
failure "cannot open 'none.npy'" attn run --q none.npy --k k.npy --v v.npy --o o.npy
failure "bad magic string" attn run --q bad.npy --k k.npy --v v.npy --o o.npy
failure "^kat attn: do: input/output error: cannot open 'none.npy'" attn grad --q q.npy \
    --k k.npy --v v.npy --do none.npy --dq dq.npy --dk dk.npy --dv dv.npy
failure "^kat attn: qk mode: q_keep: input/output error: cannot open 'none.npy'" \
    attn run $A --mode qk --q-keep none.npy
failure "^kat attn: dense: invalid argument: v: shape" \
    attn run --q q.npy --k q.npy --v v.npy --o o.npy
}
exit "$fail"
