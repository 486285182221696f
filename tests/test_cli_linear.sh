#!/bin/sh
# kat attn --mode linear and kat bench attn --mode linear: a real run on .npy files (forward
# and gradients, --json), the benchmark with --json, and the errors: unknown map, a map that
# can be negative under normalisation, bad --params, --scale.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# float32 [N, D] arrays in .npy format, from the standard library only
npy_python "$tmp" <<'PY'
import random, sys
for name, seed in (("q", 1), ("k", 2), ("v", 3), ("do", 4)):
    rnd = random.Random(seed)
    save(sys.argv[1] + "/" + name + ".npy", (100, 16), [rnd.gauss(0, 1) for _ in range(100 * 16)])
# values and their gradient with their own head dimension (D_v = 8 != D = 16)
for name, seed in (("v8", 5), ("do8", 6)):
    rnd = random.Random(seed)
    save(sys.argv[1] + "/" + name + ".npy", (100, 8), [rnd.gauss(0, 1) for _ in range(100 * 8)])
PY
f="$tmp"
check "attn run linear taylor2 --json" 0 "$kat" attn run --mode linear --causal --json \
    --q "$f/q.npy" --k "$f/k.npy" --v "$f/v.npy" --o "$f/o.npy" --params map=taylor2,chunk=32
expect "run --json has forward_ms" '"forward_ms":'
[ -s "$f/o.npy" ] || { echo "FAIL: o.npy not written"; fail=1; }
check "attn grad linear elu1" 0 "$kat" attn grad --mode linear --q "$f/q.npy" --k "$f/k.npy" \
    --v "$f/v.npy" --do "$f/do.npy" --dq "$f/dq.npy" --dk "$f/dk.npy" --dv "$f/dv.npy" \
    --params map=elu1
[ -s "$f/dk.npy" ] || { echo "FAIL: dk.npy not written"; fail=1; }
# D_v != D: o and dv take v's 8 columns, in the linear, dense and sparse modes
check "attn grad linear D_v = 8" 0 "$kat" attn grad --mode linear --q "$f/q.npy" \
    --k "$f/k.npy" --v "$f/v8.npy" --do "$f/do8.npy" --dq "$f/dq.npy" --dk "$f/dk.npy" \
    --dv "$f/dv8.npy" --params map=elu1 --json
json_check "D_v = 8 run" 'j["command"] == "attn grad"'
npy_python "$f/dv8.npy" <<'PY'
import struct, sys
head = open(sys.argv[1], "rb").read(128).decode("latin1")
sys.exit(0 if "(100, 8)" in head else 1)
PY
[ $? -eq 0 ] || { echo "FAIL: dv8.npy is not [100, 8]"; fail=1; }
check "attn run dense D_v = 8" 0 "$kat" attn run --q "$f/q.npy" --k "$f/k.npy" \
    --v "$f/v8.npy" --o "$f/o8.npy"
npy_python "$f/o8.npy" <<'PY'
import sys
head = open(sys.argv[1], "rb").read(128).decode("latin1")
sys.exit(0 if "(100, 8)" in head else 1)
PY
[ $? -eq 0 ] || { echo "FAIL: o8.npy is not [100, 8]"; fail=1; }
check "attn run hash D_v = 8" 0 "$kat" attn run --mode hash --params buckets=4 --q "$f/q.npy" \
    --k "$f/k.npy" --v "$f/v8.npy" --o "$f/o8.npy"
for m in taylor1 favor:32 "poly:1+x+x^2/2" elu1; do
    check "attn run linear $m" 0 "$kat" attn run --mode linear --causal --q "$f/q.npy" \
        --k "$f/k.npy" --v "$f/v.npy" --o "$f/o.npy" --params "map=$m"
done
check "unknown map" 2 "$kat" attn run --mode linear --q "$f/q.npy" --k "$f/k.npy" \
    --v "$f/v.npy" --o "$f/o.npy" --params map=bogus
expect "unknown map is named" "unknown map 'bogus'"
check "rff refused under normalisation" 1 "$kat" attn run --mode linear --q "$f/q.npy" \
    --k "$f/k.npy" --v "$f/v.npy" --o "$f/o.npy" --params map=rff:16
expect "the refusal says why" "not KAT_FEATMAP_POSITIVE"
check "rff unnormalized" 0 "$kat" attn run --mode linear --q "$f/q.npy" --k "$f/k.npy" \
    --v "$f/v.npy" --o "$f/o.npy" --params map=rff:16,unnormalized=1
check "intra=score" 0 "$kat" attn run --mode linear --causal --q "$f/q.npy" --k "$f/k.npy" \
    --v "$f/v.npy" --o "$f/o.npy" --params map=taylor2,intra=score
check "bad chunk" 2 "$kat" attn run --mode linear --q "$f/q.npy" --k "$f/k.npy" \
    --v "$f/v.npy" --o "$f/o.npy" --params chunk=0
check "--scale refused" 2 "$kat" attn run --mode linear --q "$f/q.npy" --k "$f/k.npy" \
    --v "$f/v.npy" --o "$f/o.npy" --scale 2
# Linear attention has no softmax: --lse is refused (it used to be filled with NaN), and
# nothing is written.
rm -f "$f/o.npy" "$f/lse.npy"
check "--lse refused" 2 "$kat" attn run --mode linear --q "$f/q.npy" --k "$f/k.npy" \
    --v "$f/v.npy" --o "$f/o.npy" --lse "$f/lse.npy"
expect "the refusal names --lse and the mode" "linear mode: --lse: linear attention has no softmax"
[ ! -e "$f/lse.npy" ] && [ ! -e "$f/o.npy" ] || { echo "FAIL: --lse refused but files written"; fail=1; }
check "grad --lse refused" 2 "$kat" attn grad --mode linear --q "$f/q.npy" --k "$f/k.npy" \
    --v "$f/v.npy" --do "$f/do.npy" --dq "$f/dq.npy" --dk "$f/dk.npy" --dv "$f/dv.npy" \
    --lse "$f/lse.npy" --params map=elu1
check "grad --precise refused" 2 "$kat" attn grad --mode linear --q "$f/q.npy" --k "$f/k.npy" \
    --v "$f/v.npy" --do "$f/do.npy" --dq "$f/dq.npy" --dk "$f/dk.npy" --dv "$f/dv.npy" \
    --precise --params map=elu1
check "a sparse setting refused" 2 "$kat" attn run --mode linear --q "$f/q.npy" --k "$f/k.npy" \
    --v "$f/v.npy" --o "$f/o.npy" --window 8
expect "the refusal lists the linear keys" "its settings: map,chunk,norm,unnormalized,intra"
# --seed seeds the random feature maps: the same seed gives the same bytes, another differs
for s in 1 1b 2; do
    check "favor:32 --seed ${s%b}" 0 "$kat" attn run --mode linear --q "$f/q.npy" \
        --k "$f/k.npy" --v "$f/v.npy" --o "$f/o_seed$s.npy" --map favor:32 --seed "${s%b}"
done
same "--seed 1 twice gives the same bytes" "$f/o_seed1.npy" "$f/o_seed1b.npy"
differ "--seed 2 does not give --seed 1's bytes" "$f/o_seed1.npy" "$f/o_seed2.npy"
# One grammar in every command: taylor:2 is taylor2, and favor:M takes kat features' options
for m in taylor2 taylor:2; do
    check "attn run linear $m" 0 "$kat" attn run --mode linear --causal --q "$f/q.npy" \
        --k "$f/k.npy" --v "$f/v.npy" --o "$f/o_$m.npy" --params "map=$m"
done
same "taylor:2 gives taylor2's bytes" "$f/o_taylor2.npy" "$f/o_taylor:2.npy"
check "attn run linear favor:32:ortho:stable" 0 "$kat" attn run --mode linear --q "$f/q.npy" \
    --k "$f/k.npy" --v "$f/v.npy" --o "$f/o_f.npy" --params map=favor:32:ortho:stable
check "attn run linear favor:0" 2 "$kat" attn run --mode linear --q "$f/q.npy" \
    --k "$f/k.npy" --v "$f/v.npy" --o "$f/o_f.npy" --params map=favor:0
expect_err "favor:0 names the count" "map 'favor:0': the feature count M must be >= 1"
check "bench bad flag" 2 "$kat" bench attn --mode linear --bogus
check "bench --precise refused" 2 "$kat" bench attn --mode linear --h 1 --n 64 --d 8 --reps 1 \
    --sgemm 0 --backward --precise
check "bench linear --json" 0 "$kat" bench attn --mode linear --h 2 --n 256 --d 16 --causal \
    --reps 1 --warmup 0 --sgemm 128 --json --params map=taylor2
expect "bench --json has pct_sgemm" '"pct_sgemm":'
expect "bench compares with flash" 'flash'
check "bench linear --crossover" 0 "$kat" bench attn --mode linear --h 1 --n 256 --d 8 --causal \
    --reps 1 --warmup 0 --sgemm 0 --json --crossover
# linear overtakes flash somewhere for d = 8 (or the key is null: none up to 2^17)
json_check "bench linear crossover_n and baseline" \
    '"crossover_n" in j and (j["crossover_n"] is None or 512 <= j["crossover_n"] <= 131072) and j["baseline"] == "dense causal flash" and j["baseline_ms"] > 0'
# flash=0 without --baseline: no baseline at all (not the unfused N^2 attention), said plainly
check "bench linear flash=0" 0 "$kat" bench attn --mode linear --h 1 --n 256 --d 8 --reps 1 \
    --warmup 0 --sgemm 0 --params flash=0
expect "bench flash=0 says it times no baseline" \
    '  baseline  none (--baseline 1 times the unfused N^2 attention)'
check "bench linear flash=0 --json" 0 "$kat" bench attn --mode linear --h 1 --n 256 --d 8 \
    --reps 1 --warmup 0 --sgemm 0 --params flash=0 --json
json_check "bench flash=0 baseline none" 'j["baseline"] == "none"'
check "bench linear flash=0 --baseline 1" 0 "$kat" bench attn --mode linear --h 1 --n 256 \
    --d 8 --reps 1 --warmup 0 --sgemm 0 --params flash=0 --baseline 1
expect "bench --baseline 1 names the unfused baseline" '  baseline  unfused '
check "bench --crossover with --backward refused" 2 "$kat" bench attn --mode linear --h 1 \
    --n 64 --d 8 --causal --backward --crossover
check "bench linear state pass" 0 "$kat" bench attn --mode linear --h 1 --n 256 --d 16 \
    --reps 1 --warmup 0 --sgemm 0 --baseline 0 --params pass=state
check "bench linear backward" 0 "$kat" bench attn --mode linear --h 1 --n 128 --d 16 \
    --causal --backward --reps 1 --warmup 0 --sgemm 0 --baseline 0 --params map=elu1
exit "$fail"
