"""A small PyTorch transformer whose attention is kat's hash-sparse attention, trained for a
few steps on a toy sequence task.

    ./run.sh python python/examples/transformer_hash.py [--steps 40] [--pattern lsh:8]

The swap is one line: the block's attention is ``kat.torch.Attention(pattern=..., is_causal=
True)`` where it would call torch's scaled_dot_product_attention. With ``lsh:8`` each query
attends only to the earlier keys that kat's angular LSH puts in its bucket (8 buckets per
head), so a query visits about 1/8 of the keys; ``--pattern dense`` trains the same model with
full causal attention for comparison. The task: on random tokens, output the token seen two
positions earlier, which only attention (the queries learning to find that key) can solve;
the loss starts at log(32) = 3.47."""
import argparse
import time

import torch

import kat.torch as kt


class Block(torch.nn.Module):
    def __init__(self, dim, heads, pattern):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(dim), torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.attn = kt.Attention(pattern=pattern, is_causal=True)   # the one-line swap
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(),
                                       torch.nn.Linear(4 * dim, dim))

    def forward(self, x):
        B, N, E = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, N, 3, self.heads, E // self.heads).unbind(2)
        # [B, N, H, D] -> [B, H, N, D] views: kat reads them in place, without a copy
        y = self.attn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + self.proj(y.transpose(1, 2).reshape(B, N, E))
        return x + self.mlp(self.norm2(x))


class TinyLM(torch.nn.Module):
    def __init__(self, vocab, dim, heads, layers, n, pattern):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, dim)
        self.pos = torch.nn.Parameter(torch.randn(n, dim) * 0.02)
        self.blocks = torch.nn.Sequential(*[Block(dim, heads, pattern) for _ in range(layers)])
        self.head = torch.nn.Linear(dim, vocab)

    def forward(self, idx):
        return self.head(self.blocks(self.tok(idx) + self.pos[: idx.shape[1]]))


def batch(gen, B, N, vocab, lag=2):
    """Random tokens; the target at position t is the token at t - lag (0 before that)."""
    x = torch.randint(1, vocab, (B, N), generator=gen)
    y = torch.cat([torch.zeros(B, lag, dtype=x.dtype), x[:, :-lag]], dim=1)
    return x, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--pattern", default="lsh:8")
    ap.add_argument("--n", type=int, default=256)
    a = ap.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    vocab, B = 32, 8
    model = TinyLM(vocab, dim=64, heads=4, layers=2, n=a.n, pattern=a.pattern)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    print(f"torch {torch.__version__}, pattern {a.pattern}, B = {B}, N = {a.n}, "
          f"{sum(p.numel() for p in model.parameters())} parameters")
    t0 = time.perf_counter()
    for step in range(1, a.steps + 1):
        x, y = batch(gen, B, a.n, vocab)
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step % 10 == 0:
            print(f"step {step:3d}  loss {loss.item():.3f}  ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
