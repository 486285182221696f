"""kat._cuda, the CUDA path of kat.torch.attention (and kat.torch.linear_features), without
a GPU: what it refuses is refused before any CUDA call, with the sentence naming the argument
and its value (the kernels and the dispatch itself: tests/gpu/test_torch.py on a GPU). CPU
tensors stand in for CUDA ones."""
import pytest

torch = pytest.importorskip("torch")
from kat import _cuda   # noqa: E402


def x(D=64, dtype=torch.bfloat16):
    return torch.zeros(1, 2, 8, D, dtype=dtype)


@pytest.mark.parametrize("kw,exc,sentence", [
    (dict(attn_mask=torch.ones(8, 8, dtype=torch.bool)), NotImplementedError,
     "attn_mask: block masks run on the CPU only; on CUDA kat takes pattern 'dense', "
     "'window:W', 'hash', 'qkdrop' or 'linear:taylor:2'"),
    (dict(pattern="lsh:8"), NotImplementedError,
     "pattern = 'lsh:8': not on CUDA; kat runs 'dense', 'window:W', 'hash', 'hash:NB', "
     "'qkdrop' and 'linear:taylor:2' there (the others on CPU tensors)"),
    (dict(pattern="window:8:2"), NotImplementedError,
     "pattern = 'window:8:2': global tokens run on the CPU only; on CUDA use 'window:W'"),
    (dict(pattern="window:x"), ValueError,
     "pattern = 'window:x': 'x' is not a positive integer"),
    (dict(pattern="linear:elu1"), NotImplementedError,
     "pattern = 'linear:elu1': linear attention on CUDA has the Taylor-2 map only "
     "('linear:taylor:2'; other maps: kat.torch.linear_features on the features)"),
    (dict(pattern="linear", featmap="favor:16"), NotImplementedError,
     "featmap = 'favor:16': linear attention on CUDA has the Taylor-2 map only "
     "('linear:taylor:2'; other maps: kat.torch.linear_features on the features)"),
    (dict(featmap="taylor:2"), ValueError,
     "featmap: only the linear pattern takes a feature map, not 'dense'"),
    (dict(unnormalized=True), ValueError,
     "unnormalized: only linear attention has a denominator to leave out, not pattern 'dense'"),
    (dict(pattern="hash:4"), ValueError,
     "pattern 'hash' needs q_buckets and k_buckets (integer tensors of query's and key's "
     "shape without the last axis)"),
    (dict(pattern="hash:4", q_buckets=torch.zeros(1, 2, 8), k_buckets=torch.zeros(1, 2, 8)),
     ValueError, "q_buckets: dtype torch.float32 is not an integer type"),
    (dict(pattern="hash:4", q_buckets=torch.zeros(1, 2, 7, dtype=torch.int64),
          k_buckets=torch.zeros(1, 2, 8, dtype=torch.int64)), ValueError,
     "q_buckets: shape (1, 2, 7), expected (1, 2, 8) (the shape of query without its last "
     "axis)"),
    (dict(pattern="hash:4", q_buckets=-torch.ones(1, 2, 8, dtype=torch.int64),
          k_buckets=torch.zeros(1, 2, 8, dtype=torch.int64)), ValueError,
     "q_buckets: entry -1 is negative; bucket ids are integers >= 0"),
    (dict(q_keep=torch.ones(1, 2, 8)), ValueError,
     "q_keep: pattern 'dense' takes no q_keep"),
])
def test_refusals(kw, exc, sentence):
    kw.setdefault("pattern", "dense")
    with pytest.raises(exc) as e:
        _cuda.attention(x(), x(), x(), is_causal=False, scale=None, **kw)
    assert str(e.value) == sentence


def test_dtype_and_device_refusals():
    with pytest.raises(ValueError) as e:
        _cuda.attention(x(dtype=torch.float32), x(dtype=torch.float32),
                        x(dtype=torch.float32), is_causal=True, scale=None, pattern="dense")
    assert str(e.value) == ("query: dtype torch.float32; kat's softmax attention on CUDA takes "
                            "torch.bfloat16 or torch.float16 (fp32 runs on the CPU)")
    with pytest.raises(ValueError) as e:
        _cuda.attention(x(dtype=torch.float64), x(dtype=torch.float64),
                        x(dtype=torch.float64), is_causal=True, scale=None,
                        pattern="linear:taylor:2")
    assert str(e.value) == ("query: dtype torch.float64; kat's linear attention on CUDA takes "
                            "torch.bfloat16, torch.float16 or torch.float32")
    with pytest.raises(ValueError) as e:
        _cuda.attention(x(), x(dtype=torch.float16), x(), is_causal=False, scale=None,
                        pattern="dense")
    assert str(e.value) == "key: dtype torch.float16, but query has torch.bfloat16"
    with pytest.raises(NotImplementedError) as e:
        _cuda.attention(x(), x(), x(D=32), is_causal=False, scale=None, pattern="dense")
    assert str(e.value) == ("value: head dimension 32 differs from query's 64; the CUDA "
                            "flash kernels need D_v = D")


def test_linear_features_needs_cuda():
    import kat.torch as kt
    with pytest.raises(NotImplementedError) as e:
        kt.linear_features(x(), x(), x())
    assert str(e.value) == ("phi_q: on cpu; linear_features runs on CUDA tensors (on the CPU: "
                            "attention(q, k, v, pattern=featmap))")
