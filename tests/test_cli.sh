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
check "no command" 2 "$kat"
check "unknown command" 2 "$kat" frobnicate
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
exit "$fail"
