"""kat.rank against numpy.linalg: the same tolerance gives the same rank."""
import numpy as np
import pytest

import kat


def numpy_rank(m, rtol=0.0, atol=0.0):
    """numpy's rank with kat's tolerance rule (numpy's default when neither is given)."""
    sv = np.linalg.svd(m, compute_uv=False)
    if rtol == 0 and atol == 0:
        return np.linalg.matrix_rank(m), sv
    tol = max(atol, rtol * sv[0])
    return int(np.sum(sv > tol)), sv


CASES = [
    # (f, form, scale, n, m, d)
    ("x", "inner", 1.0, 40, 30, 5),
    ("x^2", "inner", 1.0, 60, 50, 4),
    ("(1+x)^3", "inner", 0.5, 70, 80, 3),
    ("exp(x/4)", "inner", 1.0, 50, 45, 6),
    ("exp(-x)", "l2sq", 1.0, 33, 41, 3),
    ("x", "l2sq", 1.0, 30, 30, 4),
    ("exp(-x)", "l1", 0.7, 25, 31, 2),
]


@pytest.mark.parametrize("f,form,scale,n,m,d", CASES)
def test_rank_equals_matrix_rank_random(rng, frozen, f, form, scale, n, m, d):
    q, k = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    guard = frozen(q, k)
    r = kat.rank(f, q, k, form=form, scale=scale)
    guard.check()
    explicit = kat.kernel_matrix(f, q, k, form=form, scale=scale)
    want, sv = numpy_rank(explicit)
    assert r.rank == want
    assert r.singular_values.shape == (min(n, m),)
    np.testing.assert_allclose(r.singular_values, sv, rtol=1e-10, atol=1e-12 * sv[0])
    assert r.stable_rank == pytest.approx(np.sum(sv ** 2) / sv[0] ** 2, rel=1e-10)
    p = sv / sv.sum()
    p = p[p > 0]
    assert r.effective_rank == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-9)


def test_kernel_matrix_matches_numpy(rng):
    q, k = rng.standard_normal((7, 3)), rng.standard_normal((5, 3))
    np.testing.assert_allclose(kat.kernel_matrix("exp(x/2)", q, k), np.exp(q @ k.T / 2),
                               rtol=1e-13)
    d2 = ((q[:, None, :] - k[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(kat.kernel_matrix(None, q, k, form="l2sq"), d2, rtol=1e-12,
                               atol=1e-12)
    d1 = np.abs(q[:, None, :] - k[None, :, :]).sum(-1)
    np.testing.assert_allclose(kat.kernel_matrix("x", q, k, form="l1", scale=3.0), 3 * d1,
                               rtol=1e-13)


@pytest.mark.parametrize("rtol,atol", [(1e-3, 0.0), (0.0, 1e-2), (1e-8, 1e-6), (0.3, 0.0)])
def test_rank_with_tolerances(rng, rtol, atol):
    q, k = rng.standard_normal((50, 6)), rng.standard_normal((40, 6))
    r = kat.rank("exp(x)", q, k, rtol=rtol, atol=atol)
    want, sv = numpy_rank(np.exp(q @ k.T), rtol, atol)
    assert r.rank == want
    assert r.tol == pytest.approx(max(atol, rtol * sv[0]), rel=1e-12)


def test_structured_inputs(rng):
    # Low rank by construction: Q K^T of rank 3 in d = 8, and x^2 of it (rank C(4, 2) = 6).
    basis = rng.standard_normal((3, 8))
    q, k = rng.standard_normal((40, 3)) @ basis, rng.standard_normal((35, 3)) @ basis
    for f, want in (("x", 3), ("x^2", 6), ("x^3", 10)):
        r = kat.rank(f, q, k)
        assert r.rank == np.linalg.matrix_rank(kat.kernel_matrix(f, q, k)) == want
        assert r.predicted_rank == want
    # The hypercube {0,1}^4: x^2 = x coordinate-wise, so ranks fall below the generic ones.
    cube = kat.points("hypercube", 16, 4, enumerate=True)
    for f in ("x^2", "(1+x)^3", "exp(x)"):
        assert kat.rank(f, cube).rank == np.linalg.matrix_rank(kat.kernel_matrix(f, cube))
    # Repeated rows and a zero matrix.
    rep = np.repeat(rng.standard_normal((4, 3)), 5, axis=0)
    assert kat.rank("exp(x)", rep).rank == 4
    z = kat.rank("x", np.zeros((5, 3)))
    assert z.rank == 0 and z.stable_rank == 0.0


def test_predicted_rank_for_polynomials(rng):
    q, k = rng.standard_normal((120, 3)), rng.standard_normal((110, 3))
    for f, want in (("x^2", 6), ("(1+x)^2", 10), ("x^3 + x", 13)):
        r = kat.rank(f, q, k)
        assert r.predicted_rank == want == r.rank
    assert kat.rank("exp(x)", q, k).predicted_rank is None
    assert kat.rank("x^2", q, k, predict=False).predicted_rank is None


def test_eps_ranks(rng):
    q = rng.standard_normal((60, 5)) / 2
    r = kat.rank("exp(x)", q, eps=1e-3)
    sv = np.linalg.svd(np.exp(q @ q.T), compute_uv=False)
    spectral = int(np.argmax(np.append(sv, 0.0) <= 1e-3 * sv[0]))
    tail = np.sqrt(np.cumsum((sv ** 2)[::-1])[::-1])   # tail[r] = |M - M_r|_F
    frob = int(np.argmax(np.append(tail, 0.0) <= 1e-3 * np.sqrt(np.sum(sv ** 2))))
    assert r.eps_rank_spectral == spectral
    assert r.eps_rank_frobenius == frob
    assert kat.rank("exp(x)", q).eps_rank_spectral is None


def test_randomized_matches_dense(rng):
    q, k = rng.standard_normal((300, 4)), rng.standard_normal((280, 4))
    dense = kat.rank("(1+x)^3", q, k)
    rnd = kat.rank("(1+x)^3", q, k, method="randomized", seed=3)
    assert rnd.method == "randomized" and rnd.converged
    assert rnd.rank == dense.rank == 35
    np.testing.assert_allclose(rnd.singular_values[:10], dense.singular_values[:10], rtol=1e-8)


def test_strided_and_converted_inputs(rng):
    base = rng.standard_normal((80, 10))
    q = base[::2, :4]             # every other row, first 4 columns: row stride 20 doubles
    assert not q.flags.c_contiguous
    want = kat.rank("exp(x)", np.ascontiguousarray(q))
    got = kat.rank("exp(x)", q)
    np.testing.assert_array_equal(got.singular_values, want.singular_values)
    f32 = kat.rank("x^2", q.astype(np.float32))
    assert f32.rank == kat.rank("x^2", q.astype(np.float32).astype(np.float64)).rank
    grid = np.arange(12, dtype=np.int32).reshape(6, 2)   # integer point grids are read too
    g64 = grid.astype(np.float64)
    assert kat.rank("x^2", grid).rank == np.linalg.matrix_rank((g64 @ g64.T) ** 2)


def test_python_function_is_called_by_kat(rng):
    q, k = rng.standard_normal((30, 3)), rng.standard_normal((20, 3))
    r = kat.rank(lambda x: np.exp(x / 3), q, k)
    assert r.rank == kat.rank("exp(x/3)", q, k).rank
    np.testing.assert_allclose(kat.kernel_matrix(np.tanh, q, k), np.tanh(q @ k.T), rtol=1e-14)


def test_matrix_rank_of_a_given_matrix(rng):
    m = rng.standard_normal((30, 4)) @ rng.standard_normal((4, 25))
    assert kat.matrix_rank(m).rank == np.linalg.matrix_rank(m) == 4
    assert int(kat.matrix_rank(m)) == 4


def test_points(rng):
    g = kat.points("gauss", 1000, 4, seed=7)
    assert g.shape == (1000, 4)
    np.testing.assert_array_equal(g, kat.points("gauss", 1000, 4, seed=7))
    assert abs(g.std() - 0.5) < 0.03   # sigma = 1/sqrt(d)
    s = kat.points("sphere", 10, 3, seed=1)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, rtol=1e-14)
    cube = kat.points("hypercube", 8, 3, enumerate=True, pm1=True)
    assert sorted(map(tuple, cube)) == sorted({tuple(r) for r in cube})
    assert set(np.unique(cube)) == {-1.0, 1.0}
    rect = kat.points("rect", 4, 2, enumerate=True, sides=[2.0, 5.0])
    np.testing.assert_array_equal(rect, [[0, 0], [0, 5], [2, 0], [2, 5]])
