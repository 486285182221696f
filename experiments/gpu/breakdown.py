"""Where the time of a libkat-cuda call goes, one C API call at a time: forward and backward
apart for dense causal, QK-drop 50% (its forward includes the GPU sort of the rows and the
host wait for the id check) and dense causal at N/2, the work QK-drop keeps (half the queries
see half the keys), beside torch SDPA at N; B = 4, H = 48, D = 64, bf16, median of --reps.

    python3 experiments/gpu/breakdown.py [--n 8192,16384] [--reps 5] [--once]

--once runs each kat call once with no warm-up and no SDPA: the launches for a profiler.
"""
import argparse

import torch
import torch.nn.functional as F

import gpubench   # puts tests/gpu on the import path
import kat_cuda


def timed(fn, reps):
    if reps == 0:   # --once
        fn()
        torch.cuda.synchronize()
        return float("nan")
    return gpubench.timed(fn, reps, 2)


def kat_parts(N, buckets, reps, B=4, H=48, D=64):
    dt, dev = torch.bfloat16, "cuda"
    q, k, v, dout = (torch.randn(B, H, N, D, device=dev, dtype=dt) for _ in range(4))
    o, lse = torch.empty_like(q), torch.empty(B, H, N, device=dev)
    grads = tuple(torch.empty_like(x) for x in (q, k, v))
    work = kat_cuda.backward_workspace(q, k, v, o, lse, True)
    layout = kat_cuda.layout_for(q, k, v, buckets)

    def fwd():
        kat_cuda.forward(q, k, v, True, o=o, lse=lse, buckets=buckets, layout=layout)

    def bwd():
        kat_cuda.backward(q, k, v, o, lse, dout, True, 0.0, 0, work, grads, buckets, layout)

    t_f = timed(fwd, reps)
    t_b = timed(bwd, reps)
    return t_f, t_b


def sdpa_parts(q, k, v, dout, reps):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    qg, kg, vg = (x.clone().requires_grad_() for x in (q, k, v))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        def fwd():
            return F.scaled_dot_product_attention(qg, kg, vg, is_causal=True)
        t_f = timed(lambda: fwd().detach(), reps)
        out = fwd()
        t_b = timed(lambda: torch.autograd.grad(out, (qg, kg, vg), dout, retain_graph=True),
                    reps)
    return t_f, t_b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="8192,16384")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--once", action="store_true")
    args = ap.parse_args()
    if args.once:
        args.reps = 0
    B, H, D = 4, 48, 64
    print(f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("| N | what | forward ms | backward ms | total ms | vs SDPA |")
    print("|---|---|---|---|---|---|")
    for N in (int(x) for x in args.n.split(",")):
        torch.manual_seed(N)
        q, k, v, dout = (torch.randn(B, H, N, D, device="cuda", dtype=torch.bfloat16)
                         for _ in range(4))
        t_s = float("nan")
        if not args.once:
            t_sf, t_sb = sdpa_parts(q, k, v, dout, args.reps)
            t_s = t_sf + t_sb
            print(f"| {N} | SDPA flash causal | {t_sf:.2f} | {t_sb:.2f} | {t_s:.2f} | 1.00x |")

        def ids(nb, drop):
            x = torch.randint(nb, (B, H, N), device="cuda", dtype=torch.int32)
            x[torch.rand(B, H, N, device="cuda") < drop] = -1
            return x

        for label, n, buckets in (("kat dense causal", N, None),
                                  ("kat QK-drop 50%", N, (ids(1, 0.5), ids(1, 0.5), 1)),
                                  ("kat dense causal at N/2", N // 2, None)):
            t_f, t_b = kat_parts(n, buckets, args.reps)
            print(f"| {N} | {label} | {t_f:.2f} | {t_b:.2f} | {t_f + t_b:.2f} | "
                  f"{t_s / (t_f + t_b):.2f}x |", flush=True)


if __name__ == "__main__":
    main()
