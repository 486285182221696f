"""GPU tests of libkat-cuda's flash attention, forward and backward, against an fp64 reference
on the GPU, with FlashAttention's rule: kat's error (max |x - ref|) is at most twice the error
of a naive PyTorch implementation in the same 16-bit type, plus a small absolute term.

    python3 tests/gpu/test_attn.py [--small]

--small runs the few small cases meant for compute-sanitizer. Exit status 1 on any failure."""
import math
import sys

import torch

import kat_cuda

ATOL = 1e-4
failures = []


def visible(N, M, causal, window, device):
    i = torch.arange(N, device=device).view(N, 1) + (M - N)
    j = torch.arange(M, device=device).view(1, M)
    ok = torch.ones(N, M, dtype=torch.bool, device=device)
    if causal:
        ok &= j <= i
    if window:
        ok &= (i - j).abs() < window
    return ok


def naive(q, k, v, causal, scale, window, buckets=None):
    """Attention as plain PyTorch in q's dtype (the 16-bit baseline, or fp64 for the oracle).
    A query that sees no key gets 0, as in kat."""
    H, Hkv = q.shape[1], k.shape[1]
    k = k.repeat_interleave(H // Hkv, dim=1)
    v = v.repeat_interleave(H // Hkv, dim=1)
    N, M = q.shape[2], k.shape[2]
    ok = visible(N, M, causal, window, q.device)
    if buckets is not None:
        qb, kb, _ = buckets
        ok = ok & (qb[..., :, None] == kb[..., None, :]) & (qb[..., :, None] >= 0)
    any_ = ok.any(-1, keepdim=True)
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~ok, float("-inf")).masked_fill(~any_, 0.0)
    p = torch.softmax(s, dim=-1) * any_
    lse = torch.logsumexp(s.double(), dim=-1).masked_fill(~any_.squeeze(-1), float("-inf"))
    return p.to(v.dtype) @ v, lse


def with_grads(fn, q, k, v, dout, dtype, *args):
    q, k, v = (x.detach().to(dtype).requires_grad_() for x in (q, k, v))
    o, lse = fn(q, k, v, *args)
    o.backward(dout.to(dtype))
    return o.detach(), lse.detach(), q.grad, k.grad, v.grad


def err(x, ref):
    return (x.double() - ref).abs().max().item()


def make_buckets(B, H, N, M, nb, q_ids=None, k_ids=None, drop_q=0.0, drop_k=0.0,
                 dead_head=None):
    """Random ids in q_ids / k_ids (default range(nb)); a fraction dropped (-1); dead_head =
    ("q" or "k", h): every row of that side of head h dropped."""
    def side(rows, ids, drop):
        ids = torch.tensor(ids if ids is not None else range(nb), dtype=torch.int32)
        x = ids[torch.randint(len(ids), (B, H, rows))]
        x[torch.rand(B, H, rows) < drop] = -1
        return x
    qb, kb = side(N, q_ids, drop_q), side(M, k_ids, drop_k)
    if dead_head:
        (qb if dead_head[0] == "q" else kb)[:, dead_head[1]] = -1
    return qb.cuda(), kb.cuda(), nb


def check(name, B, H, Hkv, N, M, D, causal=False, window=0, dtype=torch.bfloat16,
          strided=False, scale=0.0, buckets=None):
    dev = "cuda"
    torch.manual_seed(hash((B, H, Hkv, N, M, D, causal, window, strided)) % 2**31)
    if strided:   # [B, N, H, D] buffers viewed as [B, H, N, D]
        q = torch.randn(B, N, H, D, device=dev, dtype=dtype).transpose(1, 2)
        k = torch.randn(B, M, Hkv, D, device=dev, dtype=dtype).transpose(1, 2)
        v = torch.randn(B, M, Hkv, D, device=dev, dtype=dtype).transpose(1, 2)
        dout = torch.randn(B, N, H, D, device=dev, dtype=dtype).transpose(1, 2)
    else:
        q = torch.randn(B, H, N, D, device=dev, dtype=dtype)
        k = torch.randn(B, Hkv, M, D, device=dev, dtype=dtype)
        v = torch.randn(B, Hkv, M, D, device=dev, dtype=dtype)
        dout = torch.randn(B, H, N, D, device=dev, dtype=dtype)
    sc = scale or 1.0 / math.sqrt(D)
    if buckets is not None:
        buckets = make_buckets(B, H, N, M, **buckets)
    layout = kat_cuda.layout_for(q, k, v, buckets)
    inputs = [x.clone() for x in (q, k, v, dout)]

    # every output poisoned: an element the kernels never write stays NaN
    o = torch.full_like(q, float("nan"))
    lse = torch.full((B, H, N), float("nan"), device=dev)
    kat_cuda.forward(q, k, v, causal, scale, window, o=o, lse=lse, buckets=buckets,
                     layout=layout)
    grads = tuple(torch.full_like(x, float("nan")) for x in (q, k, v))
    work = kat_cuda.backward_workspace(q, k, v, o, lse, causal, scale, window)
    work.fill_(0xFF)
    dq, dk, dv = kat_cuda.backward(q, k, v, o, lse, dout, causal, scale, window, work, grads,
                                   buckets, layout)
    torch.cuda.synchronize()

    ref = with_grads(naive, q, k, v, dout, torch.float64, causal, sc, window, buckets)
    pt = with_grads(naive, q, k, v, dout, dtype, causal, sc, window, buckets)
    problems = []
    for what, mine, r, p in zip(("o", "lse", "dq", "dk", "dv"), (o, lse, dq, dk, dv), ref, pt):
        if what == "lse":
            fin = torch.isfinite(r)
            if not torch.equal(fin, torch.isfinite(mine)) or \
                    not torch.equal(mine[~fin], r[~fin].float()):
                problems.append("lse: the rows without keys differ from -inf")
            elif fin.any():
                e = err(mine[fin], r[fin])
                if e > 1e-3 * (1 + r[fin].abs().max().item()):
                    problems.append(f"lse: error {e:.3g}")
            continue
        if torch.isnan(mine).any():
            problems.append(f"{what}: NaN (unwritten or invalid)")
            continue
        e, e_pt = err(mine, r), err(p, r)
        if e > 2 * e_pt + ATOL:
            problems.append(f"{what}: error {e:.3g} > 2 x {e_pt:.3g} + {ATOL}")
    if any(not torch.equal(a, b) for a, b in zip(inputs, (q, k, v, dout))):
        problems.append("an input changed")
    # the same inputs again: dk and dv come out bit for bit the same (no atomics on them)
    dq2, dk2, dv2 = kat_cuda.backward(q, k, v, o, lse, dout, causal, scale, window,
                                      buckets=buckets, layout=layout)
    if not (torch.equal(dk, dk2) and torch.equal(dv, dv2)):
        problems.append("dk or dv differ between two runs")
    if err(dq2, dq.double()) > 2 * err(pt[2], ref[2]) + ATOL:
        problems.append("dq moved between two runs beyond rounding")
    status = "FAIL " + "; ".join(problems) if problems else "ok"
    print(f"{name:<44} {status}", flush=True)
    if problems:
        failures.append(name)


def expect_error(name, status, sentence, **kw):
    dev = "cuda"
    B, H, Hkv, N, M, D = kw.pop("shape")
    q = torch.randn(B, H, N, D, device=dev, dtype=torch.bfloat16)
    k = torch.randn(B, Hkv, M, D, device=dev, dtype=torch.bfloat16)
    v = torch.randn(B, Hkv, M, D, device=dev, dtype=torch.bfloat16)
    if "mutate" in kw:
        q, k, v = kw.pop("mutate")(q, k, v)
    o = torch.full_like(q, 7.0)
    lse = torch.full((B, H, N), 7.0, device=dev)
    if "buckets" in kw:
        kw["buckets"] = make_buckets(B, H, N, M, **kw["buckets"])
    try:
        kat_cuda.forward(q, k, v, o=o, lse=lse, **kw)
        got = "no error"
    except kat_cuda.KatError as e:
        got = (e.status, str(e))
    ok = got == (status, sentence) and bool((o == 7).all()) and bool((lse == 7).all())
    print(f"{name:<44} {'ok' if ok else f'FAIL got {got!r}'}", flush=True)
    if not ok:
        failures.append(name)


def main():
    small = "--small" in sys.argv
    cases = [
        ("N = M = 1", dict(B=1, H=1, Hkv=1, N=1, M=1, D=64)),
        ("odd N, causal", dict(B=2, H=3, Hkv=3, N=77, M=77, D=64, causal=True)),
        ("GQA 4:2, N < M, causal", dict(B=1, H=4, Hkv=2, N=130, M=200, D=64, causal=True)),
        ("N > M causal: rows without keys", dict(B=1, H=2, Hkv=1, N=200, M=130, D=128,
                                                 causal=True)),
        ("window 17, causal, D = 32", dict(B=1, H=2, Hkv=2, N=150, M=150, D=32, causal=True,
                                           window=17)),
        ("hash nb = 4, causal, key head dropped", dict(
            B=1, H=2, Hkv=2, N=100, M=100, D=64, causal=True,
            buckets=dict(nb=4, dead_head=("k", 1)))),
    ]
    if not small:
        cases += [
            ("dense D = 128, odd", dict(B=2, H=2, Hkv=2, N=257, M=257, D=128)),
            ("dense D = 96, fp16", dict(B=1, H=2, Hkv=2, N=191, M=300, D=96,
                                        dtype=torch.float16)),
            ("D = 8, causal", dict(B=1, H=1, Hkv=1, N=65, M=65, D=8, causal=True)),
            ("strided [B, N, H, D], GQA 6:2, causal", dict(B=2, H=6, Hkv=2, N=333, M=333,
                                                           D=64, causal=True, strided=True)),
            ("window 50, causal", dict(B=1, H=2, Hkv=2, N=300, M=300, D=64, causal=True,
                                       window=50)),
            ("window 33, bidirectional, fp16", dict(B=1, H=2, Hkv=1, N=300, M=280, D=128,
                                                    window=33, dtype=torch.float16)),
            ("window 1 (itself only)", dict(B=1, H=1, Hkv=1, N=70, M=70, D=64, causal=True,
                                            window=1)),
            ("scale 0.3", dict(B=1, H=2, Hkv=2, N=100, M=100, D=64, scale=0.3)),
            ("causal 1024, B = 2, H = 4", dict(B=2, H=4, Hkv=4, N=1024, M=1024, D=64,
                                               causal=True)),
            ("causal 2048, D = 128, GQA 8:1", dict(B=1, H=8, Hkv=1, N=2048, M=2048, D=128,
                                                   causal=True)),
            ("causal 4096, fp16", dict(B=1, H=2, Hkv=2, N=4096, M=4096, D=64, causal=True,
                                       dtype=torch.float16)),
            ("hash nb = 4, causal, odd N", dict(B=2, H=3, Hkv=3, N=301, M=301, D=64,
                                                causal=True, buckets=dict(nb=4))),
            ("hash nb = 16, D = 128, N != M", dict(B=1, H=2, Hkv=2, N=257, M=400, D=128,
                                                   buckets=dict(nb=16))),
            ("hash nb = 8, empty buckets, causal", dict(
                B=1, H=2, Hkv=2, N=333, M=333, D=64, causal=True,
                buckets=dict(nb=8, q_ids=[0, 1, 2, 3, 4, 5], k_ids=[2, 3, 4, 5, 6, 7]))),
            ("hash nb = 64, causal, 2048, fp16", dict(B=1, H=2, Hkv=2, N=2048, M=2048, D=64,
                                                      causal=True, dtype=torch.float16,
                                                      buckets=dict(nb=64))),
            ("QK-drop 50%, causal", dict(B=2, H=2, Hkv=2, N=513, M=513, D=64, causal=True,
                                         buckets=dict(nb=1, drop_q=0.5, drop_k=0.5))),
            ("QK-drop, all keys of a head dropped", dict(
                B=1, H=3, Hkv=3, N=200, M=200, D=64, causal=True,
                buckets=dict(nb=1, drop_q=0.3, drop_k=0.3, dead_head=("k", 2)))),
            ("QK-drop, all queries of a head dropped", dict(
                B=1, H=3, Hkv=3, N=200, M=200, D=128,
                buckets=dict(nb=1, drop_q=0.3, dead_head=("q", 0)))),
            ("QK-drop 50%, causal 4096", dict(B=1, H=2, Hkv=2, N=4096, M=4096, D=64,
                                              causal=True,
                                              buckets=dict(nb=1, drop_q=0.5, drop_k=0.5))),
        ]
    for name, kw in cases:
        check(name, **kw)

    expect_error("D = 136 refused", 5, "kat_cuda_attn: D = 136 is beyond the GPU kernels' 128",
                 shape=(1, 1, 1, 8, 8, 136))
    expect_error("D = 12 refused", 1, "kat_cuda_attn: D = 12 is not a multiple of 8",
                 shape=(1, 1, 1, 8, 8, 12))
    expect_error("H = 3, H_kv = 2 refused", 1,
                 "kat_cuda_attn: H = 3 is not a multiple of H_kv = 2", shape=(1, 3, 2, 8, 8, 64))
    expect_error("row stride 68 refused", 1,
                 "kat_cuda_attn: k.stride[2] = 68 must be a non-negative multiple of 8",
                 shape=(1, 1, 1, 8, 8, 64),
                 mutate=lambda q, k, v: (q, torch.empty(1, 1, 8, 68, device="cuda",
                                                        dtype=k.dtype)[..., :64], v))
    expect_error("fp32 refused", 1,
                 "kat_cuda_attn: dtype = 7 is neither KAT_CUDA_BF16 nor KAT_CUDA_FP16",
                 shape=(1, 1, 1, 8, 8, 64),
                 mutate=lambda q, k, v: (q.float(), k, v))
    expect_error("bucket id 4 with nb = 4 refused", 2,
                 "kat_cuda_attn: a bucket id in q_bucket or k_bucket is outside [-1, 4)",
                 shape=(1, 2, 2, 8, 8, 64), buckets=dict(nb=4, q_ids=[4]))
    expect_error("bucketed GQA refused", 5,
                 "kat_cuda_attn: bucketed attention needs H_kv = H (H = 2, H_kv = 1)",
                 shape=(1, 2, 1, 8, 8, 64), buckets=dict(nb=4))
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
