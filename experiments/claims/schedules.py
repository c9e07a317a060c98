"""C8: momentum schedules against tuned constant momentum, on MNIST-1D.

Measure: heavy ball (``mo.sgd``) with three momentum coefficients, each written as a
schedule of the step count so that they share one state structure and run in one
compile (``comparison.run`` picks the arm by a traced index): a constant beta, tuned
over log lr x log(1 - beta); the Momentum article's anneal ``mo.schedules.anneal(0.5, 0.9)``; and
Understanding Momentum's ``mo.schedules.linear_to_one(0.5, total_steps=T)`` with T the run's length,
so that it reaches 1 at the last step. The schedules have no beta to tune: each gets the
same number of trials over log lr alone. Every arm is selected on validation loss.
Judge: per schedule (the claim names both), the paired ratio of final validation loss,
schedule / tuned constant momentum (non-inferiority).
With ``cfg.practice`` (the full run) the same arms run again under the practice arm
(``parts.practice``: warm-up + cosine, weight decay), judged as secondary conditions.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import numpy as np
import optax

import momentum_optax as mo

from .. import comparison
from .. import loop
from .. import plotting
from .. import report
from .. import tasks
from ..parts import practice
from ..protocol import horizon
from ..protocol import race
from ..protocol import stats
from ..protocol import tuning
from ..protocol import verdicts

NAME = "schedules"
CLAIMS = ("C8",)
CONSTANT, ANNEAL, LINEAR = "constant momentum (tuned)", "anneal 0.5 -> 0.9", "linear rise to 1"
NAMED = {
    ANNEAL: "anneal 0.5 -> 0.9 (the Momentum article)",
    LINEAR: "linear rise to 1 at T (Understanding Momentum)",
}


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    trials: int = 16  # per arm: constant on a 4 x 4 grid of effective step x beta, schedules lr
    schedule: loop.Schedule = loop.Schedule(steps=4000, batch_size=32, eval_every=100)
    lr: tuple[float, float] = (1e-3, 0.3)  # the schedules' learning rate
    effective: tuple[float, float] = (0.03, 3.0)  # the constant arm's lr / (1 - beta)
    one_minus_beta: tuple[float, float] = (0.01, 0.5)  # the constant arm: beta in [0.5, 0.99]
    start: float = (
        0.5  # both schedules start here (the Momentum article: "initialized at around 0.5")
    )
    end: float = 0.9  # the anneal's end (the Momentum article)
    anneal_fraction: float = 0.5  # the anneal reaches 0.9 at this fraction of the run
    margin: float = 1.05  # primary: final validation loss ratio (schedule / constant) below
    practice: bool = True  # the practice arm (warm-up + cosine, weight decay): secondary


QUICK = Config(
    seeds=5, schedule=loop.Schedule(steps=600, batch_size=32, eval_every=100), practice=False
)
FULL = Config()

PRIMARY = (
    "For each of the two schedules the sources name, separately: at its tuned learning "
    "rate it ends no worse than tuned constant momentum - the 95% interval of the paired "
    "ratio of final validation loss (schedule / constant) lies below {margin:g} (at most "
    "{pct:.0f}% worse). Both hold: supported; neither: not supported; one: depends."
)
READING = (
    "Neither source claims a schedule beats constant momentum; the Momentum article describes the "
    "anneal as common practice and Understanding Momentum proposes the linear rise as a way to "
    "'increase gamma over time'. The testable reading is that following the schedule "
    "costs nothing against constant momentum with its beta tuned, each at its own tuned "
    "learning rate, measured on validation loss at the end of the run (where the linear "
    "rise has reached momentum 1). Understanding Momentum's schedule is implemented exactly: "
    "T is the total number of training steps, so the momentum reaches 1 only at the last step."
)


def schedules(cfg: Config) -> dict[str, optax.Schedule]:
    """The two schedules of the sources for a run of ``cfg.schedule.steps`` steps."""
    total = cfg.schedule.steps
    return {
        ANNEAL: mo.schedules.anneal(
            cfg.start, cfg.end, steps=max(1, round(cfg.anneal_fraction * total))
        ),
        LINEAR: mo.schedules.linear_to_one(cfg.start, total_steps=total),
    }


def methods(cfg: Config) -> list[comparison.Method]:
    """Constant momentum (a schedule that returns the traced beta), then the two schedules;
    every arm a scheduled ``mo.sgd``, so all share one state structure."""
    lr_only = tuning.Space(lr=cfg.lr, momentum=cfg.start)  # momentum column unused
    arms = [
        comparison.Method(
            CONSTANT,
            lambda row: mo.sgd(row["lr"], lambda _: row["momentum"]),
            tuning.Space(effective=cfg.effective, one_minus_beta=cfg.one_minus_beta),
        )
    ]
    for name, schedule in schedules(cfg).items():
        arms.append(comparison.Method(name, lambda row, s=schedule: mo.sgd(row["lr"], s), lr_only))
    return arms


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> practice.Arms:
    """Every arm's trials on every seed (one compile; the practice arm another); the
    validation-selected trial of each."""
    return practice.measure(
        methods(cfg),
        tasks.mnist1d_mlp(),
        cfg,
        key,
        comparison.select_by_validation_loss,
        label="C8",
        status=status,
    )


def judge(
    val: dict[str, np.ndarray],
    train: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    cfg: Config,
) -> verdicts.Verdict:
    """C8's verdict from per-seed final validation losses (primary), final training losses
    and test accuracies (secondary) of the selected trial of each arm."""
    named = {
        NAMED[s]: verdicts.Condition(
            f"{s}: final validation loss, schedule / constant",
            stats.paired_ratio(val[s], val[CONSTANT]),
            cfg.margin,
            verdicts.BELOW,
        )
        for s in (ANNEAL, LINEAR)
    }
    secondary = [
        verdicts.Condition(
            f"{s}{practice.SUFFIX}: final validation loss, schedule / constant",
            stats.paired_ratio(val[s + practice.SUFFIX], val[CONSTANT + practice.SUFFIX]),
            cfg.margin,
            verdicts.BELOW,
        )
        for s in (ANNEAL, LINEAR)
        if s + practice.SUFFIX in val
    ]
    for s in (ANNEAL, LINEAR):
        secondary += [
            verdicts.Condition(
                f"{s}: final training loss, schedule / constant",
                stats.paired_ratio(train[s], train[CONSTANT]),
                cfg.margin,
                verdicts.BELOW,
            ),
            verdicts.Condition(
                f"{s}: test accuracy, schedule - constant",
                stats.paired_difference(test[s], test[CONSTANT]),
                -0.01,
                verdicts.ABOVE,
            ),
        ]
    return verdicts.judge_depends(named, secondary)


def per_seed(selected: list[comparison.Selected]) -> tuple[dict, dict, dict]:
    """Final validation loss, final training loss and test accuracy of each arm, per seed."""
    val = {s.method: comparison.final(s.curves.val_loss) for s in selected}
    train = {s.method: comparison.final(s.curves.train_loss) for s in selected}
    test = {s.method: np.asarray(s.curves.test_accuracy, np.float64) for s in selected}
    return val, train, test


def figure(numbers: practice.Arms, cfg: Config, out: pathlib.Path) -> list[str]:
    fig, axes = plotting.figure(
        3,
        title="C8: momentum schedules vs tuned constant momentum "
        "(MNIST-1D MLP, each arm at its tuned lr)",
    )
    steps = np.arange(cfg.schedule.steps + 1)
    sel = numbers.main()
    shapes = {
        CONSTANT: np.full(steps.shape, sel[CONSTANT].setting["momentum"]),
        **{n: np.asarray(jax.vmap(s)(steps)) for n, s in schedules(cfg).items()},
    }
    for label, beta in shapes.items():
        axes[0].plot(steps, beta, label=label)
    axes[0].set(xlabel="step", ylabel="momentum coefficient", title="the coefficients run")
    axes[0].legend(fontsize=7)
    axes[0].grid(alpha=0.3)
    plotting.seed_bands(
        axes[1],
        cfg.schedule.eval_steps,
        {n: s.curves.val_loss for n, s in sel.items()},
        ylabel="validation loss",
        title="selected trials (bands: seeds)",
    )
    for i, r in enumerate(t for t in numbers.trials if t.method in sel):
        lr = r.table["lr"]
        mean = np.where(
            np.isfinite(comparison.final(r.curves.val_loss)),
            comparison.final(r.curves.val_loss),
            np.nan,
        ).mean(-1)
        order = np.argsort(lr)
        style = "o" if r.method == CONSTANT else "o-"
        axes[2].plot(lr[order], mean[order], style, color=f"C{i}", label=r.method)
    axes[2].set(
        xscale="log",
        xlabel="learning rate",
        ylabel="final validation loss (mean over seeds)",
        title="every trial (constant: beta varies too)",
    )
    axes[2].legend(fontsize=7)
    axes[2].grid(alpha=0.3)
    return [plotting.save(fig, out, "c8_schedules.png")]


def describe(
    numbers: practice.Arms, verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    rows, edges = [], []
    for sel in numbers.selected:
        rows.append(
            {
                "arm": sel.method,
                "lr": sel.setting["lr"],
                "beta": sel.setting["momentum"]
                if sel.method in (CONSTANT, CONSTANT + practice.SUFFIX)
                else "schedule",
                "final validation loss": stats.mean(comparison.final(sel.curves.val_loss)),
                "final training loss": stats.mean(comparison.final(sel.curves.train_loss)),
                "test accuracy": stats.mean(sel.curves.test_accuracy),
            }
        )
        edges += [f"{sel.method}: {', '.join(sel.edge)}"] if sel.edge else []
    s = cfg.schedule
    return report.Finding(
        id="C8",
        reading=READING,
        primary=PRIMARY.format(margin=cfg.margin, pct=100 * (cfg.margin - 1)),
        setup=f"MNIST-1D (8,000 train / 2,000 validation / 2,000 test), 40-100-100-10 ReLU "
        f"MLP, heavy ball (mo.sgd), {s.steps} steps of batch {s.batch_size}, training-subset "
        f"losses every {s.eval_every} steps, {cfg.seeds} seeds (same initialisation and "
        f"batches for every arm). Anneal: mo.schedules.anneal({cfg.start:g}, {cfg.end:g}, "
        f"steps={round(cfg.anneal_fraction * s.steps)}), i.e. over the first "
        f"{cfg.anneal_fraction:.0%} of the run ('slowly'), then {cfg.end:g} for the rest, "
        f"so it ends where constant momentum 0.9 would. Linear rise: "
        f"mo.schedules.linear_to_one({cfg.start:g}, total_steps={s.steps}), Understanding "
        "Momentum's gamma_t = gamma_0 + (1 - gamma_0) t / T with T the total number of steps. "
        "Both schedules start at 0.5 (the Momentum article's value; Understanding Momentum "
        "leaves gamma_0 free), so they differ only in where they go. All arms in one compile."
        + (" " + practice.sentence(raced=False) if cfg.practice else ""),
        budget=f"{cfg.trials} trials per arm: constant momentum on "
        f"{race.grid(cfg.trials, cfg.effective, cfg.one_minus_beta)}; each schedule over "
        f"log lr in {report.listing(cfg.lr)} "
        "(log-spaced grid), as it has no beta to tune. Each arm selected on final "
        "validation loss; test accuracy of the selected trial only.",
        headline="; ".join(
            f"{c.text.split(':')[0]} / constant, final val loss {c.estimate}"
            for c in verdict.primary
        ),
        table=rows,
        plots=plots,
        verdict=verdict,
        metrics={"selected": {sel.method: sel.setting for sel in numbers.selected}},
        notes=report.edge_note(edges),
        horizon=horizon.describe(
            numbers.main()[CONSTANT].curves.val_loss,
            s,
            tasks.mnist1d_mlp().data.x_train.shape[0],
            CONSTANT,
        ),
    )


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    numbers = measure(cfg, key, status)
    verdict = judge(*per_seed(numbers.selected), cfg)
    return [describe(numbers, verdict, figure(numbers, cfg, out), cfg)]
