"""Attention on NumPy arrays: every pattern of kat's plan API, forward and backward.

Arrays are float32 [B, H, N, D] (or [H, N, D], or [N, D]); any strides with a contiguous
last dimension are read in place, so a transposed [B, N, H, D] buffer (``x.transpose(0, 2, 1,
3)``) costs no copy. Keys and values may have fewer heads than the queries (grouped-query
attention: H a multiple of H_kv)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from . import _native
from .featmap import FeatureMap, featmap as _featmap, python_map


def _tensor(x, name: str, ndim: int) -> np.ndarray:
    """x as a float32 ndarray of ndim dimensions with a contiguous last axis: no copy."""
    a = np.asarray(x)
    if a.dtype != np.float32:
        raise ValueError(f"{name}: dtype {a.dtype}; kat attention computes in float32 (pass "
                         f"{name}.astype(numpy.float32))")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions like q ([B, H, N, D], [H, N, D] or "
                         f"[N, D]), got shape {a.shape}")
    if a.shape[-1] > 1 and a.strides[-1] != 4:
        raise ValueError(f"{name}: the last dimension must be contiguous (stride 4 bytes, got "
                         f"{a.strides[-1]}); pass numpy.ascontiguousarray({name})")
    if any(s < 0 for s in a.strides):
        raise ValueError(f"{name}: negative strides (a reversed view); pass "
                         f"numpy.ascontiguousarray({name})")
    return a


def _as4(a: np.ndarray) -> np.ndarray:
    """The [B, H, N, D] view of a 2-, 3- or 4-D array (leading axes of size 1 added)."""
    return a.reshape((1,) * (4 - a.ndim) + a.shape) if a.ndim < 4 else a


def _rows(x, name: str, shape: Tuple[int, ...], kind: str) -> np.ndarray:
    """Per-row data of the given shape ([B, H, N] in the caller's ndim): bucket ids (kind
    "ids", integers >= 0 as int32) or keep masks (kind "mask", bool or integers, nonzero
    keeps, as uint8). Always a fresh contiguous array: the caller's is never touched."""
    a = np.asarray(x)
    allowed = "iu" if kind == "ids" else "biu"
    if a.dtype.kind not in allowed:
        what = "an integer" if kind == "ids" else "a boolean or integer"
        raise ValueError(f"{name}: dtype {a.dtype} is not {what} type")
    if a.shape != shape:
        raise ValueError(f"{name}: shape {a.shape}, expected {shape} (the shape of "
                         f"{'q' if name.startswith('q') else 'k'} without its last axis)")
    if kind == "mask":
        return np.ascontiguousarray(a != 0, dtype=np.uint8)
    if a.size:
        lo, hi = a.min(), a.max()
        if lo < 0:
            idx = np.unravel_index(int(np.argmin(a)), a.shape)
            raise ValueError(f"{name}: entry {tuple(int(i) for i in idx)} is {int(lo)}; bucket "
                             "ids are integers >= 0")
        if hi >= 2 ** 31 - 1:
            idx = np.unravel_index(int(np.argmax(a)), a.shape)
            raise ValueError(f"{name}: entry {tuple(int(i) for i in idx)} is {int(hi)}; bucket "
                             "ids must be below 2^31 - 1")
    return np.ascontiguousarray(a, dtype=np.int32)


def _element_mask(x, B: int, H: int, N: int, M: int) -> Tuple[np.ndarray, int, int]:
    """An element mask [N, M], [H, N, M] or [B, H, N, M] (axes of size 1 broadcast), nonzero
    where query i may see key j, as contiguous uint8 [Bm, Hm, N, M]."""
    a = np.asarray(x)
    if a.dtype.kind not in "biu":
        raise ValueError(f"mask: dtype {a.dtype} is not a boolean or integer type")
    if a.ndim < 2 or a.ndim > 4 or a.shape[-2:] != (N, M):
        raise ValueError(f"mask: shape {a.shape}, expected [N, M] = [{N}, {M}] with optional "
                         "leading [B, H] axes")
    a4 = a.reshape((1,) * (4 - a.ndim) + a.shape)
    Bm, Hm = a4.shape[:2]
    if Bm not in (1, B) or Hm not in (1, H):
        raise ValueError(f"mask: leading axes {a4.shape[:2]} must be 1 or [B, H] = [{B}, {H}]")
    return np.ascontiguousarray(a4 != 0, dtype=np.uint8), Bm, Hm


@dataclass
class _Call:
    """A pattern resolved for one call: the spec kat parses, the map of linear attention, and
    the per-call data as the extension takes it."""

    spec: str
    fmap: Any
    data: tuple
    lse_ok: bool


def _resolve(pattern, q4, k4, v4, *, q_buckets, k_buckets, q_keep, k_keep, mask, featmap,
             block_q, block_k, qshape, kshape) -> _Call:
    B, H, N, D = q4.shape
    M = k4.shape[2]
    fm = featmap
    if isinstance(pattern, FeatureMap) or (not isinstance(pattern, str) and
                                           hasattr(pattern, "apply")):
        fm, pattern = pattern, "linear"
    if not isinstance(pattern, str):
        raise TypeError(f"pattern: expected a spec string or a feature map, got "
                        f"{type(pattern).__name__}")
    spec = pattern
    head, _, rest = pattern.partition(":")
    if head == "linear":
        if rest:
            if fm is not None:
                raise ValueError("pattern: give the feature map either in the spec or as "
                                 "featmap=, not both")
            fm = _featmap(rest, D)
        if fm is None:
            raise ValueError("pattern 'linear' needs a feature map: 'linear:taylor:2', or "
                             "featmap=")
        fm = python_map(fm, D) if not isinstance(fm, FeatureMap) else fm
        spec = "linear"
    elif fm is not None:
        raise ValueError(f"featmap: only the linear pattern takes a feature map, not "
                         f"{pattern!r}")
    qb = kb = qk = kk = m = None
    mB = mH = 1
    if q_buckets is not None or k_buckets is not None:
        if head != "hash":
            raise ValueError(f"q_buckets/k_buckets: only the hash pattern takes bucket ids, not "
                             f"{pattern!r}")
        if q_buckets is None or k_buckets is None:
            raise ValueError("pattern 'hash' needs both q_buckets and k_buckets")
        qb = _rows(q_buckets, "q_buckets", qshape, "ids")
        kb = _rows(k_buckets, "k_buckets", kshape, "ids")
        if not rest:   # "hash": the bucket count from the ids themselves
            nb = 1 + max(int(qb.max(initial=0)), int(kb.max(initial=0)))
            spec = f"hash:{nb}"
    elif head == "hash":
        raise ValueError("pattern 'hash' needs q_buckets and k_buckets (integer arrays of q's "
                         "and k's shape without the last axis), or use 'lsh:NB' for kat's own")
    if q_keep is not None or k_keep is not None:
        if head != "qkdrop":
            raise ValueError(f"q_keep/k_keep: only the qkdrop pattern takes keep masks, not "
                             f"{pattern!r}")
        qk = None if q_keep is None else _rows(q_keep, "q_keep", qshape, "mask")
        kk = None if k_keep is None else _rows(k_keep, "k_keep", kshape, "mask")
    if mask is not None:
        if head != "blockmask":
            raise ValueError(f"mask: only the blockmask pattern takes an element mask, not "
                             f"{pattern!r}")
        m, mB, mH = _element_mask(mask, B, H, N, M)
    elif head == "blockmask":
        raise ValueError("pattern 'blockmask' needs mask= (boolean [N, M], [H, N, M] or "
                         "[B, H, N, M])")
    data = (qb, kb, qk, kk, m, mB, mH, int(block_q), int(block_k))
    return _Call(spec, None if fm is None else fm._native, data, head != "linear")


def attention(q, k, v, *, pattern: Any = "dense", causal: bool = False,
              scale: Optional[float] = None, return_lse: bool = False, q_buckets=None,
              k_buckets=None, q_keep=None, k_keep=None, mask=None, featmap=None,
              unnormalized: bool = False, chunk: int = 0, block_q: int = 0, block_k: int = 0,
              _keep_index: Optional[list] = None):
    """Softmax attention o = softmax(scale q k^T) v restricted to a pattern, or linear
    attention with a feature map.

    Args:
        q: float32 [B, H, N, D] (or [H, N, D], [N, D]); k: [B, H_kv, M, D]; v: [B, H_kv, M, D_v].
            Strided views are read in place; the last axis must be contiguous.
        pattern: ``"dense"``; ``"hash"`` or ``"hash:NB"`` with ``q_buckets``/``k_buckets``
            (integer arrays [B, H, N] and [B, H_kv, M]: a query sees the keys of its bucket);
            ``"lsh:NB[:SEED]"`` (kat's angular LSH buckets); ``"window:W[:G]"`` (sliding window
            of W keys, G global tokens); ``"qkdrop"`` with ``q_keep``/``k_keep`` (boolean or
            integer masks of the rows kept); ``"blockmask"`` with ``mask`` (boolean [N, M],
            [H, N, M] or [B, H, N, M]: query i may see key j); ``"linear:<map spec>"`` (e.g.
            ``"linear:taylor:2"``), ``"linear"`` with ``featmap=``, or a feature map itself
            (also one written in Python).
        causal: query i sees key j <= i + M - N (aligned at the bottom right).
        scale: the logit scale (None: 1/sqrt(D)); softmax patterns only.
        return_lse: also return the logsumexp [B, H, N] (softmax patterns), which
            :func:`attention_backward` takes.
        unnormalized, chunk: linear attention's options (no denominator; tokens per chunk).
        block_q, block_k: the block sizes of a block mask (0: the engine's tiles).

    Returns o (float32, q's shape with D_v last), or (o, lse). Raises ValueError for bad
    arguments (naming them), NotImplementedError for combinations no solver supports.
    ``_keep_index`` (internal, kat.torch): a list that receives the plan and the index of the
    per-call pattern data (None for patterns without one), for ``attention_backward``."""
    nd = np.ndim(q)
    qa, ka, va = (_tensor(x, n, nd) for x, n in ((q, "q"), (k, "k"), (v, "v")))
    q4, k4, v4 = _as4(qa), _as4(ka), _as4(va)
    call = _resolve(pattern, q4, k4, v4, q_buckets=q_buckets, k_buckets=k_buckets,
                    q_keep=q_keep, k_keep=k_keep, mask=mask, featmap=featmap, block_q=block_q,
                    block_k=block_k, qshape=qa.shape[:-1], kshape=ka.shape[:-1])
    if return_lse and not call.lse_ok:
        raise ValueError("return_lse: linear attention has no softmax, hence no logsumexp")
    o = np.empty(qa.shape[:-1] + (va.shape[-1],), dtype=np.float32)
    lse = np.empty(qa.shape[:-1], dtype=np.float32) if call.lse_ok else None
    res = _native.attention(False, call.spec, call.fmap,
                      (int(bool(causal)), 0.0 if scale is None else float(scale),
                       bool(unnormalized), int(chunk)),
                      (q4, k4, v4, _as4(o), None if lse is None else lse.reshape(q4.shape[:3])),
                      call.data, *(() if _keep_index is None else (True,)))
    if _keep_index is not None:
        _keep_index.append(res[1])
    return (o, lse) if return_lse else o


def attention_backward(q, k, v, o, dout, lse=None, *, pattern: Any = "dense",
                       causal: bool = False, scale: Optional[float] = None, q_buckets=None,
                       k_buckets=None, q_keep=None, k_keep=None, mask=None, featmap=None,
                       unnormalized: bool = False, chunk: int = 0, block_q: int = 0,
                       block_k: int = 0, _index: Any = None):
    """Gradients (dq, dk, dv) of :func:`attention` given its output ``o`` and dL/do ``dout``,
    with the same pattern and per-call data. ``lse`` is the forward's logsumexp: required by
    the sparse patterns; for dense attention None recomputes the softmax statistics (more
    accurate, about 20% slower); linear attention takes none. dk and dv sum over the query
    heads that share a key/value head. ``_index`` (internal): what the forward's
    ``_keep_index`` received; the pass then reuses the forward's sorted, tiled pattern data
    (the per-call data must be the forward's)."""
    nd = np.ndim(q)
    qa, ka, va = (_tensor(x, n, nd) for x, n in ((q, "q"), (k, "k"), (v, "v")))
    oa, da = _tensor(o, "o", nd), _tensor(dout, "dout", nd)
    q4, k4, v4 = _as4(qa), _as4(ka), _as4(va)
    call = _resolve(pattern, q4, k4, v4, q_buckets=q_buckets, k_buckets=k_buckets,
                    q_keep=q_keep, k_keep=k_keep, mask=mask, featmap=featmap, block_q=block_q,
                    block_k=block_k, qshape=qa.shape[:-1], kshape=ka.shape[:-1])
    want = qa.shape[:-1] + (va.shape[-1],)
    for a, name in ((oa, "o"), (da, "dout")):
        if a.shape != want:
            raise ValueError(f"{name}: shape {a.shape}, expected {want}")
    lse4 = None
    if lse is not None:
        if not call.lse_ok:
            raise ValueError("lse: linear attention takes no logsumexp")
        la = np.asarray(lse)
        if la.dtype != np.float32 or la.shape != qa.shape[:-1]:
            raise ValueError(f"lse: expected float32 of shape {qa.shape[:-1]}, got {la.dtype} "
                             f"{la.shape}")
        lse4 = la.reshape(q4.shape[:3])
    dq, dk, dv = (np.empty(a.shape, dtype=np.float32) for a in (qa, ka, va))
    _native.attention(True, call.spec, call.fmap,
                      (int(bool(causal)), 0.0 if scale is None else float(scale),
                       bool(unnormalized), int(chunk)),
                      (q4, k4, v4, _as4(oa), lse4, _as4(da), _as4(dq), _as4(dk), _as4(dv)),
                      call.data, _index)
    return dq, dk, dv


def lsh_buckets(x, buckets: int, seed: int = 0, group: int = 1) -> np.ndarray:
    """The bucket ids kat's ``"lsh:NB:SEED"`` pattern gives the rows of x (float32
    [B, H, N, D], [H, N, D] or [N, D]): argmax([x R, -x R]) with a random D x NB/2 rotation R
    per head group drawn from the seed. Queries use ``group = H / H_kv`` and keys ``group = 1``,
    so that a query head and its key/value head share R. Returns int32 of x's shape without
    the last axis."""
    xa = _tensor(x, "x", np.ndim(x))
    out = np.empty(xa.shape[:-1], dtype=np.int32)
    _native.lsh_buckets(_as4(xa), int(group), int(buckets), int(seed), out)
    return out
