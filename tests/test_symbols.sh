#!/bin/sh
# libkat.so exports exactly the functions declared with KAT_API in include/kat/*.h: the
# library is built with hidden visibility, so an internal function never becomes part of the
# ABI by accident, and a public declaration without KAT_API (not exported) fails here too.
# OpenMP's named critical sections (.gomp_critical_user_NAME, common symbols that GCC gives
# default visibility) are the runtime's, not kat's, and are left out. kat/cuda.h and kat/mpi.h
# declare the optional libraries libkat-cuda and libkat-mpi, which export their own functions.
# usage: test_symbols.sh LIBKAT_SO INCLUDE_DIR
set -u
lib=$1
inc=$2
command -v nm >/dev/null 2>&1 || { echo "skip: nm not installed"; exit 77; }
exec python3 - "$lib" "$inc" <<'PY'
import glob, os, re, subprocess, sys

lib, inc = sys.argv[1], sys.argv[2]
out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True,
                     check=True).stdout
exported = set()
for line in out.splitlines():
    parts = line.split()
    if len(parts) == 3 and not parts[2].startswith(".gomp_critical_user_"):
        exported.add(parts[2])
declared, unmarked = set(), []
# a function declaration: KAT_API, a return type, the name, '(' (comments removed first)
decl = re.compile(r"\bKAT_API\b[^;{}()]*?\b([A-Za-z_]\w*)\s*\(")
plain = re.compile(r"^(?:const |unsigned |struct )*[A-Za-z_]\w*[\s*]+(kat_\w+)\s*\(", re.M)
optional = {"cuda.h", "mpi.h"}
for h in sorted(glob.glob(os.path.join(inc, "kat", "*.h"))):
    if os.path.basename(h) in optional:
        continue
    text = re.sub(r"/\*.*?\*/", " ", open(h).read(), flags=re.S)
    text = re.sub(r"^#.*$", "", text, flags=re.M)   # the KAT_API definition itself
    declared |= set(decl.findall(text))
    for m in plain.finditer(text):   # a column-0 declaration without the marker
        line = text[m.start():text.index("\n", m.start())]
        if not line.startswith(("static ", "typedef ")):
            unmarked.append("%s: %s" % (os.path.basename(h), m.group(1)))
fail = 0
for name in unmarked:
    print("FAIL: declared without KAT_API:", name)
    fail = 1
for name in sorted(exported - declared):
    print("FAIL: exported but not declared in include/kat:", name)
    fail = 1
for name in sorted(declared - exported):
    print("FAIL: declared with KAT_API but not exported:", name)
    fail = 1
print("%d exported symbols, %d declared functions" % (len(exported), len(declared)))
if not declared:
    print("FAIL: no declaration found (is %s the include directory?)" % inc)
    fail = 1
sys.exit(fail)
PY
