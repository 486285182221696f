"""kat from Python under an address-space limit (ulimit -v): each entry point that reaches the
BLAS or starts threads either returns or raises MemoryError naming the memory, within a bounded
time, never hangs. The child interpreters start OpenBLAS with one thread: with more, OpenBLAS's
workers started when NumPy loads it map their buffers beside the interpreter and spin forever
when one does not fit (`import numpy` alone hangs so under 180 MB with 2 threads)."""
import os
import resource
import subprocess
import sys

import pytest

CALLS = {
    "rank dense": "kat.rank('exp(x/2)', x)",
    "rank randomized": "kat.rank('exp(x/2)', x, method='randomized')",
    "dense flash": "kat.attention(q, q, q, causal=True)",
    "lsh + sparse flash": "kat.attention(q, q, q, pattern='lsh:8')",
    "linear": "kat.attention(q, q, q, pattern='linear:taylor:2', causal=True)",
}
CHILD = """
import sys
import numpy as np
import kat
rng = np.random.default_rng(0)
x = rng.standard_normal((1000, 8))
q = rng.standard_normal((1, 4, 1024, 32)).astype(np.float32)
try:
    {call}
except MemoryError as e:
    print("MemoryError:", e)
    sys.exit(3)
"""


def limited(kb, call):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (kb * 1024, kb * 1024))

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", CHILD.format(call=call)], env=env,
                          preexec_fn=limit, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("kb", [300_000, 400_000, 600_000, 1_000_000])
def test_no_hang_under_ulimit_v(kb):
    outcomes = []
    for name, call in CALLS.items():
        try:
            child = limited(kb, call)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} under ulimit -v {kb}: still running after 60 s")
        if child.returncode == 3:
            assert child.stdout.startswith("MemoryError:"), child.stdout
        elif child.returncode != 0:
            # the interpreter itself (an import) may not fit: Python reports it and exits 1
            assert child.returncode == 1 and ("MemoryError" in child.stderr or
                                              "failed to map" in child.stderr), child.stderr
        outcomes.append(child.returncode)
    if kb >= 1_000_000:
        assert outcomes == [0] * len(CALLS), outcomes
