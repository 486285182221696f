"""kat, the Kernel Attention Toolkit, for Python: attention with every pattern (NumPy, and
PyTorch autograd in kat.torch), rank probes, spectra, feature maps and the theorem registry,
computed by libkat with the GIL released.

Errors are exceptions carrying kat's sentence: ValueError (a bad argument, NaN or Inf in the
data), MemoryError, OverflowError (sizes beyond what kat supports), NotImplementedError,
ArithmeticError (LAPACK did not converge), OSError (files)."""
from . import _native
from ._attention import attention, attention_backward, lsh_buckets
from .featmap import (FEATMAP_DEFAULT_SEED, FeatureMap, elu1, favor, featmap, group, poly,
                      python_map, rff, taylor)
from .rank import RankResult, kernel_matrix, matrix_rank, points, rank
from .spectra import (MonotoneReport, bernstein, circulant_spectrum, completely_monotone,
                      cyclic_spectrum, embed, hypercube_spectrum, hyperrect_matrix,
                      hyperrect_spectrum, point_kernel, point_spectrum, symmetric_eigenvalues)
from .theorems import Theorem, TheoremResult, TheoremValue, check_theorems, run_theorem, theorems

__version__ = _native.version()


def __getattr__(name):
    """kat.torch is imported on first use (importing torch takes a while)."""
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module 'kat' has no attribute {name!r}")


def set_num_threads(n: int) -> None:
    """Threads of kat's parallel regions, at most 4 per CPU (ValueError above); 0 restores
    the default (KAT_NUM_THREADS, else OpenMP's)."""
    _native.set_num_threads(n)


def num_threads() -> int:
    """The number of threads kat's parallel regions use now."""
    return _native.num_threads()


def build_info() -> dict:
    """libkat's version, the ISA of its kernels and the BLAS in use."""
    return {"version": _native.version(), "arch": _native.arch(), "blas": _native.blas_info()}


__all__ = [
    "FEATMAP_DEFAULT_SEED", "FeatureMap", "MonotoneReport", "attention", "attention_backward", "RankResult", "Theorem", "TheoremResult", "TheoremValue",
    "bernstein", "build_info", "check_theorems", "circulant_spectrum", "completely_monotone",
    "cyclic_spectrum", "elu1", "embed", "favor", "featmap", "group", "hypercube_spectrum",
    "hyperrect_matrix", "hyperrect_spectrum", "kernel_matrix", "lsh_buckets", "matrix_rank", "num_threads",
    "point_kernel", "point_spectrum", "points", "poly", "python_map", "rank", "rff",
    "run_theorem", "set_num_threads", "symmetric_eigenvalues", "taylor", "theorems",
]
