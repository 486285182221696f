"""kat attention from Python: binding overhead and peak memory.

    ./run.sh python python/benchmarks/bench_attention.py [--reps R] [--n N]

1. Overhead: kat.attention (NumPy: checks, views, plan created per call, GIL released)
   against kat_attn_plan_create + kat_attn_forward + kat_attn_plan_destroy called through
   ctypes on the same arrays (libkat.so, a second copy of the library in the process), and
   against the extension's own entry point called with ready arguments (the same copy of
   kat as kat.attention, without the Python layer's checks and allocations), alternately;
   medians and their ratios, forward, at N (default 4096), B = 1, H = 4, D = 64, causal and
   not.
2. Peak memory of one forward in a fresh process: the rise of the resident set (VmHWM after
   the call, the high-water mark reset just before it, against VmRSS before allocating q, k,
   v) over the bytes of q, k, v, o and lse.
(kat.torch against torch's own attention: bench_torch_sdpa.py.)"""
import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import kat

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    kat.__file__)))), "libkat.so")


class Desc(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("B", "H", "H_kv", "N", "M", "D")] + \
               [("causal", ctypes.c_int), ("scale", ctypes.c_double), ("Dv", ctypes.c_size_t)]


class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p)] + \
               [(n, ctypes.c_size_t) for n in ("B", "H", "N", "D", "sb", "sh", "sn")]


def tview(a):
    s = [x // 4 for x in a.strides]
    return Tensor(a.ctypes.data, *a.shape, *s[:3])


class CForward:
    """The plan API through ctypes: create, forward, destroy (what the binding does)."""

    def __init__(self):
        self.lib = ctypes.CDLL(LIB)
        self.lib.kat_attn_plan_create.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                                  ctypes.POINTER(ctypes.c_void_p)]
        self.lib.kat_attn_forward.argtypes = [ctypes.c_void_p] * 8
        self.lib.kat_attn_plan_destroy.argtypes = [ctypes.c_void_p]

    def __call__(self, q, k, v, o, lse, causal):
        B, H, N, D = q.shape
        desc = Desc(B, H, k.shape[1], N, k.shape[2], D, int(causal), 0.0, v.shape[3])
        plan = ctypes.c_void_p()
        assert self.lib.kat_attn_plan_create(ctypes.byref(desc), None, ctypes.byref(plan)) == 0
        l4 = lse.reshape(B, H, N, 1)
        ts = [tview(x) for x in (q, k, v, o, l4)]
        st = self.lib.kat_attn_forward(plan, None, *[ctypes.byref(t) for t in ts], None)
        self.lib.kat_attn_plan_destroy(plan)
        assert st == 0


def median_alternating(fns, reps):
    for f in fns:   # one untimed warm-up call each (first-touch, thread start-up)
        f()
    times = [[] for _ in fns]
    for _ in range(reps):
        for f, t in zip(fns, times):
            t0 = time.perf_counter()
            f()
            t.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def overhead(n, reps):
    rng = np.random.default_rng(0)
    B, H, D = 1, 4, 64
    q, k, v = (rng.standard_normal((B, H, n, D)).astype(np.float32) for _ in range(3))
    o, lse = np.empty_like(q), np.empty((B, H, n), np.float32)
    c = CForward()
    print(f"1. binding overhead, B = {B}, H = {H}, N = M = {n}, D = {D}, {kat.num_threads()} "
          f"threads, median of {reps} alternating runs")
    from kat import _native
    nodata = (None,) * 5 + (1, 1, 0, 0)
    for causal in (False, True):
        raw = lambda: _native.attention(False, "dense", None, (int(causal), 0.0, False, 0),
                                        (q, k, v, o, lse), nodata)
        tc, tn, tp = median_alternating([lambda: c(q, k, v, o, lse, causal), raw,
                                         lambda: kat.attention(q, k, v, causal=causal,
                                                               return_lse=True)], reps)
        print(f"   causal={causal!s:5}  C (ctypes) {tc * 1e3:9.2f} ms  extension alone "
              f"{tn * 1e3:9.2f} ms  kat.attention {tp * 1e3:9.2f} ms  Python/C {tp / tc:.4f}  "
              f"Python/extension {tp / tn:.4f}")


CHILD = r"""
import sys
import numpy as np, kat
sys.path.insert(0, {here!r})
import bench_attention as b
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
c = b.CForward()
base = status("VmRSS:")
B, H, N, D = 1, 4, {n}, 64
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((B, H, N, D), dtype=np.float32) for _ in range(3))
open("/proc/self/clear_refs", "w").write("5")   # reset the high-water mark
if {python}:
    o, lse = kat.attention(q, k, v, causal={causal}, return_lse=True)
else:
    o, lse = np.empty_like(q), np.empty((B, H, N), np.float32)
    c(q, k, v, o, lse, {causal})
peak = status("VmHWM:")
tensors = q.nbytes + k.nbytes + v.nbytes + o.nbytes + lse.nbytes
print(peak - base, tensors)
"""


def memory(n):
    here = os.path.dirname(os.path.abspath(__file__))
    print(f"2. peak memory of one forward (fresh process; B = 1, H = 4, N = {n}, D = 64): the "
          "rise of the resident set over q, k, v, o, lse")
    for causal in (False, True):
        line = f"   causal={causal!s:5}"
        for python in (False, True):
            r = subprocess.run([sys.executable, "-c", CHILD.format(here=here, n=n,
                                                                   causal=causal,
                                                                   python=python)],
                               capture_output=True, text=True, check=True)
            rise, tensors = (int(x) for x in r.stdout.split())
            line += (f"  {'Python' if python else 'C'}: rise {rise / 2**20:7.1f} MiB "
                     f"(tensors {tensors / 2**20:6.1f} MiB, ratio {rise / tensors:.3f})")
        print(line)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--n", type=int, default=4096)
    a = ap.parse_args()
    overhead(a.n, a.reps)
    memory(a.n)
