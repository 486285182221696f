"""Probe the rank of attention kernels on your own queries and keys.

    ./run.sh python python/examples/rank_probe.py [Q.npy [K.npy]]

Without files it makes Q and K the way a transformer layer does: token embeddings X (n x e)
drawn with a few dominant directions, as real embeddings have, projected by W_q and W_k
(e x d). It then asks, for each kernel f(q.k / sqrt(d)), how many singular values of the
n x m matrix matter (numerical rank, eps-ranks at 1e-3, stable and effective rank), compares
the exact rank with numpy.linalg.matrix_rank, and runs a feature map written in Python
through the same probe."""
import sys
import time

import numpy as np

import kat


def model_qk(n=512, e=64, d=32, seed=0):
    rng = np.random.default_rng(seed)
    scales = 1.0 / (1.0 + np.arange(e)) ** 0.7          # decaying spectrum of the embeddings
    X = rng.standard_normal((n, e)) * scales
    Wq, Wk = rng.standard_normal((e, d)), rng.standard_normal((e, d))
    return X @ Wq, X @ Wk


class RandomReLU:
    """phi(x) = relu(W x) / sqrt(D): a feature map written in Python (dim and apply)."""

    def __init__(self, d, D=128, seed=1):
        self.in_dim, self.dim = d, D
        self.W = np.random.default_rng(seed).standard_normal((D, d))

    def apply(self, x):
        return np.maximum(x @ self.W.T, 0.0) / np.sqrt(self.dim)


def main():
    if len(sys.argv) > 1:
        q = np.load(sys.argv[1])
        k = np.load(sys.argv[2]) if len(sys.argv) > 2 else q
    else:
        q, k = model_qk()
    n, d = q.shape
    s = 1.0 / np.sqrt(d)
    print(f"Q {q.shape}, K {k.shape}, kat {kat.__version__} ({kat.build_info()['arch']}), "
          f"{kat.num_threads()} threads")
    print(f"{'f(x), x = q.k/sqrt(d)':24} {'rank':>5} {'numpy':>5} {'eps-rank':>8} "
          f"{'stable':>7} {'effective':>9} {'predicted':>9} {'ms':>7}")
    for f in ("x", "x^2", "(1+x)^3", "exp(x)", "exp(2*x)", "relu(x)"):
        t0 = time.perf_counter()
        r = kat.rank(f, q, k, scale=s, eps=1e-3)
        ms = 1e3 * (time.perf_counter() - t0)
        ref = np.linalg.matrix_rank(kat.kernel_matrix(f, q, k, scale=s))
        pred = "-" if r.predicted_rank is None else str(r.predicted_rank)
        print(f"{f:24} {r.rank:5d} {ref:5d} {r.eps_rank_spectral:8d} {r.stable_rank:7.2f} "
              f"{r.effective_rank:9.2f} {pred:>9} {ms:7.1f}")
    r = kat.rank("exp(x)", q, k, scale=s, method="randomized", rtol=1e-6)
    print(f"randomized, rtol 1e-6: rank {r.rank} from {r.singular_values.size} captured singular "
          f"values in {r.passes} passes over M (converged: {r.converged})")
    fm = kat.featmap("taylor:2", d)
    r = kat.rank(fm, q, k)
    print(f"Taylor-2 feature map ({fm.dim} features): rank {r.rank}")
    r = kat.rank(RandomReLU(d), q, k)
    print(f"Python feature map RandomReLU (128 features): rank {r.rank}, "
          f"stable rank {r.stable_rank:.2f}")


if __name__ == "__main__":
    main()
