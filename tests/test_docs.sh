#!/bin/sh
# Docs that stay true. Checks, against the library and the `kat` command just built:
#   1. every ```c block of docs/user-guide.md that begins with `/* example: NAME */` compiles
#      (-std=c11 -Wall -Wextra -Werror -pedantic, public headers only, linked with libkat)
#      and exits 0 when run (each example checks its own result); each public header
#      compiles on its own;
#   2. every subcommand that `kat --help` lists exits 0 on `kat CMD --help` (and on each
#      `kat CMD SUB --help` that help points to), has a section `.SS kat CMD` in docs/kat.1
#      naming each option those helps list, and a heading with `kat CMD` in
#      docs/user-guide.md;
#   3. every `$ kat ...` line in a ```console block of the guide runs and exits 0 (or with
#      the status given by a trailing `# exit N`);
#   4. every kat_* name the guide, the man page and docs/README.md mention is declared in a
#      public header (or a meson file), every KAT_* name exists in the sources;
#   5. docs/kat.1 formats without a groff warning; relative links in docs/*.md and README.md
#      point to files that exist; docs/README.md links every document of docs/.
# usage: test_docs.sh KAT_EXE SOURCE_ROOT BUILD_ROOT [B_SANITIZE]   (compiler: $CC, else cc)
set -u
case $1 in /*) kat=$1 ;; *) kat=$PWD/$1 ;; esac
src=$2
build=$3
sanitize=${4:-none}
cc=${CC:-cc}
guide=$src/docs/user-guide.md
man=$src/docs/kat.1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kat_docs.XXXXXX")
# No `trap ... EXIT`: dash never frees a trap's text, which the valgrind setup reports as a
# definite leak of the shell; the directory is removed at the end instead.
nbad=0
bad() { echo "FAIL: $*"; nbad=$((nbad + 1)); }

for f in "$guide" "$man" "$src/docs/README.md"; do
    [ -f "$f" ] || { echo "FAIL: missing $f"; rm -rf "$tmp"; exit 1; }
done

# ---- 1. the C examples ---------------------------------------------------------------------
mkdir -p "$tmp/ex"
awk -v dir="$tmp/ex" '
    /^```c[ \t]*$/ && !inblock { inblock = 1; first = 1; next }
    /^```[ \t]*$/ && inblock { if (out != "") close(out); inblock = 0; out = ""; next }
    inblock && first {
        first = 0
        if (match($0, /^\/\* example: [A-Za-z0-9_-]+ \*\/$/)) {
            name = $0; sub(/^\/\* example: /, "", name); sub(/ \*\/$/, "", name)
            if (name in seen) { print "FAIL: example name used twice: " name; dup = 1 }
            seen[name] = 1
            out = dir "/" name ".c"
        }
    }
    inblock && out != "" { print > out }
    END { exit dup }' "$guide" || nbad=$((nbad + 1))

sanflags=
[ "$sanitize" != none ] && [ -n "$sanitize" ] && sanflags="-fsanitize=$sanitize"
nex=0
for c in "$tmp"/ex/*.c; do
    [ -e "$c" ] || break
    name=$(basename "$c" .c)
    nex=$((nex + 1))
    # shellcheck disable=SC2086 # $cc and $sanflags are word lists
    if ! $cc -std=c11 -Wall -Wextra -Werror -pedantic $sanflags -I"$src/include" "$c" \
            -o "$tmp/ex/$name" -L"$build" -Wl,-rpath,"$build" -lkat -lm >"$tmp/cc.log" 2>&1; then
        bad "example '$name' does not compile:"; sed 's/^/  | /' "$tmp/cc.log" | head -30
        continue
    fi
    mkdir -p "$tmp/run_$name"
    # sh -c, not a ( ) subshell: under the valgrind setup a forked subshell is itself traced
    # and its exit status becomes valgrind's.
    if sh -c 'cd "$1" && exec timeout 120 "$2"' sh "$tmp/run_$name" "$tmp/ex/$name" \
            >"$tmp/run.log" 2>&1; then
        echo "ok: example '$name' compiles and runs"
    else
        bad "example '$name' exited with status $?:"; sed 's/^/  | /' "$tmp/run.log" | head -30
    fi
done
[ "$nex" -gt 0 ] || bad "no '/* example: NAME */' C blocks in $guide"
# The guide says each public header also works alone.
for h in "$src"/include/kat/*.h; do
    printf '#include <kat/%s>\n' "$(basename "$h")" >"$tmp/alone.c"
    extra=   # kat/mpi.h needs MPI's headers (and is only there when MPI is)
    if [ "$(basename "$h")" = mpi.h ]; then
        extra=$(pkg-config --cflags mpi 2>/dev/null) || continue
    fi
    # shellcheck disable=SC2086
    $cc -std=c11 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$src/include" $extra "$tmp/alone.c" \
        >"$tmp/cc.log" 2>&1 || { bad "kat/$(basename "$h") does not compile alone:"; head -5 "$tmp/cc.log"; }
done

# ---- 2. every subcommand documented ---------------------------------------------------------
# The man page as plain text: \- -> -, font escapes dropped, so options read "--name".
sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\(em/-/g' "$man" >"$tmp/man.txt"
"$kat" --help >"$tmp/help" 2>&1 || bad "kat --help exited with status $?"
cmds=$(awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { on = 0 }' \
       "$tmp/help")
[ -n "$cmds" ] || bad "kat --help lists no commands"
for c in $cmds; do
    before=$nbad
    if ! "$kat" "$c" --help >"$tmp/cmdhelp" 2>&1; then
        bad "kat $c --help exited with a non-zero status"
    elif [ ! -s "$tmp/cmdhelp" ]; then
        bad "kat $c --help printed nothing"
    fi
    # A command whose options live one level down says "kat CMD SUB --help" (kat bench attn).
    for sub in $(grep -oE "kat $c [a-z][a-z0-9-]* --help" "$tmp/cmdhelp" | awk '{ print $3 }' | sort -u); do
        "$kat" "$c" "$sub" --help >>"$tmp/cmdhelp" 2>&1 ||
            bad "kat $c $sub --help exited with a non-zero status"
    done
    # The man page section of this command: from `.SS kat CMD` to the next .SS or .SH.
    awk -v c="$c" '
        /^\.S[SH] / { on = 0 }
        $0 ~ "^\\.SS \"?kat " c "([ \"]|$)" { on = 1 }
        on' "$tmp/man.txt" >"$tmp/section"
    if [ ! -s "$tmp/section" ]; then
        bad "docs/kat.1 has no section '.SS kat $c'"
    else
        for opt in $(grep -oE '^  +--[a-z0-9][a-z0-9-]*' "$tmp/cmdhelp" | tr -d ' ' | sort -u); do
            [ "$opt" = --help ] && continue
            grep -qE -- "${opt}([^a-z0-9-]|\$)" "$tmp/section" ||
                bad "docs/kat.1: option $opt of 'kat $c' (listed by its --help) is not documented"
        done
    fi
    grep -qE "^#+ .*\`kat $c( [^\`]*)?\`" "$guide" ||
        bad "docs/user-guide.md has no heading with \`kat $c\`"
    [ "$nbad" = "$before" ] &&
        echo "ok: kat $c: --help, its man page section and its user-guide heading"
done
# ... and nothing documented that does not exist.
for c in $(sed -n 's/^\.SS "\{0,1\}kat \([a-z][a-z0-9-]*\).*/\1/p' "$man" | sort -u); do
    echo "$cmds" | grep -qx "$c" || bad "docs/kat.1 documents 'kat $c', which kat --help does not list"
done

# ---- 3. the console snippets of the guide run ---------------------------------------------
mkdir -p "$tmp/console"
# The inputs the guide's `kat attn` lines read (the guide makes them with numpy; any values do
# here): q, k, v, do float32 [4, 256, 64] and q_keep float32 [4, 256], written without numpy.
python3 - "$tmp/console" <<'PY' || bad "could not write the .npy inputs of the console commands"
import random, struct, sys
def save(path, shape, vals):
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % ", ".join(map(str, shape))
    hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        f.write(struct.pack("<%df" % len(vals), *vals))
random.seed(0)
for name in ("q", "k", "v", "do"):
    save(sys.argv[1] + "/" + name + ".npy", (4, 256, 64), [random.gauss(0, 1) for _ in range(4 * 256 * 64)])
save(sys.argv[1] + "/q_keep.npy", (4, 256), [float(i % 2 == 0) for _ in range(4) for i in range(256)])
PY
awk '/^```console[ \t]*$/ { on = 1; next } /^```/ { on = 0 } on && /^\$ kat / { print }' "$guide" |
    sed 's/^\$ kat //' >"$tmp/console.txt"
nrun=0
before=$nbad
while IFS= read -r line; do
    want=0
    case "$line" in *"# exit "[0-9]*) want=${line##*# exit } ;; esac
    nrun=$((nrun + 1))
    sh -c "cd \"\$1\" && exec timeout 120 \"\$2\" $line" sh "$tmp/console" "$kat" \
        >"$tmp/cons.log" 2>&1 </dev/null
    got=$?
    if [ "$got" != "$want" ]; then
        bad "guide command 'kat $line' exited with status $got, expected $want"
        sed 's/^/  | /' "$tmp/cons.log" | head -10
    fi
done <"$tmp/console.txt"
[ "$nbad" = "$before" ] && echo "ok: the $nrun console commands of the guide run"

# ---- 4. names the docs mention exist ------------------------------------------------------------
cat "$src"/include/kat/*.h "$src"/experiments/cli.h >"$tmp/api.txt"
find -H "$src" \( -path "$src/build*" -o -path "$src/.git" \) -prune -o -name meson.build -exec cat {} + \
    >>"$tmp/api.txt"
grep -ohE '\bkat_[a-z0-9_]+' "$tmp/api.txt" | sort -u >"$tmp/api_names"
find -H "$src/include" "$src/lib" "$src/theory" "$src/experiments" "$src/tests" -type f \
     \( -name '*.[ch]' -o -name '*.sh' -o -name meson.build \) -exec cat {} + >"$tmp/srcs.txt"
cat "$src/run.sh" "$src/meson_options.txt" >>"$tmp/srcs.txt"
grep -ohE '\bKAT_[A-Z0-9_]+' "$tmp/srcs.txt" | sort -u >"$tmp/const_names"
for doc in "$guide" "$man" "$src/docs/README.md"; do
    for w in $(grep -ohE '\bkat_[a-z0-9_]+' "$doc" | sort -u); do
        grep -qx "$w" "$tmp/api_names" || bad "$(basename "$doc") mentions $w, which no public header declares"
    done
    for w in $(grep -ohE '\bKAT_[A-Z0-9_]+' "$doc" | sort -u); do
        grep -qx "$w" "$tmp/const_names" || bad "$(basename "$doc") mentions $w, which no source file has"
    done
done
echo "ok: kat_* and KAT_* names in the docs checked"

# ---- 5. the man page formats cleanly; links resolve -------------------------------------------
if command -v groff >/dev/null 2>&1; then
    groff -man -ww -z "$man" >"$tmp/groff.log" 2>&1
    [ -s "$tmp/groff.log" ] && { bad "groff warns about docs/kat.1:"; sed 's/^/  | /' "$tmp/groff.log" | head; }
else
    echo "skip: groff not installed, docs/kat.1 not formatted"
fi
for md in "$src"/docs/*.md "$src/README.md"; do
    dir=$(dirname "$md")
    for link in $(grep -oE '\]\([^)# ]+[^) ]*\)' "$md" | sed -e 's/^](//' -e 's/)$//' -e 's/#.*//'); do
        case "$link" in http://*|https://*|mailto:*|'') continue ;; esac
        [ -e "$dir/$link" ] || bad "$(basename "$md"): broken link ($link)"
    done
done
# docs/README.md is the index of docs/: it links every document there.
for f in "$src"/docs/*.md "$src"/docs/*.1; do
    name=$(basename "$f")
    [ "$name" = README.md ] && continue
    grep -qF "]($name)" "$src/docs/README.md" || bad "docs/README.md does not list $name"
done
echo "ok: groff, links and the docs/ index checked"

rm -rf "$tmp"
if [ "$nbad" = 0 ]; then
    echo "docs test passed"
    exit 0
fi
echo "docs test: $nbad failures"
exit 1
