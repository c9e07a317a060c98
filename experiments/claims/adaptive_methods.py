"""C10: momentum with RMSprop and with Adam, each arm tuned, on MNIST-1D.

Measure: RMSprop with and without heavy-ball momentum (one compile: the momentum is a
traced 0 or 0.9), Adam with b1 = 0.9 and b1 = 0 (one compile), each arm tuned over
log learning rate x log eps with the same number of trials, every trial on every seed.
Judge: per family, the paired ratio of steps to a training-loss target set by the tuned
arm without momentum (AlgoPerf's time-to-result). The claim names both families, so
one may hold and the other not ("depends").
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import numpy as np
import optax

import momentum_optax as mo
from experiments import comparison
from experiments import loop
from experiments import plotting
from experiments import report
from experiments import tasks
from experiments.protocol import stats
from experiments.protocol import tuning
from experiments.protocol import verdicts

NAME = "rmsprop_adam"
CLAIMS = ("C10",)
FAMILIES = ("RMSprop", "Adam")


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 5
    trials: int = 12  # per arm, over log lr x log eps
    schedule: loop.Schedule = loop.Schedule(steps=2000, batch_size=32, eval_every=100)
    lr: tuple[float, float] = (1e-4, 3e-1)
    eps: tuple[float, float] = (1e-8, 1e-1)
    momentum: float = 0.9  # the "with momentum" arms: RMSprop's momentum, Adam's b1
    speedup: float = 0.8  # primary: steps ratio (with / without momentum) below this


QUICK = Config(seeds=3, trials=6, schedule=loop.Schedule(steps=1000, batch_size=32, eval_every=100))
FULL = Config()

PRIMARY = (
    "For RMSprop and for Adam separately: with momentum (RMSprop momentum 0.9; Adam "
    "b1 = 0.9) the tuned optimizer reaches the training-loss target - the mean final "
    "training-subset loss of the tuned arm without momentum - in fewer steps: the "
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
    with_m = tuning.Space(lr=cfg.lr, eps=cfg.eps, momentum=cfg.momentum)
    without = tuning.Space(lr=cfg.lr, eps=cfg.eps, momentum=0.0)
    return {
        family: [
            comparison.Method(f"{family}, momentum {cfg.momentum:g}", make, with_m),
            comparison.Method(f"{family}, no momentum", make, without),
        ]
        for family, make in zip(FAMILIES, (rmsprop, adam))
    }


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> dict:
    """Both families' trials; per family the selected arms, the target and steps to it."""
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
        base = comparison.select_by_train_loss(runs[1])
        target = float(comparison.final(base.curves.train_loss).mean())
        chosen = comparison.select_by_steps_to(
            runs[0], target, metric="train_loss", higher_is_better=False
        )
        steps = {
            sel.method: comparison.steps_to(
                sel.curves.train_loss, target, cfg.schedule.eval_steps, higher_is_better=False
            )
            for sel in (chosen, base)
        }
        numbers[family] = {
            "target": target,
            "selected": [chosen, base],
            "steps": steps,
            "trials": runs,
        }
    return numbers


def censored(steps: np.ndarray, cfg: Config) -> np.ndarray:
    """Steps to target with "never" counted as one evaluation past the end."""
    return np.where(np.isfinite(steps), steps, cfg.schedule.steps + cfg.schedule.eval_every)


def conditions(
    steps_with: dict[str, np.ndarray], steps_without: dict[str, np.ndarray], cfg: Config
) -> dict[str, verdicts.Condition]:
    """Per family, the primary condition from the paired steps (one entry per seed)."""
    return {
        family: verdicts.Condition(
            f"{family}: steps to target, with / without momentum",
            stats.paired_ratio(
                censored(steps_with[family], cfg), censored(steps_without[family], cfg)
            ),
            cfg.speedup,
            verdicts.BELOW,
        )
        for family in steps_with
    }


def judge(
    steps_with: dict[str, np.ndarray],
    steps_without: dict[str, np.ndarray],
    test_with: dict[str, np.ndarray],
    test_without: dict[str, np.ndarray],
    cfg: Config,
) -> verdicts.Verdict:
    """C10's verdict from per-seed steps to target and test accuracies, per family."""
    secondary = [
        verdicts.Condition(
            f"{family}: test accuracy, with - without momentum",
            stats.paired_difference(test_with[family], test_without[family]),
            0.0,
            verdicts.ABOVE,
        )
        for family in test_with
    ]
    return verdicts.judge_depends(conditions(steps_with, steps_without, cfg), secondary)


def figure(numbers: dict, cfg: Config, out: pathlib.Path) -> list[str]:
    fig, axes = plotting.figure(
        len(numbers), title="C10: momentum within RMSprop and Adam, each arm tuned (MNIST-1D MLP)"
    )
    for ax, (family, n) in zip(axes, numbers.items()):
        plotting.seed_bands(
            ax,
            cfg.schedule.eval_steps,
            {sel.method: sel.curves.train_loss for sel in n["selected"]},
            ylabel="loss on the training subset",
            logy=True,
            title=f"{family}: target {n['target']:.3g} (dashed)",
        )
        ax.axhline(n["target"], color="k", ls="--", lw=0.8)
    return [plotting.save(fig, out, "c10_rmsprop_adam.png")]


def describe(
    numbers: dict, verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    rows, edges = [], []
    for n in numbers.values():
        for sel in n["selected"]:
            rows.append(
                {
                    "arm": sel.method,
                    "lr": sel.setting["lr"],
                    "eps": sel.setting["eps"],
                    "steps to target": stats.mean(censored(n["steps"][sel.method], cfg)),
                    "final training loss": stats.mean(sel.curves.train_loss[:, -1]),
                    "test accuracy": stats.mean(sel.curves.test_accuracy),
                }
            )
            edges += [f"{sel.method}: {', '.join(sel.edge)}"] if sel.edge else []
    ratios = {c.text.split(":")[0]: c.estimate for c in verdict.primary}
    return report.Finding(
        id="C10",
        reading=READING,
        primary=PRIMARY.format(speedup=cfg.speedup),
        setup=f"MNIST-1D (8,000 train / 2,000 validation / 2,000 test), 40-100-100-10 ReLU "
        f"MLP, {cfg.schedule.steps} steps of batch {cfg.schedule.batch_size}, training-subset "
        f"losses every {cfg.schedule.eval_every} steps, {cfg.seeds} seeds (same "
        "initialisation and batches for every arm). RMSprop decay 0.9; Adam b2 0.999. "
        "A run that never reaches the target counts as one evaluation past the end.",
        budget=f"{cfg.trials} trials per arm (scrambled Halton) over log lr in "
        f"{report.listing(cfg.lr)} x log eps in {report.listing(cfg.eps)}; each arm "
        "selected on the training-subset loss (the quantity the claim is about).",
        headline="; ".join(
            f"{f}: steps ratio with/without momentum {r}" for f, r in ratios.items()
        ),
        table=rows,
        plots=plots,
        verdict=verdict,
        metrics={f: {"target": n["target"], "steps": n["steps"]} for f, n in numbers.items()},
        notes=report.edge_note(edges),
    )


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    numbers = measure(cfg, key, status)
    per = lambda i, field: {
        f: (
            n["steps"][n["selected"][i].method]
            if field == "steps"
            else n["selected"][i].curves.test_accuracy
        )
        for f, n in numbers.items()
    }
    verdict = judge(per(0, "steps"), per(1, "steps"), per(0, "test"), per(1, "test"), cfg)
    return [describe(numbers, verdict, figure(numbers, cfg, out), cfg)]
