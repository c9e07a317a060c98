"""E2: QHM, AggMo and Demon against heavy ball, every method tuned under one budget, MNIST-1D.

Measure: heavy ball (lr x log(1 - beta)) and Demon-scheduled heavy ball (lr x log(1 - beta_0))
in one compile (both are ``mo.sgd`` with a momentum schedule, so their states share one
structure); QHM (lr x log(1 - beta), nu = 0.7) and AggMo (lr, decays 0, 0.9, 0.99) in one
compile each. Every method gets the same number of trials, every trial runs on every seed.
Judge: per method, the paired ratio (method / heavy ball) of steps to a training-loss target,
the mean training-subset loss of tuned heavy ball at half its run (AlgoPerf's time-to-result).
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
from .. import report
from .. import tasks
from ..parts import speedup
from ..protocol import race as race_lib
from ..protocol import tuning
from ..protocol import verdicts

NAME = "variants"
CLAIMS = ("E2",)
BASELINE = "heavy ball"


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    trials: int = 16  # per method: a 4 x 4 grid in 2-D, 16 values in 1-D
    schedule: loop.Schedule = loop.Schedule(steps=2000, batch_size=32, eval_every=20)
    target_at: float = 0.5  # the target: tuned reference's mean training loss at this share
    effective: tuple[float, float] = (0.03, 3.0)  # heavy ball's lr / (1 - beta)
    lr: tuple[float, float] = (3e-3, 0.3)  # heavy ball and Demon
    one_minus_beta: tuple[float, float] = (0.01, 0.3)  # heavy ball's beta, Demon's beta_0
    qhm_lr: tuple[float, float] = (0.03, 3.0)  # QHM averages: no 1 / (1 - beta) gain
    qhm_one_minus_beta: tuple[float, float] = (1e-3, 0.1)
    qhm_nu: float = 0.7  # Ma & Yarats' recommendation
    aggmo_lr: tuple[float, float] = (3e-4, 3e-2)  # gain ~ mean of 1 / (1 - decay) = 37
    aggmo_decays: tuple[float, ...] = (0.0, 0.9, 0.99)  # Lucas et al.'s default
    practice: bool = False  # no practice arm (E4 and E5 have one)
    speedup: float = 0.8  # primary: steps ratio (variant / heavy ball) below this


QUICK = Config(seeds=5, schedule=loop.Schedule(steps=400, batch_size=32, eval_every=20))
FULL = Config()

PRIMARY = (
    "For QHM, AggMo and Demon separately: the tuned method reaches the training-loss "
    "target - the mean training-subset loss of heavy ball with its learning rate and "
    "momentum tuned, at {target_at:.0%} of its run - in fewer steps than tuned heavy ball: "
    "the 95% interval of the "
    "paired ratio of steps (variant / heavy ball) lies below {speedup}."
)
READING = (
    "'Faster training than momentum SGD at its tuned learning rate' is read as training "
    "speed, AlgoPerf's time-to-result on the training-subset loss, with heavy ball's "
    "momentum tuned as well as its learning rate, under the same number of trials as "
    "each variant's hyper-parameters. The claim names three methods, each from its own "
    "paper, so each is judged on its own (one may hold and another not: 'depends')."
)


def heavy_ball(row: dict) -> optax.GradientTransformation:
    """``mo.sgd`` with the traced momentum as a constant schedule (a step count in its state,
    like Demon's, so both run in one compile)."""
    return mo.sgd(row["lr"], lambda count: row["momentum"] + 0.0 * count)


def demon(total_steps: int):
    """Heavy ball whose momentum decays from ``row["momentum"]`` to 0 at ``total_steps``."""
    return lambda row: mo.sgd(row["lr"], mo.schedules.demon(row["momentum"], total_steps))


def qhm(nu: float):
    return lambda row: optax.chain(
        mo.qhm(nu, row["momentum"]), optax.scale_by_learning_rate(row["lr"])
    )


def aggmo(decays: tuple[float, ...]):
    return lambda row: optax.chain(mo.aggmo(decays), optax.scale_by_learning_rate(row["lr"]))


def methods(cfg: Config) -> list[list[comparison.Method]]:
    """The methods, grouped by compile (optimizer-state structure)."""
    sgd_space = tuning.Space(effective=cfg.effective, one_minus_beta=cfg.one_minus_beta)
    return [
        [
            comparison.Method(BASELINE, heavy_ball, sgd_space),
            comparison.Method("Demon", demon(cfg.schedule.steps), sgd_space),
        ],
        [
            comparison.Method(
                "QHM",
                qhm(cfg.qhm_nu),
                tuning.Space(lr=cfg.qhm_lr, one_minus_beta=cfg.qhm_one_minus_beta),
            )
        ],
        [comparison.Method("AggMo", aggmo(cfg.aggmo_decays), tuning.Space(lr=cfg.aggmo_lr))],
    ]


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> speedup.Race:
    """Every method's trials; the target from tuned heavy ball; each method selected by its
    steps to that target; per method the selection and its per-seed steps."""
    return speedup.measure(
        methods(cfg),
        tasks.mnist1d_mlp(),
        BASELINE,
        cfg,
        key,
        label=NAME,
        status=status,
    )


def judge(
    steps: dict[str, race_lib.Arrival],
    final_loss: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    cfg: Config,
) -> verdicts.Verdict:
    """E2's verdict from per-seed steps to target and test accuracies (heavy ball and each
    variant): one primary condition per variant."""
    pairs = {name: (name, BASELINE) for name in steps if name != BASELINE}
    return speedup.judge(steps, final_loss, test, cfg, pairs)


def figure(race: speedup.Race, cfg: Config, out: pathlib.Path) -> list[str]:
    return speedup.figure(
        race,
        cfg,
        out,
        title="E2: momentum variants against tuned heavy ball (MNIST-1D MLP)",
        name="e2_variants.png",
        reference=BASELINE,
    )


def describe(
    race: speedup.Race, verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    rows, edges = speedup.table(race, {"AggMo": "0, 0.9, 0.99"})
    return report.Finding(
        id="E2",
        reading=READING,
        primary=PRIMARY.format(speedup=cfg.speedup, target_at=cfg.target_at),
        setup=f"MNIST-1D (8,000 train / 2,000 validation / 2,000 test), 40-100-100-10 ReLU "
        f"MLP, {cfg.schedule.steps} steps of batch {cfg.schedule.batch_size}, training-subset "
        f"losses every {cfg.schedule.eval_every} steps, {cfg.seeds} seeds (same "
        "initialisation and batches for every method). Heavy ball: mo.sgd(lr, beta); "
        f"Demon: mo.sgd(lr, mo.schedules.demon(beta_0, {cfg.schedule.steps})) (Chen et "
        f"al.); QHM: chain(mo.qhm({cfg.qhm_nu:g}, beta), scale_by_learning_rate(lr)) (Ma "
        f"& Yarats); AggMo: chain(mo.aggmo({report.listing(cfg.aggmo_decays)}), "
        "scale_by_learning_rate(lr)) (Lucas et al.). " + race_lib.rule(cfg.target_at),
        budget=f"{cfg.trials} trials per method: heavy ball and Demon (beta_0) on "
        f"{race_lib.grid(cfg.trials, cfg.effective, cfg.one_minus_beta)}; QHM (lr inside "
        f"its average: no 1 / (1 - beta) gain) on a log grid of lr in "
        f"{report.listing(cfg.qhm_lr)} x 1 - beta in "
        f"{report.listing(cfg.qhm_one_minus_beta)}; AggMo on a log grid of lr in "
        f"{report.listing(cfg.aggmo_lr)}. Heavy ball's target from its trial with the "
        "lowest final training loss.",
        headline=f"steps ratio to heavy ball's target: {speedup.ratios(verdict.primary)}",
        table=rows,
        plots=plots,
        verdict=verdict,
        metrics={"target": race.targets[BASELINE], **speedup.metrics(race)},
        notes=report.edge_note(edges),
        horizon=speedup.horizon(race, cfg, BASELINE, tasks.mnist1d_mlp()),
    )


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    race = measure(cfg, key, status)
    verdict = judge(race.steps, race.final_loss, race.test, cfg)
    return [describe(race, verdict, figure(race, cfg, out), cfg)]
