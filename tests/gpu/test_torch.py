"""GPU tests of kat.torch.attention on CUDA tensors (python/kat/torch.py -> kat._cuda ->
libkat-cuda): every pattern the GPU runs, forward and autograd backward, against an fp64
reference in plain PyTorch (and torch's own SDPA for dense attention) with FlashAttention's
rule, on torch's current stream; the refusals word for word; and, where kat's CPU extension
imports, the CUDA result against the CPU path on the same inputs.

    python3 tests/gpu/test_torch.py

Where the CPU extension (kat._native, which needs LAPACK, GSL, FFTW) is absent, kat.torch
is loaded over stand-ins of the CPU-only modules, which the CUDA path never calls, and the
CPU comparison is reported as skipped. Exit status 1 on any failure."""
import math
import os
import sys
import types

import torch
import torch.nn.functional as F

import test_attn
from linear_ref import features_naive, naive as linear_naive

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def load_kat_torch():
    """(kat.torch, True) from the real package, else (kat.torch over stand-ins, False)."""
    try:
        import kat.torch as kt   # noqa: F401  (a build tree's package on PYTHONPATH)
        return kt, True
    except ImportError as e:
        print(f"kat's CPU extension is not importable here ({e}): CPU comparison skipped")
    for name in [n for n in sys.modules if n == "kat" or n.startswith("kat.")]:
        del sys.modules[name]
    pkg = types.ModuleType("kat")
    pkg.__path__ = [os.path.join(ROOT, "python", "kat")]
    sys.modules["kat"] = pkg

    def cpu_only(*a, **k):
        raise AssertionError("the CUDA path called a CPU-only function")
    sys.modules["kat._attention"] = types.SimpleNamespace(attention=cpu_only,
                                                          attention_backward=cpu_only)
    sys.modules["kat.featmap"] = types.SimpleNamespace(FeatureMap=type("FeatureMap", (), {}),
                                                       python_map=cpu_only)
    import kat.torch as kt
    return kt, False


kt, have_cpu = load_kat_torch()


def report(name, problems):
    print(f"{name:<52} {'FAIL ' + '; '.join(problems) if problems else 'ok'}", flush=True)
    if problems:
        failures.append(name)


def grads_of(fn, q, k, v, dout, dtype):
    q, k, v = (x.detach().to(dtype).requires_grad_() for x in (q, k, v))
    o = fn(q, k, v)
    o.backward(dout.to(dtype))
    return [o.detach(), q.grad, k.grad, v.grad]


def compare(name, mine, ref, base):
    problems = []
    for what, m, r, p in zip(("o", "dq", "dk", "dv"), mine, ref, base):
        if m is None or torch.isnan(m).any():
            problems.append(f"{what}: missing or NaN")
            continue
        e, e_pt = test_attn.err(m, r), test_attn.err(p, r)
        tol = 2 * e_pt + test_attn.ATOL * (1 + r.abs().max().item())
        if e > tol:
            problems.append(f"{what}: error {e:.3g} > {tol:.3g}")
    report(name, problems)


def case(name, shape, kat_kw, ref_fn, dtype=torch.bfloat16, three=False, stream=False):
    B, H, Hkv, N, M, D = shape
    torch.manual_seed(len(name))
    mk = lambda h, n: torch.randn(B, h, n, D, device="cuda", dtype=dtype)
    q, k, v, dout = mk(H, N), mk(Hkv, M), mk(Hkv, M), mk(H, N)
    if three:
        q, k, v, dout = (x[0] for x in (q, k, v, dout))

    def run_kat(a, b, c):
        return kt.attention(a, b, c, enable_gqa=H != Hkv, **kat_kw)
    if stream:   # on a side stream: kat must queue its work on torch's current stream
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            mine = grads_of(run_kat, q, k, v, dout, dtype)
        torch.cuda.current_stream().wait_stream(s)
    else:
        mine = grads_of(run_kat, q, k, v, dout, dtype)
    ref = grads_of(ref_fn, q, k, v, dout, torch.float64)
    base = grads_of(ref_fn, q, k, v, dout, dtype)
    compare(name, mine, ref, base)


def softmax_ref(causal, window=0, buckets=None, four=True):
    def fn(q, k, v):
        if not four:
            q, k, v = (x.unsqueeze(0) for x in (q, k, v))
        o = test_attn.naive(q, k, v, causal, 1.0 / math.sqrt(q.shape[-1]), window, buckets)[0]
        return o if four else o[0]
    return fn


def linear_ref(causal, unnormalized=False):
    return lambda q, k, v: linear_naive(q, k, v, causal, 1.0 / math.sqrt(q.shape[-1]),
                                             unnormalized)


def expect_error(name, exc, sentence, fn):
    try:
        fn()
        got = "no error"
    except Exception as e:   # the type is checked below
        got = (type(e), str(e))
    report(name, [] if got == (exc, sentence) else [f"got {got!r}"])


def main():
    case("dense causal, GQA 4:2, N = 130", (2, 4, 2, 130, 130, 64), dict(is_causal=True),
         softmax_ref(True))
    case("dense, [H, N, D], fp16, N = 77, M = 100", (1, 3, 3, 77, 100, 64), {},
         softmax_ref(False, four=False), dtype=torch.float16, three=True)
    case("dense causal on a side stream", (1, 2, 2, 300, 300, 128), dict(is_causal=True),
         softmax_ref(True), stream=True)
    case("dense causal N = 1", (1, 2, 2, 1, 1, 64), dict(is_causal=True), softmax_ref(True))
    torch.manual_seed(3)   # dense against torch's own SDPA (math in fp64)
    q, k, v, dout = (torch.randn(1, 2, 200, 64, device="cuda") for _ in range(4))
    sdpa = lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True)
    mine = grads_of(lambda a, b, c: kt.attention(a, b, c, is_causal=True), q, k, v, dout,
                    torch.bfloat16)
    compare("dense causal 200 against torch SDPA (fp64 math)", mine,
            grads_of(sdpa, q, k, v, dout, torch.float64),
            grads_of(softmax_ref(True), q, k, v, dout, torch.bfloat16))
    case("window:16, causal", (1, 2, 2, 150, 150, 64), dict(is_causal=True, pattern="window:16"),
         softmax_ref(True, window=16))
    torch.manual_seed(5)
    qb = torch.randint(4, (1, 2, 120))            # CPU int64 ids: moved to the GPU by kat
    kb = torch.randint(4, (1, 2, 120))
    case("hash:4 with CPU int64 ids, causal", (1, 2, 2, 120, 120, 64),
         dict(is_causal=True, pattern="hash:4", q_buckets=qb, k_buckets=kb),
         softmax_ref(True, buckets=(qb.cuda(), kb.cuda(), 4)))
    qk = torch.rand(1, 2, 200, device="cuda") < 0.5
    kk = torch.rand(1, 2, 200, device="cuda") < 0.5
    ids = lambda m: torch.where(m, 0, -1).to(torch.int32)
    case("qkdrop 50%, causal", (1, 2, 2, 200, 200, 64),
         dict(is_causal=True, pattern="qkdrop", q_keep=qk, k_keep=kk),
         softmax_ref(True, buckets=(ids(qk), ids(kk), 1)))
    case("linear:taylor:2 causal, GQA 4:1, N = 333", (2, 4, 1, 333, 333, 64),
         dict(is_causal=True, pattern="linear:taylor:2"), linear_ref(True))
    case("linear:taylor:2 non-causal, fp32, N = 50, M = 90", (1, 2, 2, 50, 90, 32),
         dict(pattern="linear:taylor:2"), linear_ref(False), dtype=torch.float32)
    case("linear featmap=taylor:2 unnormalized, fp16", (1, 2, 2, 64, 64, 64),
         dict(is_causal=True, pattern="linear", featmap="taylor:2", unnormalized=True),
         linear_ref(True, unnormalized=True), dtype=torch.float16)
    torch.manual_seed(4)   # a feature map written in torch (elu + 1), its gradient by autograd
    q, k, v, dout = (torch.randn(2, h, 150, 32, device="cuda") for h in (4, 2, 2, 4))
    feat = lambda x: F.elu(x) + 1
    compare("linear_features (elu + 1 in torch), causal, GQA 4:2",
            grads_of(lambda a, b, c: kt.linear_features(feat(a), feat(b), c, is_causal=True,
                                                        enable_gqa=True),
                     q, k, v, dout, torch.bfloat16),
            *(grads_of(lambda a, b, c: features_naive(feat(a), feat(b), c, True, 1.0, False),
                       q, k, v, dout, dt) for dt in (torch.float64, torch.bfloat16)))

    x = torch.randn(1, 2, 8, 64, device="cuda", dtype=torch.bfloat16)
    x1 = torch.randn(1, 1, 8, 64, device="cuda", dtype=torch.bfloat16)
    expect_error("attn_mask refused on CUDA", NotImplementedError,
                 "attn_mask: block masks run on the CPU only; on CUDA kat takes pattern "
                 "'dense', 'window:W', 'hash', 'qkdrop' or 'linear:taylor:2'",
                 lambda: kt.attention(x, x, x, attn_mask=torch.ones(8, 8, dtype=torch.bool,
                                                                    device="cuda")))
    expect_error("lsh refused on CUDA", NotImplementedError,
                 "pattern = 'lsh:8': not on CUDA; kat runs 'dense', 'window:W', 'hash', "
                 "'hash:NB', 'qkdrop' and 'linear:taylor:2' there (the others on CPU tensors)",
                 lambda: kt.attention(x, x, x, pattern="lsh:8"))
    expect_error("fp32 softmax refused on CUDA", ValueError,
                 "query: dtype torch.float32; kat's softmax attention on CUDA takes "
                 "torch.bfloat16 or torch.float16 (fp32 runs on the CPU)",
                 lambda: kt.attention(x.float(), x.float(), x.float()))
    expect_error("linear:elu1 refused on CUDA", NotImplementedError,
                 "pattern = 'linear:elu1': linear attention on CUDA has the Taylor-2 map only "
                 "('linear:taylor:2'; other maps: kat.torch.linear_features on the "
                 "features)", lambda: kt.attention(x, x, x, pattern="linear:elu1"))
    expect_error("window globals refused on CUDA", NotImplementedError,
                 "pattern = 'window:8:2': global tokens run on the CPU only; on CUDA use "
                 "'window:W'", lambda: kt.attention(x, x, x, pattern="window:8:2"))
    expect_error("key on the CPU refused", ValueError,
                 "key: on cpu, but query is on cuda:0; kat needs all three on one device",
                 lambda: kt.attention(x, x.cpu(), x))
    expect_error("bucketed GQA refused (libkat-cuda's sentence)", NotImplementedError,
                 "kat_cuda_attn: bucketed attention needs H_kv = H (H = 2, H_kv = 1)",
                 lambda: kt.attention(x, x1, x1, enable_gqa=True, pattern="hash:2",
                                      q_buckets=torch.zeros(1, 2, 8, dtype=torch.int32),
                                      k_buckets=torch.zeros(1, 1, 8, dtype=torch.int32)))
    expect_error("D = 12 refused (libkat-cuda's sentence)", ValueError,
                 "kat_cuda_attn: D = 12 is not a multiple of 8",
                 lambda: kt.attention(*(torch.randn(1, 1, 8, 12, device="cuda",
                                                    dtype=torch.bfloat16),) * 3))

    if have_cpu:   # the same float32 inputs through the CPU path
        torch.manual_seed(9)
        q, k, v, dout = (torch.randn(1, 2, 100, 64) for _ in range(4))
        for pat, dt, tol in (("dense", torch.bfloat16, 3e-2),
                             ("linear:taylor:2", torch.float32, 1e-4)):
            cpu = grads_of(lambda a, b, c: kt.attention(a, b, c, is_causal=True, pattern=pat),
                           q, k, v, dout, torch.float32)
            gpu = grads_of(lambda a, b, c: kt.attention(a, b, c, is_causal=True, pattern=pat),
                           q.cuda(), k.cuda(), v.cuda(), dout.cuda(), dt)
            worst = max((g.float().cpu() - c).abs().max().item() /
                        (1 + c.abs().max().item()) for g, c in zip(gpu, cpu))
            report(f"{pat} causal: CUDA against the CPU path", [] if worst < tol else
                   [f"relative difference {worst:.3g} >= {tol}"])
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
