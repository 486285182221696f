#!/bin/sh
# kat attn / kat bench attn with the sparse modes (qk, hash, window): real runs on .npy files
# (--json), patterns that reduce to dense causal attention give the dense mode's bytes, a
# gradient run, the benchmark with --json, and the errors: bad --params, bad pattern files.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# [2, 130, 16] float32 q, k, v, dout and per-row pattern arrays [2, 130], standard library only
npy_python "$tmp" <<'PY'
import random, sys
H, N, D = 2, 130, 16
for name, seed in (("q", 1), ("k", 2), ("v", 3), ("do", 4)):
    rnd = random.Random(seed)
    save(sys.argv[1] + "/" + name + ".npy", (H, N, D), [rnd.gauss(0, 1) for _ in range(H * N * D)])
d = sys.argv[1]
save(d + "/ones.npy", (H, N), [1.0] * (H * N))
save(d + "/zeros.npy", (H, N), [0.0] * (H * N))
rnd = random.Random(5)
save(d + "/keep.npy", (H, N), [float(rnd.random() < 0.6) for _ in range(H * N)])
save(d + "/qb.npy", (H, N), [float(rnd.randrange(4)) for _ in range(H * N)])
save(d + "/kb.npy", (H, N), [float(rnd.randrange(4)) for _ in range(H * N)])
save(d + "/half.npy", (H, N), [0.5] * (H * N))
save(d + "/short.npy", (H, N - 1), [0.0] * (H * (N - 1)))
# keep files of other shapes: [N] (only for B = H = 1), [1, H, N] (B = 1 spelled out), and
# [H, 1, N] (the right count, heads on the wrong axis: must not be read as [B, H, N])
rnd = random.Random(5)
keep = [float(rnd.random() < 0.6) for _ in range(H * N)]
save(d + "/keep_n.npy", (N,), keep[:N])
save(d + "/keep_1hn.npy", (1, H, N), keep)
save(d + "/keep_h1n.npy", (H, 1, N), keep)
# [N, D] tensors: B = H = 1, where a keep file of shape [N] is q's shape without D
for name, seed in (("q1", 1), ("k1", 2), ("v1", 3)):
    rnd = random.Random(seed)
    save(d + "/" + name + ".npy", (N, D), [rnd.gauss(0, 1) for _ in range(N * D)])
save(d + "/keep_1n.npy", (1, N), keep[:N])
PY
f="$tmp"
qkv="--q $f/q.npy --k $f/k.npy --v $f/v.npy"

# Patterns that are dense causal attention reproduce the dense engine's bytes.
check "dense causal reference" 0 "$kat" attn run --causal $qkv --o "$f/o_dense.npy"
check "qk keeping everything" 0 "$kat" attn run --mode qk --causal $qkv --o "$f/o_qk.npy" \
    --params "q_keep=$f/ones.npy,k_keep=$f/ones.npy"
same "qk keeping everything = dense causal" "$f/o_dense.npy" "$f/o_qk.npy"
check "hash with one bucket --json" 0 "$kat" attn run --mode hash --causal --json $qkv \
    --o "$f/o_hash1.npy" --params "q_buckets=$f/zeros.npy,k_buckets=$f/zeros.npy"
expect "run --json names the mode" '"mode":"hash"'
same "hash with one bucket = dense causal" "$f/o_dense.npy" "$f/o_hash1.npy"

# Real sparse runs: forward and gradients.
check "qk drop run" 0 "$kat" attn run --mode qk --causal $qkv --o "$f/o1.npy" --lse "$f/l1.npy" \
    --params "q_keep=$f/keep.npy,k_keep=$f/keep.npy"
check "hash buckets from files, grad --json" 0 "$kat" attn grad --mode hash --causal --json $qkv \
    --do "$f/do.npy" --dq "$f/dq.npy" --dk "$f/dk.npy" --dv "$f/dv.npy" \
    --params "q_buckets=$f/qb.npy,k_buckets=$f/kb.npy"
expect "grad --json has backward_ms" '"backward_ms":'
check "hash by LSH, strict causal" 0 "$kat" attn run --mode hash --causal $qkv --o "$f/o2.npy" \
    --params "buckets=8,seed=3,strict=1"
check "window" 0 "$kat" attn grad --mode window --causal $qkv --do "$f/do.npy" \
    --dq "$f/dq.npy" --dk "$f/dk.npy" --dv "$f/dv.npy" --params window=40,block_q=20,block_k=50

# The benchmark: sparse time, dense time of the same run, ratio.
check "bench qk --json" 0 "$kat" bench attn --mode qk --h 2 --n 300 --d 16 --causal --reps 1 \
    --warmup 0 --baseline 0 --sgemm 0 --json --params drop=0.5
expect "bench note compares with dense" 'vs dense causal'
expect "bench --json has ms" '"ms":'
# baseline_ms is the dense causal flash time of the same run, speedup = baseline_ms / ms
json_check "bench baseline_ms is dense causal flash" \
    'j["baseline"] == "dense causal flash" and j["baseline_ms"] > 0 and abs(j["speedup"] - j["baseline_ms"] / j["ms"]) <= 1e-9 * j["speedup"]'
check "bench --crossover refused outside linear" 2 "$kat" bench attn --mode qk --h 1 --n 64 \
    --d 8 --crossover
check "bench hash backward step" 0 "$kat" bench attn --mode hash --h 2 --n 300 --d 16 --causal \
    --reps 1 --warmup 0 --baseline 0 --sgemm 0 --backward --params buckets=4,step=1
expect "bench step note" 'hash step'
check "bench window backward" 0 "$kat" bench attn --mode window --h 2 --n 300 --d 16 --causal \
    --reps 1 --warmup 0 --baseline 0 --sgemm 0 --backward --params window=64

# Keep files: exactly q's shape without D, leading axes of size 1 optional; the error names
# the shapes accepted for these tensors, and only those ([N] is not one when H = 2).
check "keep [1, H, N] = keep [H, N]" 0 "$kat" attn run --mode qk --causal $qkv --o "$f/o_1hn.npy" \
    --lse "$f/l_1hn.npy" --params "q_keep=$f/keep_1hn.npy,k_keep=$f/keep.npy"
same "keep [1, H, N] gives the bytes of keep [H, N]" "$f/o1.npy" "$f/o_1hn.npy"
check "keep [N] refused when H = 2" 1 "$kat" attn run --mode qk $qkv --o "$f/o.npy" \
    --params "q_keep=$f/keep_n.npy"
expect "keep [N] error lists the accepted shapes" "has shape \[130\], expected \[1, 2, 130\] or \[2, 130\] (q's shape"
expect_not "the error does not offer [N], which is refused" 'or \[130\]'
check "keep [H, 1, N] refused (heads on the batch axis)" 1 "$kat" attn run --mode qk $qkv \
    --o "$f/o.npy" --params "k_keep=$f/keep_h1n.npy"
expect "keep [H, 1, N] error names k" "k_keep: .* has shape \[2, 1, 130\], expected \[1, 2, 130\] or \[2, 130\] (k's shape"
check "bucket file [N] refused when H = 2" 1 "$kat" attn run --mode hash $qkv --o "$f/o.npy" \
    --params "q_buckets=$f/keep_n.npy,k_buckets=$f/zeros.npy"
expect "bucket file error lists the shapes" "expected \[1, 2, 130\] or \[2, 130\]"
q1="--q $f/q1.npy --k $f/k1.npy --v $f/v1.npy"
check "keep [N] with [N, D] tensors" 0 "$kat" attn run --mode qk --causal $q1 --o "$f/o_n.npy" \
    --q-keep "$f/keep_n.npy" --k-keep "$f/keep_n.npy"
check "keep [1, N] with [N, D] tensors" 0 "$kat" attn run --mode qk --causal $q1 \
    --o "$f/o_1n.npy" --q-keep "$f/keep_1n.npy" --k-keep "$f/keep_1n.npy"
same "keep [1, N] = keep [N]" "$f/o_n.npy" "$f/o_1n.npy"
check "keep [H, N] refused with [N, D] tensors" 1 "$kat" attn run --mode qk $q1 --o "$f/o.npy" \
    --q-keep "$f/keep.npy"
expect "B = H = 1 lists three shapes" "expected \[1, 1, 130\], \[1, 130\] or \[130\]"

# Settings a mode does not read are refused, not ignored.
check "typo in --params" 2 "$kat" attn run --mode qk $qkv --o "$f/o.npy" \
    --params "q_kep=$f/keep.npy"
expect "typo named with the mode's keys" "--params q_kep is not a setting of kat attn --mode qk (its settings: q_keep,k_keep,strict)"
check "--drop in kat attn run" 2 "$kat" attn run --mode qk $qkv --o "$f/o.npy" --drop 0.5
expect "--drop named" "--drop is not a setting of kat attn --mode qk"
check "--window with --mode hash" 2 "$kat" attn run --mode hash $qkv --o "$f/o.npy" \
    --buckets 4 --window 8
check "a key twice" 2 "$kat" attn run --mode window $qkv --o "$f/o.npy" --window 8 \
    --params window=16
expect "a key twice named" "given twice"
check "nb with LSH" 2 "$kat" attn run --mode hash $qkv --o "$f/o.npy" --params buckets=4,nb=4
# --seed seeds the LSH (seed=S in --params overrides it)
check "LSH --seed 3" 0 "$kat" attn run --mode hash --causal $qkv --o "$f/o_s3.npy" --buckets 8 \
    --seed 3
check "LSH seed=3" 0 "$kat" attn run --mode hash --causal $qkv --o "$f/o_p3.npy" \
    --params buckets=8,seed=3
same "--seed 3 = --params seed=3" "$f/o_s3.npy" "$f/o_p3.npy"
# kat bench attn reads the pattern files too (they were silently replaced by drop=0.5)
check "bench qk with keep files" 0 "$kat" bench attn --mode qk --h 2 --n 130 --d 16 --causal \
    --reps 1 --warmup 0 --sgemm 0 --json --q-keep "$f/ones.npy" --k-keep "$f/ones.npy"
expect "keep-all files visit every causal pair" 'pairs 100.00%'
check "bench qk with files and drop" 2 "$kat" bench attn --mode qk --h 2 --n 130 --d 16 \
    --reps 1 --sgemm 0 --q-keep "$f/ones.npy" --drop 0.5
check "bench qk keep file of another shape" 1 "$kat" bench attn --mode qk --h 2 --n 64 \
    --d 16 --reps 1 --sgemm 0 --q-keep "$f/ones.npy"

# Errors.
check "unknown flag" 2 "$kat" attn run --mode qk $qkv --o "$f/o.npy" --bogus 0.5
check "bad keep shape" 1 "$kat" attn run --mode qk $qkv --o "$f/o.npy" --params "q_keep=$f/short.npy"
expect "bad keep shape names the key" 'q_keep'
check "missing keep file" 1 "$kat" attn run --mode qk $qkv --o "$f/o.npy" --params "k_keep=$f/nope.npy"
check "bucket ids not integers" 1 "$kat" attn run --mode hash $qkv --o "$f/o.npy" \
    --params "q_buckets=$f/half.npy,k_buckets=$f/zeros.npy"
expect "non-integer bucket named" 'not a bucket id'
check "bucket id beyond nb" 1 "$kat" attn run --mode hash $qkv --o "$f/o.npy" \
    --params "q_buckets=$f/qb.npy,k_buckets=$f/kb.npy,nb=2"
expect "out-of-range bucket named" 'outside \[0, nb = 2)'
check "hash without buckets" 2 "$kat" attn run --mode hash $qkv --o "$f/o.npy"
check "odd LSH buckets" 1 "$kat" attn run --mode hash $qkv --o "$f/o.npy" --params buckets=5
check "window missing" 2 "$kat" attn run --mode window $qkv --o "$f/o.npy"
check "strict without causal" 2 "$kat" attn run --mode window $qkv --o "$f/o.npy" \
    --params window=4,strict=1
check "drop out of range" 2 "$kat" bench attn --mode qk --h 1 --n 64 --d 8 --reps 1 \
    --baseline 0 --sgemm 0 --params drop=1.5
check "step without backward" 2 "$kat" bench attn --mode hash --h 1 --n 64 --d 8 --reps 1 \
    --baseline 0 --sgemm 0 --params step=1
exit "$fail"
