#!/bin/sh
# tests/meson_heartbeat.py, the way ./run.sh test runs meson test: off a terminal a line per
# second of silence (here; 60 s in run.sh) with the count and the running tests, the command's
# output and exit status unchanged; on a terminal nothing added.
set -u
hb="$(dirname "$0")/meson_heartbeat.py"
build="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

fake='echo " 1/2 kat:fast / one OK 0.1s"; sleep 2.6; echo " 2/2 kat:fast / two OK 2.6s"; exit 3'
check "the command's exit status" 3 python3 "$hb" 1 "$build" sh -c "$fake"
n=$(grep -c "^meson test: 1 of 2 done after 0:0[1-3]; running sleep (0:0[0-3])$" "$out")
if [ "$n" -ge 2 ] && [ "$(sed -n 1p "$out")" = " 1/2 kat:fast / one OK 0.1s" ] &&
    [ "$(tail -n 1 "$out")" = " 2/2 kat:fast / two OK 2.6s" ]; then
    echo "ok: heartbeat lines between the command's lines ($n)"
else _cli_fail "heartbeat lines: $n"; fi
check "no test running yet" 0 python3 "$hb" 1 "$build" sh -c 'sleep 1.5; exec true'
expect_out "nothing done yet" "^meson test: none done yet after 0:01; running sleep (0:01)$"
if command -v script >/dev/null 2>&1; then
    script -qec "python3 $hb 1 $build sh -c 'sleep 1.5; echo end'" /dev/null </dev/null >"$out"
    if grep -q "meson test:" "$out"; then _cli_fail "a heartbeat on a terminal"
    else echo "ok: nothing added on a terminal"; fi
fi
exit "$fail"
