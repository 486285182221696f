"""Entrywise functions f as kat takes them: an expression string or a vectorised callable."""
from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np

Fn = Union[None, str, Callable[[np.ndarray], np.ndarray]]


def fn_arg(f: Fn, name: str = "f"):
    """What kat._native takes for f: None (the identity), a string (kat's expression language,
    e.g. ``"exp(x/8)"``, ``"(1+x)^2"``, or a built-in name such as ``"relu"``), or an adapter
    around a Python callable.

    The callable receives a 1-D float64 ndarray and returns values of the same shape (NumPy
    ufuncs and ``lambda x: np.exp(-x)`` qualify). kat calls it on blocks of values, possibly
    from several threads in turn (each holding the GIL)."""
    if f is None or isinstance(f, str):
        return f
    if not callable(f):
        raise TypeError(f"{name}: expected None, an expression string or a callable, "
                        f"got {type(f).__name__}")

    def adapter(xbuf, ybuf):
        x = np.frombuffer(xbuf, dtype=np.float64).copy()   # the user never holds kat's memory
        y = np.frombuffer(ybuf, dtype=np.float64)
        r = np.asarray(f(x), dtype=np.float64)
        if r.shape != x.shape:
            raise ValueError(f"{name}: the function returned shape {r.shape} for an input of "
                             f"shape {x.shape}; it must work entrywise on an ndarray")
        y[...] = r

    adapter.__name__ = getattr(f, "__name__", "python function")
    return adapter
