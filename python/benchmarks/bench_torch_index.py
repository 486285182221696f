"""kat.torch.attention with a per-call sparse pattern: the backward's time when it reuses the
forward's index of the pattern data (kept in the autograd context) against the backward that
sorts and tiles the data again.

    ./run.sh python python/benchmarks/bench_torch_index.py [--reps R] [--n N] [--nb NB]

Hash buckets (random ids in [0, NB)), B = 1, H = 4, D = 64, N = M (default 4096, NB = 16),
not causal. The two settings alternate, R times each (default 9); medians of the forward
and of the backward alone (o.backward), the median of the paired differences of the
backward, and the gradients of the two compared bit for bit."""
import argparse
import statistics
import time

import torch

import kat.torch as kt


def run(share, q, k, v, qb, kb, do):
    kt._share_index = share
    qs, ks, vs = (t.detach().clone().requires_grad_() for t in (q, k, v))
    t0 = time.perf_counter()
    o = kt.attention(qs, ks, vs, pattern="hash", q_buckets=qb, k_buckets=kb)
    t1 = time.perf_counter()
    o.backward(do)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, (qs.grad, ks.grad, vs.grad)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--nb", type=int, default=16)
    a = ap.parse_args()
    B, H, N, D = 1, 4, a.n, 64
    g = torch.Generator().manual_seed(1)
    q, k, v, do = (torch.randn(B, H, N, D, generator=g) for _ in range(4))
    qb = torch.randint(0, a.nb, (B, H, N), generator=g, dtype=torch.int32)
    kb = torch.randint(0, a.nb, (B, H, N), generator=g, dtype=torch.int32)
    times = {True: ([], []), False: ([], [])}
    grads = {}
    run(True, q, k, v, qb, kb, do)   # warm-up
    for _ in range(a.reps):
        for share in (False, True):
            f, b, gr = run(share, q, k, v, qb, kb, do)
            times[share][0].append(f)
            times[share][1].append(b)
            grads[share] = gr
    same = all(torch.equal(x, y) for x, y in zip(grads[True], grads[False]))
    med = {s: [1e3 * statistics.median(t) for t in times[s]] for s in times}
    print(f"hash:{a.nb}, B = {B}, H = {H}, N = M = {N}, D = {D}, medians of {a.reps}")
    print("                      forward      backward")
    print(f"index rebuilt    {med[False][0]:10.1f} ms {med[False][1]:10.1f} ms")
    print(f"index shared     {med[True][0]:10.1f} ms {med[True][1]:10.1f} ms")
    saved = med[False][1] - med[True][1]
    # each shared run follows its rebuilt one: the median of the pairs' differences is less
    # swayed by the machine's load drifting over the runs than the difference of medians
    paired = 1e3 * statistics.median(r - s for r, s in zip(times[False][1], times[True][1]))
    print(f"backward saved: {saved:.1f} ms ({100 * saved / med[False][1]:.1f}%), "
          f"shared / rebuilt = {med[True][1] / med[False][1]:.3f}; median of the paired "
          f"differences {paired:.1f} ms; gradients bitwise equal: {same}")


if __name__ == "__main__":
    main()
