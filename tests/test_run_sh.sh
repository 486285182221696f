#!/bin/sh
# `./run.sh kat` runs kat in the caller's directory: a relative input path is read from there
# and a relative --out written there, not in the clone; `./run.sh python` too, with the build of
# the clone (no build/ in the caller's directory); `./run.sh` without a command is a usage
# error. run.sh builds in SOURCE/build, so this runs only when that is the build directory
# under test and it is up to date (run.sh's own ninja is then a no-op while other tests run).
# usage: test_run_sh.sh SOURCE_ROOT BUILD_ROOT
set -u
src=$(cd "$1" && pwd -P)
build=$(cd "$2" && pwd -P)
if [ "$build" != "$(cd "$src/build" 2>/dev/null && pwd -P)" ]; then
    echo "skip: run.sh uses $src/build, not the build directory under test ($build)"
    exit 77
fi
case $(ninja -C "$build" -n 2>&1) in
    *"no work to do"*) ;;
    *) echo "skip: $build is not up to date, and run.sh would build it"; exit 77 ;;
esac
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

mkdir "$tmp/work"
cd "$tmp/work" || exit 1
printf '1 2 3\n2 4 6\n' >A.txt
check "run.sh kat, a relative input path" 0 "$src/run.sh" kat rank --matrix A.txt --json
json_check "run.sh kat read ./A.txt of the caller (rank 1)" "j['rank'] == 1 and j['n'] == 2"
check "run.sh kat, a relative --out" 0 "$src/run.sh" kat sweep --n 4 --d 2 --f x --out s.csv
if [ -s "$tmp/work/s.csv" ] && [ ! -e "$src/s.csv" ]; then
    echo "ok: --out s.csv written in the caller's directory"
else
    echo "FAIL: --out s.csv not in $tmp/work (or written into $src)"; fail=1
fi
printf 'import os\nprint("cwd", os.getcwd())\n' >s.py
check "run.sh python, a relative script" 0 "$src/run.sh" python s.py
expect_out "run.sh python runs in the caller's directory" "^cwd $(pwd -P)\$"
if [ ! -e "$tmp/work/build" ]; then echo "ok: run.sh python made no build/ in the caller's directory"
else echo "FAIL: run.sh python configured a build/ in $tmp/work"; fail=1; fi
check "run.sh without a command" 2 "$src/run.sh"
expect_err "run.sh without a command names the commands" "^usage: ./run.sh reproduce"
exit "$fail"
