"""The tables of docs/lm.md (Markdown) from the results of lm.py."""
from __future__ import annotations

import numpy as np

from train import mean_se


def vs_dense(runs: dict, v: str, i: int = -1) -> tuple:
    """Validation bits/byte of v minus dense's at validation point i, and the standard error of
    that difference over the validation sequences (paired: the same sequences for both), or
    None where the results hold no per-sequence scores."""
    d, r = runs["dense"], runs[v]
    if not (d.get("val_seq") and r.get("val_seq")):
        return r["val"][i][2] - d["val"][i][2], None
    return mean_se(np.subtract(r["val_seq"][i], d["val_seq"][i]))


def pm(x: float, se) -> str:
    return f"{x:+.3f}" if se is None else f"{x:+.3f} ± {se:.3f}"


def training(info: dict) -> str:
    rows = ["| n | variant | steps | median s/step | speed-up (median) | fastest step s | "
            "speed-up (fastest) | val bits/byte at step 0 | final val bits/byte (± SE) | "
            "vs dense (± paired SE) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for n, res in sorted(info.get("lengths", {}).items(), key=lambda kv: int(kv[0])):
        runs = res["runs"]
        dmed = float(np.median(runs["dense"]["step_time"]))
        dmin = float(np.min(runs["dense"]["step_time"]))
        for v, r in runs.items():
            med = float(np.median(r["step_time"]))
            fin = r["val"][-1]
            se = f" ± {fin[3]:.3f}" if len(fin) > 3 else ""
            mn = float(np.min(r["step_time"]))
            rows.append(f"| {n} | {v} | {len(r['step_time'])} | {med:.2f} | {dmed / med:.2f}x | "
                        f"{mn:.2f} | {dmin / mn:.2f}x | "
                        f"{r['val'][0][2]:.3f} | {fin[2]:.3f}{se} | {pm(*vs_dense(runs, v))} |")
    return "\n".join(rows)


def probe(info: dict) -> str:
    p = info["probe"]
    eps = [str(e) for e in p["eps"]]
    head = ("| head | mean |q| | mean |k| | logit std | max |logit| | "
            + " | ".join(f"eps-rank {e} learned / Gaussian" for e in eps)
            + " | Taylor-2 predicted / numerical rank | "
            + " | ".join(m.replace(":ortho:stable", "") for m in p["maps"]) + " |")
    rows = [head, "|" + "---|" * (6 + len(eps) + len(p["maps"]))]
    for h in p["heads"]:
        t2 = h["taylor"]["2"] if "2" in h["taylor"] else h["taylor"][2]
        rows.append(f"| L{h['layer']}H{h['head']} | {h['q_norm']:.2f} | {h['k_norm']:.2f} | "
                    f"{h['logit_std']:.2f} | {h['logit_max']:.2f} | "
                    + " | ".join(f"{h['real']['eps'][e]} / {h['gauss']['eps'][e]}" for e in eps)
                    + f" | {t2['predicted']} / {t2['numerical']} | "
                    + " | ".join(f"{h['rel_err'][m]:.2e}" for m in p["maps"]) + " |")
    return "\n".join(rows)


def taylor_ranks(info: dict) -> str:
    h = info["probe"]["heads"]
    orders = sorted(h[0]["taylor"], key=int)
    rows = ["| order P | predicted rank | numerical rank (min-max over heads) | "
            "eps-rank 0.01 (min-max) |", "|---|---|---|---|"]
    for p in orders:
        pr = {x["taylor"][p]["predicted"] for x in h}
        nr = [x["taylor"][p]["numerical"] for x in h]
        er = [x["taylor"][p]["eps"]["0.01"] for x in h]
        rows.append(f"| {p} | {', '.join(map(str, sorted(pr)))} | {min(nr)}-{max(nr)} | "
                    f"{min(er)}-{max(er)} |")
    return "\n".join(rows)


def attention(info: dict) -> str:
    rows = ["| n | " + " | ".join(next(iter(info["attention"].values()))) + " |"]
    rows.append("|---|" + "---|" * len(next(iter(info["attention"].values()))))
    for n, best in sorted(info["attention"].items(), key=lambda kv: int(kv[0])):
        rows.append(f"| {n} | " + " | ".join(f"{t * 1e3:.0f} ms ({best['dense'] / t:.2f}x)"
                                             for t in best.values()) + " |")
    return "\n".join(rows)


def differences(info: dict) -> str:
    """Per length, validation bits/byte minus dense's at every validation point after step 0,
    with the paired standard error over the validation sequences."""
    out = []
    for n, res in sorted(info.get("lengths", {}).items(), key=lambda kv: int(kv[0])):
        runs = res["runs"]
        if "dense" not in runs:
            continue
        steps = [p[0] for p in runs["dense"]["val"]][1:]
        out += [f"n = {n}:", "", "| variant | " + " | ".join(f"step {s}" for s in steps) + " |",
                "|---|" + "---|" * len(steps),
                "| dense (bits/byte) | " + " | ".join(f"{p[2]:.3f}" for p in
                                                    runs["dense"]["val"][1:]) + " |"]
        for v in runs:
            if v != "dense":
                out.append(f"| {v} | " + " | ".join(pm(*vs_dense(runs, v, i))
                                                   for i in range(1, len(steps) + 1)) + " |")
        out.append("")
    return "\n".join(out)
