"""kat.torch.attention against torch's own attention on the CPU, same tensors, same threads.

    ./run.sh python python/benchmarks/bench_torch_sdpa.py [--threads T] [--n 1024,2048,...]
        [--d 64,128] [--b B] [--h H] [--reps R] [--markdown]

The baseline is torch.nn.functional.scaled_dot_product_attention where torch has it (2.0+),
else the eager math softmax(scale q k^T + mask) v (torch 1.13), which forms the N x N scores.
Float32 [B, H, N, D] tensors, N = M, D = 64 and 128, causal and not; the forward under
torch.no_grad() and the forward plus the backward of o.sum(). Both sides are set to the same
thread count (torch.set_num_threads and kat.set_num_threads; default: the CPUs this process
may run on, so `taskset -c 0,1` gives 2); OpenBLAS, which torch calls inside its own threads,
runs one thread unless OPENBLAS_NUM_THREADS says otherwise. Each configuration runs kat and
torch alternately, R rounds after one warm-up call each, and reports the medians and the ratio
torch / kat (above 1: kat is faster). The largest difference between the two outputs (and gradients) is
printed with every row, so both compute the same thing. The load average is printed before
and after: on a shared machine, read the ratios, not the absolute times."""
import argparse
import os
import platform
import sys

# Debian's torch calls the system OpenBLAS (its pthread build) from inside its own OpenMP
# threads (SDPA's blocks): more than one OpenBLAS thread there oversubscribes the CPUs
# (torch 2.6's SDPA forward at N = 1024 on 2 CPUs: 755 ms against 28 ms). Set before
# NumPy and torch load OpenBLAS; an OPENBLAS_NUM_THREADS already set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import kat  # noqa: E402
import kat.torch as kt  # noqa: E402
from bench_attention import median_alternating  # noqa: E402


def eager(q, k, v, is_causal):
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if is_causal:
        n, m = s.shape[-2:]
        s = s.masked_fill(torch.ones(n, m, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, -1) @ v


def baseline():
    sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    if sdpa is None:
        return "eager softmax(q k^T) v", eager
    return "scaled_dot_product_attention", lambda q, k, v, c: sdpa(q, k, v, is_causal=c)


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def compare(B, H, N, D, causal, reps, ref):
    g = torch.Generator().manual_seed(N * 1000 + D)
    q, k, v = (torch.randn(B, H, N, D, generator=g, requires_grad=True) for _ in range(3))
    ours = lambda: kt.attention(q, k, v, is_causal=causal)
    theirs = lambda: ref(q, k, v, causal)
    with torch.no_grad():
        fk, ft = median_alternating([ours, theirs], reps)
        err_o = (ours() - theirs()).abs().max().item()

    def both(f):
        def run():
            q.grad = k.grad = v.grad = None
            f().sum().backward()
            return q.grad, k.grad, v.grad
        return run
    bk, bt = median_alternating([both(ours), both(theirs)], reps)
    gk, gt = both(ours)(), both(theirs)()
    err_g = max((a - b).abs().max().item() for a, b in zip(gk, gt))
    return fk, ft, bk, bt, err_o, err_g


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--n", default="1024,2048,4096,8192", help="comma-separated N = M")
    ap.add_argument("--d", default="64,128", help="comma-separated head dimensions")
    ap.add_argument("--b", type=int, default=1)
    ap.add_argument("--h", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    a = ap.parse_args()
    if a.threads < 1 or a.reps < 1:
        sys.exit(f"--threads {a.threads} and --reps {a.reps} must be >= 1")
    ns = [int(x) for x in a.n.split(",")]
    ds = [int(x) for x in a.d.split(",")]
    # Importing torch may change OpenMP's default thread count for every library of the
    # process (they share one OpenMP runtime): set both explicitly.
    torch.set_num_threads(a.threads)
    kat.set_num_threads(a.threads)
    name, ref = baseline()
    print(f"kat.torch.attention vs torch {torch.__version__} {name}; Python "
          f"{platform.python_version()}, NumPy {np.__version__}; {cpu_name()}, "
          f"{len(os.sched_getaffinity(0))} CPUs allowed, torch threads "
          f"{torch.get_num_threads()}, kat threads {kat.num_threads()}, OpenBLAS threads "
          f"{os.environ['OPENBLAS_NUM_THREADS']}; B = {a.b}, H = {a.h}, "
          f"float32, medians of {a.reps} alternating rounds; load average {' '.join(loadavg())}")
    print(f"{'N':>6} {'D':>4} {'causal':>6} | {'fwd kat':>10} {'fwd torch':>10} {'ratio':>6} | "
          f"{'f+b kat':>10} {'f+b torch':>10} {'ratio':>6} | max|diff| o, grads")
    rows = []
    for N in ns:
        for D in ds:
            for causal in (False, True):
                fk, ft, bk, bt, eo, eg = compare(a.b, a.h, N, D, causal, a.reps, ref)
                rows.append((N, D, causal, fk, ft, bk, bt))
                print(f"{N:6d} {D:4d} {causal!s:>6} | {fk * 1e3:8.1f}ms {ft * 1e3:8.1f}ms "
                      f"{ft / fk:6.2f} | {bk * 1e3:8.1f}ms {bt * 1e3:8.1f}ms {bt / bk:6.2f} | "
                      f"{eo:.1e}, {eg:.1e}", flush=True)
    print(f"load average after: {' '.join(loadavg())}")
    if a.markdown:
        print("\n| N | D | causal | forward kat | forward torch | torch / kat | fwd+bwd kat | "
              "fwd+bwd torch | torch / kat |\n|---|---|---|---|---|---|---|---|---|")
        for N, D, causal, fk, ft, bk, bt in rows:
            print(f"| {N} | {D} | {'yes' if causal else 'no'} | {fk * 1e3:.1f} ms | "
                  f"{ft * 1e3:.1f} ms | {ft / fk:.2f} | {bk * 1e3:.1f} ms | {bt * 1e3:.1f} ms | "
                  f"{bt / bk:.2f} |")


if __name__ == "__main__":
    main()
