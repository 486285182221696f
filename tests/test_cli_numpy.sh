#!/bin/sh
# The files a numpy user has, read by kat and checked against numpy on the same numbers:
# - kat rank --matrix of one matrix saved by np.save, by np.savetxt with its defaults (spaces,
#   '%.18e'), with tabs, with a '# ' header, and as CSV: the same rank and singular values as
#   numpy's SVD;
# - kat rank --q Q.txt --k K.csv: the singular values of f(Q K^T) as numpy computes them;
# - kat attn run and grad with values of their own head dimension (D_v = 5, D = 8), GQA and
#   the causal mask, dense and linear (elu1): o, lse, dq, dk, dv against numpy's formulas.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"
py=/usr/bin/python3
if ! "$py" -c 'import numpy' 2>/dev/null; then
    echo "skip: $py has no numpy (Debian: python3-numpy)"
    exit 77
fi
cd "$tmp" || exit 1

"$py" - <<'PY'
import numpy as np
r = np.random.default_rng(3)
A = r.standard_normal((30, 4)) @ r.standard_normal((4, 20))   # rank 4
np.save("A.npy", A)
np.savetxt("A.txt", A)
np.savetxt("A_tab.txt", A, delimiter="\t")
np.savetxt("A_header.txt", A, header="A = U V^T, 30 x 20, rank 4")
np.savetxt("A.csv", A, delimiter=",")
np.save("A_sv.npy", np.linalg.svd(A, compute_uv=False))
Q, K = r.standard_normal((12, 3)), r.standard_normal((9, 3))
np.savetxt("Q.txt", Q)
np.savetxt("K.csv", K, delimiter=",")
for name, f in (("x", lambda x: x), ("exp", np.exp)):
    np.save("QK_%s_sv.npy" % name, np.linalg.svd(f(Q @ K.T), compute_uv=False))
PY

for f in A.npy A.txt A_tab.txt A_header.txt A.csv; do
    check "rank --matrix $f" 0 "$kat" rank --matrix "$f" --sv --json
    "$py" - "$out" <<'PY' || _cli_fail "rank --matrix $f: rank or singular values differ from numpy"
import json, sys
import numpy as np
j = json.load(open(sys.argv[1]))
sv, ref = np.array(j["singular_values"]), np.load("A_sv.npy")
err = np.max(np.abs(sv - ref)) / ref[0]
rank = int(np.sum(ref > j["tol"]))
print("rank %d (numpy: %d at kat's tol), %d x %d, max |sv - numpy| / sv_1 = %.2g"
      % (j["rank"], rank, j["n"], j["m"], err))
sys.exit(0 if j["rank"] == rank == 4 and (j["n"], j["m"]) == (30, 20) and err < 1e-12 else 1)
PY
done

for fn in x exp; do
    check "rank --q Q.txt --k K.csv --f $fn" 0 "$kat" rank --q Q.txt --k K.csv --f "$fn" --sv \
        --json
    "$py" - "$out" "$fn" <<'PY' || _cli_fail "rank --q Q.txt --k K.csv --f $fn differs from numpy"
import json, sys
import numpy as np
j = json.load(open(sys.argv[1]))
sv, ref = np.array(j["singular_values"]), np.load("QK_%s_sv.npy" % sys.argv[2])
err = np.max(np.abs(sv - ref)) / ref[0]
print("f = %s: rank %d, %d x %d, max |sv - numpy| / sv_1 = %.2g" % (sys.argv[2], j["rank"], j["n"], j["m"], err))
want = 3 if sys.argv[2] == "x" else int(np.sum(ref > j["tol"]))
sys.exit(0 if j["rank"] == want and (j["n"], j["m"]) == (12, 9) and err < 1e-12 else 1)
PY
done

# Attention with D_v != D: q [B, H, N, D] = [2, 3, 7, 8], k [2, 1, 9, 8], v [2, 1, 9, 5]; the
# linear mode (no grouped-query heads) with k3 [2, 3, 9, 8] and v3 [2, 3, 9, 5].
"$py" - <<'PY'
import numpy as np
r = np.random.default_rng(5)
for name, shape in (("q", (2, 3, 7, 8)), ("k", (2, 1, 9, 8)), ("v", (2, 1, 9, 5)),
                    ("do", (2, 3, 7, 5)), ("k3", (2, 3, 9, 8)), ("v3", (2, 3, 9, 5))):
    np.save(name + ".npy", r.standard_normal(shape).astype(np.float32))
PY
check "attn grad --causal, D_v = 5, D = 8" 0 "$kat" attn grad --q q.npy --k k.npy --v v.npy \
    --do do.npy --o o.npy --lse lse.npy --dq dq.npy --dk dk.npy --dv dv.npy --causal --precise
check "attn run --causal, D_v = 5" 0 "$kat" attn run --q q.npy --k k.npy --v v.npy \
    --o o_run.npy --causal
check "attn run --mode linear --map elu1, D_v = 5" 0 "$kat" attn run --mode linear \
    --map elu1 --q q.npy --k k3.npy --v v3.npy --o o_lin.npy
check "attn grad --mode linear --map elu1, D_v = 5" 0 "$kat" attn grad --mode linear \
    --map elu1 --q q.npy --k k3.npy --v v3.npy --do do.npy --dq dq_lin.npy --dk dk_lin.npy \
    --dv dv_lin.npy
"$py" - <<'PY' || _cli_fail "attention with D_v = 5 differs from numpy"
import sys
import numpy as np
L = lambda n: np.load(n + ".npy").astype(np.float64)
q, k, v, do = L("q"), L("k"), L("v"), L("do")
k, v = np.repeat(k, 3, axis=1), np.repeat(v, 3, axis=1)   # GQA: 3 query heads per k/v head
N, M, D = q.shape[2], k.shape[2], q.shape[3]
mask = np.arange(M)[None, :] <= np.arange(N)[:, None] + M - N   # bottom-right aligned
s = np.where(mask, q @ k.swapaxes(-1, -2) / np.sqrt(D), -np.inf)
lse = np.log(np.sum(np.exp(s - s.max(-1, keepdims=True)), -1)) + s.max(-1)
p = np.exp(s - lse[..., None])
o = p @ v
dp = do @ v.swapaxes(-1, -2)
ds = p * (dp - np.sum(do * o, -1, keepdims=True))
dq = ds @ k / np.sqrt(D)
dk = (ds.swapaxes(-1, -2) @ q / np.sqrt(D)).sum(1, keepdims=True)
dv = (p.swapaxes(-1, -2) @ do).sum(1, keepdims=True)
phi = lambda x: np.where(x > 0, x + 1, np.exp(x))   # elu(x) + 1
dphi = lambda x: np.where(x > 0, 1.0, np.exp(x))
k3, v3 = L("k3"), L("v3")
a = phi(q) @ phi(k3).swapaxes(-1, -2)
z = a.sum(-1, keepdims=True)
o_lin = (a @ v3) / z
da = (do @ v3.swapaxes(-1, -2) - np.sum(do * o_lin, -1, keepdims=True)) / z
dq_lin = (da @ phi(k3)) * dphi(q)
dk_lin = (da.swapaxes(-1, -2) @ phi(q)) * dphi(k3)
dv_lin = (a / z).swapaxes(-1, -2) @ do
ok = True
for name, ref in (("o", o), ("o_run", o), ("lse", lse), ("dq", dq), ("dk", dk), ("dv", dv),
                  ("o_lin", o_lin), ("dq_lin", dq_lin), ("dk_lin", dk_lin), ("dv_lin", dv_lin)):
    got = np.load(name + ".npy")
    err = np.max(np.abs(got - ref)) if got.shape == ref.shape else np.inf
    print("%-5s %-14s max |kat - numpy| = %.2g" % (name, str(got.shape), err))
    ok &= err < 1e-5 * max(1.0, np.max(np.abs(ref)))
sys.exit(0 if ok else 1)
PY
exit "$fail"
