#!/bin/sh
# The layers of the library are enforced by the build: each layer's sources compile with the
# include directories of the layers they may use only (meson.build, lib/layers/LAYER/). For
# each layer this compiles, with the flags of one of its own sources (compile_commands.json),
# a one-line file that includes a private header of each layer: it must compile for the
# layers below (and itself) and fail for the others.
# usage: test_layers.sh BUILD_ROOT
set -u
exec python3 - "$1" <<'PY'
import json, os, shlex, subprocess, sys, tempfile

build = sys.argv[1]
entries = json.load(open(os.path.join(build, "compile_commands.json")))
probe_headers = {"core": "core/internal.h", "kernels": "kernels/kernels.h",
                 "fn": "fn/fn_internal.h", "rank": "rank/rank_internal.h",
                 "attn": "attn/attn_internal.h", "vmath": "kernels/vmath.h"}
allowed = {"core": {"core"}, "kernels": {"core", "kernels"}, "fn": {"core", "fn"},
           "rank": {"core", "rank"}, "theory": {"core", "vmath"},
           "attn": {"core", "kernels", "attn"}}
tmp = tempfile.mkdtemp(prefix="kat_layers.")
fail = 0
for layer in allowed:
    target = "libkat_%s.a.p" % layer
    entry = next((e for e in entries if target in e.get("output", e["command"])), None)
    if entry is None:
        print("FAIL: no compile command for the %s layer (%s)" % (layer, target))
        fail = 1
        continue
    args = shlex.split(entry["command"])
    for name, header in probe_headers.items():
        src = os.path.join(tmp, "probe_%s_%s.c" % (layer, name))
        with open(src, "w") as f:
            f.write('#include "%s"\n' % header)
        cmd, skip = [args[0]], False
        for a in args[1:]:
            if skip:
                skip = False
            elif a in ("-o", "-MQ", "-MF", "-MT", "-c"):
                skip = a != "-c"
            elif a in ("-MD", "-MMD") or a == entry["file"] or \
                    os.path.normpath(os.path.join(entry["directory"], a)) == \
                    os.path.normpath(os.path.join(entry["directory"], entry["file"])):
                continue
            else:
                cmd.append(a)
        cmd += ["-fsyntax-only", src]
        ok = subprocess.run(cmd, cwd=entry["directory"], capture_output=True).returncode == 0
        want = name in allowed[layer]
        if ok != want:
            print("FAIL: %s layer: #include \"%s\" %s" % (layer, header,
                  "compiles but must not" if ok else "does not compile but should"))
            fail = 1
        else:
            print("ok: %s layer: #include \"%s\" %s" % (layer, header,
                  "compiles" if ok else "refused"))
sys.exit(fail)
PY
