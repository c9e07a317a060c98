"""Textbook checks: GD's step-size limits, Polyak's and Nesterov's rates, EMA == scaled heavy ball.

Measure: every quadratic check (C1; C2; C3's and C4's quadratic parts; C12) runs on
randomised ravines f(x) = (kappa z1^2 + z2^2) / 2 with z = Q^T x: per seed a random
rotation Q, a random start on the unit circle and a condition number drawn log-uniformly,
all seeds x settings of every check in one compiled vmap. C7 trains the MNIST-1D MLP with
EMA momentum, heavy ball at lr (1 - b) and (as a control) heavy ball at lr on the same
batches, every seed and b in one compile. Judge: each statement is a theorem or an
identity, so every condition must hold on every seed (``verdicts.judge_check``).

The checks live in ``quadratic_checks`` (measure, judge) and ``quadratic_report`` (figures,
Findings) on the ravines of ``ravines``, and in ``ema_check`` (C7); its configuration is
``parts.textbook_config``; this module runs them.
"""

from __future__ import annotations

import pathlib

import jax

from .. import report
from ..parts import ema_check
from ..parts import quadratic_checks
from ..parts import quadratic_report
from ..parts import textbook_config

NAME = "textbook"
CLAIMS = ("C1", "C2", "C3", "C4", "C7", "C12")
Config = textbook_config.Config
QUICK = textbook_config.QUICK
FULL = textbook_config.FULL


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
