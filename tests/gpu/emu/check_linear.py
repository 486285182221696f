"""libkat-cuda's linear-attention kernels (lib/cuda/linear_*.cu) run on the CPU: the library that
tests/gpu/emulate.sh builds from their CUDA sources and the stand-in runtime of this folder,
driven through the C API on host memory (outputs and gradients start as NaN, so an element
never written shows) and checked, forward and backward, against the fp64 reference of
tests/gpu/linear_ref.py. It checks the kernels' index arithmetic, synchronisation and API
without a GPU; speed and the hardware's own behaviour are tests/gpu/test_linear.py's.

    tests/gpu/emulate.sh linear [--quick]     (runs python3 check_linear.py LIBRARY [--quick])
"""
import ctypes
import math
import os
import sys

import torch

GPU_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, GPU_TESTS)
from kat_cuda import binding  # noqa: E402
from linear_ref import features_naive, naive  # noqa: E402

DT = binding._LINEAR_DTYPES
failures = []


def run_case(lib, S, name, B, H, Hkv, N, M, D, Dv=None, causal=False, dtype=torch.float32,
             strided=False, unnormalized=False, features=False):
    Dv = Dv or D
    torch.manual_seed(N * 7 + D)
    if strided:
        mk = lambda h, n, d: torch.randn(B, n, h, d).to(dtype).transpose(1, 2)
    else:
        mk = lambda h, n, d: torch.randn(B, h, n, d).to(dtype)
    q, k, v, dout = mk(H, N, D), mk(Hkv, M, D), mk(Hkv, M, Dv), mk(H, N, Dv)
    if features:   # positive features (elu + 1), as normalised attention needs
        q, k = (torch.nn.functional.elu(x.float()).add(1).to(dtype) for x in (q, k))
    o = torch.full((B, H, N, Dv), float("nan"), dtype=dtype)
    den = torch.full((B, H, N), float("nan"))
    view = S._view
    call = S._Linear(S._Desc(B, H, Hkv, N, M, D, int(causal), 0.0, Dv), DT[dtype],
                     int(unnormalized), int(features), view(q), view(k), view(v), view(o), den.data_ptr())
    grads = [torch.full(x.shape, float("nan"), dtype=dtype) for x in (q, k, v)]
    problems = []
    for bwd in (0, 1):
        work = torch.empty(lib.kat_cuda_linear_workspace(ctypes.byref(call), bwd) + 256,
                           dtype=torch.uint8)
        ptr = (work.data_ptr() + 255) // 256 * 256
        if bwd:
            st = lib.kat_cuda_linear_backward(ctypes.byref(call), view(dout), *map(view, grads),
                                              ptr, work.numel() - 256, None)
        else:
            st = lib.kat_cuda_linear_forward(ctypes.byref(call), ptr, work.numel() - 256, None)
        if st:
            problems.append(f"status {st}: {lib.kat_cuda_last_error().decode()}")
    qq, kk, vv = (x.double().requires_grad_() for x in (q, k, v))
    ref = (features_naive if features else naive)(qq, kk, vv, causal, 1 / math.sqrt(D),
                                                   unnormalized)
    ref.backward(dout.double())
    tol = 2e-5 if dtype == torch.float32 else 1e-2
    for what, mine, r in zip(("o", "dq", "dk", "dv"), (o, *grads),
                             (ref, qq.grad, kk.grad, vv.grad)):
        e = ((mine.double() - r).abs().max() / (1 + r.abs().max())).item()
        if not e <= tol:
            problems.append(f"{what}: relative error {e:.3g} > {tol}")
    print(f"{name:<48} {'FAIL ' + '; '.join(problems) if problems else 'ok'}", flush=True)
    if problems:
        failures.append(name)


def main():
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        print("usage: check_linear.py LIBRARY [--quick] (tests/gpu/emulate.sh linear builds it)",
              file=sys.stderr)
        return 2
    S = binding
    lib = binding.bind(ctypes.CDLL(os.path.abspath(sys.argv[1])),
                       ("kat_cuda_linear_", "kat_cuda_last_error"))
    cases = [
        ("N = M = 1, causal, D = 8", dict(B=1, H=1, Hkv=1, N=1, M=1, D=8, causal=True)),
        ("causal 70 (2 chunks), GQA 2:1, D = 8, Dv = 5", dict(B=1, H=2, Hkv=1, N=70, M=70,
                                                             D=8, Dv=5, causal=True)),
        ("non-causal N = 40, M = 75, D = 6, strided", dict(B=2, H=1, Hkv=1, N=40, M=75,
                                                           D=6, strided=True)),
        ("causal 130, bf16, D = 16", dict(B=1, H=1, Hkv=1, N=130, M=130, D=16, causal=True,
                                          dtype=torch.bfloat16)),
        ("non-causal fp16, unnormalized, D = 8", dict(B=1, H=2, Hkv=2, N=20, M=33, D=8,
                                                      dtype=torch.float16,
                                                      unnormalized=True)),
        ("causal 50, odd D = 5 (a slice alone), Dv = 3", dict(B=1, H=1, Hkv=1, N=50, M=50,
                                                             D=5, Dv=3, causal=True)),
        ("given features, causal 70, GQA 2:1, F = 12", dict(B=1, H=2, Hkv=1, N=70, M=70,
                                                           D=12, causal=True,
                                                           features=True)),
        ("given features, non-causal, F = 8, Dv = 4", dict(B=1, H=1, Hkv=1, N=30, M=50,
                                                           D=8, Dv=4, features=True)),
        ("causal 40, D = 8, Dv = 72 (chunk 32)", dict(B=1, H=1, Hkv=1, N=40, M=40, D=8,
                                                      Dv=72, causal=True)),
    ]
    if "--quick" not in sys.argv:
        cases += [("causal 100, D = 64, GQA 2:1", dict(B=1, H=2, Hkv=1, N=100, M=100,
                                                       D=64, causal=True))]
    for name, kw in cases:
        run_case(lib, S, name, **kw)
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
