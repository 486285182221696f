#!/bin/sh
# The kat command: exit statuses, --help, --version, --json, unknown flags.
# Prints TAP? No: meson runs this as an exit-status test.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

check "--help" 0 "$kat" --help
check "--version" 0 "$kat" --version
expect_out "--version is 0.2.0" '^kat 0\.2\.0$'
check "version --json" 0 "$kat" version --json
expect_out "version --json has isa" '"isa":'
check "version bad flag" 2 "$kat" version --bogus
check "--version --json (version's options)" 0 "$kat" --version --json
expect_out "kat --version --json is JSON" '^{"version":'
check "--version bad flag" 2 "$kat" --version --bogus

# Every subcommand's --help (the commands `kat --help` lists, from commands.def, with the
# actions of attn and bench): exit 0, and no option listed twice (sweep once listed --scale
# twice, and the second, a single number, shadowed the list).
cmds=$("$kat" --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
for want in reproduce version rank sweep features spectrum embed theorem attn bench; do
    echo "$cmds" | grep -qx "$want" || { echo "FAIL: kat --help does not list $want"; fail=1; }
done
for c in $cmds; do
    case $c in attn) subs="run grad" ;; bench) subs="attn" ;; *) subs="-" ;; esac
    for s in $subs; do
        [ "$s" = - ] && s=
        name="kat $c${s:+ $s}"
        # shellcheck disable=SC2086 # $s is empty or one word
        if ! "$kat" $c $s --help >"$tmp/help" 2>&1; then
            echo "FAIL: $name --help exits non-zero"; sed 's/^/  | /' "$tmp/help"
            fail=1; continue
        fi
        dups=$(awk '/^  --[a-z0-9-]+/ { print $1 }' "$tmp/help" | sort | uniq -d)
        nopt=$(grep -c '^  --' "$tmp/help")
        if [ -n "$dups" ]; then
            echo "FAIL: $name --help lists twice:" $dups; fail=1
        elif [ "$nopt" -lt 2 ]; then
            echo "FAIL: $name --help lists $nopt options"; fail=1
        else
            echo "ok: $name --help: $nopt options, none twice"
        fi
    done
done

# The exit status rule (docs/kat.1, EXIT STATUS): 0 success, 1 a failure of the computation or
# the data, 2 a usage error. A usage error of every command prints one line naming the option
# or argument and the value, then "see kat CMD --help", and nothing on stdout.
check "no command" 2 "$kat"
expect_usage "no command" "usage: kat [--help | --version] <command> [options]" "kat"
check "unknown command" 2 "$kat" frobnicate
expect_usage "unknown command" "kat: unknown command 'frobnicate'" "kat"
check "version extra argument" 2 "$kat" version extra
expect_usage "version extra argument" "kat version: unexpected argument 'extra'" "kat version"
check "reproduce --seed x" 2 "$kat" reproduce --seed x --out "$tmp/never"
expect_usage "reproduce --seed x" \
    "kat reproduce: --seed expects a non-negative integer, got 'x'" "kat reproduce"
check "rank --n abc" 2 "$kat" rank --n abc
expect_usage "rank --n abc" "kat rank: --n expects a non-negative integer, got 'abc'" "kat rank"
check "rank --bogus" 2 "$kat" rank --bogus
expect_usage "rank --bogus" "kat rank: unknown option '--bogus'" "kat rank"
check "rank --json=1" 2 "$kat" rank --json=1
expect_usage "rank --json=1" "kat rank: --json takes no value, got '1'" "kat rank"
check "rank --n without a value" 2 "$kat" rank --n
expect_usage "rank --n without a value" "kat rank: --n needs a value" "kat rank"
check "rank --scale inf" 2 "$kat" rank --scale inf
expect_usage "rank --scale inf" "kat rank: --scale expects a finite number, got 'inf'" "kat rank"
check "rank malformed --f" 2 "$kat" rank --f 'exp(('
expect_usage "rank malformed --f" "kat rank: --f 'exp((': parse error: column 6: unexpected end \
of input: expected a number, x, pi, e, a function call or '('" "kat rank"
check "sweep malformed --f" 2 "$kat" sweep --f 'exp(('
expect_usage "sweep malformed --f" "kat sweep: --f 'exp((': parse error: column 6: unexpected \
end of input: expected a number, x, pi, e, a function call or '('" "kat sweep"
check "features --d x" 2 "$kat" features --d x
expect_usage "features --d x" "kat features: --d expects a non-negative integer, got 'x'" \
    "kat features"
check "spectrum malformed --f" 2 "$kat" spectrum cyclic --f 'exp(-' --N 8
expect_usage "spectrum malformed --f" "kat spectrum: --f 'exp(-': parse error: column 6: \
unexpected end of input: expected a number, x, pi, e, a function call or '('" "kat spectrum"
check "spectrum unknown KIND" 2 "$kat" spectrum torus --f x
expect_usage "spectrum unknown KIND" \
    "kat spectrum: KIND must be hyperrect, hypercube, cyclic or points, not 'torus'" \
    "kat spectrum"
check "embed malformed --f" 2 "$kat" embed l1 --f 'x+' --d 3
expect_usage "embed malformed --f" "kat embed: --f 'x+': parse error: column 3: unexpected end \
of input: expected a number, x, pi, e, a function call or '('" "kat embed"
check "embed bad --a list" 2 "$kat" embed l1 --f x --a 1,b
expect_usage "embed bad --a list" \
    "kat embed: --a '1,b' is not a comma-separated list of numbers (at 'b')" "kat embed"
check "embed unknown KIND" 2 "$kat" embed l3 --f x --d 3
expect_usage "embed unknown KIND" "kat embed: KIND must be l1, l2sq or gram, not 'l3'" \
    "kat embed"
check "theorem without a verb" 2 "$kat" theorem
expect_usage "theorem without a verb" "kat theorem: a verb (list, run or all) is required" \
    "kat theorem"
check "theorem unknown verb" 2 "$kat" theorem check
expect_usage "theorem unknown verb" "kat theorem: the verb must be list, run or all, not 'check'" \
    "kat theorem"
# A theorem ID is an argument like any other: an unknown one is a usage error.
check "theorem run nosuch" 2 "$kat" theorem run nosuch
expect_usage "theorem run nosuch" \
    "kat theorem: run: no theorem with id 'nosuch' (kat theorem list shows them)" "kat theorem"
check "attn without an action" 2 "$kat" attn
expect_usage "attn without an action" "kat attn: say run or grad" "kat attn"
check "attn unknown mode" 2 "$kat" attn run --q q.npy --k k.npy --v v.npy --o o.npy --mode flash3
expect_usage "attn unknown mode" "kat attn: --mode: unknown attention mode 'flash3' (the modes: \
$("$kat" attn --help | sed -n 's/^  --mode *M *\([^ ]*\) .*/\1/p'))" "kat attn"
check "attn --threads -1" 2 "$kat" attn run --q q.npy --k k.npy --v v.npy --o o.npy --threads -1
expect_usage "attn --threads -1" "kat attn: --threads must be >= 0, got -1" "kat attn"
check "bench without a benchmark" 2 "$kat" bench
expect_usage "bench without a benchmark" "kat bench: which benchmark? (the benchmarks: attn)" \
    "kat bench"
check "bench unknown benchmark" 2 "$kat" bench gemm
expect_usage "bench unknown benchmark" \
    "kat bench: unknown benchmark 'gemm' (the benchmarks: attn)" "kat bench"
check "bench attn --reps 0" 2 "$kat" bench attn --h 1 --n 8 --d 4 --reps 0
expect_usage "bench attn --reps 0" "kat bench attn: --reps must be >= 1, got 0" "kat bench attn"
# Failures of the data or the computation: exit 1, with the reason.
check "rank of a missing file" 1 "$kat" rank --q "$tmp/none.npy"
expect_err "rank of a missing file" "cannot open '$tmp/none.npy'"
npy_python "$tmp" <<'PY'
import sys
save(sys.argv[1] + "/q.npy", (2, 4, 8), [0.1 * i for i in range(64)])
save(sys.argv[1] + "/k.npy", (2, 4, 16), [0.1 * i for i in range(128)])
PY
check "attn head dimensions differ" 1 "$kat" attn run --q "$tmp/q.npy" --k "$tmp/k.npy" \
    --v "$tmp/k.npy" --o "$tmp/o.npy"
expect_err "attn head dimensions differ (named, both values)" "^kat attn: shapes: invalid \
argument: k: shape \[1, 2, 4, 16\] does not match q \[1, 2, 4, 8\]: the head dimension D is 16 \
for k but 8 for q$"

# Messages word for word: the theorem verbs in kat --help, and no output that speaks of issues
# (every --help, the theorem statements and notes).
check "kat --help" 0 "$kat" --help
expect_out "kat --help names the theorem verbs" \
    '^  theorem    the reproduced theorems: list, run ID\.\.\., or all (exit 1 if any fails)$'
{
    "$kat" --help
    for c in $cmds; do "$kat" "$c" --help; done
    "$kat" attn run --help; "$kat" bench attn --help
    "$kat" theorem run exp-degree --quick
} >"$tmp/all_output" 2>&1
if grep -i -n 'issue' "$tmp/all_output"; then
    echo "FAIL: kat's output mentions an issue (lines above)"; fail=1
else
    echo "ok: no --help and no theorem output mentions an issue"
fi
exit "$fail"
