"""ctypes binding of libkat-cuda's C API over torch tensors (data_ptr and strides), for the GPU
tests and benchmarks; the library is found through KAT_CUDA_LIB or build-gpu/.

The C structs and the functions' prototypes are python/kat/_cuda.py's (kat.torch's CUDA path),
loaded here by path: that file imports nothing of the kat package, so the GPU tests run where
only torch and libkat-cuda.so are, without kat's CPU extension."""
import ctypes
import importlib.util
import os

import torch

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_binding():
    spec = importlib.util.spec_from_file_location(
        "kat_cuda_binding", os.path.join(_ROOT, "python", "kat", "_cuda.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


binding = _load_binding()
Desc, View, Attn, Linear = binding._Desc, binding._View, binding._Attn, binding._Linear
DTYPES = binding._FLASH_DTYPES
LINEAR_DTYPES = binding._LINEAR_DTYPES
view = binding._view
_lib = None


def _library():
    """libkat-cuda, loaded on first use (so that importing this module needs no GPU build)."""
    global _lib
    if _lib is None:
        _lib = binding.bind(ctypes.CDLL(os.environ.get(
            "KAT_CUDA_LIB", os.path.join(_ROOT, "build-gpu", "libkat-cuda.so"))))
    return _lib


class KatError(RuntimeError):
    def __init__(self, status, sentence):
        super().__init__(sentence)
        self.status = status


def _check(status):
    if status:
        raise KatError(status, _library().kat_cuda_last_error().decode())


def _stream():
    return torch.cuda.current_stream().cuda_stream


def make_call(q, k, v, o, lse, causal=False, scale=0.0, window=0, buckets=None, layout=None):
    """buckets: (q_bucket int32 [B, H, N], k_bucket int32 [B, H, M], nb) or None (dense)."""
    B, H, N, D = q.shape
    d = Desc(B, H, k.shape[1], N, k.shape[2], D, int(causal), scale, 0)
    qb, kb, nb = buckets or (None, None, 0)
    return Attn(d, DTYPES.get(q.dtype, 7), window, view(q), view(k), view(v), view(o),
                lse.data_ptr() if lse is not None else None,
                qb.data_ptr() if qb is not None else None,
                kb.data_ptr() if kb is not None else None, nb,
                layout.data_ptr() if layout is not None else None,
                layout.numel() if layout is not None else 0)


def layout_for(q, k, v, buckets):
    """Device memory for a bucketed call's layout (None for a dense call)."""
    if buckets is None:
        return None
    call = make_call(q, k, v, q, q, buckets=buckets)
    n = _library().kat_cuda_attn_layout_size(ctypes.byref(call))
    return torch.empty(max(n, 1), device=q.device, dtype=torch.uint8)


def forward(q, k, v, causal=False, scale=0.0, window=0, o=None, lse=None, buckets=None,
            layout=None):
    """o, lse of attention; o, lse and layout may be given (preallocated)."""
    B, H, N, D = q.shape
    o = torch.empty_like(q) if o is None else o
    lse = torch.empty(B, H, N, device=q.device, dtype=torch.float32) if lse is None else lse
    if buckets is not None and layout is None:
        layout = layout_for(q, k, v, buckets)
    call = make_call(q, k, v, o, lse, causal, scale, window, buckets, layout)
    _check(_library().kat_cuda_attn_forward(ctypes.byref(call), _stream()))
    return o, lse


def backward_workspace(q, k, v, o, lse, causal=False, scale=0.0, window=0):
    call = make_call(q, k, v, o, lse, causal, scale, window)
    n = _library().kat_cuda_attn_backward_workspace(ctypes.byref(call))
    return torch.empty(max(n, 1), device=q.device, dtype=torch.uint8)


def backward(q, k, v, o, lse, dout, causal=False, scale=0.0, window=0, work=None,
             grads=None, buckets=None, layout=None):
    """dq, dk, dv; work (from backward_workspace) and grads may be given (preallocated); a
    bucketed call passes the layout its forward built."""
    call = make_call(q, k, v, o, lse, causal, scale, window, buckets, layout)
    if work is None:
        work = backward_workspace(q, k, v, o, lse, causal, scale, window)
    dq, dk, dv = grads or (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v))
    _check(_library().kat_cuda_attn_backward(ctypes.byref(call), view(dout), view(dq),
                                             view(dk), view(dv), work.data_ptr(), work.numel(),
                                             _stream()))
    return dq, dk, dv


def linear_call(q, k, v, o, den, causal=False, scale=0.0, unnormalized=False, features=False):
    """The kat_cuda_linear of Taylor-2 linear attention over these tensors (features: q and
    k are feature vectors, KAT_CUDA_FEATURES)."""
    B, H, N, D = q.shape
    d = Desc(B, H, k.shape[1], N, k.shape[2], D, int(causal), scale, v.shape[-1])
    return Linear(d, LINEAR_DTYPES.get(q.dtype, 7), int(unnormalized), int(features), view(q),
                  view(k), view(v), view(o), den.data_ptr() if den is not None else None)


def linear_workspace(call, backward, device):
    """Device memory for the call (1 byte for an invalid call, which the call itself then
    refuses with its sentence)."""
    n = _library().kat_cuda_linear_workspace(ctypes.byref(call), int(backward))
    return torch.empty(max(n, 1), device=device, dtype=torch.uint8)


def linear_forward(q, k, v, causal=False, scale=0.0, unnormalized=False, o=None, den=None,
                   work=None, features=False):
    """o, den of Taylor-2 linear attention; o, den and work may be given (preallocated)."""
    B, H, N, _ = q.shape
    o = q.new_empty(B, H, N, v.shape[-1]) if o is None else o
    den = torch.empty(B, H, N, device=q.device, dtype=torch.float32) if den is None else den
    call = linear_call(q, k, v, o, den, causal, scale, unnormalized, features)
    work = linear_workspace(call, False, q.device) if work is None else work
    _check(_library().kat_cuda_linear_forward(ctypes.byref(call), work.data_ptr(),
                                              work.numel(), _stream()))
    return o, den


def linear_backward(q, k, v, o, den, dout, causal=False, scale=0.0, unnormalized=False,
                    grads=None, work=None, features=False):
    """dq, dk, dv of Taylor-2 linear attention; grads and work may be given."""
    call = linear_call(q, k, v, o, den, causal, scale, unnormalized, features)
    work = linear_workspace(call, True, q.device) if work is None else work
    dq, dk, dv = grads or (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v))
    _check(_library().kat_cuda_linear_backward(ctypes.byref(call), view(dout), view(dq),
                                               view(dk), view(dv), work.data_ptr(),
                                               work.numel(), _stream()))
    return dq, dk, dv
