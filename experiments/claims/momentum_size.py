"""C3: how much momentum, each beta at its own tuned learning rate, on MNIST-1D.

Measure: heavy ball on a grid of beta x effective step ``lr / (1 - beta)`` (every beta gets
the same effective steps, so its learning rate is placed by ``1 - beta``; beta 0 is plain
SGD), every cell on every seed, all in one compiled function, the losses evaluated every
few steps. Per beta, each seed is scored by the effective step chosen on the other seeds
(lowest mean final validation loss). Judge: "too close to 1 overshoots" is tested by its
mechanism, oscillation: the share of evaluation intervals in which the training-subset
loss rises, beta 0.99 against beta 0.9 at their tuned learning rates (paired over seeds).
"Worse at a fixed budget" (the final validation loss) and "0.9 works well" are secondary.
Figure: the heat map of effective step x beta and the curves of the tuned betas.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import NamedTuple

import jax
import numpy as np

from .. import comparison
from .. import loop
from .. import plotting
from .. import report
from .. import sweeps
from .. import tasks
from ..protocol import horizon
from ..protocol import race
from ..protocol import stats
from ..protocol import tuning
from ..protocol import verdicts

NAME = "momentum"
CLAIMS = ("C3",)
EVAL_UNITS = 40  # the cost of one evaluation (2,000 + 2,000 examples), in batch-32 steps
COMPILES = 1


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    betas: tuple[float, ...] = (0.0, 0.5, 0.9, 0.95, 0.99, 0.999)
    effective: tuple[float, float] = (1e-2, 10.0)  # lr / (1 - beta): log grid, ends included
    lrs: int = 10  # effective steps per beta, a third of a decade apart
    schedule: loop.Schedule = loop.Schedule(steps=2000, batch_size=32, eval_every=20)
    high: float = 0.99  # "too close to 1"
    usual: float = 0.9  # "around 0.9"
    rises: float = 0.1  # primary: share of rising intervals, high - usual, above this
    overshoot: float = 0.05  # secondary: val loss (high) - val loss (usual) above this, nats
    tolerance: float = 0.05  # secondary: val loss (usual) - best beta's below this, nats


QUICK = Config(
    seeds=5,
    betas=(0.0, 0.9, 0.95, 0.99),
    lrs=8,
    schedule=loop.Schedule(steps=500, batch_size=32, eval_every=20),
)
FULL = Config()

PRIMARY = (
    "'Too close to 1 overshoots', tested by oscillation: at its own tuned learning rate "
    "(each seed scored by the effective step chosen on the other seeds' final validation "
    "loss), beta = {high:g} has a larger share of evaluation intervals in which the "
    "training-subset loss rises than beta = {usual:g} at its own: the 95% interval of the "
    "paired difference over seeds (share at {high:g} - at {usual:g}) lies above {rises:g}."
)
READING = (
    "The source recommends 'around 0.9' as a starting point and warns that a gamma too "
    "close to 1 makes the model 'unstable and overshoot the best solution'. The warning "
    "is the falsifiable part, and overshooting is a mechanism: the iterate passes the "
    "minimum and the loss goes back up. It is measured as the share of evaluation "
    "intervals (every {every} steps, {horizon} steps in all) in which the loss on a fixed "
    "training subset rises, at each beta's own tuned learning rate (a shared learning "
    "rate would measure heavy ball's effective step lr / (1 - beta), 10x larger at 0.99 "
    "than at 0.9). A worse final validation loss at the same budget is a different "
    "statement (a slow start of a long-memory velocity also produces it) and is reported "
    "as secondary, with '0.9 works well' (0.9 within a tolerance of the best beta)."
)


def grid(cfg: Config) -> dict[str, np.ndarray]:
    """The table of trials: every beta (slowest) crossed with every effective step, the
    learning rate ``effective * (1 - beta)``."""
    table = sweeps.grid(momentum=cfg.betas, effective=np.geomspace(*cfg.effective, cfg.lrs))
    lr = table.pop("effective") * (1 - table["momentum"])
    return {"lr": lr.astype(np.float32), **table}


def units(cfg: Config) -> int:
    """Budget of ``measure`` in batch-32 MNIST-1D MLP steps (evaluations included)."""
    s = cfg.schedule
    runs = len(cfg.betas) * cfg.lrs * cfg.seeds
    return runs * (s.steps * max(1, s.batch_size // 32) + len(s.eval_steps) * EVAL_UNITS)


def rise_share(curve: np.ndarray) -> np.ndarray:
    """The share of evaluation intervals in which ``curve`` (last axis: evaluations) rises;
    a run that stops being finite counts every interval from there as a rise."""
    c = np.asarray(curve, np.float64)
    c = np.where(np.isfinite(c), c, np.inf)
    with np.errstate(invalid="ignore"):
        up = (np.diff(c, axis=-1) > 0) | ~np.isfinite(c[..., 1:])
    return up.mean(-1)


class Measured(NamedTuple):
    """Every (beta, effective step, seed) cell; per beta the cross-fitted choice per seed
    (``chosen``), the step picked on all seeds (``best``) and the numbers of the chosen
    cells (``own``: ``"val"``, ``"train"``, ``"rises"`` by beta)."""

    trials: comparison.Trials
    val: np.ndarray  # final validation loss (betas, steps, seeds)
    train: np.ndarray  # final training-subset loss (betas, steps, seeds)
    rises: np.ndarray  # share of rising intervals (betas, steps, seeds)
    chosen: list[np.ndarray]
    best: list[int]
    effective: np.ndarray
    own: dict[str, dict[float, np.ndarray]]
    curves: dict[float, np.ndarray]  # per beta, the chosen cells' training-subset loss
    val_curves: dict[float, np.ndarray]  # per beta, the chosen cells' validation loss


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> Measured:
    """Every (beta, effective step) cell on every seed (one compile); per beta the
    cross-fitted choice per seed and the numbers of the chosen cells."""
    status(f"{len(cfg.betas)} betas x {cfg.lrs} effective steps x {cfg.seeds} seeds")
    space = tuning.Space(effective=cfg.effective, one_minus_beta=(0.001, 1.0))
    method = comparison.Method("heavy ball", comparison.heavy_ball, space)
    trials = comparison.run(
        method,
        tasks.mnist1d_mlp(),
        trials=len(cfg.betas) * cfg.lrs,
        seeds=cfg.seeds,
        key=key,
        schedule=cfg.schedule,
        table=grid(cfg),
    )
    shape = (len(cfg.betas), cfg.lrs, cfg.seeds)
    val = comparison.final(trials.curves.val_loss).reshape(shape)
    train = comparison.final(trials.curves.train_loss).reshape(shape)
    rises = rise_share(trials.curves.train_loss).reshape(shape)
    seeds = np.arange(cfg.seeds)
    chosen = [race.crossfit(v, np.zeros(v.shape, bool), v) for v in val]  # per beta, per seed
    pick = lambda a: {b: a[i, chosen[i], seeds] for i, b in enumerate(cfg.betas)}
    per_cell = lambda c: pick(np.asarray(c, np.float64).reshape(*shape, -1))
    return Measured(
        trials,
        val,
        train,
        rises,
        chosen,
        [tuning.select(v) for v in val],  # per beta, on all seeds (the table)
        np.geomspace(*cfg.effective, cfg.lrs),
        {"val": pick(val), "train": pick(train), "rises": pick(rises)},
        per_cell(trials.curves.train_loss),
        per_cell(trials.curves.val_loss),
    )


def judge(own: dict[str, dict[float, np.ndarray]], cfg: Config) -> verdicts.Verdict:
    """C3's verdict from per-seed numbers at each beta's own cross-fitted learning rate:
    ``own["rises"][beta]`` (share of rising intervals), ``own["val"][beta]`` (final
    validation loss), ``own["train"][beta]`` (final training loss)."""
    hi, us = cfg.high, cfg.usual
    primary = verdicts.Condition(
        f"share of intervals with a rising loss, beta {hi:g} - beta {us:g}, each at its own lr",
        stats.paired_difference(own["rises"][hi], own["rises"][us]),
        cfg.rises,
        verdicts.ABOVE,
    )
    val = own["val"]
    finite = {b: np.where(np.isfinite(v), v, np.inf) for b, v in val.items()}
    best = min(finite, key=lambda b: finite[b].mean())
    secondary = [
        verdicts.Condition(
            f"worse at a fixed budget: final val loss, beta {hi:g} - beta {us:g}, each at its "
            "own lr",
            stats.paired_difference(val[hi], val[us]),
            cfg.overshoot,
            verdicts.ABOVE,
        ),
        verdicts.Condition(
            f"'0.9 works well': val loss, beta {us:g} - best beta ({best:g}), each at its own lr",
            stats.paired_difference(val[us], val[best]),
            cfg.tolerance,
            verdicts.BELOW,
        ),
        verdicts.Condition(
            f"final training loss, beta {hi:g} - beta {us:g}, each at its own lr",
            stats.paired_difference(own["train"][hi], own["train"][us]),
            0.0,
            verdicts.ABOVE,
        ),
    ]
    return verdicts.judge(primary, secondary)


def beta_ticks(axis, betas) -> None:
    """Label a log axis of ``1 - beta`` by the betas themselves."""
    axis.set_ticks(1 - np.asarray(betas), [f"{b:g}" for b in betas])
    axis.set_ticks([], minor=True)


def figure(numbers: Measured, cfg: Config, out: pathlib.Path) -> list[str]:
    fig, (ax, ax2) = plotting.figure(
        2, title="C3: effective step x momentum, heavy ball (MNIST-1D MLP)"
    )
    steps, gap = numbers.effective, 1 - np.asarray(cfg.betas)
    marks = np.zeros((len(cfg.betas), cfg.lrs), bool)
    marks[np.arange(len(cfg.betas)), numbers.best] = True
    chance = np.log(10.0)  # a uniform guess over 10 classes
    mean = np.where(np.isfinite(numbers.val).all(-1), numbers.val.mean(-1), np.nan)
    plotting.heatmap(
        ax,
        steps,
        gap,
        np.minimum(mean, chance),
        xlabel="effective step lr / (1 - beta) (lines of constant effective step: columns)",
        ylabel="beta (log scale of 1 - beta)",
        label="final validation loss (nats, capped at ln 10)",
        marks=marks,
        title=f"mean of {cfg.seeds} seeds; ringed: best step per beta",
    )
    ax.set(xlim=(steps[0] / 1.6, steps[-1] * 1.6), ylim=(gap.min() / 1.6, gap.max() * 1.6))
    beta_ticks(ax.yaxis, cfg.betas)
    colors = plotting.ordered_colors(list(cfg.betas))
    plotting.seed_bands(
        ax2,
        cfg.schedule.eval_steps,
        {f"beta {b:g}": numbers.curves[b] for b in cfg.betas},
        ylabel="loss on the training subset",
        logy=True,
        title="each beta at its own tuned step: mean, 95% t-band",
        colors={f"beta {b:g}": c for b, c in zip(cfg.betas, colors)},
    )
    return [plotting.save(fig, out, "c3_momentum.png")]


def describe(
    numbers: Measured, verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    rows, edges = [], []
    own = numbers.own
    for i, beta in enumerate(cfg.betas):
        j = numbers.best[i]
        step = float(numbers.effective[j])
        rows.append(
            {
                "beta": beta,
                "tuned lr / (1 - beta) (all seeds)": step,
                "tuned lr": step * (1 - beta),
                "share of rising intervals": stats.mean(own["rises"][beta]),
                "final validation loss": stats.mean(own["val"][beta]),
                "final training loss": stats.mean(own["train"][beta]),
            }
        )
        finite = np.isfinite(numbers.val[i]).all(-1)
        larger_diverged = (~finite[j + 1 :]).any()
        if j in (0, cfg.lrs - 1) or (larger_diverged and j == np.flatnonzero(finite).max()):
            edges.append(f"beta {beta:g} (effective step {step:.3g})")
    diverged = int((~np.isfinite(numbers.val)).sum())
    notes = [f"{diverged} of {numbers.val.size} (beta, step, seed) runs diverged."]
    if edges:
        notes.append(
            "Tuned effective step on the edge of the grid or at the largest that did not "
            "diverge: " + "; ".join(edges) + "."
        )
    s = cfg.schedule
    return report.Finding(
        id="C3",
        reading=READING.format(every=s.eval_every, horizon=s.steps),
        primary=PRIMARY.format(**dataclasses.asdict(cfg)),
        setup=f"MNIST-1D (8,000 train / 2,000 validation / 2,000 test), 40-100-100-10 ReLU MLP, "
        f"heavy ball (lr outside the velocity: effective step lr / (1 - beta)), "
        f"{s.steps} steps of batch {s.batch_size} ({s.steps * s.batch_size / 8000:.0f} "
        f"epochs), losses every {s.eval_every} steps, {cfg.seeds} seeds (same "
        "initialisation and batches in every cell). All cells in one compile. Beta's "
        f"averaging window 1 / (1 - beta) is {1 / (1 - max(cfg.betas)):.0f} steps at the "
        "largest beta.",
        budget=f"A grid of {cfg.lrs} log-spaced effective steps in "
        f"{report.listing(cfg.effective)} for each beta in {report.listing(cfg.betas)} (lr = "
        "step x (1 - beta)): the same trials per beta; each seed scored by the step chosen "
        "on the other seeds (even / odd folds) by the mean final validation loss.",
        headline=f"share of rising intervals, beta {cfg.high:g} - {cfg.usual:g}: "
        f"{verdict.primary[0].estimate}",
        table=rows,
        plots=plots,
        verdict=verdict,
        metrics={
            "effective": numbers.effective,
            "betas": cfg.betas,
            "val_loss": numbers.val,
            "train_loss": numbers.train,
            "rises": numbers.rises,
            "best_step_index": numbers.best,
            "chosen": numbers.chosen,
            "units": units(cfg),
            "compiles": COMPILES,
        },
        notes=" ".join(notes),
        horizon=horizon.describe(
            numbers.val_curves[cfg.usual],
            s,
            tasks.mnist1d_mlp().data.x_train.shape[0],
            f"beta {cfg.usual:g} (at its tuned step)",
        ),
    )


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    numbers = measure(cfg, key, status)
    verdict = judge(numbers.own, cfg)
    return [describe(numbers, verdict, figure(numbers, cfg, out), cfg)]
