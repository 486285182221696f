"""A byte-level causal transformer LM (pre-LN, rotary positions) whose attention is one call of
kat.torch.attention; the variants differ only in that call's pattern.

Variants (``VARIANTS``):
  dense     causal softmax attention (kat's flash engine);
  hash8/16  the Hashformer of "Fast Attention Over Long Sequences With Dynamic Sparse Flash
            Attention" (arXiv 2306.01160): per head, queries and keys are bucketed by angular
            LSH into nb buckets (one fixed random rotation per layer and head, kat's
            ``lsh:NB:SEED``), and a query sees only the earlier keys of its own bucket;
  qkdrop    its QK-drop model: per step, sequence and head, each query and each key is dropped
            independently with probability ``QK_DROP`` (the same at evaluation); a dropped query
            row gets attention output 0 (the residual stream carries it), a dropped key is seen
            by nobody;
  taylor2   causal linear attention with the order-2 Taylor map of exp(q.k/sqrt(d))
            (FAST/Fastmax arXiv 2402.07901, Based arXiv 2402.18668).
Everything else (weights at a seed, data, optimiser) is the same for all of them."""
from __future__ import annotations

import math

import torch

import kat.torch as kt

VARIANTS = ("dense", "hash8", "hash16", "qkdrop", "taylor2")
QK_DROP = 0.5


def rotary(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding of x [B, N, H, D] (pairs (i, i + D/2) rotated by angle
    pos * base^(-2i/D))."""
    N, D = x.shape[1], x.shape[-1]
    half = D // 2
    inv = base ** (-torch.arange(half, dtype=torch.float32) / half)
    ang = torch.arange(N, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(torch.nn.Module):
    """Causal multi-head attention; ``variant`` picks kat's pattern, ``layer`` the LSH seed."""

    def __init__(self, dim: int, heads: int, variant: str, layer: int):
        super().__init__()
        self.heads, self.variant, self.layer = heads, variant, layer
        self.qkv = torch.nn.Linear(dim, 3 * dim, bias=False)
        self.proj = torch.nn.Linear(dim, dim, bias=False)
        self.drop_gen = None        # torch.Generator for QK-drop masks (set by the trainer)
        self.capture = None         # a list: (q, k, v) [B, H, N, D] appended on each forward

    def pattern_args(self, q: torch.Tensor) -> dict:
        B, H, N, _ = q.shape
        v = self.variant
        if v == "dense":
            return {}
        if v == "qkdrop":
            keep = torch.rand((2, B, H, N), generator=self.drop_gen) >= QK_DROP
            return {"pattern": "qkdrop", "q_keep": keep[0], "k_keep": keep[1]}
        if v == "taylor2":
            return {"pattern": "linear:taylor:2"}
        if v == "hash1":            # one bucket: every pair allowed (the test's equality check)
            z = torch.zeros((B, H, N), dtype=torch.int32)
            return {"pattern": "hash", "q_buckets": z, "k_buckets": z}
        if v == "keepall":          # QK-drop keeping every row (the test's equality check)
            one = torch.ones((B, H, N), dtype=torch.bool)
            return {"pattern": "qkdrop", "q_keep": one, "k_keep": one}
        if v in ("hash8", "hash16"):
            return {"pattern": f"lsh:{int(v[4:])}:{1000 + self.layer}"}
        raise ValueError(f"variant: {v!r} is not one of {VARIANTS + ('hash1', 'keepall')}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, E = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, E // self.heads).unbind(2)
        q, k = rotary(q), rotary(k)
        # [B, N, H, D] -> [B, H, N, D] views: kat reads them in place
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if self.capture is not None:
            self.capture.append((q.detach().clone(), k.detach().clone(), v.detach().clone()))
        y = kt.attention(q, k, v, is_causal=True, **self.pattern_args(q))
        return self.proj(y.transpose(1, 2).reshape(B, N, E))


class Block(torch.nn.Module):
    def __init__(self, dim: int, heads: int, variant: str, layer: int):
        super().__init__()
        self.norm1, self.norm2 = torch.nn.LayerNorm(dim), torch.nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, variant, layer)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(),
                                       torch.nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ByteLM(torch.nn.Module):
    """Embedding (256 bytes) -> layers pre-LN blocks -> LayerNorm -> logits (tied weights)."""

    def __init__(self, dim: int, heads: int, layers: int, variant: str):
        super().__init__()
        self.tok = torch.nn.Embedding(256, dim)
        torch.nn.init.normal_(self.tok.weight, std=0.02)
        self.blocks = torch.nn.ModuleList(Block(dim, heads, variant, i) for i in range(layers))
        self.norm = torch.nn.LayerNorm(dim)

    def attentions(self):
        return [b.attn for b in self.blocks]

    def set_variant(self, variant: str) -> None:
        for a in self.attentions():
            a.variant = variant

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx)
        for b in self.blocks:
            x = b(x)
        return self.norm(x) @ self.tok.weight.t()

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy in nats per byte."""
        return torch.nn.functional.cross_entropy(self(x).reshape(-1, 256), y.reshape(-1))


BITS_PER_NAT = 1.0 / math.log(2.0)
