"""Feature maps k(q, k) = <phi(q), psi(k)>: kat's built-in ones by spec string or constructor,
and maps written in Python, all behind one kat_featmap vtable."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _native
from ._arrays import f64_matrix, f64_vector, real_array, size
from ._fn import Fn, fn_arg

# The seed of the random maps where none is given: the library's KAT_FEATMAP_DEFAULT_SEED, the
# default of `kat features --seed` too.
FEATMAP_DEFAULT_SEED = _native.FEATMAP_DEFAULT_SEED

_SIDES = {"query": 0, "key": 1}


class FeatureMap:
    """A feature map phi (query side), psi (key side): R^d -> R^D.

    Made by :func:`featmap` (a spec string or a Python object) or by the constructors
    :func:`taylor`, :func:`poly`, :func:`rff`, :func:`favor`, :func:`elu1`, :func:`group`.
    It is immutable, and can be passed wherever kat takes a kernel (``kat.rank``,
    ``kat.kernel_matrix``)."""

    __slots__ = ("_native", "_source")

    def __init__(self, native: Any, source: Any = None):
        self._native = native
        self._source = source   # the Python object behind a Python map (kept alive)

    @property
    def dim(self) -> int:
        """The feature dimension D."""
        return self._native.dim

    @property
    def in_dim(self) -> int:
        """The input dimension d."""
        return self._native.in_dim

    @property
    def name(self) -> str:
        """The map's name, as kat reports it."""
        return self._native.name

    @property
    def positive(self) -> bool:
        """Whether phi(q).psi(k) > 0 for every input, by construction."""
        return self._native.positive

    @property
    def exact(self) -> bool:
        """Whether phi(q).psi(k) equals the kernel exactly (not a random estimate)."""
        return self._native.exact

    def __repr__(self) -> str:
        return f"<kat.FeatureMap {self.name}: R^{self.in_dim} -> R^{self.dim}>"

    def apply(self, x, side: str = "query", out: Optional[np.ndarray] = None) -> np.ndarray:
        """Features of the rows of ``x`` ([n, d], or one vector [d]): phi for ``side="query"``,
        psi for ``side="key"``. float32 input gives float32 features (kat's fp32 path, as in
        attention); anything else is computed in float64. Rows with a contiguous last
        dimension are read in place. ``out`` (optional, [n, D] of the result's dtype with
        contiguous rows) receives the features instead of a new array."""
        if side not in _SIDES:
            raise ValueError(f"side: {side!r} is not 'query' or 'key'")
        a = real_array(x, "x")
        one = a.ndim == 1
        if one:
            a = a[None, :]
        if a.ndim != 2:
            raise ValueError(f"x: expected [n, d] or [d], got shape {np.shape(x)}")
        if a.shape[1] != self.in_dim:
            raise ValueError(f"x: rows have {a.shape[1]} values, the map takes d = {self.in_dim}")
        if a.dtype == np.float32:
            if a.shape[1] > 1 and a.strides[1] != 4:
                raise ValueError("x: the last dimension must be contiguous (stride 4 bytes, "
                                 f"got {a.strides[1]}); pass numpy.ascontiguousarray(x)")
        else:
            a = f64_matrix(a, "x")
        if out is None:
            res = np.empty((a.shape[0], self.dim), dtype=a.dtype)
        elif not isinstance(out, np.ndarray) or out.shape != (a.shape[0], self.dim) or \
                out.dtype != a.dtype:
            raise ValueError(f"out: expected an ndarray of shape ({a.shape[0]}, {self.dim}) and "
                             f"dtype {a.dtype}, got {getattr(out, 'shape', type(out).__name__)}"
                             f" {getattr(out, 'dtype', '')}".rstrip())
        else:
            res = out
        self._native.apply(a, res, _SIDES[side])
        return res[0] if one and out is None else res

    def apply_key(self, x) -> np.ndarray:
        """psi(x): the key-side features (``apply(x, side="key")``)."""
        return self.apply(x, side="key")

    def score(self, q, k):
        """The kernel k(q, k): the exact kernel where the map has one (Taylor maps give their
        polynomial, random maps the kernel they estimate), else phi(q).psi(k). Vectors [d] give
        a float; matrices [n, d] and [m, d] give the [n, m] matrix of all pairs."""
        qa, ka = real_array(q, "q"), real_array(k, "k")
        vec = qa.ndim == 1 and ka.ndim == 1
        qm = f64_matrix(qa[None, :] if qa.ndim == 1 else qa, "q")
        km = f64_matrix(ka[None, :] if ka.ndim == 1 else ka, "k")
        for a, nm in ((qm, "q"), (km, "k")):
            if a.shape[1] != self.in_dim:
                raise ValueError(f"{nm}: rows have {a.shape[1]} values, the map takes "
                                 f"d = {self.in_dim}")
        out = np.empty((qm.shape[0], km.shape[0]))
        self._native.score(qm, km, out)
        return float(out[0, 0]) if vec else out


# ---- constructors ------------------------------------------------------------------------------

def taylor(d: int, order: int, tau: float = 0.0) -> FeatureMap:
    """The order-P Taylor map of exp(q.k / tau): exact for T_P(x) = sum_{t<=P} (x/tau)^t / t!;
    tau = 0 selects sqrt(d). Dimension C(d + P, P)."""
    return FeatureMap(_native.featmap_taylor(size(d, "d"), size(order, "order"), float(tau)))


def poly(f: Union[str, Sequence[float]], d: int) -> FeatureMap:
    """The exact map of a polynomial f(q.k): coefficients ``[a0, a1, ...]`` or an expression
    kat recognises as a polynomial (``"(1+x)^4"``)."""
    coef = f if isinstance(f, str) else f64_vector(f, "coef")
    return FeatureMap(_native.featmap_poly(coef, size(d, "d")))


def rff(d: int, M: int, sigma: float = 1.0, kernel: str = "gaussian", pair: bool = False,
        seed: int = FEATMAP_DEFAULT_SEED) -> FeatureMap:
    """Random Fourier features (Rahimi and Recht 2007) for exp(-|q-k|^2/(2 sigma^2))
    (``kernel="gaussian"``) or exp(-|q-k|_1/sigma) (``"laplace"``): M frequencies, as M phase
    features or (``pair=True``) 2M cosine/sine features."""
    return FeatureMap(_native.featmap_rff(kernel, bool(pair), size(d, "d"), size(M, "M"),
                                          float(sigma), size(seed, "seed")))


def favor(d: int, M: int, scale: Optional[float] = None, orthogonal: bool = False,
          stable: bool = False, seed: int = FEATMAP_DEFAULT_SEED) -> FeatureMap:
    """Positive random features (FAVOR+, arXiv 2009.14794) for exp(scale q.k), scale
    defaulting to 1/sqrt(d)."""
    d = size(d, "d")
    s = 1.0 / math.sqrt(d) if scale is None and d > 0 else float(scale or 0.0)
    return FeatureMap(_native.featmap_favor(d, size(M, "M"), s, bool(orthogonal), bool(stable),
                                            size(seed, "seed")))


def elu1(d: int) -> FeatureMap:
    """elu(x) + 1 (Katharopoulos et al. 2020): D = d positive features."""
    return FeatureMap(_native.featmap_elu1(size(d, "d")))


def group(f: Fn = "exp(-x)", sides: Union[int, Sequence[float]] = 1, rank: int = 0,
          require_psd: bool = False) -> FeatureMap:
    """The character map of f(<a, b xor c>) on the corners of the hyperrectangle with the given
    sides (an integer d means the unit hypercube {0,1}^d): the best rank-``rank`` map
    (0: exact). Inputs must be corner points."""
    a = np.ones(size(sides, "sides")) if isinstance(sides, (int, np.integer)) \
        else f64_vector(sides, "sides")
    return FeatureMap(_native.featmap_group(fn_arg(f), a, size(rank, "rank"),
                                            bool(require_psd)))


def python_map(obj: Any, d: Optional[int] = None) -> FeatureMap:
    """A map written in Python, run by kat through the same C vtable as its own maps.

    ``obj`` has ``dim`` (D) and ``apply(x) -> [n, D]`` for x of shape [n, d] (float64), and
    optionally ``apply_key(x)`` for a different key side psi, ``in_dim`` (else pass ``d``),
    and the booleans ``positive`` and ``exact``. kat may call it from several threads in turn
    (each holds the GIL); an exception it raises is raised again by the kat call."""
    if isinstance(obj, FeatureMap):
        return obj
    if not hasattr(obj, "dim") or not callable(getattr(obj, "apply", None)):
        raise TypeError("feature map: expected an object with an integer 'dim' and a method "
                        f"'apply', got {type(obj).__name__}")
    in_dim = getattr(obj, "in_dim", d)
    if in_dim is None:
        raise ValueError("feature map: its input dimension is unknown; give it an 'in_dim' "
                         "attribute or pass d")
    if d is not None and in_dim != d:
        raise ValueError(f"feature map: in_dim = {in_dim} but the data have d = {d}")
    dim = size(obj.dim, "dim", 1)
    apply_q = obj.apply
    apply_k = getattr(obj, "apply_key", None) or obj.apply
    name = type(obj).__name__

    def adapter(side, xbuf, n, ldx, fbuf, ldf):
        x = np.lib.stride_tricks.as_strided(np.frombuffer(xbuf, dtype=np.float64),
                                            shape=(n, in_dim), strides=(8 * ldx, 8)).copy()
        r = np.asarray((apply_k if side else apply_q)(x), dtype=np.float64)
        if r.shape != (n, dim):
            raise ValueError(f"feature map {name}: apply returned shape {r.shape} for {n} rows, "
                             f"expected ({n}, {dim})")
        f = np.lib.stride_tricks.as_strided(np.frombuffer(fbuf, dtype=np.float64),
                                            shape=(n, dim), strides=(8 * ldf, 8))
        f[...] = r

    native = _native.featmap_python(adapter, size(in_dim, "in_dim", 1), dim,
                                    bool(getattr(obj, "positive", False)),
                                    bool(getattr(obj, "exact", False)))
    return FeatureMap(native, obj)


def featmap(spec: Any, d: Optional[int] = None, *, scale: Optional[float] = None,
            seed: int = FEATMAP_DEFAULT_SEED) -> FeatureMap:
    """A feature map from a spec string, or from a Python object (see :func:`python_map`).

    A spec is read by kat's own parser, so it means the same map as in ``kat features --map``,
    ``kat attn --mode linear --map`` and ``kat rank --map``: ``taylor:P`` or ``taylorP``
    (exp(s q.k)), ``poly:EXPR``, ``rff:M[:pair]`` and ``rff-laplace:M[:pair]`` (bandwidth
    sigma), ``favor:M[:ortho][:stable]`` (exp(s q.k)), ``elu1``, ``group[:R]`` (exp(-x) on the
    hypercube {0,1}^d, rank R). ``scale`` is s or sigma (None: kat's default, s = 1/sqrt(d) and
    sigma = d^(1/4)); ``seed`` draws the random maps' frequencies (as ``--seed``). A malformed
    spec raises ValueError with kat's message."""
    if not isinstance(spec, str):
        return python_map(spec, d)
    if d is None:
        raise ValueError(f"featmap: {spec!r} needs the input dimension d")
    if scale is not None and not float(scale) > 0:
        raise ValueError(f"scale = {scale} must be > 0 (None: the map's default)")
    return FeatureMap(_native.featmap_spec(spec, size(d, "d", 1),
                                           0.0 if scale is None else float(scale),
                                           size(seed, "seed")))
