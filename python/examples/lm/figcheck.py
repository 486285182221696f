"""Read the training figures back and compare what they draw with the results they claim.

Each figure of plots.py is saved as PNG and read back (its pixel size must be the figure's);
the validation curves and the differences from dense are compared point by point, from the
drawn matplotlib artists, with the scores in the results (the claims are written here, from
docs/lm.md, not taken from plots.py)."""
from __future__ import annotations

import os

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import plots  # noqa: E402
from train import mean_se  # noqa: E402

DPI = 110
TOL = 1e-9


def _lengths(info):
    return sorted(info["lengths"].items(), key=lambda kv: int(kv[0]))


def val_lines(fig, info, x_index: int) -> list:
    """Differences between the drawn validation curves (one panel per length, one line per
    variant labelled by its name) and (step or seconds, bits/byte) of the results."""
    bad = []
    for ax, (n, res) in zip(fig.axes, _lengths(info)):
        drawn = {ln.get_label(): ln.get_xydata() for ln in ax.get_lines()}
        for v, r in res["runs"].items():
            want = np.array([(p[x_index], p[2]) for p in r["val"]])
            got = drawn.get(v)
            if got is None or got.shape != want.shape or not np.allclose(got, want, rtol=TOL):
                bad.append(f"n = {n} {v}: drew {got} for {want}")
    return bad


def diff_bars(fig, info) -> list:
    """Differences between the drawn 'minus dense' points with their error bars and the
    paired differences of the per-sequence scores (mean and standard error)."""
    bad = []
    for ax, (n, res) in zip(fig.axes, _lengths(info)):
        drawn = {c.get_label(): c for c in ax.containers}
        d = res["runs"]["dense"]
        for v, r in res["runs"].items():
            if v == "dense":
                continue
            want = [(p[0], *mean_se(np.subtract(s, ds)))
                    for p, s, ds in zip(r["val"], r["val_seq"], d["val_seq"])]
            c = drawn.get(v)
            if c is None:
                bad.append(f"n = {n} {v}: no error bars drawn")
                continue
            pts = c.lines[0].get_xydata()
            segs = c.lines[2][0].get_segments()   # one vertical bar per point
            got = [(x, y, (s[1][1] - s[0][1]) / 2) for (x, y), s in zip(pts, segs)]
            if len(got) != len(want) or not np.allclose(got, want, rtol=1e-7, atol=1e-12):
                bad.append(f"n = {n} {v}: drew {got} for {want}")
    return bad


def check(info: dict, out: str) -> list:
    """Every difference found (empty when the figures show the results)."""
    os.makedirs(out, exist_ok=True)
    bad = []
    for name, fig in plots.figures(info).items():
        if name in ("lm_val_step.png", "lm_val_time.png"):
            bad += val_lines(fig, info, 0 if name == "lm_val_step.png" else 1)
        if name == "lm_val_diff.png":
            bad += diff_bars(fig, info)
        w, h = fig.get_size_inches() * DPI
        path = os.path.join(out, name)
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
        img = matplotlib.image.imread(path)
        if img.shape[:2] != (round(h), round(w)) or float(np.ptp(img)) == 0.0:
            bad.append(f"{name}: read back {img.shape} pixels, range {np.ptp(img)}; expected "
                       f"{round(h)} x {round(w)}, not blank")
    return bad
