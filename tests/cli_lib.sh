# shellcheck shell=sh disable=SC2034 # fail, tmp, out, err: read by the scripts sourcing this
# Helpers shared by the CLI tests (tests/test_cli*.sh), sourced as
#     . "$(dirname "$0")/cli_lib.sh"
# It sets up:
#   $tmp   a scratch directory, removed when the script exits
#   $out   the last checked command's stdout, $err its stderr (two files, so that a JSON
#          check reads stdout alone and an error check reads stderr alone)
#   fail   0 until a check fails; each script ends with `exit "$fail"`
# Every helper prints "ok: DESC" or "FAIL: DESC: why" followed by the command's stdout
# (lines "  | ") and stderr (lines "  ! "), so a failure in the meson log shows what kat said.

fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kat_$(basename "$0" .sh).XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM   # so that the EXIT trap runs on a signal too
out="$tmp/out"
err="$tmp/err"
: >"$out"
: >"$err"

_cli_ok() {   # _cli_ok "description"
    echo "ok: $1"
}
_cli_fail() {   # _cli_fail "description: why": a FAIL line, then the last command's output
    echo "FAIL: $1"
    sed 's/^/  | /' "$out"
    sed 's/^/  ! /' "$err"
    fail=1
}

# check "description" expected_status command...: runs the command (stdout to $out, stderr to
# $err) and compares its exit status. Returns non-zero when the status differs.
check() {
    _cli_desc=$1; _cli_want=$2; shift 2
    "$@" >"$out" 2>"$err"
    _cli_got=$?
    if [ "$_cli_got" = "$_cli_want" ]; then
        _cli_ok "$_cli_desc"
    else
        _cli_fail "$_cli_desc: exit $_cli_got, expected $_cli_want"
        return 1
    fi
}

# expect "description" pattern: the last command's stdout or stderr has a line matching the
# (grep basic) pattern
expect() {
    if grep -q -- "$2" "$out" "$err"; then _cli_ok "$1"; else
        _cli_fail "$1: no '$2' in the output"; fi
}
# expect_out "description" pattern: the same, on stdout alone
expect_out() {
    if grep -q -- "$2" "$out"; then _cli_ok "$1"; else
        _cli_fail "$1: no '$2' on stdout"; fi
}
# expect_err "description" pattern: the same, on stderr alone (the error sentence)
expect_err() {
    if grep -q -- "$2" "$err"; then _cli_ok "$1"; else
        _cli_fail "$1: stderr lacks '$2'"; fi
}
# expect_usage "description" "first line" "kat CMD": the last command wrote nothing on stdout
# and exactly two lines on stderr, the given one and "see kat CMD --help" (a usage error)
expect_usage() {
    printf '%s\nsee %s --help\n' "$2" "$3" >"$tmp/usage_want"
    if [ ! -s "$out" ] && cmp -s "$tmp/usage_want" "$err"; then _cli_ok "$1"; else
        _cli_fail "$1: expected no stdout and on stderr exactly:"
        sed 's/^/  want ! /' "$tmp/usage_want"; fi
}
# expect_not "description" pattern: neither stdout nor stderr has a line matching pattern
expect_not() {
    if grep -q -- "$2" "$out" "$err"; then _cli_fail "$1: '$2' in the output"; else
        _cli_ok "$1"; fi
}

# json_check "description" 'python expression over j': j is the JSON on the last command's
# stdout; the check passes when the expression is true
json_check() {
    if python3 -c "import json, sys; j = json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" \
            "$out" 2>"$tmp/py"; then
        _cli_ok "$1"
    else
        _cli_fail "$1: JSON check '$2' failed"
        sed 's/^/  python: /' "$tmp/py"
    fi
}
# json_le "description" key bound: the number at top-level "key" of the last stdout's JSON is
# <= bound (a missing key, null, NaN or a non-number fails)
json_le() {
    _cli_v=$(python3 -c '
import json, sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
print(v)
ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v <= float(sys.argv[3])
sys.exit(0 if ok else 1)' "$out" "$2" "$3" 2>"$tmp/py")
    _cli_st=$?
    if [ "$_cli_st" = 0 ]; then _cli_ok "$1 ($2 = $_cli_v)"; else
        _cli_fail "$1: $2 = '$_cli_v', expected <= $3"
        sed 's/^/  python: /' "$tmp/py"
    fi
}

# same "description" file1 file2: the two files are byte-identical
same() {
    if cmp -s "$2" "$3"; then _cli_ok "$1"; else
        echo "FAIL: $1: $2 and $3 differ"; fail=1; fi
}
# differ "description" file1 file2: the two files exist and are not byte-identical
differ() {
    if [ -e "$2" ] && [ -e "$3" ] && ! cmp -s "$2" "$3"; then _cli_ok "$1"; else
        echo "FAIL: $1: $2 and $3 are the same bytes (or one is missing)"; fail=1; fi
}

# npy_python args... <<'PY': runs the Python on stdin (args in sys.argv[1:]) with
# save(path, shape, values[, code]) defined: it writes values as a float32 .npy of that shape
# (code "d": float64; C order, version 1.0 header padded to 64 bytes), with the standard
# library only, for test inputs
npy_python() {
    python3 -c "$_cli_npy_save
$(cat)" "$@"
}
_cli_npy_save=$(cat <<'PY'
import struct
def save(path, shape, values, code="f"):
    header = "{'descr': '<f%d', 'fortran_order': False, 'shape': (%s), }" % (
        struct.calcsize(code), ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else ""))
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%d%s" % (len(values), code), *values))
PY
)
