"""kat attention on CUDA tensors: libkat-cuda (include/kat/cuda.h) through ctypes, on torch's
current stream, as torch.autograd.Functions. Used by kat.torch.attention for CUDA tensors.

This module imports neither kat's CPU extension nor anything of the kat package, so that it
runs where only libkat-cuda.so and torch are (a GPU machine without LAPACK or GSL); the
library is found through KAT_CUDA_LIB, else beside the build tree's package
(build/lib/cuda), the source tree's build-gpu/, or the dynamic loader's path.

What it runs: dense softmax attention (causal or not), sliding windows ("window:W"), hash
buckets ("hash", "hash:NB" with bucket ids), QK-drop ("qkdrop" with keep masks) in bf16 or
fp16 with D a multiple of 8 up to 128; linear attention with the Taylor-2 map
("linear:taylor:2") in bf16, fp16 or fp32 with D and D_v up to 128, and linear attention of
feature vectors the caller computed (linear_features). Everything else is refused with a
sentence naming the argument and its value."""
from __future__ import annotations

import ctypes
import os
from typing import Optional

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))


class _Desc(ctypes.Structure):
    _fields_ = [("B", ctypes.c_size_t), ("H", ctypes.c_size_t), ("H_kv", ctypes.c_size_t),
                ("N", ctypes.c_size_t), ("M", ctypes.c_size_t), ("D", ctypes.c_size_t),
                ("causal", ctypes.c_int), ("scale", ctypes.c_double), ("Dv", ctypes.c_size_t)]


class _View(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("stride", ctypes.c_int64 * 3)]


class _Attn(ctypes.Structure):
    _fields_ = [("desc", _Desc), ("dtype", ctypes.c_int), ("window", ctypes.c_size_t),
                ("q", _View), ("k", _View), ("v", _View), ("o", _View),
                ("lse", ctypes.c_void_p), ("q_bucket", ctypes.c_void_p),
                ("k_bucket", ctypes.c_void_p), ("nb", ctypes.c_int),
                ("layout", ctypes.c_void_p), ("layout_bytes", ctypes.c_size_t)]


class _Linear(ctypes.Structure):
    _fields_ = [("desc", _Desc), ("dtype", ctypes.c_int), ("unnormalized", ctypes.c_int),
                ("map", ctypes.c_int), ("q", _View), ("k", _View), ("v", _View), ("o", _View),
                ("den", ctypes.c_void_p)]


_P = ctypes.POINTER
_SIGNATURES = {
    "kat_cuda_attn_layout_size": ([_P(_Attn)], ctypes.c_size_t),
    "kat_cuda_attn_forward": ([_P(_Attn), ctypes.c_void_p], ctypes.c_int),
    "kat_cuda_attn_backward_workspace": ([_P(_Attn)], ctypes.c_size_t),
    "kat_cuda_attn_backward": ([_P(_Attn), _View, _View, _View, _View, ctypes.c_void_p,
                                ctypes.c_size_t, ctypes.c_void_p], ctypes.c_int),
    "kat_cuda_linear_workspace": ([_P(_Linear), ctypes.c_int], ctypes.c_size_t),
    "kat_cuda_linear_forward": ([_P(_Linear), ctypes.c_void_p, ctypes.c_size_t,
                                 ctypes.c_void_p], ctypes.c_int),
    "kat_cuda_linear_backward": ([_P(_Linear), _View, _View, _View, _View, ctypes.c_void_p,
                                  ctypes.c_size_t, ctypes.c_void_p], ctypes.c_int),
    "kat_cuda_last_error": ([], ctypes.c_char_p),
}
_lib = None


def library():
    """libkat-cuda, loaded on first use (OSError with the places tried when absent)."""
    global _lib
    if _lib is not None:
        return _lib
    env = os.environ.get("KAT_CUDA_LIB")
    places = [env] if env else [
        os.path.join(_HERE, "..", "..", "lib", "cuda", "libkat-cuda.so"),   # build/python/kat
        os.path.join(_HERE, "..", "..", "build-gpu", "libkat-cuda.so"),     # python/kat
        "libkat-cuda.so"]
    errors = []
    for p in places:
        if os.sep in p and not os.path.exists(p):
            errors.append(f"{os.path.normpath(p)}: no such file")
            continue
        try:
            lib = ctypes.CDLL(p)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        raise OSError("kat: attention on CUDA tensors needs libkat-cuda.so (build it with "
                      "nvcc: meson's cuda option or ./run.sh test-gpu; or set KAT_CUDA_LIB): "
                      + "; ".join(errors))
    _lib = bind(lib)
    return lib


def bind(lib: ctypes.CDLL, prefixes: tuple = ("kat_cuda_",)) -> ctypes.CDLL:
    """lib with the prototypes of libkat-cuda's functions whose names start with one of the
    prefixes (also for the GPU tests, which load this file by path and a library of their
    choosing; the CPU emulation's library has the linear-attention functions only)."""
    for name, (args, res) in _SIGNATURES.items():
        if name.startswith(prefixes):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
    return lib


_ERRORS = {1: ValueError, 2: ValueError, 3: OverflowError, 4: MemoryError,
           5: NotImplementedError}


def _check(status: int) -> None:
    if status:
        raise _ERRORS.get(status, RuntimeError)(library().kat_cuda_last_error().decode())


def _view(t: Optional[torch.Tensor]) -> _View:
    if t is None:
        return _View(None, (ctypes.c_int64 * 3)(0, 0, 0))
    return _View(t.data_ptr(), (ctypes.c_int64 * 3)(*t.stride()[:3]))


def _stream(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream


def _bytes(n: int, like: torch.Tensor) -> torch.Tensor:
    """n bytes of device memory (torch's allocator aligns blocks to 512 bytes)."""
    return torch.empty(max(n, 1), dtype=torch.uint8, device=like.device)


_FLASH_DTYPES = {torch.bfloat16: 0, torch.float16: 1}
_LINEAR_DTYPES = {torch.bfloat16: 0, torch.float16: 1, torch.float32: 2}


def _flash_operand(t: torch.Tensor) -> torch.Tensor:
    """t itself when the flash kernels can read it in place (last axis contiguous, strides
    multiples of 8 elements, 16-byte aligned data), else a contiguous copy."""
    ok = t.stride(-1) == 1 and all(s % 8 == 0 for s in t.stride()[:3]) and \
        t.data_ptr() % 16 == 0
    return t if ok else t.contiguous()


def _linear_operand(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 or t.shape[-1] == 1 else t.contiguous()


class _Flash(torch.autograd.Function):
    """libkat-cuda's flash attention; cfg = (causal, scale, window, buckets or None)."""

    @staticmethod
    def _call(q, k, v, o, lse, cfg, layout=None):
        causal, scale, window, buckets = cfg
        B, H, N, D = q.shape
        d = _Desc(B, H, k.shape[1], N, k.shape[2], D, int(causal), scale, 0)
        qb, kb, nb = buckets or (None, None, 0)
        return _Attn(d, _FLASH_DTYPES[q.dtype], window, _view(q), _view(k), _view(v), _view(o),
                     lse.data_ptr(), None if qb is None else qb.data_ptr(),
                     None if kb is None else kb.data_ptr(), nb,
                     None if layout is None else layout.data_ptr(),
                     0 if layout is None else layout.numel())

    @staticmethod
    def forward(ctx, q, k, v, cfg):
        lib = library()
        B, H, N, _ = q.shape
        o = torch.empty_like(q, memory_format=torch.contiguous_format)
        lse = torch.empty(B, H, N, device=q.device, dtype=torch.float32)
        layout = None
        if cfg[3] is not None:
            call = _Flash._call(q, k, v, o, lse, cfg)
            n = lib.kat_cuda_attn_layout_size(ctypes.byref(call))
            if not n:
                _check(lib.kat_cuda_attn_forward(ctypes.byref(call), _stream(q)))
            layout = _bytes(n, q)
        call = _Flash._call(q, k, v, o, lse, cfg, layout)
        _check(lib.kat_cuda_attn_forward(ctypes.byref(call), _stream(q)))
        ctx.cfg, ctx.layout = cfg, layout
        ctx.save_for_backward(q, k, v, o, lse)
        return o

    @staticmethod
    def backward(ctx, dout):
        lib = library()
        q, k, v, o, lse = ctx.saved_tensors
        dout = _flash_operand(dout)
        call = _Flash._call(q, k, v, o, lse, ctx.cfg, ctx.layout)
        work = _bytes(lib.kat_cuda_attn_backward_workspace(ctypes.byref(call)), q)
        dq, dk, dv = (torch.empty(x.shape, dtype=x.dtype, device=x.device) for x in (q, k, v))
        _check(lib.kat_cuda_attn_backward(ctypes.byref(call), _view(dout), _view(dq),
                                          _view(dk), _view(dv), work.data_ptr(), work.numel(),
                                          _stream(q)))
        return dq, dk, dv, None


class _LinearAttention(torch.autograd.Function):
    """libkat-cuda's linear attention, Taylor-2 or of given features; cfg = (causal,
    unnormalized, features)."""

    @staticmethod
    def _call(q, k, v, o, den, cfg):
        causal, unnormalized, features = cfg
        B, H, N, D = q.shape
        d = _Desc(B, H, k.shape[1], N, k.shape[2], D, int(causal), 0.0, v.shape[-1])
        return _Linear(d, _LINEAR_DTYPES[q.dtype], int(unnormalized), int(features), _view(q),
                       _view(k), _view(v), _view(o), den.data_ptr())

    @staticmethod
    def forward(ctx, q, k, v, cfg):
        lib = library()
        B, H, N, _ = q.shape
        o = torch.empty(B, H, N, v.shape[-1], device=q.device, dtype=q.dtype)
        den = torch.empty(B, H, N, device=q.device, dtype=torch.float32)
        call = _LinearAttention._call(q, k, v, o, den, cfg)
        work = _bytes(lib.kat_cuda_linear_workspace(ctypes.byref(call), 0), q)
        _check(lib.kat_cuda_linear_forward(ctypes.byref(call), work.data_ptr(), work.numel(),
                                           _stream(q)))
        ctx.cfg = cfg
        ctx.save_for_backward(q, k, v, o, den)
        return o

    @staticmethod
    def backward(ctx, dout):
        lib = library()
        q, k, v, o, den = ctx.saved_tensors
        dout = _linear_operand(dout)
        call = _LinearAttention._call(q, k, v, o, den, ctx.cfg)
        work = _bytes(lib.kat_cuda_linear_workspace(ctypes.byref(call), 1), q)
        dq, dk, dv = (torch.empty(x.shape, dtype=x.dtype, device=x.device) for x in (q, k, v))
        _check(lib.kat_cuda_linear_backward(ctypes.byref(call), _view(dout), _view(dq),
                                            _view(dk), _view(dv), work.data_ptr(),
                                            work.numel(), _stream(q)))
        return dq, dk, dv, None


def _one_place(first, *others) -> None:
    """The named tensors on the first one's device, with its dtype."""
    fname, f = first
    for name, t in others:
        if t.device != f.device:
            raise ValueError(f"{name}: on {t.device}, but {fname} is on {f.device}; kat "
                             "needs all three on one device")
        if t.dtype != f.dtype:
            raise ValueError(f"{name}: dtype {t.dtype}, but {fname} has {f.dtype}")


def _int_arg(text: str, name: str, value) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name} = {value!r}: {text!r} is not a positive integer")
    return int(text)


def _rows(x, name: str, shape, device, kind: str) -> torch.Tensor:
    """Bucket ids (kind "ids") or keep masks ("mask") as contiguous int32 on the device."""
    t = torch.as_tensor(x)
    if kind == "ids" and (t.dtype.is_floating_point or t.dtype == torch.bool or
                          t.is_complex()):
        raise ValueError(f"{name}: dtype {t.dtype} is not an integer type")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: shape {tuple(t.shape)}, expected {tuple(shape)} (the shape "
                         f"of {'query' if name.startswith('q') else 'key'} without its last "
                         "axis)")
    t = t.to(device)
    if kind == "mask":
        return torch.where(t != 0, 0, -1).to(torch.int32).contiguous()
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name}: entry {int(t.min())} is negative; bucket ids are integers "
                         ">= 0")
    return t.to(torch.int32).contiguous()


def attention(query, key, value, *, is_causal: bool, scale: Optional[float], pattern,
              attn_mask=None, q_buckets=None, k_buckets=None, q_keep=None, k_keep=None,
              featmap=None, unnormalized: bool = False):
    """kat.torch.attention on CUDA tensors (the shapes already checked by kat.torch): 4-D
    [B, H, N, D] query, key and value on one device."""
    _one_place(("query", query), ("key", key), ("value", value))
    if attn_mask is not None:
        raise NotImplementedError("attn_mask: block masks run on the CPU only; on CUDA kat "
                                  "takes pattern 'dense', 'window:W', 'hash', 'qkdrop' or "
                                  "'linear:taylor:2'")
    if not isinstance(pattern, str):
        raise NotImplementedError(f"pattern = {type(pattern).__name__} object: feature maps "
                                  "given as objects run on the CPU only; on CUDA use "
                                  "pattern='linear:taylor:2', or kat.torch.linear_features "
                                  "on the features")
    head, _, rest = pattern.partition(":")
    if head == "linear":
        spec = rest or featmap
        if spec not in ("taylor:2", "taylor2"):
            what = f"pattern = {pattern!r}" if rest or featmap is None else \
                f"featmap = {featmap!r}"
            raise NotImplementedError(f"{what}: linear attention on CUDA has the Taylor-2 map "
                                      "only ('linear:taylor:2'; other maps: "
                                      "kat.torch.linear_features on the features)")
        if query.dtype not in _LINEAR_DTYPES:
            raise ValueError(f"query: dtype {query.dtype}; kat's linear attention on CUDA "
                             "takes torch.bfloat16, torch.float16 or torch.float32")
        q, k, v = (_linear_operand(t) for t in (query, key, value))
        return _LinearAttention.apply(q, k, v, (bool(is_causal), bool(unnormalized), False))
    if featmap is not None:
        raise ValueError(f"featmap: only the linear pattern takes a feature map, not "
                         f"{pattern!r}")
    if unnormalized:
        raise ValueError(f"unnormalized: only linear attention has a denominator to leave "
                         f"out, not pattern {pattern!r}")
    if query.dtype not in _FLASH_DTYPES:
        raise ValueError(f"query: dtype {query.dtype}; kat's softmax attention on CUDA takes "
                         "torch.bfloat16 or torch.float16 (fp32 runs on the CPU)")
    if value.shape[-1] != query.shape[-1]:
        raise NotImplementedError(f"value: head dimension {value.shape[-1]} differs from "
                                  f"query's {query.shape[-1]}; the CUDA flash kernels need "
                                  "D_v = D")
    B, H, N, _ = query.shape
    M = key.shape[2]
    window, buckets = 0, None
    if head == "dense" and not rest:
        pass
    elif head == "window":
        w, _, g = rest.partition(":")
        window = _int_arg(w, "pattern", pattern)
        if g and g != "0":
            raise NotImplementedError(f"pattern = {pattern!r}: global tokens run on the CPU "
                                      "only; on CUDA use 'window:W'")
    elif head == "hash":
        if q_buckets is None or k_buckets is None:
            raise ValueError("pattern 'hash' needs q_buckets and k_buckets (integer tensors "
                             "of query's and key's shape without the last axis)")
        qb = _rows(q_buckets, "q_buckets", (B, H, N), query.device, "ids")
        kb = _rows(k_buckets, "k_buckets", (B, key.shape[1], M), query.device, "ids")
        nb = _int_arg(rest, "pattern", pattern) if rest else \
            1 + max(int(qb.max()) if qb.numel() else 0, int(kb.max()) if kb.numel() else 0)
        buckets = (qb, kb, nb)
    elif head == "qkdrop" and not rest:
        qk = torch.zeros(B, H, N, dtype=torch.int32, device=query.device) if q_keep is None \
            else _rows(q_keep, "q_keep", (B, H, N), query.device, "mask")
        kk = torch.zeros(B, key.shape[1], M, dtype=torch.int32, device=query.device) \
            if k_keep is None else _rows(k_keep, "k_keep", (B, key.shape[1], M), query.device,
                                         "mask")
        buckets = (qk, kk, 1)
    else:
        raise NotImplementedError(f"pattern = {pattern!r}: not on CUDA; kat runs 'dense', "
                                  "'window:W', 'hash', 'hash:NB', 'qkdrop' and "
                                  "'linear:taylor:2' there (the others on CPU tensors)")
    for name, val, ok in (("q_buckets", q_buckets, head == "hash"),
                          ("k_buckets", k_buckets, head == "hash"),
                          ("q_keep", q_keep, head == "qkdrop"),
                          ("k_keep", k_keep, head == "qkdrop")):
        if val is not None and not ok:
            raise ValueError(f"{name}: pattern {pattern!r} takes no {name}")
    q, k, v = (_flash_operand(t) for t in (query, key, value))
    cfg = (bool(is_causal), 0.0 if scale is None else float(scale), window, buckets)
    return _Flash.apply(q, k, v, cfg)


def linear_features(phi_q, phi_k, value, *, is_causal: bool, unnormalized: bool):
    """kat.torch.linear_features on CUDA tensors ([B, H, N, F] features, checked shapes)."""
    _one_place(("phi_q", phi_q), ("phi_k", phi_k), ("value", value))
    if phi_q.dtype not in _LINEAR_DTYPES:
        raise ValueError(f"phi_q: dtype {phi_q.dtype}; kat's linear attention on CUDA takes "
                         "torch.bfloat16, torch.float16 or torch.float32")
    q, k, v = (_linear_operand(t) for t in (phi_q, phi_k, value))
    return _LinearAttention.apply(q, k, v, (bool(is_causal), bool(unnormalized), True))
