"""Linear attention with the Taylor-2 kernel as plain PyTorch: the N x M kernel matrix
f = 1 + u + u^2/2, u = s q.k (or f = q.k of given features), in q's dtype (the 16-bit
baseline, or fp64 for the oracle) on q's device. Shared by the GPU tests and the kernels' CPU
check (emu/check_linear.py)."""
import torch


def naive(q, k, v, causal, s, unnormalized, kernel=lambda u: 1 + u + u * u / 2):
    H, Hkv = q.shape[1], k.shape[1]
    k = k.repeat_interleave(H // Hkv, dim=1)
    v = v.repeat_interleave(H // Hkv, dim=1)
    u = (q @ k.transpose(-1, -2)) * s
    a = kernel(u)
    if causal:
        N = q.shape[2]
        a = a * torch.ones(N, N, dtype=torch.bool, device=q.device).tril()
    o = a @ v
    return o if unnormalized else o / a.sum(-1, keepdim=True)


def features_naive(q, k, v, causal, s, unnormalized):
    """The same with q and k as feature vectors: f = q.k (s unused)."""
    return naive(q, k, v, causal, 1.0, unnormalized, kernel=lambda u: u)
