"""Feature maps: score against apply, fp32 against fp64, maps written in Python."""
import numpy as np
import pytest

import kat

EXACT_SPECS = ["taylor:1", "taylor:2", "taylor:3", "poly:(1+x)^2", "poly:x^3 - 2*x", "elu1"]


@pytest.mark.parametrize("spec", EXACT_SPECS)
@pytest.mark.parametrize("d", [1, 3, 5])
def test_exact_maps_score_equals_features(rng, frozen, spec, d):
    fm = kat.featmap(spec, d)
    assert fm.in_dim == d and fm.exact
    q, k = rng.standard_normal((9, d)) / 2, rng.standard_normal((7, d)) / 2
    guard = frozen(q, k)
    phi, psi = fm.apply(q), fm.apply_key(k)
    guard.check()
    assert phi.shape == (9, fm.dim) and psi.shape == (7, fm.dim)
    np.testing.assert_allclose(phi @ psi.T, fm.score(q, k), rtol=1e-12, atol=1e-12)
    assert fm.score(q[0], k[0]) == pytest.approx(float(phi[0] @ psi[0]), rel=1e-12)


def test_taylor_dimension_and_kernel(rng):
    d = 4
    fm = kat.featmap("taylor:2", d)
    assert fm.dim == 1 + d + d * (d + 1) // 2 and fm.positive
    q, k = rng.standard_normal((5, d)), rng.standard_normal((6, d))
    x = q @ k.T / np.sqrt(d)   # s = 1/sqrt(d) by default
    np.testing.assert_allclose(fm.score(q, k), 1 + x + x ** 2 / 2, rtol=1e-13)
    fm2 = kat.featmap("taylor:2", d, scale=0.25)
    x = q @ k.T / 4
    np.testing.assert_allclose(fm2.score(q, k), 1 + x + x ** 2 / 2, rtol=1e-13)
    assert kat.poly([1.0, 2.0, 1.0], d).dim == kat.featmap("poly:(1+x)^2", d).dim


@pytest.mark.parametrize("spec", ["rff:4000", "rff:2000:pair", "rff-laplace:4000",
                                  "favor:4000", "favor:4000:ortho"])
def test_random_maps_estimate_their_kernel(rng, spec):
    d = 3
    fm = kat.featmap(spec, d, seed=5)
    assert not fm.exact
    q, k = rng.standard_normal((6, d)) / 2, rng.standard_normal((5, d)) / 2
    est = fm.apply(q) @ fm.apply_key(k).T
    exact = fm.score(q, k)
    diff = q[:, None, :] - k[None, :, :]
    sigma = d ** 0.25   # kat's default bandwidth, in every command that takes a spec
    want = {"rff": np.exp(-(diff ** 2).sum(-1) / (2 * sigma ** 2)),
            "rff-laplace": np.exp(-np.abs(diff).sum(-1) / sigma),
            "favor": np.exp(q @ k.T / np.sqrt(d))}[spec.split(":")[0]]
    np.testing.assert_allclose(exact, want, rtol=1e-12)
    assert np.abs(est - exact).max() < 0.1   # Monte Carlo error ~ 1/sqrt(M)
    np.testing.assert_array_equal(fm.apply(q), kat.featmap(spec, d, seed=5).apply(q))


@pytest.mark.parametrize("spec", ["taylor:2", "favor:64", "rff:32", "elu1", "poly:(1+x)^3"])
def test_fp32_path_matches_fp64(rng, spec):
    fm = kat.featmap(spec, 8, seed=1)
    x = (rng.standard_normal((33, 8)) / 3).astype(np.float32)
    f32 = fm.apply(x)
    assert f32.dtype == np.float32
    f64 = fm.apply(x.astype(np.float64))
    np.testing.assert_allclose(f32, f64, rtol=2e-5, atol=2e-6 * np.abs(f64).max())


def test_group_map_on_corners():
    fm = kat.featmap("group", 3)
    cube = kat.points("hypercube", 8, 3, enumerate=True)
    np.testing.assert_allclose(fm.apply(cube) @ fm.apply_key(cube).T,
                               np.exp(-np.abs(cube[:, None] - cube[None]).sum(-1)), atol=1e-12)
    low = kat.group("exp(-x)", 3, rank=2)
    assert low.dim == 2 and not low.exact


class SquareMap:
    """phi(x) = (x_i x_j)_{i,j}: the kernel (q.k)^2, written in Python."""

    def __init__(self, d):
        self.in_dim, self.dim = d, d * d
        self.calls = 0

    def apply(self, x):
        self.calls += 1
        return np.einsum("ni,nj->nij", x, x).reshape(len(x), -1)


def test_python_map_runs_through_the_rank_probe(rng):
    q, k = rng.standard_normal((40, 3)), rng.standard_normal((30, 3))
    m = SquareMap(3)
    r = kat.rank(m, q, k)
    assert m.calls >= 2   # kat called it (query and key side)
    assert r.rank == kat.rank("x^2", q, k).rank == 6
    want = (q @ k.T) ** 2
    np.testing.assert_allclose(kat.kernel_matrix(m, q, k), want, atol=1e-13 * want.max())
    fm = kat.featmap(m)
    assert fm.dim == 9 and fm.in_dim == 3
    np.testing.assert_allclose(fm.score(q, k), want, atol=1e-13 * want.max())


def test_python_map_with_a_key_side(rng):
    class Signed:
        in_dim, dim = 2, 2

        def apply(self, x):
            return x

        def apply_key(self, x):
            return -x
    q = rng.standard_normal((5, 2))
    np.testing.assert_allclose(kat.kernel_matrix(Signed(), q, q), -(q @ q.T), rtol=1e-14)


def test_python_map_errors_come_back(rng):
    class Broken:
        in_dim, dim = 2, 3

        def apply(self, x):
            return np.zeros((len(x), 2))   # wrong width
    with pytest.raises(ValueError, match=r"apply returned shape \(\d+, 2\)"):
        kat.rank(Broken(), rng.standard_normal((4, 2)))

    class Raises:
        in_dim, dim = 2, 2

        def apply(self, x):
            raise KeyError("from the map")
    with pytest.raises(KeyError, match="from the map"):
        kat.kernel_matrix(Raises(), rng.standard_normal((4, 2)))


SPEC_MAPS = [   # a spec, and the map that kat's grammar documents for it (include/kat/featmaps.h)
    ("taylor:2", lambda d, s: kat.taylor(d, 2)),
    ("taylor2", lambda d, s: kat.taylor(d, 2)),
    ("favor:64:ortho", lambda d, s: kat.favor(d, 64, orthogonal=True, seed=s)),
    ("favor:16:stable", lambda d, s: kat.favor(d, 16, stable=True, seed=s)),
    ("rff:32", lambda d, s: kat.rff(d, 32, sigma=d ** 0.25, seed=s)),
    ("rff:32:pair", lambda d, s: kat.rff(d, 32, sigma=d ** 0.25, pair=True, seed=s)),
    ("rff-laplace:8", lambda d, s: kat.rff(d, 8, sigma=d ** 0.25, kernel="laplace", seed=s)),
    ("elu1", lambda d, s: kat.elu1(d)),
    ("poly:(1+x)^2", lambda d, s: kat.poly([1.0, 2.0, 1.0], d)),
]


@pytest.mark.parametrize("spec,made", SPEC_MAPS)
@pytest.mark.parametrize("d", [1, 6])
def test_spec_is_the_library_grammar(rng, spec, made, d):
    """kat.featmap(spec) goes through kat_featmap_parse, as every CLI command does: the same
    features, bit for bit, as the constructor with the grammar's defaults and the same seed."""
    fm, ref = kat.featmap(spec, d, seed=7), made(d, 7)
    assert fm.dim == ref.dim and fm.name == ref.name
    for dt in (np.float64, np.float32):
        x = rng.standard_normal((11, d)).astype(dt)
        for side in ("query", "key"):
            np.testing.assert_array_equal(fm.apply(x, side), ref.apply(x, side))


def test_spec_scale_and_seed():
    d = 5
    x = np.linspace(-1, 1, 3 * d).reshape(3, d)
    np.testing.assert_array_equal(kat.featmap("rff:16", d, scale=2.0, seed=3).apply(x),
                                  kat.rff(d, 16, sigma=2.0, seed=3).apply(x))
    np.testing.assert_array_equal(kat.featmap("taylor:2", d, scale=0.25).apply(x),
                                  kat.taylor(d, 2, tau=4.0).apply(x))
    assert not np.array_equal(kat.featmap("rff:16", d, seed=3).apply(x),
                              kat.featmap("rff:16", d, seed=4).apply(x))


def test_default_seed_is_the_librarys():
    """Without a seed, kat.featmap and the constructors draw with the library's
    KAT_FEATMAP_DEFAULT_SEED (0), the default of `kat features --seed` too."""
    assert kat.FEATMAP_DEFAULT_SEED == 0
    d = 4
    x = np.linspace(-1, 1, 3 * d).reshape(3, d)
    for spec, made in [("rff:16", lambda: kat.rff(d, 16, sigma=d ** 0.25)),
                       ("favor:16", lambda: kat.favor(d, 16))]:
        default = kat.featmap(spec, d).apply(x)
        np.testing.assert_array_equal(default, kat.featmap(spec, d, seed=0).apply(x))
        np.testing.assert_array_equal(default, made().apply(x))
        assert not np.array_equal(default, kat.featmap(spec, d, seed=1).apply(x))


@pytest.mark.parametrize("spec,msg", [   # the sentences of kat features --map, word for word
    ("favor:0", "map 'favor:0': the feature count M must be >= 1"),
    ("taylor", "map 'taylor': taylor needs an order P >= 0 (taylor:P or taylorP), got ''"),
    ("rff:x", "map 'rff:x': 'x' is not a feature count M"),
    ("favor:8:fast", "map 'favor:8:fast': unknown option 'fast' (expected ortho or stable)"),
    ("softmax", "unknown map 'softmax' (taylor:P, taylorP, poly:EXPR, rff:M[:pair], "
                "rff-laplace:M[:pair], favor:M[:ortho][:stable], elu1, group[:R])"),
])
def test_bad_specs_carry_the_library_sentence(spec, msg):
    with pytest.raises(ValueError) as e:
        kat.featmap(spec, 4)
    assert str(e.value) == msg
    with pytest.raises(ValueError) as e:   # the linear pattern reads its map the same way
        kat.attention(*(np.ones((1, 3, 4), np.float32),) * 3, pattern="linear:" + spec)
    assert str(e.value) == msg


@pytest.mark.parametrize("kw,msg", [
    (dict(scale=0.0), "scale = 0.0 must be > 0"),
    (dict(scale=-1.0), "scale = -1.0 must be > 0"),
])
def test_bad_scale(kw, msg):
    with pytest.raises(ValueError, match=msg):
        kat.featmap("rff:4", 4, **kw)
    with pytest.raises(ValueError, match="elu1 maps take no scale"):
        kat.featmap("elu1", 4, scale=2.0)
