"""Spectra of kernels invariant under a group (hypercube, hyperrectangle, cyclic group), of
kernels on point sets, and the explicit embeddings that witness metric transforms."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple, Union

import numpy as np

from . import _native
from ._arrays import f64_matrix, f64_vector, size
from ._fn import Fn, fn_arg

Sides = Union[int, Sequence[float]]


def _sides(sides: Sides) -> np.ndarray:
    if isinstance(sides, (int, np.integer)) and not isinstance(sides, bool):
        return np.ones(size(sides, "d"))
    return f64_vector(sides, "sides")


def hypercube_spectrum(f: Fn, d: int) -> Tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of [f(|b xor c|)] on the hypercube {0,1}^d (f of the Hamming distance).

    Returns (eigenvalues, multiplicities), both of length d + 1: entry j is the eigenvalue of
    every Walsh character of weight j, and C(d, j) is how many there are."""
    d = size(d, "d")
    lam, mult = np.empty(d + 1), np.empty(d + 1)
    _native.hypercube_spectrum(fn_arg(f), d, lam, mult)
    return lam, mult


def hyperrect_spectrum(f: Fn, sides: Sides) -> np.ndarray:
    """The 2^d eigenvalues of D_f = [f(<a, b xor c>)] on the corners of the box with sides a
    (an integer d: the unit cube), indexed by the subset S as a bitmask (not sorted)."""
    a = _sides(sides)
    if a.size > 30:
        raise OverflowError(f"sides: d = {a.size} gives 2^{a.size} eigenvalues; kat stops at "
                            "d = 30")
    out = np.empty(1 << a.size)
    _native.hyperrect(fn_arg(f), a, out, False)
    return out


def hyperrect_matrix(f: Fn, sides: Sides) -> np.ndarray:
    """The dense 2^d x 2^d matrix D_f (entry (b, c) = f(<a, b xor c>)), for cross-checks."""
    a = _sides(sides)
    if a.size > 15:
        raise OverflowError(f"sides: d = {a.size} makes a 2^{a.size} x 2^{a.size} matrix; "
                            "use hyperrect_spectrum")
    out = np.empty((1 << a.size, 1 << a.size))
    _native.hyperrect(fn_arg(f), a, out, True)
    return out


def cyclic_spectrum(f: Fn, N: int) -> np.ndarray:
    """Eigenvalues of [f(delta(i - j))] on Z_N, delta(k) = min(k, N - k): lambda[m] for the
    character m = 0..N-1 (real; lambda[m] = lambda[N - m])."""
    out = np.empty(size(N, "N", 1))
    _native.cyclic_spectrum(fn_arg(f), out)
    return out


def circulant_spectrum(c) -> np.ndarray:
    """Eigenvalues of the circulant with first row c (C_ij = c[(j - i) mod N]), complex."""
    row = f64_vector(c, "c")
    re, im = np.empty(row.size), np.empty(row.size)
    _native.circulant_spectrum(row, re, im)
    return re + 1j * im


def point_kernel(f: Fn, x, metric: str = "l2sq") -> np.ndarray:
    """K_ij = f(dist(x_i, x_j)) for the rows of x [n, d]; metric ``"l1"``, ``"l2"``, ``"l2sq"``
    or ``"inner"`` (<x_i, x_j>). f = None gives the distances themselves."""
    xm = f64_matrix(x, "x")
    out = np.empty((xm.shape[0], xm.shape[0]))
    _native.point_kernel(fn_arg(f), xm, metric, out)
    return out


def point_spectrum(f: Fn, x, metric: str = "l2sq") -> np.ndarray:
    """The eigenvalues of :func:`point_kernel` (symmetric: LAPACK dsyevd), descending."""
    return symmetric_eigenvalues(point_kernel(f, x, metric))


def symmetric_eigenvalues(a) -> np.ndarray:
    """All eigenvalues of a symmetric matrix, descending (kat_metric_sym_eigenvalues)."""
    am = f64_matrix(a, "a")
    out = np.empty(am.shape[0])
    _native.sym_eigenvalues(am, out)
    return out


def embed(kind: str, f: Fn, sides: Sides) -> np.ndarray:
    """The explicit embedding of the corners of the box with these sides under the metric
    transform f: ``"l1"`` (|q_b - q_c|_1 = f(<a, b xor c>)), ``"l2sq"`` (squared Euclidean) or
    ``"gram"`` (F_b . F_c = f(...)). Row b is corner b. ValueError when f does not qualify
    (l1, l2sq: f of negative type with f(0) = 0; gram: positive definite)."""
    a = _sides(sides)
    rows, cols = _native.embed_shape(kind, a.size)
    out = np.empty((rows, cols))
    _native.embed(kind, fn_arg(f), a, out)
    return out


@dataclass(frozen=True)
class MonotoneReport:
    """The verdict of a finite-difference test on kat's default grid [0, 8], and the worst
    violation when it fails."""

    holds: bool
    checked: int
    violations: int
    condition: str
    order: int
    x: float
    value: float
    tol: float

    def __bool__(self) -> bool:
        return self.holds


def completely_monotone(f: Fn) -> MonotoneReport:
    """Whether f >= 0 and (-1)^k Delta^k f >= 0 on the grid (so f(distance) is positive
    definite on every l1 or l2^2 point set, by Schoenberg's theorem)."""
    return MonotoneReport(**_native.monotone(fn_arg(f), False))


def bernstein(f: Fn) -> MonotoneReport:
    """Whether f(0) = 0, f >= 0 and f has completely alternating differences on the grid (so
    f(distance) is again a distance of negative type)."""
    return MonotoneReport(**_native.monotone(fn_arg(f), True))
