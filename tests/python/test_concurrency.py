"""kat's determinism under concurrency from Python: each entry point that reaches the BLAS
(rank dense and randomized, dense flash, LSH buckets with sparse flash, linear attention) run
in a Python thread (kat releases the GIL) beside each other one, beside itself and beside
NumPy's own matrix product (the same OpenBLAS, outside kat's hold), with OpenBLAS at its
default thread count, gives the bits of its run alone.

The check runs in a child interpreter started without OPENBLAS_NUM_THREADS (the test
environment sets 1, at which nothing would be seen), so that OpenBLAS starts with one thread
per CPU, as a user's interpreter does."""
import os
import subprocess
import sys
import threading

import numpy as np

REPS = 2


def entries():
    """name -> a call returning the bytes of its result; each call does the same work."""
    import kat

    rng = np.random.default_rng(20261208)
    x = rng.normal(0.0, 0.6, (200, 6))
    y = rng.normal(0.0, 0.6, (200, 6))
    q, k, v = (rng.standard_normal((1, 4, 256, 32)).astype(np.float32) for _ in range(3))
    lq, lk = (rng.normal(0.0, 0.5, (1, 2, 200, 4)).astype(np.float32) for _ in range(2))
    lv = rng.standard_normal((1, 2, 200, 32)).astype(np.float32)
    a = rng.standard_normal((400, 400))

    def rank(method):
        def call():
            r = kat.rank("exp(x/2)", x, y, method=method, eps=1e-6, block=8, oversample=8)
            return r.singular_values.tobytes() + np.float64(r.fro_norm).tobytes() + bytes([r.rank])
        return call

    return {
        "rank dense": rank("dense"),
        "rank randomized": rank("randomized"),
        "dense flash": lambda: kat.attention(q, k, v, causal=True).tobytes(),
        "lsh + sparse flash": lambda: kat.attention(q, k, v, pattern="lsh:8:17").tobytes(),
        "linear": lambda: kat.attention(lq, lk, lv, pattern="linear:taylor:2",
                                        causal=True).tobytes(),
        "numpy matmul": lambda: (a @ a).tobytes(),
    }


def check_pairs():
    """Every pair at once, REPS calls each; returns the lines describing differences."""
    calls = entries()
    serial = {name: call() for name, call in calls.items()}
    names = [n for n in calls if n != "numpy matmul"]
    bad = []
    for i, first in enumerate(names):
        for second in names[i:] + ["numpy matmul"]:
            pair = (first, second)
            barrier = threading.Barrier(2)
            differ = [0, 0]
            errors = []

            def worker(slot):
                try:
                    barrier.wait()
                    for _ in range(REPS):
                        differ[slot] += calls[pair[slot]]() != serial[pair[slot]]
                except Exception as e:   # reported below, after the threads end
                    errors.append(f"{pair[slot]}: {e!r}")

            threads = [threading.Thread(target=worker, args=(slot,)) for slot in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            bad += errors
            for slot in (0, 1):
                if differ[slot] and pair[slot] != "numpy matmul":
                    bad.append(f"{pair[slot]} beside {pair[1 - slot]}: {differ[slot]} of "
                               f"{REPS} differ")
    return bad


def test_entry_points_pairwise_at_openblas_default():
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    child = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                           timeout=600)
    assert child.returncode == 0, child.stdout + child.stderr
    assert "pairs checked" in child.stdout, child.stdout


if __name__ == "__main__":
    problems = check_pairs()
    for line in problems:
        print(line)
    n = len([c for c in entries() if c != "numpy matmul"])
    print(f"{n * (n + 1) // 2 + n} pairs checked, {len(problems)} problems")
    sys.exit(1 if problems else 0)
