"""kat.torch.attention: forward and autograd against torch fp64 autograd, SDPA's conventions,
and the errors of unsupported paths."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import kat.torch as kt   # noqa: E402
from attn_reference import EPS, allowed_mask, check_close, reference   # noqa: E402


def tensors(B, H, Hkv, N, M, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    mk = lambda *s: torch.randn(*s, generator=g).requires_grad_()
    return mk(B, H, N, D), mk(B, Hkv, M, D), mk(B, Hkv, M, D)


def check(q, k, v, o, allowed, scale):
    """o and the gradients of the leaves q, k, v ([B, H, N, D] or [H, N, D]) against fp64."""
    do = torch.randn(o.shape, generator=torch.Generator().manual_seed(9))
    o.backward(do)
    as4 = lambda t: t.detach().numpy().reshape((1,) * (4 - t.dim()) + tuple(t.shape))
    args = [as4(x) for x in (q, k, v)]
    ref = reference(*args, allowed, scale, dout=as4(do))
    naive = reference(*args, allowed, scale, dtype=torch.float32, dout=as4(do))
    check_close(as4(o), ref["o"], naive["o"], ref["mag_o"], "o")
    lse_max = float(np.abs(ref["lse"][allowed.any(-1)]).max(initial=0.0))
    for name, t in (("dq", q), ("dk", k), ("dv", v)):
        check_close(as4(t.grad), ref[name], naive[name], ref["mag_" + name], name,
                    extra=EPS * lse_max * float(ref["mag_" + name].max()))


@pytest.mark.parametrize("B,H,Hkv,N,D", [(1, 1, 1, 1, 8), (2, 3, 3, 37, 20), (1, 4, 2, 65, 24),
                                          (2, 2, 1, 31, 33)])
@pytest.mark.parametrize("causal", [False, True])
def test_dense_autograd(B, H, Hkv, N, D, causal):
    q, k, v = tensors(B, H, Hkv, N, N, D)
    o = kt.attention(q, k, v, is_causal=causal, enable_gqa=H != Hkv)
    check(q, k, v, o, allowed_mask("dense", B, H, Hkv, N, N, causal), 1 / np.sqrt(D))


def test_explicit_scale_and_3d(rng):
    q, k, v = tensors(1, 2, 2, 9, 9, 6)
    q3, k3, v3 = (x.detach()[0].requires_grad_() for x in (q, k, v))
    o = kt.attention(q3, k3, v3, scale=0.2)
    assert o.shape == (2, 9, 6)
    check(q3, k3, v3, o, allowed_mask("dense", 1, 2, 2, 9, 9, False), 0.2)


def test_transposed_layout_without_copy():
    B, N, H, D = 2, 23, 3, 16
    qkv = torch.randn(B, N, 3, H, D)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))   # [B, H, N, D] views
    assert not q.is_contiguous()
    for t in (q, k, v):
        t.requires_grad_()
    o = kt.attention(q, k, v, is_causal=True)
    want = kt.attention(*(t.detach().contiguous() for t in (q, k, v)), is_causal=True)
    assert torch.equal(o.detach(), want)
    check(q, k, v, o, allowed_mask("dense", B, H, H, N, N, True), 1 / np.sqrt(D))


def test_hash_keep_window_and_mask():
    B, H, N, D = 2, 2, 41, 16
    q, k, v = tensors(B, H, H, N, N, D)
    qb = torch.randint(0, 3, (B, H, N))
    kb = torch.randint(0, 3, (B, H, N))
    o = kt.attention(q, k, v, is_causal=True, pattern="hash", q_buckets=qb, k_buckets=kb)
    check(q, k, v, o, allowed_mask("hash", B, H, H, N, N, True, q_buckets=qb.numpy(),
                                   k_buckets=kb.numpy()), 1 / np.sqrt(D))
    q, k, v = tensors(B, H, H, N, N, D, seed=1)
    keep = torch.rand(B, H, N) < 0.7
    o = kt.attention(q, k, v, pattern="qkdrop", q_keep=keep, k_keep=keep)
    check(q, k, v, o, allowed_mask("qkdrop", B, H, H, N, N, False, q_keep=keep.numpy(),
                                   k_keep=keep.numpy()), 1 / np.sqrt(D))
    q, k, v = tensors(B, H, H, N, N, D, seed=2)
    o = kt.attention(q, k, v, is_causal=True, pattern="window:6:2")
    check(q, k, v, o, allowed_mask("window:6:2", B, H, H, N, N, True), 1 / np.sqrt(D))
    q, k, v = tensors(B, H, H, N, N, D, seed=3)
    m = torch.rand(N, N) < 0.4
    o = kt.attention(q, k, v, attn_mask=m)
    check(q, k, v, o, allowed_mask("blockmask", B, H, H, N, N, False, mask=m.numpy()),
          1 / np.sqrt(D))


def test_linear_autograd():
    B, H, N, D = 1, 2, 40, 8
    q, k, v = tensors(B, H, H, N, N, D)
    with torch.no_grad():
        q /= 3
        k /= 3
    o = kt.attention(q, k, v, is_causal=True, pattern="linear:taylor:2")
    do = torch.randn(o.shape)
    o.backward(do)
    qd, kd, vd = (x.detach().double().requires_grad_() for x in (q, k, v))
    s = qd @ kd.transpose(-1, -2)
    tau = np.sqrt(D)
    f = (1 + s / tau + s * s / (2 * tau * tau)) * torch.ones(N, N).tril().double()
    ro = (f / f.sum(-1, keepdim=True)) @ vd
    ro.backward(do.double())
    assert (o.detach().double() - ro.detach()).abs().max() < 1e-5
    for a, b in ((q, qd), (k, kd), (v, vd)):
        assert (a.grad.double() - b.grad).abs().max() < 1e-4 * max(1.0, b.grad.abs().max())


@pytest.mark.skipif(not hasattr(torch.nn.functional, "scaled_dot_product_attention"),
                    reason="torch < 2.0 has no scaled_dot_product_attention")
@pytest.mark.parametrize("causal", [False, True])
def test_matches_sdpa(causal):
    q, k, v = tensors(2, 4, 4, 50, 50, 32)
    o = kt.attention(q, k, v, is_causal=causal)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert (o - want).abs().max() < 1e-5


def test_module_trains():
    torch.manual_seed(0)
    B, N, E, H = 4, 32, 32, 4

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = torch.nn.Linear(E, 3 * E)
            self.attn = kt.Attention(pattern="lsh:4", is_causal=True)
            self.out = torch.nn.Linear(E, E)

        def forward(self, x):
            q, k, v = self.qkv(x).view(B, N, 3, H, E // H).unbind(2)
            y = self.attn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            return self.out(y.transpose(1, 2).reshape(B, N, E))

    model = Block()
    x = torch.randn(B, N, E)
    target = torch.randn(B, N, E)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses
    assert "lsh:4" in repr(model)


def test_errors():
    q, k, v = tensors(1, 2, 2, 8, 8, 4)
    with pytest.raises(NotImplementedError, match="dropout_p = 0.1"):
        kt.attention(q, k, v, dropout_p=0.1)
    with pytest.raises(NotImplementedError, match="attn_mask of dtype torch.float32"):
        kt.attention(q, k, v, attn_mask=torch.zeros(8, 8))
    with pytest.raises(ValueError, match="is_causal with N = 8 queries and M = 5 keys"):
        kt.attention(q, k[:, :, :5], v[:, :, :5], is_causal=True)
    with pytest.raises(ValueError, match="pass enable_gqa=True"):
        kt.attention(q, k[:, :1], v[:, :1])
    with pytest.raises(ValueError, match="query: dtype torch.float64"):
        kt.attention(q.double(), k, v)
    with pytest.raises(ValueError, match="the last dimension must be contiguous"):
        kt.attention(torch.randn(1, 2, 8, 8)[..., ::2], k, v)
    with pytest.raises(ValueError, match=r"q_buckets: entry \(0, 0, 3\) is -1"):
        qb = torch.zeros(1, 2, 8, dtype=torch.int64)
        qb[0, 0, 3] = -1
        kt.attention(q, k, v, pattern="hash", q_buckets=qb, k_buckets=torch.zeros(1, 2, 8,
                                                                                 dtype=torch.int64))
    with pytest.raises(ValueError, match="q_buckets: dtype float32 is not an integer type"):
        kt.attention(q, k, v, pattern="hash", q_buckets=torch.zeros(1, 2, 8),
                     k_buckets=torch.zeros(1, 2, 8))

    class Identity:
        in_dim = dim = 4
        positive = True

        def apply(self, x):
            return np.exp(x)
    with pytest.raises(NotImplementedError, match="feature map Identity has no gradient"):
        kt.attention(q, k, v, pattern=Identity())
    with torch.no_grad():   # forward only: fine
        assert kt.attention(q, k, v, pattern=Identity()).shape == q.shape


def test_expanded_incoming_gradient():
    """o.sum().backward() hands the backward an expanded gradient (all strides 0)."""
    q, k, v = tensors(1, 2, 2, 12, 12, 8)
    kt.attention(q, k, v, is_causal=True).sum().backward()
    q2, k2, v2 = (x.detach().clone().requires_grad_() for x in (q, k, v))
    kt.attention(q2, k2, v2, is_causal=True).backward(torch.ones(1, 2, 12, 8))
    for a, b in ((q, q2), (k, k2), (v, v2)):
        assert torch.equal(a.grad, b.grad)


def shared_and_rebuilt(monkeypatch, make, **kw):
    """Output and gradients of one call with the forward's index kept for the backward, and
    of the same call with the backward sorting and tiling the pattern data again."""
    runs = []
    for share in (True, False):
        monkeypatch.setattr(kt, "_share_index", share)
        q, k, v = make()
        o = kt.attention(q, k, v, **kw)
        o.backward(torch.randn(o.shape, generator=torch.Generator().manual_seed(4)))
        runs.append([o.detach()] + [t.grad for t in (q, k, v)])
    return runs


@pytest.mark.parametrize("case", ["hash", "qkdrop", "lsh", "mask", "gqa-hash"])
def test_shared_index_gives_identical_gradients(monkeypatch, case):
    B, H, Hkv, N, D = 2, 4, 4 if case != "gqa-hash" else 2, 75, 24
    make = lambda: tensors(B, H, Hkv, N, N, D, seed=5)
    g = torch.Generator().manual_seed(6)
    kw = {"hash": dict(pattern="hash", is_causal=True,
                       q_buckets=torch.randint(0, 4, (B, H, N), generator=g),
                       k_buckets=torch.randint(0, 4, (B, H, N), generator=g)),
          "gqa-hash": dict(pattern="hash:3", enable_gqa=True,
                           q_buckets=torch.randint(0, 3, (B, H, N), generator=g),
                           k_buckets=torch.randint(0, 3, (B, Hkv, N), generator=g)),
          "qkdrop": dict(pattern="qkdrop", q_keep=torch.rand(B, H, N, generator=g) < 0.6,
                         k_keep=torch.rand(B, H, N, generator=g) < 0.8),
          "lsh": dict(pattern="lsh:8:3", is_causal=True),
          "mask": dict(attn_mask=torch.rand(N, N, generator=g) < 0.3)}[case]
    shared, rebuilt = shared_and_rebuilt(monkeypatch, make, **kw)
    for a, b, name in zip(shared, rebuilt, ("o", "dq", "dk", "dv")):
        assert torch.equal(a, b), name
    assert shared[1].abs().max() > 0


def test_shared_index_is_kept_only_where_it_helps(monkeypatch):
    import kat._attention as ka
    kept = []
    real = ka.attention

    def spy(*a, _keep_index=None, **kw):
        out = real(*a, _keep_index=_keep_index, **kw)
        kept.append(None if _keep_index is None else _keep_index[0])
        return out
    monkeypatch.setattr(kt, "_forward", spy)
    q, k, v = tensors(1, 2, 2, 9, 9, 8)
    kt.attention(q, k, v, pattern="lsh:4").sum().backward()
    kt.attention(q, k, v).sum().backward()
    with torch.no_grad():
        kt.attention(q, k, v, pattern="lsh:4")
    assert type(kept[0]).__name__ == "PyCapsule" and kept[1:] == [None, None]
