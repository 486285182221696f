"""Spectra against numpy.linalg.eigvalsh of the explicit matrices (built here in NumPy)."""
import math
from itertools import product

import numpy as np
import pytest

import kat


def corners(sides):
    """Corner b of the box: coordinate t is sides[t] when bit t of b is set."""
    d = len(sides)
    return np.array([[sides[t] if (b >> t) & 1 else 0.0 for t in range(d)]
                     for b in range(1 << d)])


@pytest.mark.parametrize("f,fnp", [("exp(-x)", lambda x: np.exp(-x)),
                                   ("1/(1+x)", lambda x: 1 / (1 + x)),
                                   ("x^2 - 3*x", lambda x: x ** 2 - 3 * x)])
@pytest.mark.parametrize("d", [1, 3, 6])
def test_hypercube_spectrum(f, fnp, d):
    lam, mult = kat.hypercube_spectrum(f, d)
    x = corners([1.0] * d)
    explicit = fnp(np.abs(x[:, None, :] - x[None, :, :]).sum(-1))
    want = np.linalg.eigvalsh(explicit)
    got = np.sort(np.repeat(lam, mult.astype(int)))
    np.testing.assert_allclose(got, want, atol=1e-10 * np.abs(want).max())
    np.testing.assert_array_equal(mult, [math.comb(d, j) for j in range(d + 1)])


@pytest.mark.parametrize("sides", [[1.0], [0.5, 2.0], [1.0, 0.3, 2.5, 0.7]])
def test_hyperrect_spectrum(sides):
    lam = kat.hyperrect_spectrum("exp(-x)", sides)
    x = corners(sides)
    explicit = np.exp(-np.abs(x[:, None, :] - x[None, :, :]).sum(-1))
    np.testing.assert_allclose(kat.hyperrect_matrix("exp(-x)", sides), explicit, rtol=1e-14)
    np.testing.assert_allclose(np.sort(lam), np.linalg.eigvalsh(explicit), atol=1e-12)
    # Walsh character S is the eigenvector of lambda[S].
    for S in range(1 << len(sides)):
        chi = np.array([(-1) ** bin(S & b).count("1") for b in range(1 << len(sides))])
        np.testing.assert_allclose(explicit @ chi, lam[S] * chi, atol=1e-12)


@pytest.mark.parametrize("N", [1, 2, 7, 16])
def test_cyclic_spectrum(N):
    lam = kat.cyclic_spectrum("exp(-x/2)", N)
    delta = np.array([[min((i - j) % N, (j - i) % N) for j in range(N)] for i in range(N)])
    np.testing.assert_allclose(np.sort(lam), np.linalg.eigvalsh(np.exp(-delta / 2)),
                               atol=1e-12)


def test_circulant_spectrum(rng):
    c = rng.standard_normal(9)
    C = np.array([[c[(j - i) % 9] for j in range(9)] for i in range(9)])
    got = kat.circulant_spectrum(c)
    np.testing.assert_allclose(np.sort_complex(got), np.sort_complex(np.linalg.eigvals(C)),
                               atol=1e-12)


@pytest.mark.parametrize("metric", ["l1", "l2", "l2sq", "inner"])
def test_point_spectrum(rng, metric):
    x = rng.standard_normal((25, 3))
    diff = x[:, None, :] - x[None, :, :]
    dist = {"l1": np.abs(diff).sum(-1), "l2": np.sqrt((diff ** 2).sum(-1)),
            "l2sq": (diff ** 2).sum(-1), "inner": x @ x.T}[metric]
    np.testing.assert_allclose(kat.point_kernel(None, x, metric), dist, atol=1e-12)
    K = np.exp(-dist / 4)
    np.testing.assert_allclose(kat.point_kernel("exp(-x/4)", x, metric), K, atol=1e-14)
    np.testing.assert_allclose(kat.point_spectrum("exp(-x/4)", x, metric),
                               np.linalg.eigvalsh(K)[::-1], atol=1e-12)


def test_embeddings():
    sides = [1.0, 0.5, 2.0]
    x = corners(sides)
    d1 = np.abs(x[:, None, :] - x[None, :, :]).sum(-1)
    target = np.sqrt(d1)   # sqrt is a Bernstein function: sqrt(l1) embeds in l1 and l2^2
    P = kat.embed("l1", "sqrt(x)", sides)
    assert P.shape == (8, 7)
    np.testing.assert_allclose(np.abs(P[:, None, :] - P[None, :, :]).sum(-1), target,
                               atol=1e-12)
    P = kat.embed("l2sq", "sqrt(x)", sides)
    np.testing.assert_allclose(((P[:, None, :] - P[None, :, :]) ** 2).sum(-1), target,
                               atol=1e-12)
    G = kat.embed("gram", "exp(-x)", sides)
    assert G.shape == (8, 8)
    np.testing.assert_allclose(G @ G.T, np.exp(-d1), atol=1e-12)
    with pytest.raises(ValueError, match="f = x is not positive definite"):
        kat.embed("gram", "x", sides)   # x is not positive definite on the corners


def test_monotone_checks():
    assert kat.completely_monotone("exp(-x)")
    assert kat.completely_monotone(lambda x: 1 / (1 + x))
    bad = kat.completely_monotone("cos(x)")
    assert not bad and bad.violations > 0 and bad.condition
    assert kat.bernstein("sqrt(x)") and kat.bernstein("1 - exp(-x)")
    assert not kat.bernstein("x^2")
