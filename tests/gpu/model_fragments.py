"""A CPU check of the flash kernels' fragment addressing (lib/cuda/flash_fwd.cu,
flash_bwd.cu): a lane-level model of ldmatrix (.x4, .trans) and mma.m16n8k16 after the PTX
ISA's fragment layouts, driven with the kernels' address formulas for every product of the
forward (S = Q K^T, O = P V) and the backward (S^T, dV, dP^T, dK, the dS^T store, dQ), at
DP = 64 and 128, against numpy products. It checks the index arithmetic, not the kernels:
those run on a GPU (tests/gpu/test_attn.py).

    python3 tests/gpu/model_fragments.py
"""
import numpy as np
rng = np.random.default_rng(0)

def ldm(smem, LD, addr_of_lane, trans=False):
    """smem: 2D array [rows, LD]; addr_of_lane(lane) -> linear element address. Returns
    regs[lane][i] = (lo, hi) element pairs."""
    regs = [[None]*4 for _ in range(32)]
    for i in range(4):
        rows = []
        for r in range(8):
            a = addr_of_lane(8*i + r)
            rows.append(smem[a // LD, a % LD: a % LD + 8])
        m = np.array(rows)  # 8x8
        for l in range(32):
            if not trans:
                regs[l][i] = (m[l//4, 2*(l%4)], m[l//4, 2*(l%4)+1])
            else:
                regs[l][i] = (m[2*(l%4), l//4], m[2*(l%4)+1, l//4])
    return regs

def mma(C, A, B):
    """C[lane] 4 floats, A[lane] 4 regs (pairs), B[lane] 2 regs; D = A*B + C."""
    Am = np.zeros((16, 16)); Bm = np.zeros((16, 8))
    for l in range(32):
        g, t = l//4, l%4
        a = A[l]
        Am[g, 2*t:2*t+2] = a[0]; Am[g+8, 2*t:2*t+2] = a[1]
        Am[g, 2*t+8:2*t+10] = a[2]; Am[g+8, 2*t+8:2*t+10] = a[3]
        b = B[l]
        Bm[2*t:2*t+2, g] = b[0]; Bm[2*t+8:2*t+10, g] = b[1]
    Cm = frag_to_mat(C) + Am @ Bm
    return mat_to_frag(Cm)

def frag_to_mat(C):
    M = np.zeros((16, 8))
    for l in range(32):
        g, t = l//4, l%4
        M[g, 2*t:2*t+2] = C[l][0:2]; M[g+8, 2*t:2*t+2] = C[l][2:4]
    return M

def mat_to_frag(M):
    return [[M[l//4, 2*(l%4)], M[l//4, 2*(l%4)+1], M[l//4+8, 2*(l%4)], M[l//4+8, 2*(l%4)+1]]
            for l in range(32)]

def zeros():
    return [[0.0]*4 for _ in range(32)]

def pack_A(s2, s2p1):
    """A frag from C frags of two neighbouring n-tiles (the kernels' pa packing)."""
    return [[(s2[l][0], s2[l][1]), (s2[l][2], s2[l][3]), (s2p1[l][0], s2p1[l][1]),
             (s2p1[l][2], s2p1[l][3])] for l in range(32)]

PAD = 8
for DP in (64, 128):
    LD = DP + PAD
    BQ, BK = 64, 64
    sQ = np.zeros((BQ, LD)); sK = np.zeros((BK, LD)); sV = np.zeros((BK, LD))
    sQ[:, :DP] = rng.standard_normal((BQ, DP)); sK[:, :DP] = rng.standard_normal((BK, DP))
    sV[:, :DP] = rng.standard_normal((BK, DP))
    Q, K, V = sQ[:, :DP], sK[:, :DP], sV[:, :DP]
    for warp in range(4):
        # forward S = Q K^T
        qf = [ldm(sQ, LD, lambda lane: (warp*16 + lane%8 + (lane//8%2)*8)*LD + kk*16 + (lane//16)*8)
              for kk in range(DP//16)]
        s = [zeros() for _ in range(BK//8)]
        for kk in range(DP//16):
            for nj in range(BK//16):
                r = ldm(sK, LD, lambda lane: (nj*16 + lane%8 + (lane//16)*8)*LD + kk*16 + (lane//8%2)*8)
                s[2*nj] = mma(s[2*nj], qf[kk], [x[0:2] for x in r])
                s[2*nj+1] = mma(s[2*nj+1], qf[kk], [x[2:4] for x in r])
        S = np.hstack([frag_to_mat(x) for x in s])
        assert np.allclose(S, Q[warp*16:warp*16+16] @ K.T), "S"
        # O = P V with P = S
        pa = [pack_A(s[2*kk], s[2*kk+1]) for kk in range(BK//16)]
        o = [zeros() for _ in range(DP//8)]
        for kk in range(BK//16):
            for dj in range(DP//16):
                r = ldm(sV, LD, lambda lane: (kk*16 + lane%8 + (lane//8%2)*8)*LD + dj*16 + (lane//16)*8, True)
                o[2*dj] = mma(o[2*dj], pa[kk], [x[0:2] for x in r])
                o[2*dj+1] = mma(o[2*dj+1], pa[kk], [x[2:4] for x in r])
        O = np.hstack([frag_to_mat(x) for x in o])
        assert np.allclose(O, S @ V), "O"
    print("forward fragments ok, DP =", DP)

    # backward, BQ per the kernel
    BQ = 64 if DP == 64 else 32
    LDS = BQ + PAD
    QT = BQ // 8
    WQ = BQ // 16; WD = 4 // WQ; DT = DP // 8; DTW = DT // WD
    sQ = np.zeros((BQ, LD)); sdO = np.zeros((BQ, LD)); sdS = np.zeros((BK, LDS))
    sQ[:, :DP] = rng.standard_normal((BQ, DP)); sdO[:, :DP] = rng.standard_normal((BQ, DP))
    Q, dO = sQ[:, :DP], sdO[:, :DP]
    dSt_all = np.zeros((BK, BQ))
    dK_all = np.zeros((BK, DP))
    for warp in range(4):
        s = [zeros() for _ in range(QT)]
        for kk in range(DP//16):
            a = ldm(sK, LD, lambda lane: (warp*16 + lane%8 + (lane//8%2)*8)*LD + kk*16 + (lane//16)*8)
            for nj in range(QT//2):
                r = ldm(sQ, LD, lambda lane: (nj*16 + lane%8 + (lane//16)*8)*LD + kk*16 + (lane//8%2)*8)
                s[2*nj] = mma(s[2*nj], a, [x[0:2] for x in r])
                s[2*nj+1] = mma(s[2*nj+1], a, [x[2:4] for x in r])
        St = np.hstack([frag_to_mat(x) for x in s])
        Kw, Vw = K[warp*16:warp*16+16], V[warp*16:warp*16+16]
        assert np.allclose(St, Kw @ Q.T), "S^T"
        pa = [pack_A(s[2*kk], s[2*kk+1]) for kk in range(BQ//16)]
        dv = [zeros() for _ in range(DT)]
        for kk in range(BQ//16):
            for dj in range(DP//16):
                r = ldm(sdO, LD, lambda lane: (kk*16 + lane%8 + (lane//8%2)*8)*LD + dj*16 + (lane//16)*8, True)
                dv[2*dj] = mma(dv[2*dj], pa[kk], [x[0:2] for x in r])
                dv[2*dj+1] = mma(dv[2*dj+1], pa[kk], [x[2:4] for x in r])
        assert np.allclose(np.hstack([frag_to_mat(x) for x in dv]), St @ dO), "dV"
        dp = [zeros() for _ in range(QT)]
        for kk in range(DP//16):
            a = ldm(sV, LD, lambda lane: (warp*16 + lane%8 + (lane//8%2)*8)*LD + kk*16 + (lane//16)*8)
            for nj in range(QT//2):
                r = ldm(sdO, LD, lambda lane: (nj*16 + lane%8 + (lane//16)*8)*LD + kk*16 + (lane//8%2)*8)
                dp[2*nj] = mma(dp[2*nj], a, [x[0:2] for x in r])
                dp[2*nj+1] = mma(dp[2*nj+1], a, [x[2:4] for x in r])
        dPt = np.hstack([frag_to_mat(x) for x in dp])
        assert np.allclose(dPt, Vw @ dO.T), "dP^T"
        # dS^T := dP^T here (values irrelevant to the layout); the da packing and smem store
        da = [[None]*4 for _ in range(BQ//16)]
        da = [[[None]*4 for _ in range(32)] for _ in range(BQ//16)]
        for j in range(QT):
            for l in range(32):
                g, t = l//4, l%4
                col = j*8 + 2*t
                lo = (dp[j][l][0], dp[j][l][1]); hi = (dp[j][l][2], dp[j][l][3])
                da[j//2][l][(j%2)*2] = lo; da[j//2][l][(j%2)*2+1] = hi
                sdS[warp*16+g, col:col+2] = lo; sdS[warp*16+g+8, col:col+2] = hi
        dk = [zeros() for _ in range(DT)]
        for kk in range(BQ//16):
            for dj in range(DP//16):
                r = ldm(sQ, LD, lambda lane: (kk*16 + lane%8 + (lane//8%2)*8)*LD + dj*16 + (lane//16)*8, True)
                dk[2*dj] = mma(dk[2*dj], da[kk], [x[0:2] for x in r])
                dk[2*dj+1] = mma(dk[2*dj+1], da[kk], [x[2:4] for x in r])
        assert np.allclose(np.hstack([frag_to_mat(x) for x in dk]), dPt @ Q), "dK"
        dSt_all[warp*16:warp*16+16] = dPt
    assert np.allclose(sdS[:, :BQ], dSt_all), "sdS"
    # dQ = dS K split over warps
    dQ = np.zeros((BQ, DP))
    for warp in range(4):
        wq, wd = warp % WQ, warp // WQ
        dq = [zeros() for _ in range(DTW)]
        for kk in range(BK//16):
            a = ldm(sdS, LDS, lambda lane: (kk*16 + lane%8 + (lane//16)*8)*LDS + wq*16 + (lane//8%2)*8, True)
            for dj in range(DTW//2):
                r = ldm(sK, LD, lambda lane: (kk*16 + lane%8 + (lane//8%2)*8)*LD + wd*(DP//WD) + dj*16 + (lane//16)*8, True)
                dq[2*dj] = mma(dq[2*dj], a, [x[0:2] for x in r])
                dq[2*dj+1] = mma(dq[2*dj+1], a, [x[2:4] for x in r])
        dQ[wq*16:wq*16+16, wd*(DP//WD):(wd+1)*(DP//WD)] = np.hstack([frag_to_mat(x) for x in dq])
    assert np.allclose(dQ, dSt_all.T @ K), "dQ"
    print("backward fragments ok, DP =", DP, "BQ =", BQ)
