#!/bin/sh
# `kat reproduce`: --only, and a report that never prints a placeholder as a result. The
# quick grid of the linear step ends at N = 4096, below the D = 64 crossover of this machine
# (about 7-9k, docs/benchmarks.md), so the "no crossover" branch runs; it once printed
# "N = 0". The dense and sparse steps take 30 s and are left to `kat reproduce` itself.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

check "--only with an unknown step" 2 "$kat" reproduce --only rank,tables --out "$tmp/r0"
expect_err "the error lists the steps" \
    "unknown step 'tables' (the steps: theorems, rank, eps-rank, spectra, dense, sparse, linear, accuracy)"

check "--only with no step" 2 "$kat" reproduce --only "" --out "$tmp/r0"

check "reproduce --quick --only theorems,rank,eps-rank,spectra,linear,accuracy" 0 "$kat" reproduce \
    --quick --only theorems,rank,eps-rank,spectra,linear,accuracy --out "$tmp/r"
rep="$tmp/r/report.md"
for h in "## Theorems" "## Rank of f" "## ε-rank" "## Spectra on the hypercube" "## Linear attention" "## Accuracy against fp64"; do
    grep -q "^$h" "$rep" || { echo "FAIL: report lacks '$h'"; fail=1; }
done
# Every figure shows exactly the CSV rows it claims (tests/plot_readback.py; the wrong selections
# the readback refuses are tested in test_plots.sh).
if python3 "$(dirname "$0")/plot_readback.py" report "$tmp/r"; then echo "ok: figures read back"
else echo "FAIL: a figure does not show its rows"; fail=1; fi
if grep -q "^## Dense flash\|^## Sparse flash" "$rep"; then
    echo "FAIL: --only ran a step it did not name"; fail=1
fi
# No placeholder printed as a result: N = 0, or nan / inf in the report, the summary or a CSV
# (a value that does not exist is "—" in a table and an empty CSV field).
for f in "$rep" "$out" "$tmp"/r/*.csv; do
    if grep -n -i -w -e 'nan' -e 'inf' -e '-inf' "$f" | grep -v -i 'infinit\|inform'; then
        echo "FAIL: $f prints nan or inf as a value"; fail=1
    fi
    if grep -n 'N = 0\b\|N=0\b' "$f"; then echo "FAIL: $f prints N = 0"; fail=1; fi
done
# The crossover is either a grid size or said to lie beyond the grid, for both head sizes.
for d in 32 64; do
    if grep -q "D = $d: \(N = [1-9][0-9]*\|no crossover up to N = 4096\)[;.]" "$rep" &&
       grep -q "D = $d: \(N = [1-9][0-9]*\|no crossover up to N = 4096\)" "$out"; then
        echo "ok: crossover for D = $d stated"
    else
        echo "FAIL: crossover for D = $d"; grep -i crossover "$rep" "$out"; fail=1
    fi
done
# The words of the report and of `kat theorem`: no mention of issues, no doubled
# parentheses, no "+ 0" tolerance, a rounding-error zero printed as 0, the n of every column.
words() {   # words "description" file
    if grep -n -i 'issue' "$2"; then echo "FAIL: $1 mentions an issue"; fail=1
    else echo "ok: $1 mentions no issue"; fi
}
words "report.md" "$rep"
# Every text kat can print lives in the kat executable or in libkat: none mentions an issue.
lib=$(ldd "$kat" 2>/dev/null | awk '/libkat/ { print $3 }')
if strings "$kat" ${lib:+"$lib"} | grep -i 'issue'; then echo "FAIL: a string of kat mentions an issue"; fail=1
else echo "ok: no string of kat${lib:+ or $(basename "$lib")} mentions an issue"; fi
check "theorem list" 0 "$kat" theorem list && words "kat theorem list" "$out"
check "theorem run exp-degree generic-ranks" 0 "$kat" theorem run exp-degree generic-ranks &&
    words "kat theorem run" "$out"
expect_out "the erratum names the value, not its origin" \
    "R = 64: tail at g = 149 (a value once stated) / (eps e^{-R}); >= 1 means 149 falls short"
if grep -n '(neither (' "$rep"; then echo "FAIL: a parenthesis inside a kind"; fail=1
else echo "ok: no parenthesis inside a kind"; fi
expect_line() {   # expect_line "description" fixed-string file
    if grep -q -F -- "$2" "$3"; then echo "ok: $1"; else
        echo "FAIL: $1: no '$2' in $3"; fail=1; fi
}
# shellcheck disable=SC2016 # the backquotes are Markdown's
expect_line "x^2 named for what it is" \
    '- `x^2` (neither completely monotone nor Bernstein): 46 positive, 10 negative and 968 zero eigenvalues of 1024.' "$rep"
expect_line "the cube table prints the rounding-error zero of x^2 at j = 7 as 0" \
    '| 7|120|0.103215|-0.421666|0 |' "$rep"
expect_line "a requirement without a zero tolerance" '|≤ 1e-13|yes |' "$rep"
expect_line "a requirement with its tolerance" '|0.6242 ± 5e-05|yes |' "$rep"
if grep -n '≤ +\|≥ −\|± 0|' "$rep"; then echo "FAIL: a tolerance of 0 printed"; fail=1
else echo "ok: no tolerance of 0 printed"; fi
expect_line "the rank table names every n" \
    '| f, d|rank, n = 25|rank, n = 50|rank, n = 100|rank, n = 200|rank, n = 400|predicted, n = 400 |' "$rep"
# rank_vs_n.csv: a function without a predicted rank has an empty field there
if awk -F, 'NR > 1 && $12 != "" { bad = 1 } END { exit !bad }' "$tmp/r/rank_vs_n.csv"; then
    echo "FAIL: rank_vs_n.csv has a predicted rank for exp(x)"; fail=1
fi
exit "$fail"
