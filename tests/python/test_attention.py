"""kat.attention and kat.attention_backward on NumPy arrays against the fp64 reference, for
every pattern, with odd N, GQA, D not a multiple of 16, N = 1 and strided inputs."""
import numpy as np
import pytest

import kat
from attn_reference import EPS, allowed_mask, check_close, reference


def data(rng, B, H, Hkv, N, M, D, Dv=None):
    Dv = Dv or D
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return f(B, H, N, D), f(B, Hkv, M, D), f(B, Hkv, M, Dv), f(B, H, N, Dv)


def run_and_check(rng, frozen, pattern, B, H, Hkv, N, M, D, causal, **extra):
    q, k, v, do = data(rng, B, H, Hkv, N, M, D)
    per_call = dict(extra)
    allowed = allowed_mask(pattern, B, H, Hkv, N, M, causal, **per_call)
    scale = 1 / np.sqrt(D)
    guard = frozen(q, k, v, do, *[x for x in per_call.values() if isinstance(x, np.ndarray)])
    o, lse = kat.attention(q, k, v, pattern=pattern, causal=causal, return_lse=True, **per_call)
    dq, dk, dv = kat.attention_backward(q, k, v, o, do, lse, pattern=pattern, causal=causal,
                                        **per_call)
    guard.check()
    ref = reference(q, k, v, allowed, scale, dout=do)
    import torch
    naive = reference(q, k, v, allowed, scale, dtype=torch.float32, dout=do)
    check_close(o, ref["o"], naive["o"], ref["mag_o"], "o")
    seen = allowed.any(-1)
    np.testing.assert_allclose(lse[seen], ref["lse"][seen], rtol=1e-5, atol=1e-5)
    assert np.all(np.isneginf(lse[~seen])) and np.all(o[~seen] == 0)
    lse_term = EPS * float(np.abs(ref["lse"][seen]).max(initial=0.0))
    for name, got in (("dq", dq), ("dk", dk), ("dv", dv)):
        check_close(got, ref[name], naive[name], ref["mag_" + name], name,
                    extra=lse_term * float(ref["mag_" + name].max()))


SHAPES = [  # B, H, Hkv, N, M, D
    (1, 1, 1, 1, 1, 8),
    (2, 3, 3, 37, 37, 20),
    (1, 4, 2, 65, 65, 24),     # GQA
    (2, 2, 1, 31, 47, 33),     # N != M, D odd
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_dense(rng, frozen, shape, causal):
    run_and_check(rng, frozen, "dense", *shape, causal)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_hash_with_bucket_ids(rng, frozen, shape, causal):
    B, H, Hkv, N, M, D = shape
    for dtype in (np.int64, np.int32, np.uint8):
        qb = rng.integers(0, 3, (B, H, N)).astype(dtype)
        kb = rng.integers(0, 3, (B, Hkv, M)).astype(dtype)
        run_and_check(rng, frozen, "hash", *shape, causal, q_buckets=qb, k_buckets=kb)


@pytest.mark.parametrize("shape", SHAPES[1:])
@pytest.mark.parametrize("causal", [False, True])
def test_qkdrop_with_keep_masks(rng, frozen, shape, causal):
    B, H, Hkv, N, M, D = shape
    qk = rng.random((B, H, N)) < 0.7            # bool
    kk = (rng.random((B, Hkv, M)) < 0.6).astype(np.int8)   # integers, nonzero keeps
    run_and_check(rng, frozen, "qkdrop", *shape, causal, q_keep=qk, k_keep=kk)


@pytest.mark.parametrize("shape", SHAPES[1:3])
@pytest.mark.parametrize("spec,causal", [("window:5", True), ("window:7", False),
                                         ("window:4:3", True), ("window:0:2", False)])
def test_window(rng, frozen, shape, spec, causal):
    run_and_check(rng, frozen, spec, *shape, causal)


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_blockmask(rng, frozen, shape):
    B, H, Hkv, N, M, D = shape
    mask = rng.random((N, M)) < 0.3
    run_and_check(rng, frozen, "blockmask", *shape, False, mask=mask)
    mask = rng.random((1, H, N, M)) < 0.5
    run_and_check(rng, frozen, "blockmask", *shape, True, mask=mask)


def test_lsh_runs_and_is_seeded(rng):
    q, k, v, do = data(rng, 1, 2, 2, 40, 40, 16)
    o1, lse = kat.attention(q, k, v, pattern="lsh:4:7", return_lse=True)
    o2 = kat.attention(q, k, v, pattern="lsh:4:7")
    np.testing.assert_array_equal(o1, o2)
    dq, dk, dv = kat.attention_backward(q, k, v, o1, do, lse, pattern="lsh:4:7")
    assert all(np.isfinite(x).all() for x in (dq, dk, dv))
    # each query sees a subset of the keys: the lse is at most the dense one
    _, dense_lse = kat.attention(q, k, v, return_lse=True)
    assert np.all(lse <= dense_lse + 1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_linear_taylor(rng, frozen, causal):
    B, H, N, D = 2, 2, 45, 12
    q, k, v, do = data(rng, B, H, H, N, N, D)
    q, k = q / 3, k / 3
    allowed = allowed_mask("dense", B, H, H, N, N, causal)
    guard = frozen(q, k, v, do)
    o = kat.attention(q, k, v, pattern="linear:taylor:2", causal=causal)
    dq, dk, dv = kat.attention_backward(q, k, v, o, do, pattern="linear:taylor:2", causal=causal)
    guard.check()
    import torch
    kern = ("taylor2", float(np.sqrt(D)))
    ref = reference(q, k, v, allowed, 1.0, kernel=kern, dout=do)
    naive = reference(q, k, v, allowed, 1.0, kernel=kern, dtype=torch.float32, dout=do)
    # The chunked engine sums in another order than the naive formula: 8 eps of headroom.
    for name, got in (("o", o), ("dq", dq), ("dk", dk), ("dv", dv)):
        check_close(got, ref[name], naive[name], ref["mag_" + name], name,
                    extra=8 * EPS * float(ref["mag_" + name].max()))


def test_linear_with_a_python_map(rng):
    class Elu1:
        def __init__(self, d):
            self.in_dim = self.dim = d
            self.positive = True

        def apply(self, x):
            return np.where(x > 0, x + 1, np.exp(x))
    q, k, v, do = data(rng, 1, 2, 2, 30, 30, 8)
    o = kat.attention(q, k, v, pattern=Elu1(8), causal=True)
    builtin = kat.attention(q, k, v, pattern="linear:elu1", causal=True)
    np.testing.assert_allclose(o, builtin, rtol=1e-5, atol=1e-6)
    with pytest.raises(NotImplementedError, match="no gradient"):
        kat.attention_backward(q, k, v, o, do, pattern=Elu1(8), causal=True)


def test_strided_views_are_read_in_place(rng):
    B, H, N, D = 2, 3, 29, 16
    base = rng.standard_normal((B, N, H, 3 * D)).astype(np.float32)   # [B, N, H, 3D] packed qkv
    q, k, v = (base[..., i * D:(i + 1) * D].transpose(0, 2, 1, 3) for i in range(3))
    assert not q.flags.c_contiguous and q.base is not None
    want, wlse = kat.attention(*(np.ascontiguousarray(x) for x in (q, k, v)), causal=True,
                               return_lse=True)
    got, lse = kat.attention(q, k, v, causal=True, return_lse=True)
    np.testing.assert_array_equal(got, want)
    do = rng.standard_normal(q.shape).astype(np.float32)
    g1 = kat.attention_backward(q, k, v, got, do, lse, causal=True)
    g2 = kat.attention_backward(*(np.ascontiguousarray(x) for x in (q, k, v)), want, do, wlse,
                                causal=True)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)


def test_lower_ranks_and_scale(rng):
    q, k, v, _ = data(rng, 1, 1, 1, 9, 11, 5)
    o3 = kat.attention(q[0], k[0], v[0], scale=0.3)
    o2 = kat.attention(q[0, 0], k[0, 0], v[0, 0], scale=0.3)
    np.testing.assert_array_equal(o3[0], o2)
    ref = reference(q, k, v, np.ones((1, 1, 9, 11), bool), 0.3)
    assert np.abs(o2 - ref["o"][0, 0]).max() < 1e-5
    assert o2.shape == (9, 5)


def test_value_dimension_may_differ(rng):
    q, k, _, _ = data(rng, 1, 2, 2, 10, 10, 8)
    v = rng.standard_normal((1, 2, 10, 5)).astype(np.float32)
    o = kat.attention(q, k, v, pattern="linear:elu1")
    assert o.shape == (1, 2, 10, 5)


def test_bad_input(rng, frozen):
    q, k, v, do = data(rng, 1, 2, 2, 8, 8, 4)
    guard = frozen(q, k, v)
    with pytest.raises(ValueError, match=r"q: dtype float64; kat attention computes in float32"):
        kat.attention(q.astype(np.float64), k, v)
    with pytest.raises(ValueError, match=r"k: expected 4 dimensions like q"):
        kat.attention(q, k[0], v)
    with pytest.raises(ValueError, match="H = 2 query heads is not a multiple of H_kv = 6"):
        kat.attention(q, np.concatenate([k, k, k], axis=1), np.concatenate([v, v, v], axis=1))
    with pytest.raises(ValueError,
                       match=r"k: shape \[1, 2, 8, 3\] does not match q \[1, 2, 8, 4\]"):
        kat.attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match=r"v: the last dimension must be contiguous \(stride 4 "
                                         r"bytes, got 8\)"):
        kat.attention(q, k, np.repeat(v, 2, axis=-1)[..., ::2])
    bad = q.copy()
    bad[0, 1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"q: element \[0, 1, 2, 3\] is nan"):
        kat.attention(bad, k, v)
    qb = np.zeros((1, 2, 8), dtype=np.int64)
    qb[0, 1, 5] = -2
    with pytest.raises(ValueError, match=r"q_buckets: entry \(0, 1, 5\) is -2; bucket ids are "
                                         r"integers >= 0"):
        kat.attention(q, k, v, pattern="hash", q_buckets=qb, k_buckets=np.zeros((1, 2, 8), int))
    with pytest.raises(ValueError, match=r"k_buckets: shape \(1, 2, 7\), expected \(1, 2, 8\)"):
        kat.attention(q, k, v, pattern="hash", q_buckets=np.zeros((1, 2, 8), int),
                      k_buckets=np.zeros((1, 2, 7), int))
    with pytest.raises(ValueError, match="q_buckets: dtype float32 is not an integer type"):
        kat.attention(q, k, v, pattern="hash", q_buckets=np.zeros((1, 2, 8), np.float32),
                      k_buckets=np.zeros((1, 2, 8), int))
    with pytest.raises(ValueError, match="pattern 'hash' needs q_buckets and k_buckets"):
        kat.attention(q, k, v, pattern="hash")
    with pytest.raises(ValueError, match="q_keep/k_keep: only the qkdrop pattern"):
        kat.attention(q, k, v, q_keep=np.ones((1, 2, 8), bool))
    with pytest.raises(ValueError, match="pattern 'blockmask' needs mask="):
        kat.attention(q, k, v, pattern="blockmask")
    with pytest.raises(ValueError, match=r"pattern 'sparse': unknown kind"):
        kat.attention(q, k, v, pattern="sparse")
    with pytest.raises(ValueError, match="return_lse: linear attention has no softmax"):
        kat.attention(q, k, v, pattern="linear:elu1", return_lse=True)
    with pytest.raises(ValueError, match="needs a feature map"):
        kat.attention(q, k, v, pattern="linear")
    o, lse = kat.attention(q, k, v, pattern="window:3", return_lse=True)
    with pytest.raises(ValueError, match=r"dout: shape \(1, 2, 8, 3\), expected \(1, 2, 8, 4\)"):
        kat.attention_backward(q, k, v, o, do[..., :3], lse, pattern="window:3")
    guard.check()


def test_read_only_inputs(rng):
    q, k, v, do = data(rng, 1, 2, 2, 16, 16, 8)
    for a in (q, k, v, do):
        a.flags.writeable = False
    o, lse = kat.attention(q, k, v, return_lse=True, causal=True)
    kat.attention_backward(q, k, v, o, do, lse, causal=True)
    x = rng.standard_normal((10, 3))
    x.flags.writeable = False
    assert kat.rank("exp(x)", x).rank == 10


@pytest.mark.parametrize("shape", SHAPES[1:])
@pytest.mark.parametrize("causal", [False, True])
def test_lsh_equals_hash_with_its_buckets(rng, frozen, shape, causal):
    """lsh:NB:SEED is hash attention with kat.lsh_buckets' ids (queries grouped per key/value
    head): the same bytes forward and backward; hash attention with such ids is checked
    against the fp64 reference as well."""
    B, H, Hkv, N, M, D = shape
    q, k, v, do = data(rng, B, H, Hkv, N, M, D)
    qb = kat.lsh_buckets(q, 4, seed=11, group=H // Hkv)
    kb = kat.lsh_buckets(k, 4, seed=11)
    assert qb.dtype == np.int32 and qb.shape == (B, H, N) and 0 <= qb.min() and qb.max() < 4
    o1, l1 = kat.attention(q, k, v, pattern="lsh:4:11", causal=causal, return_lse=True)
    o2, l2 = kat.attention(q, k, v, pattern="hash:4", q_buckets=qb, k_buckets=kb,
                           causal=causal, return_lse=True)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(l1, l2)
    g1 = kat.attention_backward(q, k, v, o1, do, l1, pattern="lsh:4:11", causal=causal)
    g2 = kat.attention_backward(q, k, v, o2, do, l2, pattern="hash:4", q_buckets=qb,
                                k_buckets=kb, causal=causal)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    run_and_check(rng, frozen, "hash", *shape, causal, q_buckets=qb, k_buckets=kb)
