"""Bad input raises a clear exception naming the argument; inputs are never modified; the
GIL is released while kat computes."""
import os
import re
import sys
import threading
import time

import numpy as np
import pytest

import kat


@pytest.fixture
def qk(rng):
    return rng.standard_normal((20, 4)), rng.standard_normal((15, 4))


def test_wrong_dtype(qk):
    q, k = qk
    with pytest.raises(ValueError, match="q: dtype complex128 is not a real number type"):
        kat.rank("x", q.astype(complex), k)
    with pytest.raises(ValueError, match="k: dtype <U1 is not a real number type"):
        kat.rank("x", q, np.array([["a"] * 4]))
    with pytest.raises(ValueError, match="x: dtype bool is not a real number type"):
        kat.featmap("taylor:2", 4).apply(q > 0)


def test_wrong_number_of_dimensions(qk):
    q, k = qk
    with pytest.raises(ValueError, match=r"q: expected a 2-D array \[rows, d\], got 1 dimension "
                                         r"\(shape \(4,\)\)"):
        kat.rank("x", q[0], k)
    with pytest.raises(ValueError, match=r"k: expected a 2-D array \[rows, d\], got 3 dimensions"):
        kat.rank("x", q, k[None])
    with pytest.raises(ValueError, match=r"x: expected \[n, d\] or \[d\], got shape"):
        kat.featmap("taylor:2", 4).apply(q[None])


def test_shapes_that_disagree(qk):
    q, k = qk
    with pytest.raises(ValueError, match="Q has d = 4 columns but K has d = 3"):
        kat.rank("x", q, k[:, :3])
    with pytest.raises(ValueError, match="x: rows have 3 values, the map takes d = 4"):
        kat.featmap("taylor:2", 4).apply(k[:, :3])
    with pytest.raises(ValueError, match="k: rows have 5 values, the map takes d = 4"):
        kat.featmap("taylor:2", 4).score(q, np.ones((2, 5)))


def test_nan_and_inf(qk, frozen):
    q, k = qk
    bad = k.copy()
    bad[3, 2] = np.nan
    guard = frozen(q, bad)
    with pytest.raises(ValueError, match=r"K: entry \(3, 2\) is nan"):
        kat.rank("x", q, bad)
    guard.check()
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="inf"):
        kat.kernel_matrix("x", bad)
    with pytest.raises(ValueError, match=r"f = log\(x\) is -?nan at M\(0, 0\)"):
        kat.rank("log(x)", q, k, form="l2sq", scale=-1.0)   # log of negative values
    with pytest.raises(ValueError, match=r"featmap_apply: X: entry \(3, 2\) is inf"):
        kat.featmap("taylor:2", 4).apply(bad)


def test_non_contiguous_last_dimension(qk, frozen):
    q, k = qk
    wide = np.repeat(q, 2, axis=1)
    strided = wide[:, ::2]   # float64, stride 16 bytes along the last axis
    guard = frozen(wide)
    with pytest.raises(ValueError, match=r"q: the last dimension must be contiguous \(stride 8 "
                                         r"bytes, got 16\); pass numpy.ascontiguousarray\(q\)"):
        kat.rank("x", strided)
    f32 = wide.astype(np.float32)[:, ::2]
    with pytest.raises(ValueError, match="x: the last dimension must be contiguous"):
        kat.featmap("taylor:2", 4).apply(f32)
    guard.check()
    neg = q[::-1]   # negative row stride: refused by the extension itself
    with pytest.raises(ValueError, match="row stride -32 bytes"):
        kat.rank("x", neg)


def test_bad_arguments(qk):
    q, k = qk
    with pytest.raises(ValueError, match="method: 'svd' is not 'dense' or 'randomized'"):
        kat.rank("x", q, method="svd")
    with pytest.raises(ValueError, match="cosine"):
        kat.rank("x", q, form="cosine")
    with pytest.raises(ValueError, match="column"):
        kat.rank("exp(x", q)                    # expression syntax error
    with pytest.raises(TypeError, match="f: expected None, an expression string or a callable"):
        kat.rank(3.0, q)
    with pytest.raises(ValueError, match="rtol"):
        kat.rank("x", q, rtol=-1.0)
    with pytest.raises(ValueError, match="seed = -1 must be >= 0"):
        kat.rank("x", q, seed=-1)
    with pytest.raises(ValueError, match="nope"):
        kat.points("nope", 3, 2)
    with pytest.raises(ValueError, match="side: 'value' is not 'query' or 'key'"):
        kat.featmap("taylor:2", 4).apply(q, side="value")
    with pytest.raises(TypeError, match="feature map: expected an object with an integer 'dim'"):
        kat.featmap(object(), 4)
    most = 4 * os.sysconf("SC_NPROCESSORS_ONLN")
    for n in (-1, most + 1, 10000):
        with pytest.raises(ValueError, match=re.escape(
                f"set_num_threads: n = {n} is outside 0..{most} (at most 4 threads per CPU; "
                "0 restores the default)")):
            kat.set_num_threads(n)


def test_python_function_returning_the_wrong_shape(qk):
    q, _ = qk
    with pytest.raises(ValueError, match="f: the function returned shape"):
        kat.rank(lambda x: x[:1], q)


def test_resource_errors(qk):
    with pytest.raises(MemoryError, match="use the randomized method"):
        kat.rank("x", np.ones((300000, 1)))
    with pytest.raises(OverflowError, match="exceeds the limit"):
        kat.taylor(1000000, 10)


def test_num_threads():
    before = kat.num_threads()
    try:
        kat.set_num_threads(1)
        assert kat.num_threads() == 1
        kat.set_num_threads(3)
        assert kat.num_threads() == 3
    finally:
        kat.set_num_threads(0)
    assert kat.num_threads() == before


def test_gil_released_during_compute(rng):
    """While one thread runs a probe, another runs Python. With the interpreter's switch
    interval raised to 10 s, a thread holding the GIL keeps it for the whole window between
    its two time stamps (a probe of ~0.1 s), so the main thread could stamp nothing inside
    it; it stamps only because kat releases the GIL around the computation. (Holding or not,
    the machine's load cannot make the main thread run inside a held window.)"""
    q = rng.standard_normal((600, 8))
    window, stamps = [], []

    def work():
        window.append(time.perf_counter())
        kat.rank("exp(x/3)", q)
        window.append(time.perf_counter())

    old = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        while worker.is_alive():
            stamps.append(time.perf_counter())
            time.sleep(0)   # lets the worker take the GIL back once kat returns
        worker.join()
    finally:
        sys.setswitchinterval(old)
    t = np.array(stamps)
    inside = int(((t > window[0]) & (t < window[1])).sum())
    assert inside >= 10, (inside, window[1] - window[0], len(stamps))
