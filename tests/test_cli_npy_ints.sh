#!/bin/sh
# Integer and boolean .npy files where kat reads integers: bucket ids and keep masks of the
# sparse attention modes, point sets of kat rank. NumPy writes bucket ids as int64 (or int32),
# masks as bool; they must give the same bytes as the same values in float32 files. Integer
# q, k, v are refused with a sentence naming the dtype; negative ids name the value.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

npy_python "$tmp" <<'PY'
import random, struct, sys
d = sys.argv[1]
H, N, D = 2, 70, 8

def save_as(path, shape, values, descr):
    """values in NumPy's own dtype `descr` ('<i4', '|b1', '>i2', ...)."""
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else ""))
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    fmt = {"i1": "b", "i2": "h", "i4": "i", "i8": "q", "u1": "B", "u2": "H", "u4": "I",
           "u8": "Q", "b1": "?"}[descr[1:]]
    order = ">" if descr[0] == ">" else "<"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack(order + "%d%s" % (len(values), fmt), *values))

for name, seed in (("q", 1), ("k", 2), ("v", 3)):
    rnd = random.Random(seed)
    save(d + "/" + name + ".npy", (H, N, D), [rnd.gauss(0, 1) for _ in range(H * N * D)])
rnd = random.Random(7)
qb = [rnd.randrange(4) for _ in range(H * N)]
kb = [rnd.randrange(4) for _ in range(H * N)]
keep = [rnd.random() < 0.6 for _ in range(H * N)]
save(d + "/qb_f4.npy", (H, N), [float(x) for x in qb])
save(d + "/kb_f4.npy", (H, N), [float(x) for x in kb])
for t in ("<i8", "<i4", ">i2", "|u1", "<u8"):
    tag = t[1:] + ("be" if t[0] == ">" else "")
    save_as(d + "/qb_" + tag + ".npy", (H, N), qb, t)
    save_as(d + "/kb_" + tag + ".npy", (H, N), kb, t)
save(d + "/keep_f4.npy", (H, N), [float(x) for x in keep])
save_as(d + "/keep_b1.npy", (H, N), keep, "|b1")
save_as(d + "/keep_u1.npy", (H, N), [int(x) for x in keep], "|u1")
save_as(d + "/neg.npy", (H, N), [-1] + qb[1:], "<i4")
save_as(d + "/q_i4.npy", (H, N, D), [1] * (H * N * D), "<i4")
# A 9 x 2 integer grid {0, 1, 2}^2 for kat rank, as int64 and as float32.
grid = [v for a in range(3) for b in range(3) for v in (a, b)]
save_as(d + "/grid_i8.npy", (9, 2), grid, "<i8")
save(d + "/grid_f4.npy", (9, 2), [float(x) for x in grid])
PY
f="$tmp"
qkv="--q $f/q.npy --k $f/k.npy --v $f/v.npy"

check "hash, float32 bucket ids" 0 "$kat" attn run --mode hash --causal $qkv --o "$f/o_f4.npy" \
    --params "q_buckets=$f/qb_f4.npy,k_buckets=$f/kb_f4.npy"
for t in i8 i4 i2be u1 u8; do
    check "hash, $t bucket ids" 0 "$kat" attn run --mode hash --causal $qkv --o "$f/o_$t.npy" \
        --params "q_buckets=$f/qb_$t.npy,k_buckets=$f/kb_$t.npy"
    same "hash: $t bucket ids = float32 ones" "$f/o_f4.npy" "$f/o_$t.npy"
done
check "bench attn --q-buckets int32" 0 "$kat" bench attn --mode hash --h 2 --n 70 --d 8 \
    --reps 1 --warmup 0 --sgemm 0 --baseline 0 --q-buckets "$f/qb_i4.npy" \
    --k-buckets "$f/kb_i4.npy"

check "qk, float32 keep mask" 0 "$kat" attn run --mode qk --causal $qkv --o "$f/k_f4.npy" \
    --params "q_keep=$f/keep_f4.npy,k_keep=$f/keep_f4.npy"
for t in b1 u1; do
    check "qk, $t keep mask" 0 "$kat" attn run --mode qk --causal $qkv --o "$f/k_$t.npy" \
        --params "q_keep=$f/keep_$t.npy,k_keep=$f/keep_$t.npy"
    same "qk: $t keep mask = float32 one" "$f/k_f4.npy" "$f/k_$t.npy"
done

check "negative bucket id" 1 "$kat" attn run --mode hash $qkv --o "$f/o.npy" \
    --params "q_buckets=$f/neg.npy,k_buckets=$f/kb_i4.npy"
expect "negative bucket id named" "q_buckets: element 0 of '$f/neg.npy' is -1, not a bucket id"
check "integer queries" 1 "$kat" attn run $qkv --q "$f/q_i4.npy" --o "$f/o.npy"
expect "integer queries refused" "kat attn: q: '$f/q_i4.npy' holds int32 values; q, k, v and do must be float32 or float64"

# The same spectrum from both files: every figure but the time agrees.
check "rank of an int64 grid" 0 "$kat" rank --q "$f/grid_i8.npy" --f "x^2" --json
sed 's/,"seconds":[^,}]*//' "$out" >"$f/rank_i8.json"
expect_out "rank of {0,1,2}^2 under x^2" '"rank":3,'
check "rank of the float32 grid" 0 "$kat" rank --q "$f/grid_f4.npy" --f "x^2" --json
sed 's/,"seconds":[^,}]*//' "$out" >"$f/rank_f4.json"
same "rank: int64 grid = float32 grid" "$f/rank_i8.json" "$f/rank_f4.json"
exit "$fail"
