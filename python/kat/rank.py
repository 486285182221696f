"""When is f(QK^T) low rank: rank probes, kernel matrices and point sets (NumPy in and out)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from . import _native
from ._arrays import f64_matrix, f64_vector, size
from ._fn import fn_arg
from .featmap import FeatureMap, python_map


@dataclass(frozen=True)
class RankResult:
    """What a rank probe measured on M = f(s * a(Q, K)) (n x m).

    ``rank`` is the numerical rank #{sigma_i > tol}; ``singular_values`` are descending (all
    min(n, m) of them for the dense method, the captured ones for the randomized method);
    ``eps_rank_spectral`` and ``eps_rank_frobenius`` are None unless ``eps`` was given;
    ``predicted_rank`` is what theory predicts for a polynomial f (None when it predicts
    nothing)."""

    rank: int
    tol: float
    singular_values: np.ndarray
    eps_rank_spectral: Optional[int]
    eps_rank_frobenius: Optional[int]
    stable_rank: float
    effective_rank: float
    predicted_rank: Optional[int]
    base_rank: Optional[int]
    sigma_max: float
    fro_norm: float
    n: int
    m: int
    d: int
    method: str
    converged: bool
    passes: int

    def __int__(self) -> int:
        return self.rank


def _result(d: dict) -> RankResult:
    sv = np.frombuffer(d.pop("sv"), dtype=np.float64)   # over the bytearray kat filled: no copy
    return RankResult(singular_values=sv, **d)


def _kernel_arg(f: Any, d: int):
    """f for the native calls: a FeatureMap (also one written in Python) or a function."""
    if isinstance(f, FeatureMap):
        return f._native
    if f is not None and not isinstance(f, str) and hasattr(f, "dim") and hasattr(f, "apply"):
        return python_map(f, d)._native
    return fn_arg(f)


def rank(f: Any, q, k=None, *, form: str = "inner", scale: float = 1.0,
         method: str = "dense", rtol: float = 0.0, atol: float = 0.0, eps: float = 0.0,
         predict: bool = True, seed: int = 0, block: int = 0, oversample: int = 0,
         power_iters: int = 0, max_rank: int = 0) -> RankResult:
    """The rank of M_ij = f(scale * a(q_i, k_j)), or of phi(q_i).psi(k_j) for a feature map.

    Args:
        f: an expression string (``"exp(x/8)"``, ``"x^2"``), a built-in name (``"relu"``),
            a vectorised Python callable, None (the identity), or a feature map (a
            :class:`kat.FeatureMap`, or any object with ``dim`` and ``apply``).
        q: queries [n, d]; k: keys [m, d] (None: k = q). float64 arrays with contiguous rows
            are read in place; other real dtypes are converted to float64.
        form: a(q, k) = ``"inner"`` <q, k>, ``"l2sq"`` |q - k|^2 or ``"l1"`` |q - k|_1.
        method: ``"dense"`` (build M, full SVD) or ``"randomized"`` (matrix-free; for sizes
            whose M does not fit in memory).
        rtol, atol: the tolerance max(atol, rtol * sigma_1); both 0 means
            sigma_1 * max(n, m) * eps_double, as ``numpy.linalg.matrix_rank``.
        eps: > 0 also gives the spectral and Frobenius eps-ranks.
        predict: compute the rank theory predicts (a QR of q and k).
        seed, block, oversample, power_iters, max_rank: the randomized method's settings
            (0: kat's defaults).

    Raises ValueError (bad argument, NaN or Inf in the data, f not finite), MemoryError (M does
    not fit: use method="randomized"), OverflowError (sizes beyond what kat supports)."""
    qm = f64_matrix(q, "q")
    km = None if k is None else f64_matrix(k, "k")
    fa = _kernel_arg(f, qm.shape[1])
    r = _native.probe(fa, qm, km, form, float(scale), method, float(rtol), float(atol),
                      float(eps), bool(predict), size(seed, "seed"), size(block, "block"),
                      size(oversample, "oversample"), size(power_iters, "power_iters"),
                      size(max_rank, "max_rank"), 0)
    return _result(r)


def matrix_rank(m, *, rtol: float = 0.0, atol: float = 0.0, eps: float = 0.0) -> RankResult:
    """The same measures for a matrix you already have (dense SVD; no prediction)."""
    return _result(_native.probe_matrix(f64_matrix(m, "m"), float(rtol), float(atol),
                                        float(eps)))


def kernel_matrix(f: Any, q, k=None, *, form: str = "inner", scale: float = 1.0) -> np.ndarray:
    """M_ij = f(scale * a(q_i, k_j)) as a float64 ndarray [n, m] (phi(q_i).psi(k_j) for a
    feature map; form and scale unused then)."""
    qm = f64_matrix(q, "q")
    km = qm if k is None else f64_matrix(k, "k")
    out = np.empty((qm.shape[0], km.shape[0]))
    _native.kernel_matrix(_kernel_arg(f, qm.shape[1]), form, float(scale), qm, km, out)
    return out


def points(kind: str, n: int, d: int, *, seed: int = 0, sigma: float = 0.0, bound: float = 1.0,
           pm1: bool = False, sides: Optional[Sequence[float]] = None, levels: int = 3,
           enumerate: bool = False) -> np.ndarray:
    """n points of R^d as a float64 array [n, d], drawn with kat's seeded generator.

    kind: ``"gauss"`` (N(0, sigma^2), sigma 0 meaning 1/sqrt(d)), ``"uniform"`` ([-bound,
    bound]), ``"sphere"``, ``"hypercube"`` ({0,1}^d, or {-1,1}^d with pm1), ``"rect"`` (corners
    of the box with these sides), ``"grid"`` ({0..levels-1}^d). ``enumerate=True`` lists the
    first points of a finite set in lexicographic order instead of drawing them."""
    out = np.empty((size(n, "n"), size(d, "d")))
    s = None if sides is None else f64_vector(sides, "sides")
    _native.points(kind, out, size(seed, "seed"), float(sigma), float(bound), bool(pm1), s,
                   size(levels, "levels"), bool(enumerate))
    return out
