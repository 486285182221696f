#!/bin/sh
# `kat attn run|grad` and `kat bench attn`: usage errors (exit 2), failures with a sentence
# (exit 1), and real runs whose outputs are checked against a plain-Python softmax attention.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# Small .npy inputs written without numpy: q [2, 5, 8], k and v [1, 7, 8] (GQA), dO like q.
npy_python "$tmp" <<'PY'
import random, sys
random.seed(3)
r = lambda n: [random.gauss(0, 1) for _ in range(n)]
d = sys.argv[1]
save(d + "/q.npy", (2, 5, 8), r(80)); save(d + "/k.npy", (1, 7, 8), r(56))
save(d + "/v.npy", (1, 7, 8), r(56)); save(d + "/do.npy", (2, 5, 8), r(80))
save(d + "/k2.npy", (1, 7, 6), r(42))
PY

# usage errors
check "attn --help" 0 "$kat" attn --help
check "attn without action" 2 "$kat" attn --q "$tmp/q.npy"
expect_err "attn without action" "say run or grad"
check "attn unknown action" 2 "$kat" attn frob
check "attn run unknown flag" 2 "$kat" attn run --bogus
expect_err "attn run unknown flag" "unknown option '--bogus'"
check "attn run without --o" 2 "$kat" attn run --q "$tmp/q.npy" --k "$tmp/k.npy" --v "$tmp/v.npy"
expect_err "attn run without --o" "required"
check "attn grad without --dq" 2 "$kat" attn grad --q "$tmp/q.npy" --k "$tmp/k.npy" \
    --v "$tmp/v.npy" --do "$tmp/do.npy"
check "attn unknown mode" 2 "$kat" attn run --mode nope --q "$tmp/q.npy" --k "$tmp/k.npy" \
    --v "$tmp/v.npy" --o "$tmp/o.npy"
expect_err "attn unknown mode" "unknown attention mode 'nope'"
check "attn --scale not a number" 2 "$kat" attn run --scale x
# grad-only flags are refused by run, not ignored
check "attn run with --dq" 2 "$kat" attn run --q "$tmp/q.npy" --k "$tmp/k.npy" \
    --v "$tmp/v.npy" --o "$tmp/o.npy" --dq "$tmp/dq.npy"
expect_err "attn run with --dq" "are for kat attn grad"
check "attn run with --precise" 2 "$kat" attn run --q "$tmp/q.npy" --k "$tmp/k.npy" \
    --v "$tmp/v.npy" --o "$tmp/o.npy" --precise
check "bench --causal-ratio without --causal" 2 "$kat" bench attn --h 1 --n 8 --d 8 \
    --causal-ratio
expect_err "bench --causal-ratio without --causal" "give --causal too"

# failures with a sentence
check "attn missing file" 1 "$kat" attn run --q "$tmp/none.npy" --k "$tmp/k.npy" \
    --v "$tmp/v.npy" --o "$tmp/o.npy"
expect_err "attn missing file" "cannot open"
check "attn mismatched head dim" 1 "$kat" attn run --q "$tmp/q.npy" --k "$tmp/k2.npy" \
    --v "$tmp/v.npy" --o "$tmp/o.npy"
expect_err "attn mismatched head dim" "k: shape"
check "attn not a npy" 1 "$kat" attn run --q "$0" --k "$tmp/k.npy" --v "$tmp/v.npy" \
    --o "$tmp/o.npy"
check "dense mode with a linear setting" 2 "$kat" attn run --q "$tmp/q.npy" --k "$tmp/k.npy" \
    --v "$tmp/v.npy" --o "$tmp/o.npy" --map taylor2
expect_err "dense mode with a linear setting" "--map is not a setting of kat attn --mode dense"
check "bench dense with --params" 2 "$kat" bench attn --h 1 --n 8 --d 8 --reps 1 --sgemm 0 \
    --params chunk=4

# real runs, checked against plain Python
check "attn run --json" 0 "$kat" attn run --q "$tmp/q.npy" --k "$tmp/k.npy" --v "$tmp/v.npy" \
    --o "$tmp/o.npy" --lse "$tmp/lse.npy" --causal --json
json_check "attn run keys" "j['h'] == 2 and j['h_kv'] == 1 and j['n'] == 5 and j['m'] == 7 and j['causal'] and j['forward_ms'] >= 0"
check "attn grad --json" 0 "$kat" attn grad --q "$tmp/q.npy" --k "$tmp/k.npy" --v "$tmp/v.npy" \
    --do "$tmp/do.npy" --dq "$tmp/dq.npy" --dk "$tmp/dk.npy" --dv "$tmp/dv.npy" --causal \
    --precise --json
json_check "attn grad keys" "j['command'] == 'attn grad' and j['backward_ms'] >= 0"
python3 - "$tmp" <<'PY' || { echo "FAIL: attn run and grad differ from plain Python"; fail=1; }
import math, struct, sys
def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<H", b[8:10])[0]
    hdr = b[10:10 + n].decode()
    shape = tuple(int(x) for x in hdr.split("(")[1].split(")")[0].split(",") if x.strip())
    cnt = 1
    for s in shape: cnt *= s
    return shape, list(struct.unpack("<%df" % cnt, b[10 + n:10 + n + 4 * cnt]))
d = sys.argv[1]
(_, q), (_, k), (_, v), (_, do) = (load(d + f) for f in ("/q.npy", "/k.npy", "/v.npy", "/do.npy"))
(os_, o), (ls, lse) = load(d + "/o.npy"), load(d + "/lse.npy")
(_, dq), (dks, dk), (_, dv) = load(d + "/dq.npy"), load(d + "/dk.npy"), load(d + "/dv.npy")
assert os_ == (2, 5, 8) and ls == (2, 5) and dks == (1, 7, 8), (os_, ls, dks)
H, N, M, D, sc = 2, 5, 7, 8, 1 / math.sqrt(8)
row = lambda a, h, i: a[(h * N + i) * D:(h * N + i + 1) * D]
krow = lambda a, j: a[j * D:(j + 1) * D]
dot = lambda a, b: sum(x * y for x, y in zip(a, b))
err = 0.0
gdk, gdv = [0.0] * (M * D), [0.0] * (M * D)
for h in range(H):
    for i in range(N):
        vis = i + M - N + 1
        s = [sc * dot(row(q, h, i), krow(k, j)) for j in range(vis)]
        mx = max(s); e = [math.exp(x - mx) for x in s]; z = sum(e); p = [x / z for x in e]
        out = [sum(p[j] * krow(v, j)[c] for j in range(vis)) for c in range(D)]
        err = max(err, abs(mx + math.log(z) - lse[h * N + i]))
        err = max(err, max(abs(a - b) for a, b in zip(out, row(o, h, i))))
        g = row(do, h, i); delta = dot(g, out)
        ds = [p[j] * (dot(g, krow(v, j)) - delta) for j in range(vis)]
        gq = [sc * sum(ds[j] * krow(k, j)[c] for j in range(vis)) for c in range(D)]
        err = max(err, max(abs(a - b) for a, b in zip(gq, row(dq, h, i))))
        for j in range(vis):
            for c in range(D):
                gdk[j * D + c] += sc * ds[j] * row(q, h, i)[c]
                gdv[j * D + c] += p[j] * g[c]
err = max(err, max(abs(a - b) for a, b in zip(gdk, dk)), max(abs(a - b) for a, b in zip(gdv, dv)))
print("max difference from plain Python: %.3g" % err)
sys.exit(0 if err < 1e-5 else 1)
PY

# kat bench attn
check "bench --help" 0 "$kat" bench --help
check "bench attn --help" 0 "$kat" bench attn --help
check "bench without target" 2 "$kat" bench
check "bench unknown target" 2 "$kat" bench frob
expect_err "bench unknown target" "unknown benchmark 'frob'"
check "bench attn without --n" 2 "$kat" bench attn --h 2 --d 16
expect_err "bench attn without --n" "required"
check "bench attn --reps 0" 2 "$kat" bench attn --h 2 --n 8 --d 16 --reps 0
# the shape of the benchmark's tensors is the command line's: a usage error
check "bench attn D too large" 2 "$kat" bench attn --h 1 --n 8 --d 300
expect_usage "bench attn D too large" \
    "kat bench attn: D = 300: the head dimension must be in 1..256" "kat bench attn"
check "bench attn bad GQA" 2 "$kat" bench attn --h 3 --hkv 2 --n 8 --d 16
expect_usage "bench attn bad GQA" "kat bench attn: H = 3 query heads is not a multiple of \
H_kv = 2 key/value heads" "kat bench attn"
check "bench attn --json" 0 "$kat" bench attn --h 2 --hkv 1 --n 100 --m 130 --d 32 --causal \
    --reps 3 --sgemm 128 --scaling --causal-ratio --json
json_check "bench attn keys" "all(k in j for k in ('ms', 'gflops', 'sgemm_gflops', 'pct_sgemm', 'baseline_ms', 'speedup', 'thread_speedup', 'causal_speedup', 'peak_rss_mb')) and j['ms'] > 0 and abs(j['speedup'] - j['baseline_ms'] / j['ms']) < 1e-9 * j['speedup'] and len(j['ms_runs']) == 3"
check "bench attn --backward" 0 "$kat" bench attn --h 2 --n 64 --d 16 --backward --reps 1 \
    --sgemm 0 --baseline 0 --json
json_check "bench attn backward keys" "j['backward'] and j['baseline_ms'] is None and j['sgemm_gflops'] is None and j['flops'] == 2.5 * 4 * 2 * 64 * 64 * 16"
check "bench attn text" 0 "$kat" bench attn --h 1 --n 64 --d 16 --reps 1 --sgemm 64
expect_out "bench attn text has the sgemm ratio" "of sgemm"
exit "$fail"
