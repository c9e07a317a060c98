"""Textbook checks: GD's step-size limits, Polyak's and Nesterov's rates, EMA == scaled heavy ball.

Measure: every quadratic check (C1; C2; C3's and C4's quadratic parts; C12) runs on
randomised ravines f(x) = (kappa z1^2 + z2^2) / 2 with z = Q^T x: per seed a random
rotation Q, a random start on the unit circle and a condition number drawn log-uniformly,
all seeds x settings of every check in one compiled vmap. C7 trains the MNIST-1D MLP with
EMA momentum, heavy ball at lr (1 - b) and (as a control) heavy ball at lr on the same
batches, every seed and b in one compile. Judge: each statement is a theorem or an
identity, so every condition must hold on every seed (``verdicts.judge_check``).

The checks live in ``quadratic_checks`` (measure, judge) and ``quadratic_report`` (figures,
Findings) on the ravines of ``ravines``, and in ``ema_check`` (C7); this module holds the
experiment's configuration and runs them.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax

from experiments import report
from experiments.claims import ema_check
from experiments.claims import quadratic_checks
from experiments.claims import quadratic_report

NAME = "textbook"
CLAIMS = ("C1", "C2", "C3", "C4", "C7", "C12")


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    steps: int = 12_000  # every quadratic run (one compile)
    tolerance: float = 1e-6  # distance to the minimum, relative to the start
    lr_kappa: tuple[float, float] = (10.0, 30.0)  # C1: condition numbers drawn in this range
    lr_multiples: tuple[float, ...] = (0.05, 0.2, 0.5, 0.9, 1.2, 1.5, 1.8, 2.1, 2.5)  # x 1/L
    rate_kappa: tuple[float, float] = (100.0, 1000.0)  # C2, C3, C4
    rate_error: float = 0.05  # measured vs theoretical -log(rate), relative
    speedup: float = 0.5  # C2: GD's steps / heavy ball's at least this x sqrt(kappa)
    below_polyak: tuple[float, ...] = (0.0, 0.5)  # C3: beta = these x Polyak's beta
    beyond_polyak: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)  # beta = 1 - (1 - Polyak's) / these
    beta_lrs: tuple[float, ...] = (0.5, 0.7, 1.0, 1.2)  # x 2 (1 + beta) / (L + mu)
    ravine_kappa: tuple[float, float] = (1000.0, 10000.0)  # C12
    ravine_lr: float = 1.5  # x 1/L
    ravine_momentum: float = 0.9
    ravine_steps: int = 50
    flip_floor: float = 1e-5  # C1: sign changes of |z1| below this (rounding) are not counted
    ema_betas: tuple[float, ...] = (0.5, 0.9, 0.99)  # C7
    ema_lr: float = 0.05
    ema_steps: int = 400
    ema_batch: int = 32
    ema_tolerance: float = 1e-4  # max relative parameter difference (float32)


QUICK = Config(seeds=5, ema_steps=300)
FULL = Config()


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    """Measures, judges, draws and describes every check; the Findings in ``CLAIMS``' order."""
    status("quadratics: C1, C2, C3, C4, C12 (one compile)")
    n = quadratic_checks.measure(cfg, key)
    status("C7: EMA vs scaled heavy ball on MNIST-1D (one compile)")
    differences = ema_check.measure_ema(cfg, key)
    findings = quadratic_report.describe(
        n, quadratic_checks.judge(n, cfg), quadratic_report.figures(n, cfg, out), cfg
    )
    findings.append(
        ema_check.describe(
            differences,
            ema_check.judge_c7(differences, cfg),
            ema_check.figure(differences, cfg, out),
            cfg,
        )
    )
    by_id = {f.id: f for f in findings}
    return [by_id[i] for i in CLAIMS]
