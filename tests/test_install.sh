#!/bin/sh
# A new user's path: install into a temporary prefix, then build and run a small program with
# `pkg-config --cflags --libs kat`, against both the shared and the static library.
set -eu
build_dir=$1
src_dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build_dir" --destdir "$tmp" --quiet >/dev/null
prefix=$(meson introspect "$build_dir" --buildoptions |
         python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
root="$tmp$prefix"
pcdir=$(dirname "$(find "$root" -name kat.pc | head -n 1)")
[ -n "$pcdir" ] || { echo "kat.pc not installed"; exit 1; }
for f in include/kat/kat.h bin/kat share/man/man1/kat.1; do
    [ -e "$root/$f" ] || { echo "not installed: $f"; exit 1; }
done
ls "$root"/lib*/*/libkat.so.0* "$root"/lib*/libkat.so.0* 2>/dev/null | grep -q . ||
    { echo "no versioned libkat.so.0"; exit 1; }
export PKG_CONFIG_PATH="$pcdir"
cflags=$(pkg-config --define-variable=prefix="$root" --cflags kat)
libs=$(pkg-config --define-variable=prefix="$root" --libs kat)
libdir=$(pkg-config --define-variable=prefix="$root" --variable=libdir kat)
cc -std=c11 -Wall -Werror $cflags "$src_dir/tests/install_probe.c" -o "$tmp/probe" $libs -lm
LD_LIBRARY_PATH="$libdir" "$tmp/probe"
static_libs=$(pkg-config --define-variable=prefix="$root" --libs --static kat)
cc -std=c11 -Wall -Werror $cflags "$src_dir/tests/install_probe.c" -o "$tmp/probe_static" \
    "$libdir/libkat.a" $static_libs -fopenmp
"$tmp/probe_static"
"$root/bin/kat" --version >/dev/null
echo "install test passed"
