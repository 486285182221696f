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
expect_usage "sweep bad --n list" \
    "kat sweep: --n '10,x' is not a comma-separated list of numbers (at 'x')" "kat sweep"
check "rank bad --sides list" 2 "$kat" rank --dist rect --sides 1,,2 --d 3
expect_usage "rank bad --sides list" \
    "kat rank: --sides '1,,2' is not a comma-separated list of numbers (at ',2')" "kat rank"
check "sweep bad --degree" 2 "$kat" sweep --degree 1.5
# a value the command refuses is a usage error too: one line naming it, then where help is
check "rank unknown function" 2 "$kat" rank --f 'foo(x)' --n 10
expect_usage "rank unknown function" \
    "kat rank: --f 'foo(x)': parse error: column 1: unknown function 'foo'" "kat rank"
check "rank syntax error" 2 "$kat" rank --f 'x^^2' --n 10
expect_usage "rank syntax error" "kat rank: --f 'x^^2': parse error: column 3: expected a \
number, x, pi, e, a function call or '(', got '^'" "kat rank"
check "rank n = 0" 2 "$kat" rank --n 0
expect_usage "rank n = 0" "kat rank: --n must be >= 1, got 0" "kat rank"
check "rank d = 0" 2 "$kat" rank --d 0
expect_usage "rank d = 0" "kat rank: --d must be >= 1, got 0" "kat rank"
check "rank bad dist" 2 "$kat" rank --dist normal --n 10
expect_usage "rank bad dist" "kat rank: --dist: unknown distribution 'normal' (expected gauss, \
uniform, sphere, hypercube, rect or grid)" "kat rank"
check "rank rect without sides" 2 "$kat" rank --dist rect --n 10 --d 3
expect_usage "rank rect without sides" \
    "kat rank: --dist rect needs --sides A1,...,Ad (the d side lengths)" "kat rank"
check "rank rect, sides and d disagree" 2 "$kat" rank --dist rect --sides 1,2 --d 3
expect_usage "rank rect, sides and d disagree" \
    "kat rank: --sides '1,2' gives 2 side lengths but --d is 3" "kat rank"
check "rank bad --sigma" 2 "$kat" rank --sigma -1
expect_usage "rank bad --sigma" "kat rank: rank_points: sigma = -1 must be finite and >= 0" \
    "kat rank"
check "rank bad --form (exact)" 2 "$kat" rank --form cosine
expect_usage "rank bad --form (exact)" \
    "kat rank: --form: unknown form 'cosine' (expected inner, l2sq or l1)" "kat rank"
check "sweep bad --f, nothing written" 2 "$kat" sweep --n 10 --d 2 --f 'exp;x+' \
    --out "$tmp/never.csv"
expect_usage "sweep bad --f, nothing written" "kat sweep: --f 'x+': parse error: column 3: \
unexpected end of input: expected a number, x, pi, e, a function call or '('" "kat sweep"
[ ! -e "$tmp/never.csv" ] || { echo "FAIL: sweep wrote $tmp/never.csv before its usage error"; fail=1; }
check "sweep rect without sides" 2 "$kat" sweep --n 10 --d 2,3 --dist rect --sides 1,2
expect_usage "sweep rect without sides" "kat sweep: --sides '1,2' gives 2 side lengths but \
--d is 3" "kat sweep"

# failures with a sentence
check "rank dense too large" 1 "$kat" rank --n 2000000 --d 2
expect_err "rank dense too large" "--method randomized"
check "rank f not finite" 1 "$kat" rank --f exp --scale 1e5 --n 20
expect_err "rank f not finite" "f = exp is inf at M("
check "rank missing file" 1 "$kat" rank --q "$tmp/none.npy"

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

# --matrix: the rank of a matrix the user has. A = U V^T with U 40 x 5 and V 30 x 5 random has
# rank 5: five singular values of the size of A's, then rounding noise (float64 files; float32
# rounding would leave noise far above the default tolerance). The same A as .npy, as the
# whitespace text np.savetxt writes (.txt) and as CSV gives the same rank and spectrum.
npy_python "$tmp" <<'PY'
import random, sys
random.seed(7)
U = [[random.gauss(0, 1) for _ in range(5)] for _ in range(40)]
V = [[random.gauss(0, 1) for _ in range(5)] for _ in range(30)]
A = [[sum(u[t] * v[t] for t in range(5)) for v in V] for u in U]
d = sys.argv[1]
save(d + "/A.npy", (40, 30), [x for row in A for x in row], "d")
with open(d + "/A.txt", "w") as f:
    f.write("# A = U V^T, rank 5\n")
    f.writelines(" ".join("%.18e" % x for x in row) + "\n" for row in A)
with open(d + "/A.csv", "w") as f:
    f.writelines(",".join(repr(x) for x in row) + "\n" for row in A)
PY
for ext in npy txt csv; do
    check "rank --matrix A.$ext" 0 "$kat" rank --matrix "$tmp/A.$ext" --sv --json
    json_check "rank --matrix A.$ext: rank 5, n x m, the spectrum drops after 5" \
        "j['rank'] == 5 and j['n'] == 40 and j['m'] == 30 and j['method'] == 'dense' \
        and j['matrix'].endswith('A.$ext') and len(j['singular_values']) == 30 \
        and j['singular_values'][4] > 1e-3 * j['sigma_max'] \
        and j['singular_values'][5] < 1e-13 * j['sigma_max'] and j['tol'] > 0 \
        and 1 <= j['stable_rank'] <= 5 and 'f' not in j and 'predicted_rank' not in j"
    cp "$out" "$tmp/A_$ext.json"
done
python3 - "$tmp" <<'PY' || { echo "FAIL: --matrix .npy, .txt and .csv spectra differ"; fail=1; }
import json, sys
sv = [json.load(open("%s/A_%s.json" % (sys.argv[1], e)))["singular_values"] for e in ("npy", "txt", "csv")]
assert all(abs(a - b) <= 1e-12 * sv[0][0] for s in sv[1:] for a, b in zip(sv[0], s)), sv
PY
check "rank --matrix plain text" 0 "$kat" rank --matrix "$tmp/A.txt" --eps 1e-3
expect_out "rank --matrix names the file and the shape" "^M from $tmp/A.txt: 40 x 30, dense SVD\$"
expect_out "rank --matrix prints the rank" '^rank: 5 (tol '
expect_out "rank --matrix prints the eps-ranks" '^  spectral eps-rank: 5$'
check "rank --matrix with --f" 2 "$kat" rank --matrix "$tmp/A.npy" --f exp
expect_usage "rank --matrix with --f" "kat rank: --matrix '$tmp/A.npy' is the matrix itself: \
--f, --map, --form, --scale, --q, --k and the options of random points do not apply" "kat rank"
check "rank --matrix with --map" 2 "$kat" rank --matrix "$tmp/A.npy" --map taylor2
check "rank --matrix with --n" 2 "$kat" rank --matrix "$tmp/A.npy" --n 10
check "rank --matrix with --q" 2 "$kat" rank --matrix "$tmp/A.npy" --q "$tmp/A.npy"
check "rank --matrix randomized" 2 "$kat" rank --matrix "$tmp/A.npy" --method randomized
expect_usage "rank --matrix randomized" "kat rank: --matrix '$tmp/A.npy' is probed with \
--method dense only (the randomized method never stores M; this M is stored)" "kat rank"
check "rank --matrix missing file" 1 "$kat" rank --matrix "$tmp/none.npy"
expect_err "rank --matrix missing file" "cannot open '$tmp/none.npy'"
printf '1 2\n3 nan\n' >"$tmp/bad.txt"
check "rank --matrix non-finite entry (data: exit 1)" 1 "$kat" rank --matrix "$tmp/bad.txt"
expect_err "rank --matrix non-finite entry (data: exit 1)" "line 2, column 2: 'nan' is not finite"

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
