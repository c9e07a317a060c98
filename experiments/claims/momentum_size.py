"""C3: how much momentum, each beta at its own tuned learning rate, on MNIST-1D.

Measure: heavy ball on a fixed grid of learning rate x beta (beta 0 is plain SGD), every
cell on every seed, all in one compiled function (``comparison.run`` with an explicit
table: lr and momentum are traced). Judge: per beta, the learning rate with the lowest
mean final validation loss; beta 0.99 against beta 0.9, each at its own learning rate,
by the paired difference of final validation loss over seeds. Figure: the heat map of
lr x (1 - beta) with lines of constant effective step ``lr / (1 - beta)`` and each
beta's best lr ringed.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import numpy as np

from experiments import comparison
from experiments import loop
from experiments import plotting
from experiments import report
from experiments import sweeps
from experiments import tasks
from experiments.protocol import stats
from experiments.protocol import tuning
from experiments.protocol import verdicts

NAME = "momentum"
CLAIMS = ("C3",)
EVAL_UNITS = 250  # the brief's cost of one evaluation pass, in batch-32 steps
COMPILES = 1


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 5
    betas: tuple[float, ...] = (0.0, 0.5, 0.9, 0.95, 0.99, 0.999)
    lr: tuple[float, float] = (1e-4, 10**0.5)  # log grid, ends included
    lrs: int = 10  # half a decade apart
    schedule: loop.Schedule = loop.Schedule(steps=1000, batch_size=32, eval_every=1000)
    high: float = 0.99  # "too close to 1"
    usual: float = 0.9  # "around 0.9"
    overshoot: float = 0.05  # primary: val loss (high) - val loss (usual) above this, nats
    tolerance: float = 0.05  # secondary: val loss (usual) - best beta's below this, nats
    effective: tuple[float, ...] = (0.03, 0.3, 3.0)  # lines lr / (1 - beta) = c


QUICK = Config(
    seeds=3,
    betas=(0.0, 0.9, 0.95, 0.99),
    lr=(1e-3, 10**0.5),
    lrs=8,
    schedule=loop.Schedule(steps=500, batch_size=32, eval_every=500),
)
FULL = Config()

PRIMARY = (
    "'Too close to 1 overshoots': at its own tuned learning rate (chosen on the mean "
    "final validation loss), beta = {high:g} ends with a higher validation loss than "
    "beta = {usual:g} at its own: the 95% interval of the paired difference over seeds "
    "(val loss at {high:g} - at {usual:g}) lies above {overshoot:g} nats."
)
READING = (
    "The source recommends 'around 0.9' as a starting point and warns that a gamma too "
    "close to 1 makes the model 'unstable and overshoot the best solution'. The warning "
    "is the falsifiable part, so it is the primary condition; 'around 0.9 works well' "
    "(0.9 within a tolerance of the best beta) is reported as secondary. Overshooting "
    "at a shared learning rate is expected: heavy ball's effective step is "
    "lr / (1 - beta), 10x larger at 0.99 than at 0.9. The claim is read as being about "
    "the momentum itself, so every beta gets its own tuned learning rate, selected on "
    "validation loss (the outcome a user tuning the learning rate would see); the "
    "shared-learning-rate comparison is reported beside it."
)


def grid(cfg: Config) -> dict[str, np.ndarray]:
    """The table of trials: every beta (slowest) crossed with every learning rate."""
    return sweeps.grid(momentum=cfg.betas, lr=np.geomspace(*cfg.lr, cfg.lrs))


def units(cfg: Config) -> int:
    """Budget of ``measure`` in batch-32 MNIST-1D MLP steps (evaluations included)."""
    s = cfg.schedule
    runs = len(cfg.betas) * cfg.lrs * cfg.seeds
    return runs * (s.steps * max(1, s.batch_size // 32) + len(s.eval_steps) * EVAL_UNITS)


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> dict:
    """Every (beta, lr) cell on every seed (one compile); per beta its validation choice."""
    status(f"{len(cfg.betas)} betas x {cfg.lrs} lrs x {cfg.seeds} seeds")
    method = comparison.Method("heavy ball", comparison.heavy_ball, tuning.Space(lr=cfg.lr))
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
    best = [tuning.select(v) for v in val]  # per beta, the lr index
    return {
        "trials": trials,
        "val": val,
        "train": train,
        "best": best,
        "lrs": np.geomspace(*cfg.lr, cfg.lrs),
        "selected": [trials.pick(i * cfg.lrs + j) for i, j in enumerate(best)],
    }


def per_beta(numbers: dict, cfg: Config) -> tuple[dict, dict, dict]:
    """Per beta, per seed: val loss at its own lr, val loss at ``usual``'s lr, train loss
    at its own lr."""
    usual = numbers["best"][cfg.betas.index(cfg.usual)]
    own = {b: numbers["val"][i, j] for i, (b, j) in enumerate(zip(cfg.betas, numbers["best"]))}
    shared = {b: numbers["val"][i, usual] for i, b in enumerate(cfg.betas)}
    train = {b: numbers["train"][i, j] for i, (b, j) in enumerate(zip(cfg.betas, numbers["best"]))}
    return own, shared, train


def judge(
    own: dict[float, np.ndarray],
    shared: dict[float, np.ndarray],
    train: dict[float, np.ndarray],
    cfg: Config,
) -> verdicts.Verdict:
    """C3's verdict from per-seed final losses: ``own[beta]`` validation loss at beta's own
    tuned lr, ``shared[beta]`` at ``cfg.usual``'s tuned lr, ``train[beta]`` training loss
    at beta's own lr."""
    hi, us = cfg.high, cfg.usual
    primary = verdicts.Condition(
        f"val loss, beta {hi:g} - beta {us:g}, each at its own tuned lr",
        stats.paired_difference(own[hi], own[us]),
        cfg.overshoot,
        verdicts.ABOVE,
    )
    finite = {b: np.where(np.isfinite(v), v, np.inf) for b, v in own.items()}
    best = min(finite, key=lambda b: finite[b].mean())
    secondary = [
        verdicts.Condition(
            f"'0.9 works well': val loss, beta {us:g} - best beta ({best:g}), each at its own lr",
            stats.paired_difference(own[us], own[best]),
            cfg.tolerance,
            verdicts.BELOW,
        ),
        verdicts.Condition(
            f"val loss, beta {hi:g} - beta {us:g}, both at beta {us:g}'s lr",
            stats.paired_difference(shared[hi], shared[us]),
            cfg.overshoot,
            verdicts.ABOVE,
        ),
        verdicts.Condition(
            f"training loss, beta {hi:g} - beta {us:g}, each at its own lr",
            stats.paired_difference(train[hi], train[us]),
            0.0,
            verdicts.ABOVE,
        ),
    ]
    return verdicts.judge(primary, secondary)


def beta_ticks(axis, betas) -> None:
    """Label a log axis of ``1 - beta`` by the betas themselves."""
    axis.set_ticks(1 - np.asarray(betas), [f"{b:g}" for b in betas])
    axis.set_ticks([], minor=True)


def figure(numbers: dict, cfg: Config, out: pathlib.Path) -> list[str]:
    fig, (ax, ax2) = plotting.figure(
        2, title="C3: learning rate x momentum, heavy ball (MNIST-1D MLP)"
    )
    lrs, gap = numbers["lrs"], 1 - np.asarray(cfg.betas)
    marks = np.zeros((len(cfg.betas), cfg.lrs), bool)
    marks[np.arange(len(cfg.betas)), numbers["best"]] = True
    chance = np.log(10.0)  # a uniform guess over 10 classes
    mean = np.where(np.isfinite(numbers["val"]).all(-1), numbers["val"].mean(-1), np.nan)
    plotting.heatmap(
        ax,
        lrs,
        gap,
        np.minimum(mean, chance),
        xlabel="learning rate",
        ylabel="beta (log scale of 1 - beta)",
        label="final validation loss (nats, capped at ln 10)",
        marks=marks,
        title=f"mean of {cfg.seeds} seeds; ringed: best lr per beta",
    )
    for c, style in zip(cfg.effective, (":", "--", "-.")):
        ax.plot(lrs, lrs / c, color="w", ls=style, lw=1.2, label=f"lr / (1 - beta) = {c:g}")
    ax.set(xlim=(lrs[0] / 1.6, lrs[-1] * 1.6), ylim=(gap.min() / 1.6, gap.max() * 1.6))
    ax.legend(fontsize=7, loc="upper left", facecolor="0.6", framealpha=0.8)
    beta_ticks(ax.yaxis, cfg.betas)
    own, shared, _ = per_beta(numbers, cfg)
    for values, label, color in (
        (own, "each at its own tuned lr", "tab:blue"),
        (shared, f"all at beta {cfg.usual:g}'s lr", "tab:gray"),
    ):
        iv = [stats.mean(np.where(np.isfinite(values[b]), values[b], np.nan)) for b in cfg.betas]
        m = np.array([i.mean for i in iv])
        err = np.abs(np.array([[i.low, i.high] for i in iv]).T - m)
        ax2.errorbar(gap, m, yerr=np.nan_to_num(err), fmt="o-", capsize=3, label=label, color=color)
    ax2.set(
        xscale="log",
        xlabel="beta (log scale of 1 - beta)",
        ylabel="final validation loss (nats)",
        title="per beta: mean over seeds, 95% interval",
    )
    beta_ticks(ax2.xaxis, cfg.betas)
    ax2.legend(fontsize=7)
    ax2.grid(alpha=0.3)
    return [plotting.save(fig, out, "c3_momentum.png")]


def describe(
    numbers: dict, verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    rows, edges = [], []
    for beta, sel, i in zip(cfg.betas, numbers["selected"], range(len(cfg.betas))):
        j = numbers["best"][i]
        rows.append(
            {
                "beta": beta,
                "tuned lr": sel.setting["lr"],
                "lr / (1 - beta)": sel.setting["lr"] / (1 - beta),
                "final validation loss": stats.mean(numbers["val"][i, j]),
                "final training loss": stats.mean(numbers["train"][i, j]),
                "test accuracy": stats.mean(sel.curves.test_accuracy),
            }
        )
        edges += [f"beta {beta:g} (lr {sel.setting['lr']:.3g})"] if sel.edge else []
    diverged = int((~np.isfinite(numbers["val"])).sum())
    notes = [f"{diverged} of {numbers['val'].size} (beta, lr, seed) runs diverged."]
    if edges:
        notes.append(
            "Best learning rate on the edge of the grid (widen it): " + "; ".join(edges) + "."
        )
    return report.Finding(
        id="C3",
        reading=READING,
        primary=PRIMARY.format(**dataclasses.asdict(cfg)),
        setup=f"MNIST-1D (8,000 train / 2,000 validation / 2,000 test), 40-100-100-10 ReLU MLP, "
        f"heavy ball (lr outside the velocity: effective step lr / (1 - beta)), "
        f"{cfg.schedule.steps} steps of batch {cfg.schedule.batch_size}, {cfg.seeds} seeds "
        "(same initialisation and batches in every cell). All cells in one compile. "
        f"Beta's averaging window 1 / (1 - beta) is {1 / (1 - max(cfg.betas)):.0f} steps "
        "at the largest beta: a short run penalises it while the velocity builds up.",
        budget=f"A grid of {cfg.lrs} log-spaced learning rates in {report.listing(cfg.lr)} for "
        f"each beta in {report.listing(cfg.betas)}: the same {cfg.lrs} trials per beta; "
        "each beta's lr selected on the mean final validation loss.",
        headline=f"val loss at own tuned lr, beta {cfg.high:g} - {cfg.usual:g}: "
        f"{verdict.primary[0].estimate} nats",
        table=rows,
        plots=plots,
        verdict=verdict,
        metrics={
            "lrs": numbers["lrs"],
            "betas": cfg.betas,
            "val_loss": numbers["val"],
            "train_loss": numbers["train"],
            "best_lr_index": numbers["best"],
            "units": units(cfg),
            "compiles": COMPILES,
        },
        notes=" ".join(notes),
    )


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    numbers = measure(cfg, key, status)
    verdict = judge(*per_beta(numbers, cfg), cfg)
    return [describe(numbers, verdict, figure(numbers, cfg, out), cfg)]
