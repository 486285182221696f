"""The figures of docs/lm.md from the results of lm.py (matplotlib, PNG)."""
from __future__ import annotations

import os

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import tables  # noqa: E402

COLORS = {"dense": "k", "hash8": "tab:blue", "hash16": "tab:cyan", "qkdrop": "tab:orange",
          "taylor2": "tab:green"}


def _lengths(info):
    return sorted(info.get("lengths", {}).items(), key=lambda kv: int(kv[0]))


def val_curves(info, x_index, xlabel):
    """Validation bits per byte per variant and length; the band is +- one standard error over
    the validation sequences (where the results hold it)."""
    ls = _lengths(info)
    fig, axes = plt.subplots(1, len(ls), figsize=(4.2 * len(ls), 3.6), squeeze=False)
    for ax, (n, res) in zip(axes[0], ls):
        for v, r in res["runs"].items():
            pts = np.array(r["val"])
            ax.plot(pts[:, x_index], pts[:, 2], "o-", color=COLORS.get(v), label=v, ms=3)
            if pts.shape[1] > 3:
                ax.fill_between(pts[:, x_index], pts[:, 2] - pts[:, 3], pts[:, 2] + pts[:, 3],
                                color=COLORS.get(v), alpha=0.12, lw=0)
        later = [p[2] for r in res["runs"].values() for p in r["val"][1:]]
        if later:   # the step-0 value (8 bits, uniform bytes) off the scale: differences show
            ax.set_ylim(min(later) - 0.05, max(later) + 0.1)
        done = res.get("steps_done", res["config"]["steps"])
        ax.set_title(f"n = {n}, {done} steps (step 0: 8.0)")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation bits per byte")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def val_diff(info):
    """Validation bits per byte minus dense's, per step, with +- one standard error of the
    paired difference over the validation sequences."""
    ls = [(n, res) for n, res in _lengths(info) if "dense" in res["runs"]]
    fig, axes = plt.subplots(1, len(ls), figsize=(4.2 * len(ls), 3.6), squeeze=False)
    for ax, (n, res) in zip(axes[0], ls):
        for v, r in res["runs"].items():
            if v == "dense":
                continue
            steps = [p[0] for p in r["val"]]
            d = [tables.vs_dense(res["runs"], v, i) for i in range(len(steps))]
            ax.errorbar(steps, [x for x, _ in d], yerr=[se or 0.0 for _, se in d], fmt="o-",
                        color=COLORS.get(v), label=v, ms=3, capsize=2)
        ax.axhline(0.0, color=COLORS["dense"], lw=0.8)
        ax.set_title(f"n = {n}: minus dense, +- paired SE")
        ax.set_xlabel("training step")
        ax.set_ylabel("validation bits/byte - dense")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def train_curves(info):
    """Training loss in bits per byte at every step (moving average of 5 steps)."""
    ls = _lengths(info)
    fig, axes = plt.subplots(1, len(ls), figsize=(4.2 * len(ls), 3.6), squeeze=False)
    for ax, (n, res) in zip(axes[0], ls):
        for v, r in res["runs"].items():
            b = np.array(r["steps"]) / np.log(2.0)
            w = min(5, len(b))
            ax.plot(np.arange(w, len(b) + 1), np.convolve(b, np.ones(w) / w, "valid"),
                    color=COLORS.get(v), label=v)
        ax.set_title(f"n = {n}: training loss, mean of 5 steps")
        ax.set_xlabel("training step")
        ax.set_ylabel("bits per byte")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def step_times(info):
    ls = _lengths(info)
    ns = [int(n) for n, _ in ls]
    variants = list(ls[0][1]["runs"]) if ls else []
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for v in variants:
        for stat, style in ((np.median, "o-"), (np.min, "s--")):
            t = np.array([stat(res["runs"][v]["step_time"]) for _, res in ls])
            dense = np.array([stat(res["runs"]["dense"]["step_time"]) for _, res in ls])
            lab = f"{v} ({'median' if stat is np.median else 'fastest'})"
            a1.plot(ns, t, style, color=COLORS.get(v), label=lab, ms=4)
            a2.plot(ns, dense / t, style, color=COLORS.get(v), label=lab, ms=4)
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.set_xticks(ns, [str(n) for n in ns])
        a.set_xlabel("sequence length n")
        a.grid(alpha=0.3)
    a1.set_yscale("log")
    a1.set_ylabel("seconds per training step")
    a2.set_ylabel("speed-up over dense")
    a2.axhline(1.0, color="gray", lw=0.8)
    a1.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def rank_figure(info):
    p = info["probe"]
    heads = p["heads"]
    labels = [f"L{h['layer']}H{h['head']}" for h in heads]
    x = np.arange(len(heads))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    w = 0.2
    for i, (src, e, c) in enumerate([("real", "0.01", "tab:red"), ("gauss", "0.01", "tab:gray"),
                                     ("real", "0.001", "salmon"), ("gauss", "0.001", "silver")]):
        a1.bar(x + (i - 1.5) * w, [h[src]["eps"][e] for h in heads], w, color=c,
               label=f"{'learned' if src == 'real' else 'Gaussian, same norms'}, eps {e}")
    t2 = heads[0]["taylor"]["2"] if "2" in heads[0]["taylor"] else heads[0]["taylor"][2]
    a1.axhline(t2["predicted"], color="tab:green", ls="--",
               label=f"Taylor-2 predicted rank {t2['predicted']}")
    a1.set_xticks(x, labels)
    a1.set_ylabel("eps-rank of exp(QK^T/sqrt(d))")
    a1.set_title(f"n = {heads[0]['n']} validation tokens, d = {heads[0]['d']}")
    a1.legend(fontsize=7)
    for h in heads:
        a2.semilogy(h["real"]["sv"], color="tab:red", lw=0.8, alpha=0.7)
        a2.semilogy(h["gauss"]["sv"], color="tab:gray", lw=0.8, alpha=0.7)
    a2.plot([], [], color="tab:red", label="learned Q, K (each head)")
    a2.plot([], [], color="tab:gray", label="Gaussian Q, K, same row norms")
    for e in p["eps"]:
        a2.axhline(e, color="k", lw=0.5, ls=":")
    a2.set_xlim(0, 200)
    a2.set_ylim(1e-6, 1.5)
    a2.set_xlabel("index i")
    a2.set_ylabel("sigma_i / sigma_1")
    a2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def approx_figure(info):
    p = info["probe"]
    heads, maps = p["heads"], p["maps"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for j, m in enumerate(maps):
        errs = [h["rel_err"][m] for h in heads]
        ax.scatter(np.full(len(errs), j) + np.linspace(-0.2, 0.2, len(errs)), errs, s=12)
        ax.plot([j - 0.3, j + 0.3], [np.median(errs)] * 2, "k-")
    ax.set_yscale("log")
    ax.set_xticks(range(len(maps)), [m.replace(":ortho:stable", "") for m in maps])
    ax.set_ylabel("|o_map - o|_F / |o|_F (per head)")
    ax.set_title("causal linear attention vs exact softmax on the model's Q, K, V (bar: median)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def figures(info: dict) -> dict:
    """{file name: matplotlib figure} of every figure the results allow."""
    figs = {}
    if info.get("lengths"):
        figs["lm_val_step.png"] = val_curves(info, 0, "training step")
        figs["lm_val_time.png"] = val_curves(info, 1, "training seconds (sum of step times)")
        if any("dense" in res["runs"] for _, res in _lengths(info)):
            figs["lm_val_diff.png"] = val_diff(info)
        figs["lm_train_loss.png"] = train_curves(info)
        figs["lm_step_time.png"] = step_times(info)
    if info.get("probe"):
        figs["lm_rank.png"] = rank_figure(info)
        figs["lm_approx.png"] = approx_figure(info)
    return figs


def all_figures(info: dict, out: str) -> list:
    os.makedirs(out, exist_ok=True)
    paths = []
    for name, fig in figures(info).items():
        paths.append(os.path.join(out, name))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
