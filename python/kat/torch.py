"""kat attention as a torch.autograd.Function, with the conventions of
torch.nn.functional.scaled_dot_product_attention: [B, H, N, D] (or [H, N, D]) tensors,
``is_causal``, ``scale``, ``enable_gqa``, plus ``pattern=`` and its per-call data.

CPU float32 tensors; kat reads them in place (any strides with a contiguous last dimension)
and writes fresh outputs. CUDA tensors run libkat-cuda on torch's current stream (kat._cuda:
dense, window, hash and qkdrop in bf16/fp16, linear:taylor:2 in bf16/fp16/fp32; what it
cannot do is refused, naming the argument). ``import kat.torch`` (or ``kat.torch`` after
``import kat``)."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch as _torch

from ._attention import attention as _forward, attention_backward as _backward
from .featmap import FeatureMap, python_map

__all__ = ["attention", "Attention", "linear_features"]

# Whether a forward keeps its pattern index for the backward (off only to measure the gain).
_share_index = True


def _check_heads(names, last, q, k, v, enable_gqa):
    """q, k, v of one rank, 3 or 4; the key heads dividing the query heads, only with
    enable_gqa when they differ."""
    qn, kn, vn = names
    if q.dim() not in (3, 4) or k.dim() != q.dim() or v.dim() != q.dim():
        raise ValueError(f"{qn}, {kn}, {vn}: expected [B, H, N, {last}] or [H, N, {last}] "
                         f"tensors of one rank, got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    H, Hkv = q.shape[-3], k.shape[-3]
    if H != Hkv and not enable_gqa:
        raise ValueError(f"{kn} has {Hkv} heads and {qn} {H}: pass enable_gqa=True for "
                         "grouped-query attention")
    if H % Hkv:
        raise ValueError(f"{qn} heads H = {H} must be a multiple of the key heads {Hkv}")


def _view(t: "_torch.Tensor", name: str) -> np.ndarray:
    """A NumPy view of a CPU float32 tensor's memory (no copy)."""
    if t.device.type != "cpu":
        raise ValueError(f"{name}: kat runs on CPU tensors; got one on {t.device}")
    if t.dtype != _torch.float32:
        raise ValueError(f"{name}: dtype {t.dtype}; kat attention computes in torch.float32")
    return t.detach().numpy()


def _grad_view(t: "_torch.Tensor") -> np.ndarray:
    """An incoming gradient as a NumPy view; one with a non-contiguous last axis (autograd
    may hand over an expanded tensor) is made contiguous first."""
    if t.dim() and t.stride(-1) != 1 and t.shape[-1] > 1:
        t = t.contiguous()
    return t.detach().numpy()


class _KatAttention(_torch.autograd.Function):
    """forward: kat.attention; backward: kat.attention_backward with the saved logsumexp."""

    @staticmethod
    def forward(ctx, q, k, v, opts):
        qn, kn, vn = _view(q, "query"), _view(k, "key"), _view(v, "value")
        # a per-call sparse pattern is sorted and tiled once: the backward reuses the index
        kept: list = [] if opts["share"] else None
        if opts["lse"]:
            o, lse = _forward(qn, kn, vn, return_lse=True, _keep_index=kept, **opts["kw"])
        else:
            o, lse = _forward(qn, kn, vn, _keep_index=kept, **opts["kw"]), None
        ot = _torch.from_numpy(o)
        lt = None if lse is None else _torch.from_numpy(lse)
        ctx.opts = opts
        ctx.index = kept[0] if kept else None   # freed with the context
        ctx.save_for_backward(q, k, v, ot, *([] if lt is None else [lt]))
        return ot

    @staticmethod
    def backward(ctx, dout):
        saved = ctx.saved_tensors
        q, k, v, o = saved[:4]
        lse = saved[4].numpy() if len(saved) > 4 else None
        dq, dk, dv = _backward(q.detach().numpy(), k.detach().numpy(), v.detach().numpy(),
                               o.numpy(), _grad_view(dout), lse, _index=ctx.index,
                               **ctx.opts["kw"])
        return _torch.from_numpy(dq), _torch.from_numpy(dk), _torch.from_numpy(dv), None


def attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
              is_causal: bool = False, scale: Optional[float] = None, enable_gqa: bool = False,
              *, pattern: Any = "dense", q_buckets=None, k_buckets=None, q_keep=None,
              k_keep=None, featmap=None, unnormalized: bool = False, chunk: int = 0):
    """scaled_dot_product_attention's call, computed by kat, differentiable.

    query [B, H, N, D] (or [H, N, D]), key and value [B, H_kv, M, D] / [..., M, D_v];
    ``enable_gqa=True`` lets H_kv divide H, as in torch 2.5. ``attn_mask``: a boolean mask
    (True: may attend), broadcast from [N, M], [H, N, M] or [B, H, N, M] (kat's blockmask
    pattern); float masks and ``dropout_p > 0`` are not supported. ``is_causal`` with N != M
    is refused: torch aligns that mask at the top left, kat at the bottom right (both agree
    when N == M). ``pattern`` and the per-call data are those of :func:`kat.attention`
    (e.g. ``pattern="lsh:8"``, or ``pattern="hash"`` with integer bucket tensors).
    Raises NotImplementedError when a gradient is wanted on a path without one (a feature map
    without a vjp, e.g. one written in Python)."""
    if dropout_p:
        raise NotImplementedError(f"dropout_p = {dropout_p}: kat attention has no dropout")
    _check_heads(("query", "key", "value"), "D", query, key, value, enable_gqa)
    N, M = query.shape[-2], key.shape[-2]
    if is_causal and N != M:
        raise ValueError(f"is_causal with N = {N} queries and M = {M} keys: torch aligns the "
                         "causal mask at the top left and kat at the bottom right; they agree "
                         "only for N == M")
    if any(t.is_cuda for t in (query, key, value)):
        return _on_cuda(query, key, value, attn_mask, is_causal, scale, pattern, featmap,
                        unnormalized, q_buckets=q_buckets, k_buckets=k_buckets,
                        q_keep=q_keep, k_keep=k_keep)
    kw = dict(pattern=pattern, causal=bool(is_causal), scale=scale, featmap=featmap,
              unnormalized=unnormalized, chunk=chunk)
    if attn_mask is not None:
        if attn_mask.dtype != _torch.bool:
            raise NotImplementedError(f"attn_mask of dtype {attn_mask.dtype}: kat takes boolean "
                                      "masks only")
        if pattern != "dense":
            raise ValueError(f"attn_mask with pattern {pattern!r}: a mask is the blockmask "
                             "pattern itself")
        kw.update(pattern="blockmask", mask=attn_mask.detach().numpy())
    for name, val in (("q_buckets", q_buckets), ("k_buckets", k_buckets), ("q_keep", q_keep),
                      ("k_keep", k_keep)):
        if val is not None:
            kw[name] = val.detach().numpy() if isinstance(val, _torch.Tensor) else val
    linear = isinstance(pattern, FeatureMap) or (isinstance(pattern, str) and
                                                 pattern.startswith("linear")) or \
        (not isinstance(pattern, str) and hasattr(pattern, "apply"))
    wants_grad = _torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
    if linear and wants_grad:
        fm = pattern if not isinstance(pattern, str) else featmap
        if fm is not None and not (isinstance(fm, FeatureMap) and fm._native.has_vjp):
            name = fm.name if isinstance(fm, FeatureMap) else type(fm).__name__
            raise NotImplementedError(f"feature map {name} has no gradient (vjp): it runs "
                                      "forward only; call it under torch.no_grad() or use a "
                                      "built-in map")
    opts = {"kw": kw, "lse": not linear, "share": wants_grad and not linear and
            _share_index}
    return _KatAttention.apply(query, key, value, opts)


def _on_cuda(query, key, value, attn_mask, is_causal, scale, pattern, featmap, unnormalized,
             **rows):
    """attention() on CUDA tensors through libkat-cuda (kat._cuda); [H, N, D] calls run as
    B = 1. The chunk option is the CPU engine's: the GPU picks its own chunk, which changes
    no result."""
    from . import _cuda
    three = query.dim() == 3
    if three:
        query, key, value = (t.unsqueeze(0) for t in (query, key, value))
        rows = {n: None if x is None else _torch.as_tensor(x).unsqueeze(0)
                for n, x in rows.items()}
    o = _cuda.attention(query, key, value, is_causal=bool(is_causal), scale=scale,
                        pattern=pattern, attn_mask=attn_mask, featmap=featmap,
                        unnormalized=unnormalized, **rows)
    return o.squeeze(0) if three else o


def linear_features(phi_q, phi_k, value, is_causal: bool = False, enable_gqa: bool = False,
                    unnormalized: bool = False):
    """Linear attention of feature vectors the caller computed, on CUDA tensors:
    o_i = sum_j (phi_q[i] . phi_k[j]) v_j / sum_j phi_q[i] . phi_k[j] (no denominator when
    ``unnormalized``), over j <= i when ``is_causal`` (N = M), differentiable. phi_q
    [B, H, N, F] (or [H, N, F]), phi_k [B, H_kv, M, F], value [B, H_kv, M, D_v]; F and D_v up to
    128; bf16, fp16 or fp32. Any feature map written in torch works this way: autograd takes
    the gradients of the features back through the map. Normalised, the sums must be positive
    (a positive map such as elu + 1); a zero sum gives inf or NaN. CPU tensors are refused: on
    the CPU pass the map itself, ``attention(q, k, v, pattern=featmap)``."""
    if not phi_q.is_cuda:
        raise NotImplementedError(f"phi_q: on {phi_q.device}; linear_features runs on CUDA "
                                  "tensors (on the CPU: attention(q, k, v, pattern=featmap))")
    _check_heads(("phi_q", "phi_k", "value"), "F", phi_q, phi_k, value, enable_gqa)
    if is_causal and phi_q.shape[-2] != phi_k.shape[-2]:
        raise ValueError(f"is_causal with N = {phi_q.shape[-2]} queries and M = "
                         f"{phi_k.shape[-2]} keys: causal linear attention needs N = M")
    from . import _cuda
    three = phi_q.dim() == 3
    if three:
        phi_q, phi_k, value = (t.unsqueeze(0) for t in (phi_q, phi_k, value))
    o = _cuda.linear_features(phi_q, phi_k, value, is_causal=bool(is_causal),
                              unnormalized=bool(unnormalized))
    return o.squeeze(0) if three else o


class Attention(_torch.nn.Module):
    """A drop-in attention module: ``Attention(pattern="lsh:8", is_causal=True)(q, k, v)``
    computes :func:`attention` with these settings (per-call data as keyword arguments)."""

    def __init__(self, pattern: Any = "dense", is_causal: bool = False,
                 scale: Optional[float] = None, enable_gqa: bool = False, **options):
        super().__init__()
        self.pattern, self.is_causal, self.scale = pattern, is_causal, scale
        self.enable_gqa, self.options = enable_gqa, options

    def forward(self, query, key, value, attn_mask=None, **per_call):
        return attention(query, key, value, attn_mask=attn_mask, is_causal=self.is_causal,
                         scale=self.scale, enable_gqa=self.enable_gqa, pattern=self.pattern,
                         **self.options, **per_call)

    def extra_repr(self) -> str:
        return f"pattern={self.pattern!r}, is_causal={self.is_causal}, scale={self.scale}"
