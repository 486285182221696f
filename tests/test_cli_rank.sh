#!/bin/sh
# `kat rank` and `kat sweep`: usage errors (exit 2), failures with a sentence (exit 1), and
# real runs whose --json and CSV output are checked.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# usage errors
check "rank --help" 0 "$kat" rank --help
check "rank unknown flag" 2 "$kat" rank --bogus
expect_err "rank unknown flag" "unknown option '--bogus'"
check "rank --n not a number" 2 "$kat" rank --n abc
check "rank bad --form" 2 "$kat" rank --form cosine
expect_err "rank bad --form" "unknown form 'cosine'"
check "rank bad --method" 2 "$kat" rank --method fast
check "rank --k without --q" 2 "$kat" rank --k x.npy
check "sweep unknown flag" 2 "$kat" sweep --frobnicate
check "sweep bad --n list" 2 "$kat" sweep --n 10,x
check "sweep bad --degree" 2 "$kat" sweep --degree 1.5

# failures with a sentence
check "rank unknown function" 1 "$kat" rank --f 'foo(x)' --n 10
expect_err "rank unknown function" "unknown function 'foo'"
check "rank syntax error" 1 "$kat" rank --f 'x^^2' --n 10
expect_err "rank syntax error" "column 3"
check "rank n = 0" 1 "$kat" rank --n 0
expect_err "rank n = 0" "n and m must be >= 1"
check "rank dense too large" 1 "$kat" rank --n 2000000 --d 2
expect_err "rank dense too large" "--method randomized"
check "rank f not finite" 1 "$kat" rank --f exp --scale 1e5 --n 20
expect_err "rank f not finite" "f = exp is inf at M("
check "rank missing file" 1 "$kat" rank --q "$tmp/none.npy"
check "rank bad dist" 1 "$kat" rank --dist normal --n 10
expect_err "rank bad dist" "unknown distribution 'normal'"
check "rank rect without sides" 1 "$kat" rank --dist rect --n 10 --d 3
expect_err "rank rect without sides" "sides"

# real runs
check "rank (1+x)^3 --json" 0 "$kat" rank --f '(1+x)^3' --n 300 --d 6 --json
json_check "rank (1+x)^3 --json" "j['rank'] == 84 and j['predicted_rank'] == 84 and j['n'] == 300 \
    and j['m'] == 300 and j['d'] == 6 and j['f'] == '(1+x)^3' and j['method'] == 'dense' \
    and j['tol'] > 0 and 1 <= j['stable_rank'] <= 84 and 1 <= j['effective_rank'] <= 84 \
    and j['seconds'] >= 0 and 'singular_values' not in j"
check "rank exp --sv --eps --json" 0 "$kat" rank --n 50 --d 4 --eps 1e-3 --sv --json
json_check "rank exp --sv --eps --json" "len(j['singular_values']) == 50 and \
    'predicted_rank' not in j and j['eps_rank_spectral'] <= j['eps_rank_frobenius'] <= 50 and \
    j['singular_values'][0] == j['sigma_max']"
check "rank randomized x^2" 0 "$kat" rank --f 'x^2' --n 300 --d 6 --method randomized --json
json_check "rank randomized x^2" "j['rank'] == 21 and j['method'] == 'randomized' and j['converged']"
check "rank l2sq x" 0 "$kat" rank --f x --form l2sq --n 60 --d 3 --json
json_check "rank l2sq x" "j['rank'] == 5 and j['predicted_rank'] == 5"
check "rank hypercube enumerate" 0 "$kat" rank --f 'x^3' --dist hypercube --enumerate \
    --symmetric --n 64 --d 6 --json
json_check "rank hypercube enumerate" "j['rank'] == 41 and j['predicted_rank'] == 56"
check "rank plain text" 0 "$kat" rank --f relu --n 40 --d 3
expect_out "rank plain text has 'rank:'" '^rank: '

# the user's own points: K = Q from a CSV file
printf '1,0\n0,1\n1,1\n2,3\n' >"$tmp/q.csv"
check "rank --q csv" 0 "$kat" rank --q "$tmp/q.csv" --f x --json
json_check "rank --q csv" "j['rank'] == 2 and j['n'] == 4 and j['dist'] == 'file'"
# options that draw points would be ignored with --q: refused
check "rank --q with --n" 2 "$kat" rank --q "$tmp/q.csv" --n 40
expect_err "rank --q with --n" "with --q the points come from the files"
check "rank --q with --dist" 2 "$kat" rank --q "$tmp/q.csv" --dist uniform
check "rank --q with --seed (randomized method)" 0 "$kat" rank --q "$tmp/q.csv" --f x \
    --method randomized --seed 3
check "rank --symmetric with another --m" 2 "$kat" rank --symmetric --n 20 --m 30
expect_err "rank --symmetric with another --m" "m = n = 20"

# sweep
check "sweep csv" 0 "$kat" sweep --n 20,40 --d 3 --f 'x^2;exp' --degree 2 --out "$tmp/s.csv"
lines=$(wc -l <"$tmp/s.csv")
[ "$lines" = 7 ] || { echo "FAIL: sweep csv has $lines lines, expected 7"; fail=1; }
head -1 "$tmp/s.csv" | grep -q '^n,d,f,scale,rank,predicted,stable,effective,seconds$' ||
    { echo "FAIL: sweep csv header"; fail=1; }
grep -q '^40,3,x^2,1,6,6,' "$tmp/s.csv" || { echo "FAIL: sweep x^2 row"; cat "$tmp/s.csv"; fail=1; }
grep -q '^40,3,(1+x)^2,1,10,10,' "$tmp/s.csv" || { echo "FAIL: sweep degree row"; fail=1; }
# --scale is a list and every scale is used (a second --scale option, a single number, once
# shadowed it: a list was refused and a number ignored)
check "sweep --scale list" 0 "$kat" sweep --n 20 --d 3 --f exp --scale 0.5,2 --json
json_check "sweep --scale list" "[p['scale'] for p in j['points']] == [0.5, 2]"
check "sweep --scale one value" 0 "$kat" sweep --n 20 --d 3 --f exp --scale 3 --json
json_check "sweep --scale one value" "[p['scale'] for p in j['points']] == [3]"
# --eps adds the eps-ranks (it was accepted and ignored); they agree with kat rank's
check "sweep --eps" 0 "$kat" sweep --n 30 --d 3 --f exp --eps 1e-3 --out "$tmp/e.csv"
head -1 "$tmp/e.csv" | grep -q ',seconds,eps_rank_spectral,eps_rank_frobenius$' ||
    { echo "FAIL: sweep --eps header"; cat "$tmp/e.csv"; fail=1; }
check "rank --eps, same points" 0 "$kat" rank --n 30 --d 3 --f exp --eps 1e-3 --json
want=$(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('%d,%d' % (j['eps_rank_spectral'], j['eps_rank_frobenius']))" "$out")
tail -1 "$tmp/e.csv" | grep -q ",$want\$" ||
    { echo "FAIL: sweep --eps row lacks kat rank's eps-ranks $want"; cat "$tmp/e.csv"; fail=1; }
check "sweep --json" 0 "$kat" sweep --n 16,32 --d 2,3 --f 'x^2' --json
json_check "sweep --json" "len(j['points']) == 4 and j['points'][3]['rank'] == 6"
if command -v gnuplot >/dev/null 2>&1; then
    check "sweep --plot" 0 "$kat" sweep --n 16,32,64 --degree 1,2 --d 3 --out "$tmp/p.csv" \
        --plot "$tmp/p.png"
    head -c 4 "$tmp/p.png" | grep -q PNG || { echo "FAIL: sweep --plot wrote no PNG"; fail=1; }
fi

# --map: the rank of a feature map's Phi(Q) Psi(K)^T, in the library's one spec grammar
check "rank --map taylor2" 0 "$kat" rank --map taylor2 --n 60 --d 3 --json
json_check "taylor2 on R^3 has rank C(5, 2) = 10" "j['rank'] == 10 and j['map'] == 'taylor2'"
check "rank --map taylor:2" 0 "$kat" rank --map taylor:2 --n 60 --d 3 --json
json_check "taylor:2 is taylor2" "j['rank'] == 10"
check "rank --map and --f" 2 "$kat" rank --map taylor2 --f exp --n 10 --d 3
check "rank --map favor:0" 1 "$kat" rank --map favor:0 --n 10 --d 3
expect_err "favor:0 named" "map 'favor:0': the feature count M must be >= 1"
check "rank --map unknown" 2 "$kat" rank --map taylor3x --n 10 --d 3
expect_err "bad order named" "map 'taylor3x': taylor needs an order P >= 0"

exit "$fail"
