#!/bin/sh
# Figures show exactly their data: tests/plot_readback.py runs each figure's own gnuplot script
# with `set table` and compares the plotted points with the CSV rows the figure claims. Here:
# kat sweep --plot, the rank figures of kat reproduce, and proof that the readback fails on a
# figure that shows the wrong rows (the header line once shifted every rank-vs-n curve by one).
# The attention figures are read back by test_cli_reproduce.sh and test_cli_reproduce_timed.sh.
set -u
kat="$1"
readback="$(dirname "$0")/plot_readback.py"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

if ! command -v gnuplot >/dev/null 2>&1; then
    echo "FAIL: gnuplot is not installed (run.sh installs gnuplot-nox)"; exit 1
fi

# kat sweep: two d, an exp and two polynomials (with a predicted rank), two scales.
check "sweep --plot" 0 "$kat" sweep --n 16,32,64 --d 2,3 --degree 1,2 --f "exp" --scale 1,0.5 \
    --out "$tmp/sweep.csv" --plot "$tmp/sweep.png"
if [ -s "$tmp/sweep.png" ] && [ -s "$tmp/sweep.gp" ]; then echo "ok: sweep.png and its script sweep.gp"
else echo "FAIL: no sweep.png or sweep.gp"; fail=1; fi
python3 "$readback" sweep "$tmp/sweep.gp" "$tmp/sweep.csv" || fail=1
# The title states the draw, the seed, the tolerance and the method the user chose.
check "sweep --plot, uniform points and --rtol" 0 "$kat" sweep --n 8,16 --d 2 --degree 2 \
    --dist uniform --bound 2 --symmetric --seed 3 --rtol 1e-9 --form l2sq \
    --out "$tmp/u.csv" --plot "$tmp/u.png"
python3 "$readback" sweep "$tmp/u.gp" "$tmp/u.csv" || fail=1
want="set title 'kat sweep: numerical rank of f(s * |q-k|^2)' . \"\\n\" . 'Q, K: n x d, entries uniform on [-2, 2], K = Q, seed 3; tolerance 1e-09 sigma_1; dense SVD rank'"
if grep -q -x -F -- "$want" "$tmp/u.gp"; then echo "ok: the sweep's title names its conditions"
else echo "FAIL: the sweep's title: expected $want"; grep "set title" "$tmp/u.gp"; fail=1; fi

# The rank figures of the report.
check "reproduce --quick --only rank,eps-rank,spectra" 0 "$kat" reproduce --quick \
    --only rank,eps-rank,spectra --out "$tmp/r"
python3 "$readback" report "$tmp/r" >"$tmp/rb" 2>&1 || { cat "$tmp/rb"; fail=1; }
for fig in rank_vs_n_d4 rank_vs_n_d8 rank_vs_n_d16 eps_rank_vs_bound cube_spectra; do
    if grep -q "^ok: $fig.png shows its CSV rows" "$tmp/rb"; then echo "ok: $fig read back"
    else echo "FAIL: $fig not read back"; cat "$tmp/rb"; fail=1; fi
done

# The readback fails on a figure with the wrong rows: the selection by line numbers that counted
# the header (every ::5::9 for d = 8 at the quick grid), and the rows of another d.
wrong() {   # wrong "description" sed-expression file.gp
    rm -rf "$tmp/w" && cp -r "$tmp/r" "$tmp/w" && sed -i "$2" "$tmp/w/$3"
    if python3 "$readback" report "$tmp/w" >"$tmp/rb" 2>&1; then
        echo "FAIL: the readback accepts $1"; fail=1
    elif grep -q "^FAIL: ${3%.gp}.png: " "$tmp/rb"; then echo "ok: the readback refuses $1"
    else echo "FAIL: the readback did not name ${3%.gp}.png for $1"; cat "$tmp/rb"; fail=1; fi
}
# shellcheck disable=SC2016 # the $ are gnuplot's columns, not the shell's
wrong "rows chosen by line number with the header counted" \
    's/using 2:(\$1 == 8 ? \$\([0-9]*\) : NaN)/every ::5::9 using 2:\1/g' rank_vs_n_d8.gp
# shellcheck disable=SC2016
wrong "the rows of another d" 's/\$1 == 8 ?/$1 == 4 ?/' rank_vs_n_d8.gp
wrong "a point outside the axis range" 's/^set yrange \[\*:3\]$/set yrange [1e-3:3]/' \
    cube_spectra.gp
# shellcheck disable=SC2016
wrong "spectra drawn on one another (the lambda_0 of all three at one x)" \
    's/using (\$1 + [-0-9.e]*):/using 1:/g' cube_spectra.gp
wrong "a level without its g" 's/title .g = 2: C(4+2, 2) = 15./title '"'level 15'"'/' \
    eps_rank_vs_bound.gp
wrong "a title without its tolerance" 's/, tolerance sigma_1 n eps//' rank_vs_n_d4.gp
wrong "a figure without its y label" '/^set ylabel/d' eps_rank_vs_bound.gp
# A figure without a claim is refused, so a new figure cannot go unchecked.
rm -rf "$tmp/w" && cp -r "$tmp/r" "$tmp/w" && cp "$tmp/w/cube_spectra.png" "$tmp/w/extra.png" &&
    cp "$tmp/w/cube_spectra.gp" "$tmp/w/extra.gp"
if python3 "$readback" report "$tmp/w" | grep -q "^FAIL: extra.png: a figure without a claim"; then
    echo "ok: a figure without a claim is refused"
else echo "FAIL: a figure without a claim passed"; fail=1; fi
exit "$fail"
