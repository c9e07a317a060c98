"""C10: momentum with RMSprop and with Adam, each arm tuned, on MNIST-1D.

Measure: RMSprop with and without heavy-ball momentum (one compile: the momentum is a
traced 0 or 0.9), Adam with b1 = 0.9 and b1 = 0 (one compile), each arm tuned over
log learning rate x log eps with the same number of trials, every trial on every seed.
RMSprop's momentum sits outside its scaled step, so with momentum its learning rate is
placed by ``1 - beta`` (the same effective steps as without); Adam's b1 is an average and
needs no shift. Judge: per family, the race (``protocol.race``) to a training-loss target
set by the tuned arm without momentum at half its run: the paired ratio of steps. The
claim names both families, so one may hold and the other not ("depends").
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import NamedTuple

import jax
import numpy as np
import optax

import momentum_optax as mo

from .. import comparison
from .. import loop
from .. import plotting
from .. import report
from .. import tasks
from ..protocol import horizon
from ..protocol import race
from ..protocol import stats
from ..protocol import tuning
from ..protocol import verdicts

NAME = "rmsprop_adam"
CLAIMS = ("C10",)
FAMILIES = ("RMSprop", "Adam")


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    trials: int = 16  # per arm, a 4 x 4 grid of log lr x log eps
    schedule: loop.Schedule = loop.Schedule(steps=2000, batch_size=32, eval_every=20)
    target_at: float = 0.5  # the target: the tuned arm without momentum at this share
    lr: tuple[float, float] = (1e-4, 3e-1)  # effective step for RMSprop with momentum
    eps: tuple[float, float] = (1e-8, 1e-1)
    momentum: float = 0.9  # the "with momentum" arms: RMSprop's momentum, Adam's b1
    speedup: float = 0.8  # primary: steps ratio (with / without momentum) below this


QUICK = Config(seeds=5, schedule=loop.Schedule(steps=600, batch_size=32, eval_every=20))
FULL = Config()

PRIMARY = (
    "For RMSprop and for Adam separately: with momentum (RMSprop momentum 0.9; Adam "
    "b1 = 0.9) the tuned optimizer reaches the training-loss target - the mean "
    "training-subset loss of the tuned arm without momentum at {target_at:.0%} of its "
    "run - in fewer steps: the "
    "95% interval of the paired ratio of steps (with / without) lies below {speedup}."
)
READING = (
    "'Learn faster' is read as training speed: steps until the loss on the full training "
    "reaches a target, each arm with its own tuned learning rate and eps. The "
    "comparison isolates momentum within each family (with vs without), rather than "
    "against plain heavy ball, where the adaptive step size would be confounded with it."
)


def rmsprop(row: dict) -> optax.GradientTransformation:
    """RMSprop (decay 0.9) with heavy-ball momentum ``row["momentum"]`` on the scaled step
    (``optax.rmsprop(lr, momentum=b)`` bit for bit in float32; ``b = 0``: plain RMSprop)."""
    return optax.chain(
        optax.scale_by_rms(decay=0.9, eps=row["eps"]),
        optax.scale_by_learning_rate(row["lr"]),
        mo.trace(row["momentum"]),
    )


def adam(row: dict) -> optax.GradientTransformation:
    """Adam with ``b1 = row["momentum"]`` (0: no first-moment average), b2 = 0.999."""
    return optax.adam(row["lr"], b1=row["momentum"], b2=0.999, eps=row["eps"])


def methods(cfg: Config) -> dict[str, list[comparison.Method]]:
    """Per family: the arm with momentum, then the arm without; same space and budget."""
    without = tuning.Space(lr=cfg.lr, eps=cfg.eps, momentum=0.0)
    placed = tuning.Space(effective=cfg.lr, eps=cfg.eps, momentum=cfg.momentum)
    inside = tuning.Space(lr=cfg.lr, eps=cfg.eps, momentum=cfg.momentum)
    return {
        family: [
            comparison.Method(f"{family}, momentum {cfg.momentum:g}", make, with_m),
            comparison.Method(f"{family}, no momentum", make, without),
        ]
        for family, make, with_m in zip(FAMILIES, (rmsprop, adam), (placed, inside))
    }


class Family(NamedTuple):
    """One family's arms: their trials, their race entries and the arm without momentum
    (the reference that sets the target)."""

    trials: dict[str, comparison.Trials]
    entries: dict[str, race.Entry]
    reference: str


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> dict[str, Family]:
    """Both families' trials (one compile each) and their races: per family the arms'
    ``race.Entry`` (target from the tuned arm without momentum)."""
    task = tasks.mnist1d_mlp()
    numbers = {}
    for family, (with_m, without) in methods(cfg).items():
        status(f"{family}: {2 * cfg.trials} trials x {cfg.seeds} seeds")
        runs = comparison.run(
            [with_m, without],
            task,
            trials=cfg.trials,
            seeds=cfg.seeds,
            key=key,
            schedule=cfg.schedule,
        )
        trials = {m.name: r for m, r in zip((with_m, without), runs)}
        numbers[family] = Family(
            trials, race.race(trials, without.name, fraction=cfg.target_at), without.name
        )
    return numbers


def judge(
    steps_with: dict[str, race.Arrival],
    steps_without: dict[str, race.Arrival],
    test_with: dict[str, np.ndarray],
    test_without: dict[str, np.ndarray],
    cfg: Config,
) -> verdicts.Verdict:
    """C10's verdict from per-seed arrivals and test accuracies, per family."""
    named = {
        family: verdicts.Condition(
            f"{family}: steps to target, with / without momentum",
            race.ratio(steps_with[family], steps_without[family]),
            cfg.speedup,
            verdicts.BELOW,
        )
        for family in steps_with
    }
    secondary = [
        verdicts.Condition(
            f"{family}: test accuracy, with - without momentum",
            stats.paired_difference(test_with[family], test_without[family]),
            0.0,
            verdicts.ABOVE,
        )
        for family in test_with
    ]
    return verdicts.judge_depends(named, secondary)


def figure(numbers: dict, cfg: Config, out: pathlib.Path) -> list[str]:
    fig, axes = plotting.figure(
        len(numbers), title="C10: momentum within RMSprop and Adam, each arm tuned (MNIST-1D MLP)"
    )
    for ax, (family, n) in zip(axes, numbers.items()):
        plotting.seed_bands(
            ax,
            cfg.schedule.eval_steps,
            {name: e.curves.train_loss for name, e in n.entries.items()},
            ylabel="loss on the training subset",
            logy=True,
            title=f"{family}: scored trials; target {target(n):.3g} (dashed)",
        )
        ax.axhline(target(n), color="k", ls="--", lw=0.8)
    return [plotting.save(fig, out, "c10_rmsprop_adam.png")]


def describe(
    numbers: dict, verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    rows, edges = [], []
    for n in numbers.values():
        for name, e in n.entries.items():
            sel = n.trials[name].pick(e.overall)
            rows.append(
                {
                    "arm": name,
                    "lr": sel.setting["lr"],
                    "eps": sel.setting["eps"],
                    "steps to target": e.arrival.cell(),
                    "final training loss": stats.mean(comparison.final(e.curves.train_loss)),
                    "test accuracy": stats.mean(np.asarray(e.curves.test_accuracy)),
                    "diverged runs": e.diverged,
                }
            )
            edges += [f"{name}: {', '.join(sel.edge)}"] if sel.edge else []
    ratios = {c.text.split(":")[0]: c.estimate for c in verdict.primary}
    return report.Finding(
        id="C10",
        reading=READING,
        primary=PRIMARY.format(speedup=cfg.speedup, target_at=cfg.target_at),
        setup=f"MNIST-1D (8,000 train / 2,000 validation / 2,000 test), 40-100-100-10 ReLU "
        f"MLP, {cfg.schedule.steps} steps of batch {cfg.schedule.batch_size}, training-subset "
        f"losses every {cfg.schedule.eval_every} steps, {cfg.seeds} seeds (same "
        "initialisation and batches for every arm). RMSprop decay 0.9; Adam b2 0.999. "
        + race.rule(cfg.target_at),
        budget=f"{cfg.trials} trials per arm, a grid of log lr in {report.listing(cfg.lr)} "
        f"x log eps in {report.listing(cfg.eps)}; RMSprop with momentum searches the same "
        "range as effective step lr / (1 - beta) (its lr is placed by 1 - beta); each arm "
        "selected on the training-subset loss (the quantity the claim is about).",
        headline="; ".join(
            f"{f}: steps ratio with/without momentum {r}" for f, r in ratios.items()
        ),
        table=rows,
        plots=plots,
        verdict=verdict,
        metrics={
            f: {
                "target": target(n),
                "steps": {m: e.arrival.steps for m, e in n.entries.items()},
                "censored": {m: e.arrival.censored for m, e in n.entries.items()},
            }
            for f, n in numbers.items()
        },
        notes=report.edge_note(edges),
        horizon=" ".join(
            horizon.describe(
                n.entries[n.reference].curves.val_loss,
                cfg.schedule,
                tasks.mnist1d_mlp().data.x_train.shape[0],
                n.reference,
            )
            for n in numbers.values()
        ),
    )


def target(n: Family) -> float:
    """A family's target (the same for both arms)."""
    return next(iter(n.entries.values())).target


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    numbers = measure(cfg, key, status)
    arm = lambda i: {f: list(n.entries.values())[i] for f, n in numbers.items()}
    with_m, without = arm(0), arm(1)
    verdict = judge(
        {f: e.arrival for f, e in with_m.items()},
        {f: e.arrival for f, e in without.items()},
        {f: np.asarray(e.curves.test_accuracy) for f, e in with_m.items()},
        {f: np.asarray(e.curves.test_accuracy) for f, e in without.items()},
        cfg,
    )
    return [describe(numbers, verdict, figure(numbers, cfg, out), cfg)]
