#!/bin/sh
# Progress on a terminal, silence elsewhere, and the guard in front of a long dense rank or
# sweep. The terminal is the pseudo-terminal of util-linux's `script` (bsdutils, essential in
# Debian). Long runs are cut by `timeout` (3 to 10 s): the progress line and the --force note
# come as soon as the estimate is known, a fraction of a second in.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

if ! command -v script >/dev/null 2>&1; then
    echo "FAIL: util-linux script is missing (package bsdutils)"; exit 1
fi
# on_tty FILE CMD...: CMD's output on a pseudo-terminal, one line per redraw: the carriage
# returns become newlines and the erase-line sequences (ESC [ K) are dropped, so that a line
# drawn after a cleared progress line starts at the line's start.
esc=$(printf '\033')
on_tty() {
    _f=$1; shift
    script -qec "$*" /dev/null </dev/null | tr '\r' '\n' | sed "s/$esc\\[K//g" >"$_f"
}
has() {   # has "description" file fixed-string
    if grep -q -F -- "$3" "$2"; then echo "ok: $1"; else
        echo "FAIL: $1: no '$3' in"; sed 's/^/  | /' "$2"; fail=1; fi
}
lacks() {   # lacks "description" file fixed-string
    if grep -q -F -- "$3" "$2"; then echo "FAIL: $1: '$3' in"; sed 's/^/  | /' "$2"; fail=1
    else echo "ok: $1"; fi
}

# refused "description" CMD N: the last command was refused (exit 2, checked by `check`) with
# the estimate for an N x N dense SVD and the way out, then the pointer to CMD's help.
refused() {
    if grep -q -x "kat $2: a dense SVD of the $3 x $3 matrix would take about [0-9.]* \(s\|min\|h\) here (from three 800 x 800 SVDs timed now); --method randomized finds a low rank without it, or give --force to run the dense SVD anyway" "$err" \
        && [ "$(sed -n 2p "$err")" = "see kat $2 --help" ] && [ "$(wc -l <"$err")" -eq 2 ] \
        && [ ! -s "$out" ]
    then echo "ok: $1"
    else echo "FAIL: $1: the refusal's words"; sed 's/^/  | /' "$out"; sed 's/^/  ! /' "$err"
        fail=1; fi
}
# forced "description" FILE CMD N: FILE (a command's stderr) says it went past the guard with
# --force.
forced() {
    if grep -q -x "kat $3: --force: a dense SVD of the $4 x $4 matrix, about [0-9.]* \(s\|min\|h\)" "$2"
    then echo "ok: $1"
    else echo "FAIL: $1: no --force note"; sed 's/^/  ! /' "$2"; fail=1; fi
}

# The dense rank above n m min(n, m) = 8000^3 is refused (a usage error) with its estimate and
# the randomized method's hint; a tall matrix of the same n is not that large.
check "dense rank at n = 20000 refused" 2 "$kat" rank --n 20000 --d 4
refused "the refusal says the estimate and the way out" rank 20000
check "dense rank of 20000 x 50 runs" 0 "$kat" rank --n 20000 --m 50 --d 4
[ -s "$err" ] && { echo "FAIL: a small dense rank printed to stderr"; sed 's/^/  ! /' "$err"; fail=1; }
# A matrix file is guarded once read: 8001 x 8001 zeros as bytes ('|u1'), 64 MB; 8001 is the
# smallest n refused, so a run cut short holds 1 GB at most.
{ printf '\223NUMPY\001\000\166\000'
  printf "%-117s\n" "{'descr': '|u1', 'fortran_order': False, 'shape': (8001, 8001), }"
  head -c 64016001 /dev/zero; } >"$tmp/big.npy"
check "dense rank of an 8001 x 8001 --matrix refused" 2 "$kat" rank --matrix "$tmp/big.npy"
refused "the --matrix refusal's words" rank 8001
# --force runs it: the note, then the SVD's progress line (cut after 10 s: the estimate
# alone takes seconds on a loaded machine).
on_tty "$tmp/tty" timeout 10 "$kat" rank --matrix "$tmp/big.npy" --force
forced "--matrix --force: the note" "$tmp/tty" rank 8001
has "--matrix --force: the SVD runs" "$tmp/tty" "kat rank: dense SVD of 8001 x 8001 (about "
rm -f "$tmp/big.npy"
# kat sweep: its largest n decides, before any output; --force runs the grid in order.
check "sweep with n = 20000 refused" 2 "$kat" sweep --n 16,20000 --d 2 --out "$tmp/refused.csv"
refused "the sweep's refusal" sweep 20000
[ -e "$tmp/refused.csv" ] && { echo "FAIL: the refused sweep wrote --out"; fail=1; }
check "sweep --method randomized is not guarded" 0 "$kat" sweep --n 16,8001 --d 2 --method randomized --max-rank 8
check "sweep --force runs the grid (cut after 10 s)" 124 timeout 10 "$kat" sweep --n 16,8001 --d 2 --force
forced "sweep --force: the note" "$err" sweep 8001
has "sweep --force: the first row" "$out" "16,2,exp,1,"
check "sweep --force --json: no note" 124 timeout 10 "$kat" sweep --n 16,8001 --d 2 --force --json
lacks "sweep --force --json: no note" "$err" "--force"

# Above 2000^3 a progress line on a terminal, with the estimate; none with --json or off a
# terminal.
on_tty "$tmp/tty" timeout 6 "$kat" rank --n 2001 --d 2
if grep -q "^kat rank: dense SVD of 2001 x 2001 (about [0-9.]* [a-z]*) *[0-9]*% ([0-9:]* elapsed" "$tmp/tty"
then echo "ok: dense rank progress on a terminal"
else echo "FAIL: no dense rank progress on a terminal"; sed 's/^/  | /' "$tmp/tty"; fail=1; fi
on_tty "$tmp/tty" timeout 6 "$kat" rank --n 2001 --d 2 --json
lacks "no progress with --json" "$tmp/tty" "dense SVD of"
timeout 6 "$kat" rank --n 2001 --d 2 >"$out" 2>"$err"
lacks "no progress off a terminal" "$err" "dense SVD of"

# kat reproduce: a line per step on a terminal, only the steps' results off it.
on_tty "$tmp/tty" "$kat" reproduce --quick --only spectra --out "$tmp/r1"
has "reproduce progress on a terminal" "$tmp/tty" "kat reproduce: [4/8] spectra: starting"
has "reproduce step result on a terminal" "$tmp/tty" "[4/8] spectra on the hypercube: done ("
check "reproduce off a terminal" 0 "$kat" reproduce --quick --only spectra --out "$tmp/r2"
lacks "no progress off a terminal" "$err" "kat reproduce: ["
has "the step's result off a terminal" "$err" "[4/8] spectra on the hypercube: done ("
# kat theorem and kat sweep: the item being computed on a terminal, nothing with --json.
on_tty "$tmp/tty" "$kat" theorem run discontinuity exp-degree
has "theorem progress on a terminal" "$tmp/tty" "kat theorem: discontinuity   0% (0:00 elapsed)"
has "theorem output after the cleared line" "$tmp/tty" "PASS  exp-degree"
on_tty "$tmp/tty" "$kat" theorem run discontinuity exp-degree --json
lacks "no theorem progress with --json" "$tmp/tty" "kat theorem:"
on_tty "$tmp/tty" "$kat" sweep --n 16,32 --d 2 --out "$tmp/s.csv"
has "sweep progress on a terminal" "$tmp/tty" "kat sweep: f = exp, d = 2, s = 1, n = 16   0% (0:00 elapsed)"
on_tty "$tmp/tty" "$kat" sweep --n 16,32 --d 2 --json
lacks "no sweep progress with --json" "$tmp/tty" "kat sweep:"
# One long call of unknown length (no estimate): the time so far from its first second on, on a
# terminal only. Each run is cut after 4 s.
on_tty "$tmp/tty" timeout 4 "$kat" rank --n 30000 --d 8 --method randomized
has "randomized rank: the time so far" "$tmp/tty" "kat rank: randomized SVD of f(QK^T) (0:0"
on_tty "$tmp/tty" timeout 4 "$kat" rank --n 30000 --d 8 --method randomized --json
lacks "no randomized rank progress with --json" "$tmp/tty" "kat rank:"
timeout 4 "$kat" rank --n 30000 --d 8 --method randomized >"$out" 2>"$err"
lacks "no randomized rank progress off a terminal" "$err" "kat rank:"
on_tty "$tmp/tty" timeout 4 "$kat" spectrum hyperrect --f "'exp(-x)'" --d 13 --check
has "spectrum --check: the time so far" "$tmp/tty" "kat spectrum: --check: dense eigenvalues of 8192 x 8192 (0:0"
on_tty "$tmp/tty" timeout 4 "$kat" bench attn --h 8 --n 4096 --d 64
has "bench attn: its step" "$tmp/tty" "kat bench attn: sgemm 4096^3 before (0:0"
# A call under a second prints no line.
on_tty "$tmp/tty" "$kat" spectrum hypercube --f "'exp(-x)'" --d 4
lacks "no line for a quick call" "$tmp/tty" "kat spectrum:"
has "the quick call's result" "$tmp/tty" "eigenvalues"
exit "$fail"
