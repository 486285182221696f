#!/bin/sh
# The kat command: exit statuses, --help, --version, --json, unknown flags.
# Prints TAP? No: meson runs this as an exit-status test.
set -u
kat="$1"
fail=0
check() {   # check "description" expected_status command...
    desc=$1; want=$2; shift 2
    "$@" >/tmp/kat_cli_out.$$ 2>&1
    got=$?
    if [ "$got" != "$want" ]; then
        echo "FAIL: $desc: exit $got, expected $want"; sed 's/^/  | /' /tmp/kat_cli_out.$$; fail=1
    else
        echo "ok: $desc"
    fi
}
check "--help" 0 "$kat" --help
check "--version" 0 "$kat" --version
check "no command" 2 "$kat"
check "unknown command" 2 "$kat" frobnicate
check "version --json" 0 "$kat" version --json
check "version bad flag" 2 "$kat" version --bogus
"$kat" version --json | grep -q '"isa":' || { echo "FAIL: version --json lacks isa"; fail=1; }
rm -f /tmp/kat_cli_out.$$
exit $fail
