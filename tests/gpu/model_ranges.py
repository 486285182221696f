"""A CPU check of the flash kernels' tile ranges (lib/cuda/flash.cuh: key_range, query_range,
block_needs_mask, sparse_key_range, sparse_query_range, transcribed) against brute force on
random shapes, causal flags, windows and bucket ids: every visible (query, key) pair lies in
a tile the forward and the backward visit, and a block the kernels leave unmasked holds only
visible pairs. Like model_fragments.py it checks the arithmetic, not the kernels.

    python3 tests/gpu/model_ranges.py
"""
import random
import numpy as np

def visible(N, M, causal, window, i, j):
    ip = i + M - N
    if j >= M: return False
    if causal and j > ip: return False
    if window and (j <= ip - window or j >= ip + window): return False
    return True

def key_range(N, M, causal, window, q0, q1):
    off = M - N; l, h = 0, M
    if window: l = q0 + off - window + 1; h = q1 - 1 + off + window
    if causal and q1 + off < h: h = q1 + off
    return max(l, 0), min(h, M)

def query_range(N, M, causal, window, k0, k1):
    off = M - N; l, h = 0, N
    if causal: l = k0 - off
    if window:
        h = k1 - 1 - off + window
        if not causal and k0 - off - window + 1 > l: l = k0 - off - window + 1
    return max(l, 0), min(h, N)

def needs_mask(N, M, causal, window, q0, nq, k0, nk):
    off = M - N
    if k0 + nk > M or q0 + nq > N: return True
    if causal and k0 + nk - 1 > q0 + off: return True
    if window and (k0 <= q0 + nq - 1 + off - window or k0 + nk - 1 >= q0 + off + window): return True
    return False

random.seed(1)
BK = 64
for trial in range(400):
    N, M = random.randint(1, 300), random.randint(1, 300)
    causal = random.random() < 0.6
    window = random.choice([0, 0, 1, 5, 17, 64, 100])
    vis = np.array([[visible(N, M, causal, window, i, j) for j in range(M)] for i in range(N)])
    for BQ in (64, 32):
        # forward: per query tile
        for q0 in range(0, N, 64):
            klo, khi = key_range(N, M, causal, window, q0, min(q0 + 64, N))
            kt_lo = klo // BK; kt_hi = (khi + BK - 1) // BK if khi > klo else kt_lo
            cols = np.zeros(M, bool); cols[kt_lo*BK:kt_hi*BK] = True
            rows = vis[q0:q0+64]
            assert not (rows & ~cols).any(), ("fwd miss", N, M, causal, window, q0)
            for kt in range(kt_lo, kt_hi):
                if not needs_mask(N, M, causal, window, q0, 64, kt*BK, BK):
                    assert vis[q0:q0+64, kt*BK:kt*BK+BK].all()
        # backward: per key tile
        for k0 in range(0, M, BK):
            qlo, qhi = query_range(N, M, causal, window, k0, min(k0 + BK, M))
            qt_lo = qlo // BQ; qt_hi = (qhi + BQ - 1) // BQ if qhi > qlo else qt_lo
            r = np.zeros(N, bool); r[qt_lo*BQ:qt_hi*BQ] = True
            assert not (vis[:, k0:k0+BK] & ~r[:, None]).any(), ("bwd miss", N, M, causal, window, k0)
            for qt in range(qt_lo, qt_hi):
                if not needs_mask(N, M, causal, window, qt*BQ, BQ, k0, BK):
                    assert vis[qt*BQ:qt*BQ+BQ, k0:k0+BK].all()
print("dense ranges ok")

# bucketed: sorted layouts
def upper_bound(a, lo, hi, x):
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] <= x: lo = mid + 1
        else: hi = mid
    return lo

for trial in range(400):
    N, M = random.randint(1, 300), random.randint(1, 300)
    nb = random.choice([1, 2, 4, 16])
    causal = random.random() < 0.6
    qb = [random.choice(list(range(nb)) + [-1]) for _ in range(N)]
    kb = [random.choice(list(range(nb)) + [-1]) for _ in range(M)]
    def layout(b, rows):
        key = sorted(range(rows), key=lambda i: ((b[i] if b[i] >= 0 else nb), i))
        bk = [(b[i] if b[i] >= 0 else nb) for i in key]
        off = [sum(1 for x in bk if x < c) for c in range(nb + 2)]
        return key, bk, off
    qr, qbk, qo = layout(qb, N); kr, kbk, ko = layout(kb, M)
    nq, nk = qo[nb], ko[nb]
    vis = np.zeros((N, M), bool)   # in sorted coordinates
    for a in range(nq):
        for c in range(nk):
            vis[a, c] = qbk[a] == kbk[c] and visible(N, M, causal, 0, qr[a], kr[c])
    for q0 in range(0, nq, 64):
        q1 = min(q0 + 64, nq)
        lo, hi = ko[qbk[q0]], ko[qbk[q1 - 1] + 1]
        if causal: hi = upper_bound(kr, ko[qbk[q1 - 1]], hi, qr[q1 - 1] + M - N)
        cols = np.zeros(M, bool)
        if hi > lo: cols[lo // BK * BK:(hi + BK - 1) // BK * BK] = True
        assert not (vis[q0:q1] & ~cols).any(), ("sparse fwd miss", trial)
    for BQ in (64, 32):
        for k0 in range(0, nk, BK):
            k1 = min(k0 + BK, nk)
            lo, hi = qo[kbk[k0]], qo[kbk[k1 - 1] + 1]
            if causal: lo = upper_bound(qr, lo, qo[kbk[k0] + 1], kr[k0] - (M - N) - 1)
            r = np.zeros(N, bool)
            if hi > lo: r[lo // BQ * BQ:(hi + BQ - 1) // BQ * BQ] = True
            assert not (vis[:, k0:k1] & ~r[:, None]).any(), ("sparse bwd miss", trial)
print("bucketed ranges ok")
