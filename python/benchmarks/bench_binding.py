"""What the Python binding costs over calling libkat directly, in time and in memory.

    ./run.sh python python/benchmarks/bench_binding.py [--reps R]

Time: kat.rank (the package: argument checks, buffer views, the GIL released, the result
object) against kat_rank_probe called through ctypes on the same float64 arrays (one foreign
call, no checks), alternately, REPS times each; medians and their ratio. Also the feature map
apply on float32 rows (kat.FeatureMap.apply against kat_featmap_apply_f32).
Memory: the rise of the resident set (VmHWM, reset just before the call, over VmRSS) of a
fresh process that runs one probe through the package,
against a fresh process that makes the same call through ctypes, both after importing numpy
and the extension (so the libraries are mapped in both)."""
import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import kat

BUILD = os.path.dirname(os.path.dirname(os.path.abspath(kat.__file__)))   # build/python
LIB = os.path.join(os.path.dirname(BUILD), "libkat.so")


class DMat(ctypes.Structure):
    _fields_ = [("rows", ctypes.c_size_t), ("cols", ctypes.c_size_t), ("ld", ctypes.c_size_t),
                ("data", ctypes.POINTER(ctypes.c_double))]


def rank_opts_type():
    """kat_rank_opts as laid out in include/kat/rank.h."""
    class Opts(ctypes.Structure):
        _fields_ = [("form", ctypes.c_int), ("scale", ctypes.c_double),
                    ("method", ctypes.c_int), ("rtol", ctypes.c_double),
                    ("atol", ctypes.c_double), ("eps", ctypes.c_double),
                    ("predict", ctypes.c_int), ("seed", ctypes.c_uint64),
                    ("block", ctypes.c_size_t), ("oversample", ctypes.c_size_t),
                    ("power_iters", ctypes.c_int), ("max_rank", ctypes.c_size_t),
                    ("tile_rows", ctypes.c_size_t)]
    return Opts


class CProbe:
    """kat_rank_probe(f, Q, K, opts, res) through ctypes on libkat.so."""

    def __init__(self, expr):
        self.lib = ctypes.CDLL(LIB)
        self.lib.kat_fn_parse.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                          ctypes.c_void_p]
        self.f = ctypes.c_void_p()
        assert self.lib.kat_fn_parse(expr.encode(), ctypes.byref(self.f), None) == 0
        self.opts = rank_opts_type()()
        self.lib.kat_rank_opts_init(ctypes.byref(self.opts))
        self.res = (ctypes.c_char * 512)()   # kat_rank_result is far smaller
        self.lib.kat_rank_probe.argtypes = [ctypes.c_void_p] + [ctypes.c_void_p] * 4
        self.lib.kat_rank_result_free.argtypes = [ctypes.c_void_p]

    def __call__(self, q, k):
        Q = DMat(q.shape[0], q.shape[1], q.shape[1], q.ctypes.data_as(ctypes.POINTER(ctypes.c_double)))
        K = DMat(k.shape[0], k.shape[1], k.shape[1], k.ctypes.data_as(ctypes.POINTER(ctypes.c_double)))
        st = self.lib.kat_rank_probe(self.f, ctypes.byref(Q), ctypes.byref(K),
                                     ctypes.byref(self.opts), self.res)
        assert st == 0
        self.lib.kat_rank_result_free(self.res)


def alternate(a, b, reps):
    a(), b()   # one untimed warm-up call each (first-touch, thread start-up)
    ta, tb = [], []
    for _ in range(reps):
        for fn, ts in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def timing(reps):
    rng = np.random.default_rng(0)
    print(f"kat {kat.__version__}, {kat.build_info()['arch']}, {kat.num_threads()} threads, "
          f"numpy {np.__version__}, median of {reps} alternating runs")
    print(f"{'call':34} {'C (ctypes)':>12} {'Python':>12} {'ratio':>7} {'overhead':>10}")
    c = CProbe("exp(x/4)")
    for n, d in ((64, 8), (512, 16), (1024, 16)):
        q, k = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        py, cc = alternate(lambda: kat.rank("exp(x/4)", q, k), lambda: c(q, k), reps)
        print(f"{'rank exp(x/4), n = m = %d, d = %d' % (n, d):34} {cc * 1e3:10.3f}ms "
              f"{py * 1e3:10.3f}ms {py / cc:7.3f} {(py - cc) * 1e6:8.1f}us")
    lib = ctypes.CDLL(LIB)
    lib.kat_featmap_apply_f32.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t,
                                          ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                          ctypes.c_size_t]
    lib.kat_featmap_taylor_create.argtypes = [ctypes.c_size_t, ctypes.c_int, ctypes.c_double,
                                              ctypes.POINTER(ctypes.c_void_p)]
    for n, d in ((64, 16), (4096, 16)):
        fm = kat.featmap("taylor:2", d)
        cfm = ctypes.c_void_p()
        assert lib.kat_featmap_taylor_create(d, 2, 0.0, ctypes.byref(cfm)) == 0
        x = rng.standard_normal((n, d)).astype(np.float32)
        out = np.empty((n, fm.dim), dtype=np.float32)
        capply = lambda: lib.kat_featmap_apply_f32(cfm, 0, n, x.ctypes.data, d,
                                                   out.ctypes.data, fm.dim)
        for label, call in (("", lambda: fm.apply(x)), (" out=", lambda: fm.apply(x, out=out))):
            py, cc = alternate(call, capply, reps)
            print(f"{'taylor:2 apply%s f32, n = %d, d = %d' % (label, n, d):34} "
                  f"{cc * 1e3:10.3f}ms {py * 1e3:10.3f}ms {py / cc:7.3f} "
                  f"{(py - cc) * 1e6:8.1f}us")


CHILD = """
import sys, numpy as np, kat
sys.path.insert(0, {here!r})
import bench_binding as b
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
c = b.CProbe("exp(x/4)")
n = {n}
rng = np.random.default_rng(0)
q, k = rng.standard_normal((n, 16)), rng.standard_normal((n, 16))
base = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")   # reset the high-water mark
if {python}:
    kat.rank("exp(x/4)", q, k)
else:
    c(q, k)
print(base, status("VmHWM:"))
"""


def memory():
    here = os.path.dirname(os.path.abspath(__file__))
    print("peak resident set of one dense probe above the resident set before it (fresh "
          "process each; KiB)")
    for n in (2048, 3072):
        peaks = {}
        for python in (False, True):
            code = CHILD.format(here=here, n=n, python=python)
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True, env=dict(os.environ))
            base, peak = (int(v) for v in r.stdout.split())
            peaks[python] = peak - base
        mat = n * n * 8 // 1024
        print(f"n = m = {n}: M alone {mat} KiB; C call +{peaks[False]}, Python call "
              f"+{peaks[True]}; Python/C {peaks[True] / peaks[False]:.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=21)
    a = ap.parse_args()
    timing(a.reps)
    memory()
