"""Training and evaluation of the variants side by side: the same initial weights, the same
batches, steps taken round-robin (one step of each variant in turn) so that a machine whose load
changes during the run slows every variant alike."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from model import BITS_PER_NAT, ByteLM


@dataclass
class Config:
    dim: int
    heads: int
    layers: int
    n: int              # tokens per sequence
    batch: int          # sequences per step
    steps: int
    lr: float
    evals: int          # validation points after step 0 (evenly spaced, the last at `steps`)
    val_tokens: int     # validation bytes (cut into sequences of n)


@dataclass
class Run:
    variant: str
    steps: list = field(default_factory=list)        # training loss (nats) per step
    step_time: list = field(default_factory=list)    # seconds per training step
    val: list = field(default_factory=list)          # (step, train seconds so far, bits/byte,
                                                     #  its standard error over the sequences)
    val_seq: list = field(default_factory=list)      # per validation point: bits/byte of each
                                                     # validation sequence (paired differences)


def batches(train: np.ndarray, cfg: Config, seed: int):
    """The training batches of a run: random windows of n + 1 bytes, from a seeded generator."""
    rng = np.random.default_rng(seed)
    for _ in range(cfg.steps):
        starts = rng.integers(0, len(train) - cfg.n - 1, size=cfg.batch)
        w = torch.from_numpy(np.stack([train[s:s + cfg.n + 1] for s in starts]).astype(np.int64))
        yield w[:, :-1], w[:, 1:]


def val_set(val: np.ndarray, cfg: Config):
    """The first val_tokens (+1) validation bytes as sequences of n."""
    m = cfg.val_tokens // cfg.n
    w = torch.from_numpy(val[:m * cfg.n + 1].astype(np.int64))
    return w[:-1].view(m, cfg.n), w[1:].view(m, cfg.n)


def make_model(cfg: Config, variant: str, seed: int) -> ByteLM:
    torch.manual_seed(seed)   # the same weights for every variant: attention has none
    return ByteLM(cfg.dim, cfg.heads, cfg.layers, variant)


def set_drop_seed(model: ByteLM, seed: int) -> None:
    for a in model.attentions():
        a.drop_gen = torch.Generator().manual_seed(seed + 7919 * a.layer)


@torch.no_grad()
def evaluate(model: ByteLM, vx: torch.Tensor, vy: torch.Tensor, seed: int) -> list:
    """Validation bits per byte of each sequence (QK-drop masks from a fixed generator: the
    same every time); one batch of all sequences, several times faster than one by one."""
    set_drop_seed(model, seed + 1)
    nats = torch.nn.functional.cross_entropy(model(vx).reshape(-1, 256), vy.reshape(-1),
                                             reduction="none")
    return (nats.view(vx.shape).mean(1) * BITS_PER_NAT).tolist()


def mean_se(x) -> tuple:
    """The mean of x and its standard error (sample std / sqrt(len); 0 for one value): the noise
    of a validation score that comes from which sequences the validation set holds."""
    x = np.asarray(x, dtype=np.float64)
    se = float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0
    return float(np.mean(x)), se


def record(run: Run, step: int, seq: list) -> None:
    run.val_seq.append(seq)
    run.val.append((step, sum(run.step_time), *mean_se(seq)))


def train(cfg: Config, variants, train_data, val_data, seed: int, log=print,
          deadline: float | None = None, on_eval=None) -> tuple:
    """Train one model per variant on the same batches; returns ({variant: Run},
    {variant: model}). With a deadline (time.monotonic()), training stops after the first step
    that ends past it, with a last validation point at that step: the learning rate does not
    decay, so the curve up to there is the one of the full run. on_eval(runs, models) is
    called after each validation point (to keep partial results)."""
    models = {v: make_model(cfg, v, seed) for v in variants}
    opts = {v: torch.optim.AdamW(m.parameters(), lr=cfg.lr, weight_decay=0.01)
            for v, m in models.items()}
    warm = max(1, cfg.steps // 10)
    runs = {v: Run(v) for v in variants}
    vx, vy = val_set(val_data, cfg)
    points = sorted({round(cfg.steps * (i + 1) / cfg.evals) for i in range(cfg.evals)}) \
        if cfg.evals else []
    for v, m in models.items():
        set_drop_seed(m, seed)
        if cfg.evals:
            record(runs[v], 0, evaluate(m, vx, vy, seed))
            set_drop_seed(m, seed)
    for step, (x, y) in enumerate(batches(train_data, cfg, seed), start=1):
        lr = cfg.lr * min(1.0, step / warm)
        for v, m in models.items():
            t0 = time.perf_counter()
            for g in opts[v].param_groups:
                g["lr"] = lr
            loss = m.loss(x, y)
            opts[v].zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opts[v].step()
            runs[v].step_time.append(time.perf_counter() - t0)
            runs[v].steps.append(loss.item())
        late = deadline is not None and time.monotonic() > deadline
        if step in points or (late and cfg.evals):
            for v, m in models.items():
                states = [a.drop_gen.get_state() for a in m.attentions()]
                seq = evaluate(m, vx, vy, seed)
                for a, s in zip(m.attentions(), states):   # evaluation leaves training's masks
                    a.drop_gen.set_state(s)
                record(runs[v], step, seq)
            log(f"  n = {cfg.n:5d} step {step:4d}: " + "  ".join(
                f"{v} {runs[v].val[-1][2]:.3f}" for v in variants) + "  (val bits/byte)")
            if on_eval:
                on_eval(runs, models)
        if late:
            log(f"  n = {cfg.n:5d} stopped after step {step} of {cfg.steps}: time limit")
            break
    return runs, models
