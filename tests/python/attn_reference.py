"""The fp64 reference of kat's attention patterns in torch (autograd for the gradients), the
naive fp32 computation of the same formula, and the error rule of kat's C tests: kat's error
against fp64 is at most twice the naive fp32 one's, plus eps times the sum of absolute terms
(the one rounding no fp32 implementation avoids), plus eps |lse| on the logsumexp path."""
import numpy as np
import torch

EPS = float(np.finfo(np.float32).eps)


def allowed_mask(pattern, B, H, Hkv, N, M, causal, q_buckets=None, k_buckets=None,
                 q_keep=None, k_keep=None, mask=None):
    """allowed[b, h, i, j]: whether query i of head h may see key j under the pattern."""
    g = H // Hkv
    a = np.ones((B, H, N, M), dtype=bool)
    i = np.arange(N)[:, None] + (M - N)   # bottom-right aligned
    j = np.arange(M)[None, :]
    if causal:
        a &= j <= i
    head, _, rest = pattern.partition(":")
    if head == "hash":
        kbr = np.repeat(k_buckets, g, axis=1)
        a &= q_buckets[..., :, None] == kbr[..., None, :]
    elif head == "qkdrop":
        if q_keep is not None:
            a &= q_keep.astype(bool)[..., :, None]
        if k_keep is not None:
            a &= np.repeat(k_keep.astype(bool), g, axis=1)[..., None, :]
    elif head == "window":
        parts = [int(x) for x in rest.split(":")]
        w, glob = parts[0], (parts[1] if len(parts) > 1 else 0)
        band = np.abs(i - j) < w if w else np.zeros((N, M), bool)
        seen = band | (j < glob)
        if not causal:
            seen |= np.arange(N)[:, None] < glob
        a &= seen
    elif head == "blockmask":
        a &= np.broadcast_to(mask.astype(bool), (B, H, N, M))
    return a


def reference(q, k, v, allowed, scale, kernel="softmax", dtype=torch.float64, dout=None):
    """o (and, with dout, dq, dk, dv) of masked attention in the given precision, by torch
    autograd; also the magnitudes (sums of absolute terms) of each output. kernel "softmax",
    or ("taylor2", tau) for linear attention with 1 + x/tau + x^2/(2 tau^2), x = q.k."""
    qt, kt, vt = (torch.tensor(np.asarray(x), dtype=dtype, requires_grad=True) for x in (q, k, v))
    g = qt.shape[1] // kt.shape[1]
    kr, vr = kt.repeat_interleave(g, 1), vt.repeat_interleave(g, 1)
    al = torch.tensor(allowed)
    s = qt @ kr.transpose(-1, -2)
    if kernel == "softmax":
        s = (scale * s).masked_fill(~al, float("-inf"))
        m = s.amax(-1, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))   # rows that see no key
        e = torch.exp(s - m) * al
        den = e.sum(-1, keepdim=True)
        p = torch.where(den > 0, e / torch.where(den > 0, den, torch.ones_like(den)),
                        torch.zeros_like(e))
        lse = (m + torch.log(den)).squeeze(-1)
    else:
        tau = kernel[1]
        f = (1 + s / tau + s * s / (2 * tau * tau)) * al
        den = f.sum(-1, keepdim=True)
        p = f / den
        lse = None
    o = p @ vr
    out = {"o": o.detach().numpy(), "lse": None if lse is None else lse.detach().numpy()}
    pa = p.detach().abs()
    out["mag_o"] = (pa @ vr.detach().abs()).numpy()
    if dout is not None:
        dt = torch.tensor(np.asarray(dout), dtype=dtype)
        o.backward(dt)
        out.update(dq=qt.grad.numpy(), dk=kt.grad.numpy(), dv=vt.grad.numpy())
        a = dt.abs() @ vr.detach().abs().transpose(-1, -2) + \
            (dt.abs() * o.detach().abs()).sum(-1, keepdim=True)
        t = pa * a * (scale if kernel == "softmax" else 1.0)
        B, H, N, M = pa.shape
        fold = lambda x: x.reshape(B, H // g, g, M, -1).sum(2)
        out["mag_dq"] = (t @ kr.detach().abs()).numpy()
        out["mag_dk"] = fold(t.transpose(-1, -2) @ qt.detach().abs()).numpy()
        out["mag_dv"] = fold(pa.transpose(-1, -2) @ dt.abs()).numpy()
    return out


def check_close(got, ref64, naive32, mag, name, extra=0.0):
    """kat's max error <= 2 x the naive fp32 max error + eps max magnitude (+ extra)."""
    err = float(np.abs(got.astype(np.float64) - ref64).max())
    naive = float(np.abs(naive32.astype(np.float64) - ref64).max())
    tol = 2 * naive + EPS * float(mag.max()) + extra
    assert err <= tol, f"{name}: error {err:.3g} > tolerance {tol:.3g} (naive fp32 {naive:.3g})"
    return err / tol if tol else 0.0
