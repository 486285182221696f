"""Byte-level language models with kat's attention variants on the Python standard library.

    ./run.sh lm --quick              the checks CI runs (tiny model, a few steps; exits 1 if
                                     one fails)
    ./run.sh lm [--out out/lm]       the full run: every variant at n = 2048, 4096, 8192, then
                                     the rank probe of the trained dense model; JSON + PNG

Options: --seed S, --threads T, --lengths 2048:60,4096:30 (length:steps), --variants a,b,
--evals E (validation points after step 0), --val-bytes B (validation text, the same at every
length; default max(8192, n)), --max-minutes M (stop each length's training there), --no-probe.
See docs/lm.md."""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import sys
import time

import numpy as np
import torch

import kat
import corpus
from model import VARIANTS, BITS_PER_NAT
from train import Config, make_model, train

QUICK = Config(dim=32, heads=2, layers=2, n=128, batch=4, steps=12, lr=1e-2, evals=2,
               val_tokens=512)
QUICK_MARGIN = 1.5        # nats: mean of the last 3 training losses below the first by this
QUICK_VAL_MARGIN = 1.0    # bits/byte: the final validation score below step 0's by this
EQUAL_ATOL = 1e-5         # logits and gradients: all-allowing sparse pattern vs dense
FULL_LENGTHS = "2048:40,4096:16,8192:8"


FULL_EVALS = 3
VAL_MAX = corpus.SIZE - int(corpus.SIZE * corpus.TRAIN_FRACTION) - 1   # targets need one more


def full_config(n: int, steps: int, evals: int = FULL_EVALS, val_bytes: int | None = None) \
        -> Config:
    return Config(dim=64, heads=4, layers=2, n=n, batch=1, steps=steps, lr=3e-3, evals=evals,
                  val_tokens=max(8192, n) if val_bytes is None else val_bytes)


def check(ok: bool, what: str, failures: list) -> None:
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def logits_and_grads(cfg: Config, variant: str, seed: int, x, y):
    m = make_model(cfg, variant, seed)
    loss = m.loss(x, y)
    loss.backward()
    return m(x).detach(), [p.grad.clone() for p in m.parameters()]


def quick(seed: int) -> int:
    tr, va = corpus.load()
    cfg = QUICK
    failures: list = []
    runs, _ = train(cfg, VARIANTS, tr, va, seed, log=lambda s: None)
    for v in VARIANTS:
        s = runs[v].steps
        fall = s[0] - float(np.mean(s[-3:]))
        check(fall >= QUICK_MARGIN, f"{v}: training loss {s[0]:.3f} -> {np.mean(s[-3:]):.3f} "
              f"nats in {cfg.steps} steps (falls by {fall:.3f} >= {QUICK_MARGIN})", failures)
        vb = runs[v].val
        check(vb[0][2] - vb[-1][2] >= QUICK_VAL_MARGIN, f"{v}: validation {vb[0][2]:.3f} -> "
              f"{vb[-1][2]:.3f} +- {vb[-1][3]:.3f} bits/byte over {len(runs[v].val_seq[-1])} "
              f"sequences (falls by >= {QUICK_VAL_MARGIN})", failures)
    quick_figures(cfg, runs, failures)
    x = torch.from_numpy(tr[:cfg.n * 2].astype(np.int64)).view(2, cfg.n)
    y = torch.from_numpy(tr[1:cfg.n * 2 + 1].astype(np.int64)).view(2, cfg.n)
    ref_o, ref_g = logits_and_grads(cfg, "dense", seed, x, y)
    for v in ("hash1", "keepall", "hash8"):
        o, g = logits_and_grads(cfg, v, seed, x, y)
        err = max([(o - ref_o).abs().max().item()] +
                  [(a - b).abs().max().item() for a, b in zip(g, ref_g)])
        if v == "hash8":   # the check can tell patterns apart: a real mask changes the output
            check(err > 1e3 * EQUAL_ATOL, f"hash8 differs from dense (max |diff| {err:.2e} > "
                  f"{1e3 * EQUAL_ATOL:.0e})", failures)
        else:
            check(err <= EQUAL_ATOL, f"{v} equals dense: logits and all gradients, max |diff| "
                  f"{err:.2e} <= {EQUAL_ATOL:.0e}", failures)
    again, _ = train(cfg, ("dense", "hash8", "qkdrop", "taylor2"), tr, va, seed,
                     log=lambda s: None)
    for v in again:
        same = again[v].steps == runs[v].steps and again[v].val_seq == runs[v].val_seq
        check(same, f"{v}: the same seed gives the same {cfg.steps} training losses and "
              f"{cfg.evals + 1} validation points, bit for bit", failures)
    cut, _ = train(cfg, ("dense",), tr, va, seed, log=lambda s: None,
                   deadline=time.monotonic())
    c = cut["dense"]
    check([p[0] for p in c.val] == [0, 1] and c.steps == runs["dense"].steps[:1],
          "a deadline already past stops training after step 1 with a validation point there; "
          "its loss is the full run's first", failures)
    for argv, want in (
            (["--lengths", "2048"],
             "--lengths: '2048' is not a list n:steps,... of positive integers"),
            (["--evals", "0"], "--evals: 0 is not a positive integer"),
            (["--max-minutes", "0"], "--max-minutes: 0.0 is not a positive number"),
            (["--lengths", "4096:1", "--val-bytes", "4000"],
             f"--val-bytes: 4000 is not between the longest length 4096 and the validation "
             f"split's {VAL_MAX} bytes")):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                parse(argv)
                code = 0
            except SystemExit as e:
                code = e.code
        check(code == 2 and err.getvalue().endswith(f"lm.py: error: {want}\n"),
              f"{' '.join(argv)} is a usage error (exit 2): {want}", failures)
    try:
        corpus.load(sha256="0" * 64)
        msg = ""
    except corpus.CorpusError as e:
        msg = str(e)
    want = (f"corpus: {corpus.FILES} files, {corpus.SIZE} bytes under {corpus.ROOT}/*.py with "
            f"SHA-256 {corpus.SHA256}; expected {corpus.FILES} files, {corpus.SIZE} bytes, "
            f"SHA-256 {'0' * 64} (Debian 12's libpython3.11-minimal and libpython3.11-stdlib "
            "3.11.2-6+deb12u6)")
    check(msg == want, "a corpus with another checksum is refused with its file count, size "
          "and checksum", failures)
    print(f"{len(failures)} of the quick checks failed" if failures else "all quick checks pass")
    return 1 if failures else 0


def quick_figures(cfg: Config, runs: dict, failures: list) -> None:
    """The training figures of the quick run drawn, saved, read back and compared with the
    results; and the comparison can fail: a curve drawn from other scores is caught."""
    import tempfile
    import figcheck
    import plots
    info = {"lengths": {str(cfg.n): {"config": cfg.__dict__,
                                     "runs": {v: r.__dict__ for v, r in runs.items()}}}}
    with tempfile.TemporaryDirectory() as tmp:
        bad = figcheck.check(info, tmp)
    check(not bad, "the figures show the validation scores and the paired differences from "
          "dense with their standard errors (read back)" + "".join("\n      " + b for b in bad),
          failures)
    moved = copy.deepcopy(info)
    r = moved["lengths"][str(cfg.n)]["runs"]["hash8"]
    r["val"] = [(p[0], p[1], p[2] + 0.01, *p[3:]) for p in r["val"]]
    fig = plots.val_curves(info, 0, "training step")
    check(len(figcheck.val_lines(fig, moved, 0)) == 1, "the read-back check finds a curve "
          "0.01 bits/byte off", failures)
    plots.plt.close(fig)


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "load_start": os.getloadavg(),
            "torch": torch.__version__, "python": platform.python_version(),
            "kat_threads": kat.num_threads(), "torch_threads": torch.get_num_threads()}


def full(a) -> int:
    tr, va = corpus.load()
    os.makedirs(a.out, exist_ok=True)
    info = {"machine": machine(), "command": " ".join(sys.argv), "seed": a.seed,
            "corpus": {"files": corpus.FILES, "bytes": corpus.SIZE, "sha256": corpus.SHA256,
                       "train": len(tr), "validation": len(va)}, "lengths": {}}
    path = os.path.join(a.out, "results.json")
    if a.append and os.path.exists(path):   # keep the lengths of earlier runs into OUT
        old = json.load(open(path))
        info["lengths"] = old.get("lengths", {})
        info.update({k: old[k] for k in ("probe", "attention", "attention_commands")
                     if k in old})
        info["earlier"] = old.get("earlier", []) + [{k: old[k] for k in ("machine", "command")
                                                     if k in old}]
    variants = a.variants.split(",")
    t_all = time.perf_counter()
    dense_model, dense_cfg = None, None
    for item in a.lengths.split(","):
        n, steps = (int(s) for s in item.split(":"))
        cfg = full_config(n, steps, a.evals, a.val_bytes)
        print(f"n = {n}: batch {cfg.batch}, {steps} steps, model dim {cfg.dim}, "
              f"{cfg.heads} heads, {cfg.layers} layers, {cfg.evals} validation points of "
              f"{cfg.val_tokens // n} sequences", flush=True)
        t0 = time.perf_counter()
        load0 = os.getloadavg()

        def keep(runs, models):
            """Write the results so far (a run stopped by hand keeps its curves)."""
            info["lengths"][str(n)] = {
                "config": cfg.__dict__, "wall_s": time.perf_counter() - t0,
                "command": " ".join(sys.argv), "load_start": load0, "load": os.getloadavg(),
                "steps_done": len(next(iter(runs.values())).steps),
                "runs": {v: r.__dict__ for v, r in runs.items()}}
            if "dense" in models and dense_cfg is None:
                torch.save({"config": cfg.__dict__, "state": models["dense"].state_dict(),
                            "steps_done": info["lengths"][str(n)]["steps_done"]},
                           os.path.join(a.out, f"dense-{n}.pt"))
            with open(path, "w") as f:
                json.dump(info, f, indent=1)

        deadline = time.monotonic() + 60 * a.max_minutes if a.max_minutes else None
        runs, models = train(cfg, variants, tr, va, a.seed, log=lambda s: print(s, flush=True),
                             deadline=deadline, on_eval=keep)
        keep(runs, models)
        med = {v: float(np.median(r.step_time)) for v, r in runs.items()}
        for v in variants:
            sp = med["dense"] / med[v] if "dense" in med else float("nan")
            print(f"  n = {n:5d} {v:8s} median step {med[v]:.3f} s  speed-up {sp:.2f}x  "
                  f"final val {runs[v].val[-1][2]:.3f} bits/byte", flush=True)
        if "dense" in models and dense_model is None:
            dense_model, dense_cfg = models["dense"], cfg
    if a.probe and dense_model is not None:
        import probe
        t0 = time.perf_counter()
        info["probe"] = probe.run(dense_model, va, a.probe_n, a.seed)
        info["probe"]["wall_s"] = time.perf_counter() - t0
        info["probe"]["model_n"] = dense_cfg.n
    info["wall_s"] = time.perf_counter() - t_all
    info["machine"]["load_end"] = os.getloadavg()
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(info, f, indent=1)
    import plots
    for p in plots.all_figures(info, a.out):
        print("wrote", p)
    print(f"total {info['wall_s']:.0f} s")
    return 0


def probe_only(a) -> int:
    """The rank probe of a saved dense model and/or the attention-only timing (added to
    OUT/results.json), then the figures and tables."""
    import plots
    path = os.path.join(a.out, "results.json")
    info = json.load(open(path)) if os.path.exists(path) else {}
    if a.attn_only:
        import attn_timing
        cfg = full_config(0, 0)
        info.setdefault("attention", {}).update(attn_timing.run([int(n) for n in a.attn_only.split(",")],
                                            cfg.heads, cfg.dim // cfg.heads,
                                            a.variants.split(","), a.seed))
        info.setdefault("attention_commands", []).append(" ".join(sys.argv))
        os.makedirs(a.out, exist_ok=True)
        with open(path, "w") as f:
            json.dump(info, f, indent=1)
    if a.probe_only:
        import probe
        from model import ByteLM
        _, va = corpus.load()
        saved = torch.load(a.probe_only)
        c = saved["config"]
        m = ByteLM(c["dim"], c["heads"], c["layers"], "dense")
        m.load_state_dict(saved["state"])
        t0 = time.perf_counter()
        info["probe"] = probe.run(m, va, a.probe_n, a.seed)
        info["probe"].update(wall_s=time.perf_counter() - t0, model_n=c["n"],
                             command=" ".join(sys.argv), load=os.getloadavg())
        os.makedirs(a.out, exist_ok=True)
        with open(path, "w") as f:
            json.dump(info, f, indent=1)
    for p in plots.all_figures(info, a.out):
        print("wrote", p)
    import tables
    if info.get("lengths"):
        print(tables.training(info))
        print(tables.differences(info))
    if info.get("attention"):
        print(tables.attention(info))
    if info.get("probe"):
        print(tables.probe(info))
        print(tables.taylor_ranks(info))
    return 0


def parse(argv=None):
    """The command line, checked: usage errors exit 2 with a message naming the option."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the CI checks (tiny model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch's and kat's threads")
    ap.add_argument("--out", default="out/lm")
    ap.add_argument("--lengths", default=FULL_LENGTHS, help="n:steps,... (full run)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--evals", type=int, default=FULL_EVALS,
                    help="validation points after step 0, evenly spaced (full run)")
    ap.add_argument("--val-bytes", type=int, default=None,
                    help=f"validation bytes, cut into sequences of n (full run; at most "
                    f"{VAL_MAX}; default max(8192, n))")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop each length's training after the first step past this many "
                    "minutes, with a last validation point there (full run)")
    ap.add_argument("--no-probe", dest="probe", action="store_false")
    ap.add_argument("--append", action="store_true",
                    help="keep the lengths already in OUT/results.json (a run in parts)")
    ap.add_argument("--probe-n", type=int, default=1024, help="tokens of the rank probe")
    ap.add_argument("--probe-only", metavar="MODEL.pt",
                    help="only the rank probe of a saved dense model (then the figures)")
    ap.add_argument("--attn-only", metavar="N,N,...",
                    help="only the attention call's forward+backward time at these lengths")
    ap.add_argument("--plots-only", action="store_true",
                    help="only the figures, from OUT/results.json")
    a = ap.parse_args(argv)
    if a.threads < 1:
        ap.error(f"--threads: {a.threads} is not a positive integer")
    try:
        pairs = [tuple(int(x) for x in item.split(":")) for item in a.lengths.split(",")]
        if any(len(p) != 2 or min(p) < 1 for p in pairs):
            raise ValueError
    except ValueError:
        ap.error(f"--lengths: {a.lengths!r} is not a list n:steps,... of positive integers")
    if a.max_minutes is not None and not a.max_minutes > 0:
        ap.error(f"--max-minutes: {a.max_minutes} is not a positive number")
    if a.evals < 1:
        ap.error(f"--evals: {a.evals} is not a positive integer")
    longest = max(p[0] for p in pairs)
    if a.val_bytes is not None and not longest <= a.val_bytes <= VAL_MAX:
        ap.error(f"--val-bytes: {a.val_bytes} is not between the longest length {longest} and "
                 f"the validation split's {VAL_MAX} bytes")
    if a.attn_only:
        try:
            if min(int(n) for n in a.attn_only.split(",")) < 1:
                raise ValueError
        except ValueError:
            ap.error(f"--attn-only: {a.attn_only!r} is not a list N,... of positive integers")
    for v in a.variants.split(","):
        if v not in VARIANTS:
            ap.error(f"--variants: {v!r} is not one of {', '.join(VARIANTS)}")
    return a


def main() -> int:
    a = parse()
    torch.set_num_threads(a.threads)
    kat.set_num_threads(a.threads)
    try:
        if a.quick:
            return quick(a.seed)
        if a.probe_only or a.plots_only or a.attn_only:
            return probe_only(a)
        return full(a)
    except corpus.CorpusError as e:
        print(f"lm: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
