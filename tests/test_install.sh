#!/bin/sh
# A new user's path: install into a temporary prefix (a staged --destdir install, found through
# PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR as docs/user-guide.md says), then build and run,
# exactly as written: the README's compile line, each example's "Build and run" lines from
# its header comment, and a program against the static library.
set -eu
build_dir=$1
src_dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
meson install -C "$build_dir" --destdir "$tmp/stage" --quiet >/dev/null
prefix=$(meson introspect "$build_dir" --buildoptions |
         python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
root="$tmp/stage$prefix"
pcdir=$(dirname "$(find "$root" -name kat.pc | head -n 1)")
[ -n "$pcdir" ] || fail "kat.pc not installed"
for f in include/kat/kat.h bin/kat share/man/man1/kat.1; do
    [ -e "$root/$f" ] || fail "not installed: $f"
done
found=
for so in "$root"/lib*/*/libkat.so.0* "$root"/lib*/libkat.so.0*; do
    [ -e "$so" ] && found=1
done
[ -n "$found" ] || fail "no versioned libkat.so.0"
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$tmp/stage"
libdir=$(pkg-config --variable=libdir kat)
[ -e "$libdir/libkat.so" ] || fail "pkg-config's libdir $libdir has no libkat.so"
# Libs carries what a program needs beyond libkat: libm (the examples call it; glibc does not
# link it by default).
pkg-config --libs kat | grep -qw -- -lm || fail "pkg-config --libs kat lacks -lm: $(pkg-config --libs kat)"

# The README's compile line, on the 20-line program a user writes (as prog.c), with the rpath
# variant of the user guide for running it.
readme_cc=$(sed -n 's/^\(cc prog\.c .*\)$/\1/p' "$src_dir/README.md")
[ -n "$readme_cc" ] || fail "README.md has no 'cc prog.c ...' line"
mkdir "$tmp/readme"
cp "$src_dir/tests/install_probe.c" "$tmp/readme/prog.c"
(cd "$tmp/readme" && sh -c "$readme_cc") || fail "the README's line failed: $readme_cc"
LD_LIBRARY_PATH="$libdir" "$tmp/readme/a.out" >/dev/null || fail "README program: non-zero exit"
# shellcheck disable=SC2046 # pkg-config's output is a list of words
cc -std=c11 -Wall -Werror "$tmp/readme/prog.c" -o "$tmp/readme/rpath" \
    $(pkg-config --cflags --libs kat) -Wl,-rpath,"$(pkg-config --variable=libdir kat)"
"$tmp/readme/rpath" >/dev/null || fail "program linked with an rpath: non-zero exit"

# Every shipped example, with the two lines of its header.
n=0
for ex in "$src_dir"/experiments/examples/*.c; do
    name=$(basename "$ex" .c)
    build=$(sed -n 's/^ \*     \(cc .*\)$/\1/p' "$ex")
    run=$(sed -n 's/^ \*     \(\.\/.*\)$/\1/p' "$ex")
    if [ -z "$build" ] || [ -z "$run" ]; then
        fail "$name.c has no ' *     cc ...' and ' *     ./...' lines"
    fi
    mkdir "$tmp/$name"
    cp "$ex" "$tmp/$name/"
    (cd "$tmp/$name" && sh -c "$build") >"$tmp/cc.log" 2>&1 ||
        { cat "$tmp/cc.log"; fail "$name.c: its build line failed: $build"; }
    (cd "$tmp/$name" && LD_LIBRARY_PATH="$libdir" OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 \
        sh -c "$run") >"$tmp/run.log" 2>&1 ||
        { tail -20 "$tmp/run.log"; fail "$name: '$run' exited non-zero"; }
    echo "ok: $name: '$build' and '$run'"
    n=$((n + 1))
done
[ "$n" -ge 3 ] || fail "only $n examples found"

# The README's and the user guide's variables for `./run.sh install` (prefix ~/.local) name the
# directories that run.sh install prints for its prefix (run.sh: PKG_CONFIG_PATH=\"$prefix/...).
python3 - "$src_dir" <<'PY' || fail "the documents' variables differ from run.sh install's"
import re, sys
src = sys.argv[1]
run = open(src + "/run.sh").read()
for var in ("PATH", "PKG_CONFIG_PATH", "LD_LIBRARY_PATH"):
    m = re.search(r'[ "]%s=\\"\$prefix([^\\:"]*)' % var, run)
    assert m, "run.sh install prints no " + var
    want = '%s="$HOME/.local%s' % (var, m.group(1))
    for doc in ("README.md", "docs/user-guide.md"):
        assert want in open(src + "/" + doc).read(), doc + " lacks " + want
    print("ok: README.md and docs/user-guide.md export " + want + '" as run.sh install prints it')
PY

# The static library with its private dependencies.
static_libs=$(pkg-config --libs --static kat)
# shellcheck disable=SC2046,SC2086 # word lists
cc -std=c11 -Wall -Werror $(pkg-config --cflags kat) "$src_dir/tests/install_probe.c" \
    -o "$tmp/probe_static" "$libdir/libkat.a" $static_libs -fopenmp
"$tmp/probe_static" >/dev/null || fail "static program: non-zero exit"
"$root/bin/kat" --version >/dev/null || fail "the installed kat does not run"
echo "install test passed"
