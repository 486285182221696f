#!/bin/sh
# `kat spectrum`, `kat embed`, `kat theorem`: usage errors (exit 2), library errors (exit 1) with
# the sentence naming the problem, and real runs whose --json output is parsed and checked.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

descending='all(a >= b for a, b in zip(j["eigenvalues"], j["eigenvalues"][1:]))'

# ---- spectrum: usage errors ----
check "spectrum --help" 0 "$kat" spectrum --help
expect "help lists the kinds" "hypercube"
check "spectrum without a kind" 2 "$kat" spectrum --f 'exp(-x)'
check "spectrum unknown kind" 2 "$kat" spectrum torus --f 'exp(-x)' --N 4
check "spectrum without --f" 2 "$kat" spectrum cyclic --N 4
check "spectrum bad flag" 2 "$kat" spectrum cyclic --f 'exp(-x)' --N 4 --bogus
# an option of another KIND is refused, not ignored
check "spectrum hypercube --N" 2 "$kat" spectrum hypercube --f 'exp(-x)' --d 3 --N 5
expect "--N named with its kind" "--N is for cyclic, not hypercube"
check "spectrum hypercube --check" 2 "$kat" spectrum hypercube --f 'exp(-x)' --d 3 --check
check "spectrum cyclic --mds" 2 "$kat" spectrum cyclic --f 'exp(-x)' --N 4 --mds
check "spectrum hyperrect --a --seed" 2 "$kat" spectrum hyperrect --f 'exp(-x)' --a 1,2 --seed 4
expect "--seed with --a named" "--seed is for hyperrect with --d"
check "spectrum hyperrect --d --seed" 0 "$kat" spectrum hyperrect --f 'exp(-x)' --d 3 --seed 4
check "spectrum hyperrect without sides" 2 "$kat" spectrum hyperrect --f 'exp(-x)'
check "spectrum hypercube without --d" 2 "$kat" spectrum hypercube --f 'exp(-x)'
check "spectrum bad --a list" 2 "$kat" spectrum hyperrect --f 'exp(-x)' --a 1,x,2
check "spectrum negative --N" 2 "$kat" spectrum cyclic --f 'exp(-x)' --N -3
check "spectrum bad metric" 2 "$kat" spectrum points --f 'exp(-x)' --points x.csv --metric l7

# ---- spectrum: values the library refuses; they come from the command line (exit 2) ----
check "side 0 is refused" 2 "$kat" spectrum hyperrect --f 'exp(-x)' --a 1,0,2
expect_usage "names the side" \
    "kat spectrum: hyperrect: group_hyperrect_values: side a[1] = 0 must be > 0" "kat spectrum"
check "d too large says the size" 2 "$kat" spectrum hyperrect --f 'exp(-x)' --d 40
expect "size in the message" "GiB"
check "N = 0 is refused" 2 "$kat" spectrum cyclic --f 'exp(-x)' --N 0
expect "names N" "N must be >= 1"
check "non-finite f is refused" 1 "$kat" spectrum cyclic --f 'log(x)' --N 8
expect "names the distance" "cyclic distance 0"
check "a bad expression (usage error)" 2 "$kat" spectrum cyclic --f 'exp(-' --N 8
printf '0,0\n1,2\n3\n' >"$tmp/ragged.csv"
check "ragged points file" 1 "$kat" spectrum points --f 'exp(-x)' --points "$tmp/ragged.csv"
expect "names the line" "line 3"
check "missing points file" 1 "$kat" spectrum points --f 'exp(-x)' --points "$tmp/none.csv"
check "--check needs d <= 13" 2 "$kat" spectrum hyperrect --f 'exp(-x)' --d 14 --check
expect_usage "--check needs d <= 13" "kat spectrum: --check builds the dense 2^d x 2^d \
matrix: it needs d <= 13, got d = 14" "kat spectrum"

# ---- spectrum: real runs ----
check "hyperrect --json" 0 "$kat" spectrum hyperrect --f 'x^2' --a 1,2,3 --json
json_check "hyperrect eigenvalues of x^2 on sides 1,2,3" \
    'j["eigenvalues"] == [100, 24, 12, 8, 0, -24, -48, -72] and j["rank"] == 7'
check "hyperrect --check --json" 0 "$kat" spectrum hyperrect --f 'exp(-x)' --d 8 --seed 3 --check --json
json_check "hyperrect agrees with dsyevd" \
    'len(j["eigenvalues"]) == 256 and j["dense_rel_diff"] < 1e-13 and j["n_negative"] == 0'
json_check "hyperrect eigenvalues descending" "$descending"
check "hypercube --json" 0 "$kat" spectrum hypercube --f 'sqrt(x)' --d 10 --json
json_check "hypercube: one positive level, multiplicities C(10, j)" \
    'j["n_positive"] == 1 and j["n_negative"] == 1023 and sorted(j["multiplicities"]) == sorted([1,10,45,120,210,252,210,120,45,10,1])'
json_check "hypercube eigenvalues descending" "$descending"
check "cyclic --json" 0 "$kat" spectrum cyclic --f 'exp(-x/2)' --N 64 --json
json_check "cyclic: Bochner on Z_64, smallest 0.2449 at frequency 32" \
    'abs(j["min_eigenvalue"] - 0.2449186) < 1e-6 and j["frequencies"][-1] == 32 and j["n_positive"] == 64'
json_check "cyclic eigenvalues descending" "$descending"
printf 'x,y\n0,0\n1,0\n0,1\n1,1\n2,3\n' >"$tmp/pts.csv"
check "points --json" 0 "$kat" spectrum points --f 'exp(-x)' --points "$tmp/pts.csv" --metric l1 --json
json_check "points: exp(-l1) is positive definite" \
    'j["n"] == 5 and j["cholesky_pd"] and j["n_negative"] == 0 and len(j["eigenvalues"]) == 5'
check "points --mds --json" 0 "$kat" spectrum points --f 'x^2' --points "$tmp/pts.csv" --metric l2 --mds --json
json_check "points --mds: squared l2 distances of plane points are Euclidean of rank 2" \
    'j["euclidean"] and j["n_positive"] == 2'
check "points text output" 0 "$kat" spectrum points --f 'x' --points "$tmp/pts.csv" --metric l2
expect "Cholesky verdict" "Cholesky: fails"

# ---- embed ----
check "embed --help" 0 "$kat" embed --help
check "embed without kind" 2 "$kat" embed --f 'sqrt(x)' --a 1,2
check "embed unknown kind" 2 "$kat" embed l3 --f 'sqrt(x)' --a 1,2
check "embed without sides" 2 "$kat" embed l1 --f 'sqrt(x)'
check "embed --d disagreeing with --a" 2 "$kat" embed l1 --f 'sqrt(x)' --a 1,2 --d 3
expect "--d disagreement named" "--d 3 disagrees with the 2 sides of --a"
check "embed --d agreeing with --a" 0 "$kat" embed l1 --f 'sqrt(x)' --a 1,2 --d 2
check "embed l1 of exp(-x) is refused" 1 "$kat" embed l1 --f 'exp(-x)' --a 1,2
expect "says why" "f(0) = 1 must be 0"
check "embed gram of exp(x) is refused" 1 "$kat" embed gram --f 'exp(x)' --a 1,2
expect "says why" "not positive definite"
check "embed l1 --json" 0 "$kat" embed l1 --f 'sqrt(x)' --a 1,0.5,2 --json
json_check "embed l1: 8 x 7 points reproduce sqrt of the l1 distance" \
    'j["rows"] == 8 and j["cols"] == 7 and len(j["points"]) == 8 and j["max_rel_err"] < 1e-12 and j["pairs_checked"] == 64'
check "embed gram to .npy" 0 "$kat" embed gram --f 'exp(-x)' --d 6 --out "$tmp/g.npy" --json
json_check "embed gram: 64 x 64, exact" 'j["rows"] == 64 and j["cols"] == 64 and j["max_rel_err"] < 1e-12'
check "embed l2sq to .csv" 0 "$kat" embed l2sq --f 'log1p(x)' --a 1,1,1 --out "$tmp/e.csv"
if [ "$(grep -c . "$tmp/e.csv")" = 8 ]; then echo "ok: 8 CSV rows"; else
    echo "FAIL: expected 8 CSV rows"; fail=1; fi

# ---- theorem ----
check "theorem --help" 0 "$kat" theorem --help
check "theorem without verb" 2 "$kat" theorem
check "theorem bad verb" 2 "$kat" theorem prove
check "theorem run without id" 2 "$kat" theorem run
check "theorem run unknown id" 2 "$kat" theorem run no-such-theorem
expect "names the id" "no-such-theorem"
check "theorem list --quick refused (nothing to shrink)" 2 "$kat" theorem list --quick
expect "--quick refusal says where it applies" "--quick is for run and all"
check "theorem list --json" 0 "$kat" theorem list --json
json_check "list has every entry with its source" \
    'j["count"] >= 13 and all(t["source"] and t["statement"] for t in j["theorems"])'
check "theorem run --json" 0 "$kat" theorem run discontinuity exp-degree --json
json_check "two entries pass" \
    'j["passed"] == 2 and j["failed"] == 0 and j["theorems"][1]["id"] == "exp-degree" and all(v["pass"] for v in j["theorems"][1]["values"])'
check "theorem run text" 0 "$kat" theorem run bochner-cyclic
expect "prints PASS" "PASS  bochner-cyclic"

exit "$fail"
