"""The rank probe on learned attention: the trained model's real queries and keys of each layer
and head, on validation text, against Gaussian queries and keys with the same row norms.

For every head (Q, K, V: [n, d] as they enter attention, after the rotary embedding):
  - eps-ranks (spectral: the least r with sigma_{r+1} <= eps sigma_1) of exp(Q K^T / sqrt(d))
    at EPS, from kat.rank's singular values, for the real Q, K and for Gaussian ones whose rows
    are rescaled to the real rows' norms (drawn in the same run, seeded);
  - the rank kat predicts for the order-P Taylor truncations T_P(Q K^T / sqrt(d)) and their
    numerical rank;
  - the relative error |o_map - o|_F / |o|_F of causal linear attention with a feature map
    against exact causal softmax attention o, with the real V: the exact polynomial maps of
    the Taylor truncations (orders 1-4; order 2 is the Taylor-2 map the LM trains with) and
    FAVOR+ (positive orthogonal random features, M = 64 and 256)."""
from __future__ import annotations

import math

import numpy as np
import torch

import kat

EPS = (1e-2, 1e-3)
TAYLOR = (1, 2, 3, 4)
MAPS = [f"taylor:{p}" for p in TAYLOR] + ["favor:64:ortho:stable", "favor:256:ortho:stable"]


def taylor_expr(p: int) -> str:
    return "+".join(["1"] + [f"x^{t}/{math.factorial(t)}" for t in range(1, p + 1)])


def eps_ranks(sv: np.ndarray) -> dict:
    return {str(e): int(np.count_nonzero(sv > e * sv[0])) for e in EPS}


def normalised_linear(q, k, v, spec: str) -> np.ndarray:
    """Causal linear attention sum_j f(q, k_j) v_j / sum_j f(q, k_j) for any map: kat refuses
    the normalised form for maps that are not positive (odd Taylor orders), so the numerator
    and the denominator both come from the unnormalised form, with a column of ones on v."""
    v1 = np.concatenate([v, np.ones(v.shape[:-1] + (1,), np.float32)], axis=-1)
    od = kat.attention(q, k, v1, pattern="linear:" + spec, causal=True, unnormalized=True)
    return od[..., :-1] / od[..., -1:]


def capture(model, val: np.ndarray, n: int):
    """[(q, k, v) per layer], each [H, n, d] float32, from one forward pass on val[:n]."""
    atts = model.attentions()
    for a in atts:
        a.capture = []
    with torch.no_grad():
        model(torch.from_numpy(val[:n].astype(np.int64))[None])
    out = [tuple(t[0].numpy() for t in a.capture[0]) for a in atts]
    for a in atts:
        a.capture = None
    return out


def run(model, val: np.ndarray, n: int, seed: int, log=print) -> dict:
    rng = np.random.default_rng(seed + 12345)
    heads = []
    for layer, (q, k, v) in enumerate(capture(model, val, n)):
        H, _, d = q.shape
        s = 1.0 / math.sqrt(d)
        o = kat.attention(q, k, v, causal=True)
        errs = {}
        for spec in MAPS:
            oa = normalised_linear(q, k, v, spec)
            num = np.linalg.norm((oa - o).reshape(H, -1), axis=1)
            errs[spec] = (num / np.linalg.norm(o.reshape(H, -1), axis=1)).tolist()
        for h in range(H):
            Q, K = q[h].astype(np.float64), k[h].astype(np.float64)
            real = kat.rank("exp(x)", Q, K, scale=s, eps=EPS[0], predict=False)
            g = []
            for X in (Q, K):
                Z = rng.standard_normal(X.shape)
                g.append(Z * (np.linalg.norm(X, axis=1) / np.linalg.norm(Z, axis=1))[:, None])
            gauss = kat.rank("exp(x)", g[0], g[1], scale=s, eps=EPS[0], predict=False)
            taylor = {}
            for p in TAYLOR:
                t = kat.rank(taylor_expr(p), Q, K, scale=s)
                taylor[p] = {"predicted": t.predicted_rank, "numerical": t.rank,
                             "eps": eps_ranks(t.singular_values)}
            logits = s * Q @ K.T
            rec = {"layer": layer, "head": h, "d": d, "n": n,
                   "q_norm": float(np.linalg.norm(Q, axis=1).mean()),
                   "k_norm": float(np.linalg.norm(K, axis=1).mean()),
                   "logit_std": float(logits.std()), "logit_max": float(np.abs(logits).max()),
                   "real": {"numerical": real.rank, "eps": eps_ranks(real.singular_values),
                            "sv": (real.singular_values / real.singular_values[0]).tolist()},
                   "gauss": {"numerical": gauss.rank, "eps": eps_ranks(gauss.singular_values),
                             "sv": (gauss.singular_values /
                                    gauss.singular_values[0]).tolist()},
                   "taylor": taylor,
                   "rel_err": {spec: errs[spec][h] for spec in MAPS}}
            heads.append(rec)
            log(f"  layer {layer} head {h}: eps-rank (1e-2) real {rec['real']['eps']['0.01']} "
                f"gauss {rec['gauss']['eps']['0.01']}, logit std {rec['logit_std']:.2f}; "
                "rel. err " + ", ".join(f"{m} {e:.3f}" for m, e in rec["rel_err"].items()))
    return {"eps": list(EPS), "maps": MAPS, "heads": heads}
