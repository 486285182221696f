"""Forward + backward timings of libkat-cuda's flash attention against torch's SDPA (flash
backend) and FlexAttention (torch.compile'd, the same mask as a BlockMask), all in one run on
one GPU: B = 4, H = 48, D = 64, bf16, by default N = 8192 and 16384.

    python3 experiments/gpu/bench_attn.py [--n 8192,16384] [--reps 5] [--no-flex]

Each time is the median of --reps runs timed with CUDA events after two warm-up runs; every
ratio is against SDPA causal at the same N, measured in this run."""
import argparse

import torch
import torch.nn.functional as F

from gpubench import header, timed   # puts tests/gpu on the import path
import kat_cuda


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="8192,16384")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--no-flex", action="store_true")
    args = ap.parse_args()
    B, H, D, dt = 4, 48, 64, torch.bfloat16
    dev = "cuda"
    print(header())
    flex = None
    if not args.no_flex:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        flex = torch.compile(flex_attention)
    rows = []
    for N in (int(x) for x in args.n.split(",")):
        torch.manual_seed(N)
        q, k, v, dout = (torch.randn(B, H, N, D, device=dev, dtype=dt) for _ in range(4))
        qg, kg, vg = (x.clone().requires_grad_() for x in (q, k, v))

        def torch_fb(attn):
            def run():
                qg.grad = kg.grad = vg.grad = None
                attn(qg, kg, vg).backward(dout)
            return run

        from torch.nn.attention import SDPBackend, sdpa_kernel
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            t_sdpa = timed(torch_fb(lambda a, b, c: F.scaled_dot_product_attention(
                a, b, c, is_causal=True)), args.reps, 2)
        rows.append((N, "SDPA flash, causal", t_sdpa))

        o = torch.empty_like(q)
        lse = torch.empty(B, H, N, device=dev)
        grads = tuple(torch.empty_like(x) for x in (q, k, v))

        def kat_fb(causal, window, buckets=None):
            work = kat_cuda.backward_workspace(q, k, v, o, lse, causal, 0.0, window)
            layout = kat_cuda.layout_for(q, k, v, buckets)

            def run():   # a bucketed forward sorts the rows on the GPU first
                kat_cuda.forward(q, k, v, causal, 0.0, window, o=o, lse=lse, buckets=buckets,
                                 layout=layout)
                kat_cuda.backward(q, k, v, o, lse, dout, causal, 0.0, window, work, grads,
                                  buckets, layout)
            return run

        def ids(nb, drop=0.0):
            x = torch.randint(nb, (B, H, N), device=dev, dtype=torch.int32)
            if drop:
                x[torch.rand(B, H, N, device=dev) < drop] = -1
            return x

        rows.append((N, "kat dense, causal", timed(kat_fb(True, 0), args.reps, 2)))
        with torch.no_grad(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):   # what was timed is right
            diff = (o.float() - F.scaled_dot_product_attention(q, k, v, is_causal=True).float())
        print(f"N = {N}: max |kat o - SDPA o| = {diff.abs().max().item():.3g}", flush=True)
        rows.append((N, f"kat window {args.window}, causal",
                     timed(kat_fb(True, args.window), args.reps, 2)))
        for nb in (16, 64):
            rows.append((N, f"kat hash nb = {nb}, causal, sort included",
                         timed(kat_fb(True, 0, (ids(nb), ids(nb), nb)), args.reps, 2)))
        rows.append((N, "kat QK-drop 50%, causal, compaction included",
                     timed(kat_fb(True, 0, (ids(1, 0.5), ids(1, 0.5), 1)), args.reps, 2)))
        if flex is not None:
            W = args.window
            masks = [("causal", lambda b, h, i, j: i >= j),
                     (f"window {W}, causal", lambda b, h, i, j: (i >= j) & (i - j < W))]
            for label, mod in masks:
                try:
                    bm = create_block_mask(mod, None, None, N, N, device=dev)
                    t = timed(torch_fb(lambda a, b, c: flex(a, b, c, block_mask=bm)),
                              args.reps, 2)
                except Exception as e:   # a compile failure must not hide the other rows
                    print(f"FlexAttention {label} at N = {N} failed: {e}", flush=True)
                    continue
                rows.append((N, f"FlexAttention, {label}", t))

    print(f"\nB = {B}, H = {H}, D = {D}, bf16, forward + backward, median of {args.reps}")
    print("| N | method | ms | speed vs SDPA causal | causal TFLOP/s |")
    print("|---|---|---|---|---|")
    base = {N: t for N, m, t in rows if m.startswith("SDPA")}
    for N, m, t in rows:
        flops = 3.5 * 4 * B * H * N * N * D / 2
        tf = f"{flops / t / 1e9:.0f}" if m.endswith(", causal") and "window" not in m else "-"
        print(f"| {N} | {m} | {t:.2f} | {base[N] / t:.2f}x | {tf} |")


if __name__ == "__main__":
    main()
