"""The attention call alone, forward + backward, per variant at the LM's shapes ([1, H, n, d],
causal): how much of a training step's time the patterns can save. The variants are timed in
turn, REPEATS rounds, and the fastest call of each is kept (the least disturbed by other load)."""
from __future__ import annotations

import time

import torch

import kat.torch as kt
from model import Attention

REPEATS = 5


def run(lengths, heads: int, d: int, variants, seed: int, log=print) -> dict:
    out = {}
    for n in lengths:
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn((1, heads, n, d), generator=g, requires_grad=True)
                   for _ in range(3))
        atts = {}
        for name in variants:
            a = Attention(heads * d, heads, name, 0)
            a.drop_gen = torch.Generator().manual_seed(seed)
            atts[name] = a
        best = {name: float("inf") for name in variants}
        for _ in range(REPEATS):
            for name, a in atts.items():
                t0 = time.perf_counter()
                o = kt.attention(
                    q, k, v, is_causal=True, **a.pattern_args(q))
                o.sum().backward()
                best[name] = min(best[name], time.perf_counter() - t0)
        out[str(n)] = best
        log(f"  attention alone, n = {n}: " + "  ".join(
            f"{name} {best[name] * 1e3:.0f} ms ({best['dense'] / best[name]:.2f}x)"
            for name in variants))
    return out
