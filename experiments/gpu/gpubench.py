"""What the GPU benchmarks of this folder share: tests/gpu on the import path (kat_cuda,
linear_ref), the line naming the GPU and the software, and the timing of a call with CUDA
events."""
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "gpu"))


def header():
    return (f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}")


def timed(fn, reps, warmup):
    """The median time in ms of reps runs of fn, each timed with CUDA events, after warmup
    runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)
