"""GPU tests of libkat-cuda's linear attention (Taylor-2), forward and backward, against an
fp64 reference on the GPU, with FlashAttention's rule: kat's error (max |x - ref|) is at most
twice the error of a naive PyTorch implementation in the same type, plus a small absolute
term.

    python3 tests/gpu/test_linear.py [--small]

--small runs the few small cases meant for compute-sanitizer. Exit status 1 on any failure."""
import math
import sys

import torch

import kat_cuda
from linear_ref import features_naive, naive

ATOL = 1e-4
failures = []


def err(x, ref):
    return (x.double() - ref).abs().max().item()


def inputs(B, H, Hkv, N, M, D, Dv, dtype, strided):
    dev = "cuda"
    if strided:   # [B, N, H, D] buffers viewed as [B, H, N, D]
        mk = lambda b, h, n, d: torch.randn(b, n, h, d, device=dev, dtype=dtype).transpose(1, 2)
    else:
        mk = lambda b, h, n, d: torch.randn(b, h, n, d, device=dev, dtype=dtype)
    return mk(B, H, N, D), mk(B, Hkv, M, D), mk(B, Hkv, M, Dv), mk(B, H, N, Dv)


def check(name, B, H, Hkv, N, M, D, Dv=None, causal=False, dtype=torch.bfloat16,
          strided=False, scale=0.0, unnormalized=False, features=False):
    """features: q and k are positive feature vectors (elu + 1), KAT_CUDA_FEATURES."""
    Dv = Dv or D
    torch.manual_seed(hash((B, H, Hkv, N, M, D, Dv, causal, strided)) % 2**31)
    q, k, v, dout = inputs(B, H, Hkv, N, M, D, Dv, dtype, strided)
    if features:
        q, k = (torch.nn.functional.elu(x.float()).add(1).to(dtype) for x in (q, k))
    s = scale or 1.0 / math.sqrt(D)
    oracle = features_naive if features else naive
    before = [x.clone() for x in (q, k, v, dout)]
    # every output poisoned: an element the kernels never write stays NaN
    o = torch.full((B, H, N, Dv), float("nan"), device="cuda", dtype=dtype)
    den = torch.full((B, H, N), float("nan"), device="cuda")
    kat_cuda.linear_forward(q, k, v, causal, scale, unnormalized, o=o, den=den,
                            features=features)
    grads = tuple(torch.full_like(x, float("nan")) for x in (q, k, v))
    dq, dk, dv = kat_cuda.linear_backward(q, k, v, o, den, dout, causal, scale, unnormalized,
                                          grads=grads, features=features)
    torch.cuda.synchronize()

    def run(dt):
        qq, kk, vv = (x.detach().to(dt).requires_grad_() for x in (q, k, v))
        out = oracle(qq, kk, vv, causal, s, unnormalized)
        out.backward(dout.to(dt))
        return out.detach(), qq.grad, kk.grad, vv.grad

    ref, pt = run(torch.float64), run(dtype)
    problems = []
    for what, mine, r, p in zip(("o", "dq", "dk", "dv"), (o, dq, dk, dv), ref, pt):
        if torch.isnan(mine).any():
            problems.append(f"{what}: NaN (unwritten or invalid)")
            continue
        e, e_pt = err(mine, r), err(p, r)
        if e > 2 * e_pt + ATOL * (1 + r.abs().max().item()):
            problems.append(f"{what}: error {e:.3g} > 2 x {e_pt:.3g} + {ATOL} (1 + max |ref|)")
    if not unnormalized:
        ones = torch.ones(B, Hkv, M, 1, device="cuda", dtype=torch.float64)
        ref_den = oracle(q.double(), k.double(), ones, causal, s, True)[..., 0]
        if ((den.double() - ref_den).abs() / ref_den).max().item() > 1e-4:
            problems.append("den: relative error above 1e-4")
    if any(not torch.equal(a, b) for a, b in zip(before, (q, k, v, dout))):
        problems.append("an input changed")
    status = "FAIL " + "; ".join(problems) if problems else "ok"
    print(f"{name:<48} {status}", flush=True)
    if problems:
        failures.append(name)


def expect_error(name, status, sentence, shape, causal=False, dtype=torch.bfloat16,
                 work_bytes=None, scale=0.0, features=False):
    B, H, Hkv, N, M, D = shape
    q = torch.randn(B, H, N, D, device="cuda", dtype=dtype)
    k = torch.randn(B, Hkv, M, D, device="cuda", dtype=dtype)
    v = torch.randn(B, Hkv, M, D, device="cuda", dtype=dtype)
    o = torch.full_like(q, 7.0)
    den = torch.full((B, H, N), 7.0, device="cuda")
    work = None if work_bytes is None else torch.empty(work_bytes, device="cuda",
                                                       dtype=torch.uint8)
    try:
        kat_cuda.linear_forward(q, k, v, causal, scale, o=o, den=den, work=work,
                                features=features)
        got = "no error"
    except kat_cuda.KatError as e:
        got = (e.status, str(e))
    ok = got == (status, sentence) and bool((o == 7).all()) and bool((den == 7).all())
    print(f"{name:<48} {'ok' if ok else f'FAIL got {got!r}'}", flush=True)
    if not ok:
        failures.append(name)


def main():
    small = "--small" in sys.argv
    cases = [
        ("N = M = 1, causal", dict(B=1, H=1, Hkv=1, N=1, M=1, D=64, causal=True)),
        ("N = 1, M = 1, non-causal, D = 8", dict(B=1, H=2, Hkv=1, N=1, M=1, D=8)),
        ("odd N = 77, causal", dict(B=2, H=3, Hkv=3, N=77, M=77, D=64, causal=True)),
        ("GQA 4:2, non-causal, N = 70, M = 90, D = 32", dict(B=1, H=4, Hkv=2, N=70, M=90,
                                                             D=32)),
        ("D = 128, causal, GQA 2:1, N = 45", dict(B=1, H=2, Hkv=1, N=45, M=45, D=128,
                                                  causal=True)),
        ("given features, causal 70, F = 32", dict(B=1, H=2, Hkv=2, N=70, M=70, D=32,
                                                   causal=True, features=True)),
    ]
    if not small:
        cases += [
            ("causal 1024, B = 2, H = 4", dict(B=2, H=4, Hkv=4, N=1024, M=1024, D=64,
                                               causal=True)),
            ("causal 333, fp16, GQA 6:2, strided", dict(B=2, H=6, Hkv=2, N=333, M=333, D=64,
                                                        causal=True, dtype=torch.float16,
                                                        strided=True)),
            ("causal 300, fp32", dict(B=1, H=2, Hkv=2, N=300, M=300, D=64, causal=True,
                                      dtype=torch.float32)),
            ("non-causal fp32, N = 129, M = 257, D = 16", dict(B=1, H=2, Hkv=2, N=129, M=257,
                                                               D=16, dtype=torch.float32)),
            ("D = 128, Dv = 128, causal 517, GQA 8:1", dict(B=1, H=8, Hkv=1, N=517, M=517,
                                                            D=128, causal=True)),
            ("D = 96, Dv = 40, non-causal, N = 200, M = 77", dict(B=2, H=2, Hkv=2, N=200,
                                                                  M=77, D=96, Dv=40)),
            ("D = 5, Dv = 3, causal 70", dict(B=1, H=1, Hkv=1, N=70, M=70, D=5, Dv=3,
                                              causal=True)),
            ("D = 64, Dv = 128, causal 250 (chunk 32)", dict(B=1, H=2, Hkv=2, N=250, M=250,
                                                             D=64, Dv=128, causal=True)),
            ("unnormalized, causal 150", dict(B=1, H=2, Hkv=1, N=150, M=150, D=64,
                                              causal=True, unnormalized=True)),
            ("unnormalized, non-causal, fp16", dict(B=1, H=2, Hkv=2, N=60, M=100, D=64,
                                                    dtype=torch.float16, unnormalized=True)),
            ("scale 0.05, causal 200", dict(B=1, H=2, Hkv=2, N=200, M=200, D=64, causal=True,
                                            scale=0.05)),
            ("given features, causal 333, GQA 4:2, F = 64", dict(
                B=1, H=4, Hkv=2, N=333, M=333, D=64, causal=True, features=True)),
            ("given features, non-causal fp32, F = 96, Dv = 64", dict(
                B=2, H=2, Hkv=2, N=100, M=150, D=96, Dv=64, dtype=torch.float32,
                features=True)),
            ("given features, unnormalized fp16, F = 16", dict(
                B=1, H=2, Hkv=1, N=200, M=200, D=16, causal=True, dtype=torch.float16,
                unnormalized=True, features=True)),
            ("causal 4096, D = 64, H = 2", dict(B=1, H=2, Hkv=2, N=4096, M=4096, D=64,
                                                causal=True)),
        ]
    for name, kw in cases:
        check(name, **kw)

    expect_error("causal N != M refused", 1,
                 "kat_cuda_linear: causal linear attention needs N = M (N = 8, M = 9)",
                 (1, 1, 1, 8, 9, 64), causal=True)
    expect_error("D = 136 refused", 5, "kat_cuda_linear: D = 136 is beyond the GPU kernels' 128",
                 (1, 1, 1, 8, 8, 136))
    expect_error("H = 3, H_kv = 2 refused", 1,
                 "kat_cuda_linear: H = 3 is not a multiple of H_kv = 2", (1, 3, 2, 8, 8, 64))
    expect_error("fp64 refused", 1, "kat_cuda_linear: dtype = 7 is not KAT_CUDA_BF16, "
                 "KAT_CUDA_FP16 or KAT_CUDA_FP32", (1, 1, 1, 8, 8, 64), dtype=torch.float64)
    expect_error("scale with given features refused", 1,
                 "kat_cuda_linear: scale = 0.5 with KAT_CUDA_FEATURES (given features take no "
                 "scale; pass 0)", (1, 1, 1, 8, 8, 64), scale=0.5, features=True)
    expect_error("small workspace refused", 1,
                 "kat_cuda_linear_forward: work_bytes = 16, 2304 needed", (1, 1, 1, 8, 8, 64),
                 work_bytes=16)
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
