"""Forward + backward timings of libkat-cuda's causal Taylor-2 linear attention against torch's
SDPA (flash backend, causal) in one run on one GPU: B = 4, H = 48, D = 64, bf16, N doubling
from --n0 until linear attention is the faster for --after sizes in a row (or N reaches
--nmax), then the N where it overtakes SDPA causal.

    python3 experiments/gpu/bench_linear.py [--n0 2048] [--nmax 131072] [--reps 3]

Each time is the median of --reps runs timed with CUDA events after one warm-up run. Linear
attention costs O(N) and SDPA O(N^2): the crossover is read between the last N where SDPA is
faster and the first where linear attention is, and placed by the two fits t = a N (linear)
and t = b N^2 (SDPA) through those two sizes."""
import argparse
import math

import torch
import torch.nn.functional as F

from gpubench import header, timed   # puts tests/gpu on the import path
import kat_cuda
import linear_ref


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n0", type=int, default=2048)
    ap.add_argument("--nmax", type=int, default=131072)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--after", type=int, default=1)
    args = ap.parse_args()
    B, H, D, dt, dev = 4, 48, 64, torch.bfloat16, "cuda"
    print(header())
    from torch.nn.attention import SDPBackend, sdpa_kernel
    rows, N, ahead = [], args.n0, 0
    while N <= args.nmax and ahead < args.after:
        torch.manual_seed(N)
        q, k, v, dout = (torch.randn(B, H, N, D, device=dev, dtype=dt) for _ in range(4))
        qg, kg, vg = (x.clone().requires_grad_() for x in (q, k, v))

        def sdpa():
            qg.grad = kg.grad = vg.grad = None
            F.scaled_dot_product_attention(qg, kg, vg, is_causal=True).backward(dout)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            t_sdpa = timed(sdpa, args.reps, 1)
        del qg, kg, vg

        o = torch.empty_like(q)
        den = torch.empty(B, H, N, device=dev)
        call = kat_cuda.linear_call(q, k, v, o, den, True)
        wf = kat_cuda.linear_workspace(call, False, q.device)
        wb = kat_cuda.linear_workspace(call, True, q.device)
        grads = tuple(torch.empty_like(x) for x in (q, k, v))

        def linear():
            kat_cuda.linear_forward(q, k, v, True, o=o, den=den, work=wf)
            kat_cuda.linear_backward(q, k, v, o, den, dout, True, grads=grads, work=wb)
        t_lin = timed(linear, args.reps, 1)
        # what was timed is right: one head's first rows against plain fp64 PyTorch
        n = min(N, 2048)
        ref = linear_ref.naive(q[:1, :1, :n].double(), k[:1, :1, :n].double(),
                                v[:1, :1, :n].double(), True, 1 / math.sqrt(D), False)
        diff = (o[:1, :1, :n].double() - ref).abs().max().item()
        print(f"N = {N}: SDPA causal {t_sdpa:.2f} ms, kat linear Taylor-2 causal {t_lin:.2f} ms, "
              f"max |o - fp64| on head 0 (first {n} rows) = {diff:.3g}", flush=True)
        rows.append((N, t_sdpa, t_lin))
        ahead = ahead + 1 if t_lin < t_sdpa else 0
        del q, k, v, dout, o, den, wf, wb, grads
        torch.cuda.empty_cache()
        N *= 2

    print(f"\nB = {B}, H = {H}, D = {D}, bf16, causal, forward + backward, median of {args.reps}")
    print("| N | SDPA flash causal ms | kat linear Taylor-2 ms | linear speed vs SDPA |")
    print("|---|---|---|---|")
    for N, ts, tl in rows:
        print(f"| {N} | {ts:.2f} | {tl:.2f} | {ts / tl:.2f}x |")
    cross = next((i for i, (_, ts, tl) in enumerate(rows) if tl < ts), None)
    if cross is None:
        print(f"linear attention did not overtake SDPA causal up to N = {rows[-1][0]}")
    elif cross == 0:
        print(f"linear attention is already faster at the smallest N = {rows[0][0]}")
    else:
        (n1, s1, l1), (n2, s2, l2) = rows[cross - 1], rows[cross]
        a = (l1 / n1 + l2 / n2) / 2
        b = (s1 / n1 ** 2 + s2 / n2 ** 2) / 2
        print(f"linear attention overtakes SDPA causal between N = {n1} and N = {n2} "
              f"(fits a N and b N^2 through both: N = {a / b:.0f})")


if __name__ == "__main__":
    main()
