#!/bin/sh
# The whole tree - library, kernels, the kat command, benchmarks, examples, tests - compiles
# without a warning under both gcc and clang: every command of the build's
# compile_commands.json is run again with each compiler that is installed, with -Werror,
# into a scratch object. (experiments/bench_attn_tiles.c once built with gcc and not with
# clang, whose ABI check refused a __m512 argument to a function declared without the
# avx512f target.) Exit 77 (skipped) when neither compiler is found.
# usage: test_cli_compilers.sh BUILD_ROOT
set -u
build=$1
exec python3 - "$build" <<'PY'
import concurrent.futures, json, os, shlex, shutil, subprocess, sys, tempfile

build = sys.argv[1]
# C sources only: a .cu entry is nvcc's command line, which neither gcc nor clang accepts.
entries = [e for e in json.load(open(os.path.join(build, "compile_commands.json")))
           if e["file"].endswith(".c")]
compilers = [c for c in ("gcc", "clang") if shutil.which(c)]
if not compilers:
    print("skip: neither gcc nor clang is installed")
    sys.exit(77)
scratch = tempfile.mkdtemp(prefix="kat_compilers.")

def command(entry, cc, obj):
    """The entry's command with compiler cc, -Werror, no dependency files, output obj."""
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    out, skip = [cc], False
    for a in args[1:]:
        if skip:
            skip = False
        elif a in ("-o", "-MQ", "-MF", "-MT"):
            skip = True
        elif a not in ("-MD", "-MMD", "-fdiagnostics-color=always"):
            out.append(a)
    return out + ["-Werror", "-fdiagnostics-color=never", "-o", obj]

def compile_one(job):
    i, entry, cc = job
    obj = os.path.join(scratch, "%s_%d.o" % (cc, i))
    p = subprocess.run(command(entry, cc, obj), cwd=entry["directory"], capture_output=True,
                       text=True)
    if os.path.exists(obj):
        os.remove(obj)
    return cc, entry["file"], p.returncode, p.stderr

jobs = [(i, e, cc) for cc in compilers for i, e in enumerate(entries)]
bad = {cc: 0 for cc in compilers}
with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    for cc, src, rc, err in pool.map(compile_one, jobs):
        if rc != 0:
            bad[cc] += 1
            print("FAIL: %s: %s:" % (cc, src))
            print("\n".join("  | " + line for line in err.splitlines()[:12]))
os.rmdir(scratch)
for cc in compilers:
    print("%s: %s: %d of %d files compile with -Werror" % ("FAIL" if bad[cc] else "ok", cc,
                                                           len(entries) - bad[cc], len(entries)))
sys.exit(1 if any(bad.values()) else 0)
PY
