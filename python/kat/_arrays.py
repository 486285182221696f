"""Argument checks shared by the kat modules: arrays in, clear errors out."""
from __future__ import annotations

import numpy as np

_REAL_KINDS = "fiu"


def real_array(x, name: str) -> np.ndarray:
    """``x`` as an ndarray of real numbers (floating or integer), or ``ValueError`` naming it."""
    a = np.asarray(x)
    if a.dtype.kind not in _REAL_KINDS:
        raise ValueError(f"{name}: dtype {a.dtype} is not a real number type "
                         "(float or integer expected)")
    return a


def f64_matrix(x, name: str) -> np.ndarray:
    """``x`` as a 2-D float64 array whose rows are contiguous.

    A float64 array with contiguous rows (C order, or a view of every other row, ...) is
    passed as it is, without a copy. Other real dtypes are converted to float64 (kat's rank
    and theory engine computes in double precision). A float64 array whose last dimension is
    not contiguous is refused rather than silently copied."""
    a = real_array(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array [rows, d], got {a.ndim} dimension"
                         f"{'' if a.ndim == 1 else 's'} (shape {a.shape})")
    if a.dtype != np.float64:
        return np.ascontiguousarray(a, dtype=np.float64)
    if a.shape[1] > 1 and a.strides[1] != a.itemsize:
        raise ValueError(f"{name}: the last dimension must be contiguous (stride 8 bytes, got "
                         f"{a.strides[1]}); pass numpy.ascontiguousarray({name})")
    return a


def f64_vector(x, name: str) -> np.ndarray:
    """``x`` as a contiguous 1-D float64 array (a copy only when it is not one already)."""
    a = real_array(x, name)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float64)


def size(x, name: str, minimum: int = 0) -> int:
    """An integer argument >= minimum (bool refused: it is almost always a mistake here)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(x).__name__}")
    if x < minimum:
        raise ValueError(f"{name} = {x} must be >= {minimum}")
    return int(x)
