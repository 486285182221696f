#!/bin/sh
# libkat.so exports exactly the functions declared with KAT_API in include/kat/*.h: the
# library is built with hidden visibility, so an internal function never becomes part of the
# ABI by accident, and a public declaration without KAT_API (not exported) fails here too.
# OpenMP's named critical sections (.gomp_critical_user_NAME, common symbols that GCC gives
# default visibility) are the runtime's, not kat's, and are left out. kat/cuda.h and kat/mpi.h
# declare the optional libraries libkat-cuda and libkat-mpi, which export their own functions.
# Each static library given after INCLUDE_DIR (libkat.a, libkat-mpi.a) defines as global
# symbols only the KAT_API functions of include/kat and internal names that start with kat__,
# so that the internals of a statically linked kat cannot collide with a name of the program.
# AddressSanitizer's one-definition-rule indicators (__odr_asan.NAME, one per global variable
# of an instrumented build) are the sanitizer's, not kat's, and are left out too.
# usage: test_symbols.sh LIBKAT_SO INCLUDE_DIR [STATIC_LIB...]
set -u
lib=$1
inc=$2
command -v nm >/dev/null 2>&1 || { echo "skip: nm not installed"; exit 77; }
shift 2
exec python3 - "$lib" "$inc" "$@" <<'PY'
import glob, os, re, subprocess, sys

lib, inc, static_libs = sys.argv[1], sys.argv[2], sys.argv[3:]
out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True,
                     check=True).stdout
exported = set()
for line in out.splitlines():
    parts = line.split()
    if len(parts) == 3 and not parts[2].startswith(".gomp_critical_user_"):
        exported.add(parts[2])
declared, unmarked, declared_all = set(), [], set()
# a function declaration: KAT_API, a return type, the name, '(' (comments removed first)
decl = re.compile(r"\bKAT_API\b[^;{}()]*?\b([A-Za-z_]\w*)\s*\(")
plain = re.compile(r"^(?:const |unsigned |struct )*[A-Za-z_]\w*[\s*]+(kat_\w+)\s*\(", re.M)
optional = {"cuda.h", "mpi.h"}
for h in sorted(glob.glob(os.path.join(inc, "kat", "*.h"))):
    text = re.sub(r"/\*.*?\*/", " ", open(h).read(), flags=re.S)
    text = re.sub(r"^#.*$", "", text, flags=re.M)   # the KAT_API definition itself
    declared_all |= set(decl.findall(text))
    if os.path.basename(h) in optional:
        continue
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
for a in static_libs:
    out = subprocess.run(["nm", "-g", "--defined-only", a], capture_output=True, text=True,
                         check=True).stdout
    names = {p[2] for p in (line.split() for line in out.splitlines())
             if len(p) == 3 and not p[2].startswith((".gomp_critical_user_", "__odr_asan"))}
    internal = {n for n in names - declared_all if n.startswith("kat__")}
    for name in sorted(names - declared_all - internal):
        print("FAIL: %s: global symbol neither KAT_API nor kat__-prefixed: %s"
              % (os.path.basename(a), name))
        fail = 1
    print("%s: %d public and %d kat__ internal global symbols"
          % (os.path.basename(a), len(names & declared_all), len(internal)))
if not declared:
    print("FAIL: no declaration found (is %s the include directory?)" % inc)
    fail = 1
sys.exit(fail)
PY
