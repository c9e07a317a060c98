"""The quadratic textbook checks: GD's step-size limits (C1), Polyak's and Nesterov's rates at
their optimal constant parameters (C2, C4's quadratic part), heavy ball beyond Polyak's beta
(C3's quadratic part) and the cancelling / reinforcing gradient steps in a ravine (C12).

Measure: every check on the randomised ravines of ``ravines``, all seeds x settings of
every check in one compiled vmap. Judge: each statement is a theorem, so every condition
must hold on every seed (``every_seed.check``). Figures and Findings: ``quadratic_report``.
"""

from __future__ import annotations

import jax
import numpy as np

import momentum_optax as mo

from .. import measures
from ..parts import ravines as rv
from ..parts.every_seed import check
from ..parts.textbook_config import Config
from ..protocol import verdicts

CLAIMS = ("C1", "C2", "C3", "C4", "C12")
METHODS = ("GD", "heavy ball", "Nesterov")


def polyak_beta(kappa: float) -> float:
    """Polyak's optimal heavy-ball momentum for condition number ``kappa``."""
    return mo.tuning.heavy_ball(kappa, 1.0).momentum


def c3_betas(kappa: float, cfg: Config) -> list[float]:
    """C3's betas: ``cfg.below_polyak`` x Polyak's, then 1 - (1 - Polyak's) / each of
    ``cfg.beyond_polyak``."""
    b = polyak_beta(kappa)
    return [f * b for f in cfg.below_polyak] + [1 - (1 - b) / d for d in cfg.beyond_polyak]


def quadratic_blocks(cfg: Config, key: jax.Array) -> tuple[dict, dict]:
    """The rows of C1, the tuned methods (C2, C4), C3's beta x lr grid and C12."""
    draws = {
        "C1": rv.ravines(key, cfg.seeds, cfg.lr_kappa),
        "tuned": rv.ravines(key, cfg.seeds, cfg.rate_kappa),
        "C3": rv.ravines(key, cfg.seeds, cfg.rate_kappa),
        "C12": rv.ravines(key, cfg.seeds, cfg.ravine_kappa),
    }

    def tuned(k):
        return [
            (*mo.tuning.gradient_descent(k, 1.0)[:2], 0),
            (*mo.tuning.heavy_ball(k, 1.0)[:2], 0),
            (*mo.tuning.nesterov(k, 1.0)[:2], 1),
        ]

    settings = {
        "C1": lambda k: [(m / k, 0.0, 0) for m in cfg.lr_multiples],
        "tuned": tuned,
        "C3": lambda k: [
            (f * 2 * (1 + b) / (k + 1), b, 0) for b in c3_betas(k, cfg) for f in cfg.beta_lrs
        ],
        "C12": lambda k: [(cfg.ravine_lr / k, m, 0) for m in (0.0, cfg.ravine_momentum)],
    }
    return {n: rv.block(draws[n], settings[n]) for n in draws}, draws


def measure(cfg: Config, key: jax.Array) -> dict:
    """Every quadratic check's numbers, one compile: ``C1``, ``tuned`` (C2, C4), ``C3``, ``C12``."""
    blocks, draws = quadratic_blocks(cfg, key)
    runs = rv.run_blocks(blocks, cfg.steps, cfg.seeds)
    c1, tuned, c3, c12 = (rv.distance(runs[n]) for n in ("C1", "tuned", "C3", "C12"))
    kappa = draws["tuned"]["kappa"]
    theory = np.stack(
        [
            [
                mo.tuning.gradient_descent(k, 1.0).rate,
                mo.tuning.heavy_ball(k, 1.0).rate,
                mo.tuning.nesterov(k, 1.0).rate,
            ]
            for k in kappa
        ]
    )
    shape3 = (cfg.seeds, len(cfg.below_polyak) + len(cfg.beyond_polyak), len(cfg.beta_lrs))
    grads = np.moveaxis(
        runs["C12"].grad[:, 1, : cfg.ravine_steps], -1, 1
    )  # heavy ball, (s, axis, t)
    return {
        "C1": {
            "kappa": draws["C1"]["kappa"],
            "error": c1[:, :, :60],
            "steps": measures.steps_to(c1, cfg.tolerance),
            "diverged": measures.diverged(c1),
            "flips": rv.flip_fraction(runs["C1"].z[:, :, :11, 0], cfg.flip_floor),
            "rises": measures.increases(runs["C1"].loss),
            "steep": runs["C1"].z[:, :, :31, 0],
        },
        "tuned": {
            "kappa": kappa,
            "theory": theory,
            "rate": rv.fitted_rate(tuned),
            "steps": measures.steps_to(tuned, cfg.tolerance),
            "error": tuned,
        },
        "C3": {
            "kappa": draws["C3"]["kappa"],
            "polyak": np.array([polyak_beta(k) for k in draws["C3"]["kappa"]]),
            "betas": np.array([c3_betas(k, cfg) for k in draws["C3"]["kappa"]]),
            "rate": rv.fitted_rate(c3).reshape(shape3),
        },
        "C12": {
            "kappa": draws["C12"]["kappa"],
            "grads": grads,
            "coherence": measures.coherence(grads, cfg.ravine_momentum),
            "final": c12[:, :, cfg.ravine_steps],
        },
    }


def judge(n: dict, cfg: Config) -> dict[str, verdicts.Verdict]:
    """Every quadratic check's verdict from ``measure``'s numbers."""
    c1, t, c3 = n["C1"], n["tuned"], n["C3"]
    return {
        "C1": judge_c1(c1["steps"], c1["rises"], c1["flips"], c1["diverged"], cfg.lr_multiples),
        "C2": judge_c2(t["rate"], t["theory"], t["steps"], t["kappa"], cfg),
        "C3": judge_c3(c3["betas"], c3["rate"], cfg),
        "C4": judge_c4(t["rate"], t["theory"], cfg),
        "C12": judge_c12(n["C12"]["coherence"]),
    }


def judge_c1(steps, rises, flips, diverged, multiples) -> verdicts.Verdict:
    """Arrays ``(seeds, learning rates)``; ``multiples`` the learning rates x L."""
    m = np.asarray(multiples)
    small = int(np.argmin(m))
    best = np.where(diverged, np.inf, steps).min(1)
    with np.errstate(invalid="ignore"):
        slow = steps[:, small] / best
    return verdicts.judge_check(
        [
            check(
                f"steps at the smallest lr ({m[small]:g}/L) / steps at the best lr",
                slow,
                10.0,
                verdicts.ABOVE,
            ),
            check("loss increases at the smallest lr", rises[:, small], 0.5, verdicts.BELOW),
            check(
                "fraction of the first 10 steps at which the steep eigen-coordinate changes "
                "sign, lr in (1/L, 2/L)",
                flips[:, (m > 1) & (m < 2)],
                0.999,
                verdicts.ABOVE,
            ),
            check("the same, lr below 1/L", flips[:, m < 1], 0.001, verdicts.BELOW),
            check(
                "fraction of runs that diverge exactly when lr > 2/L",
                np.mean(diverged == (m > 2), 1),
                0.99,
                verdicts.ABOVE,
            ),
        ]
    )


def judge_c2(rate, theory, steps, kappa, cfg: Config) -> verdicts.Verdict:
    """``rate``, ``theory``, ``steps``: ``(seeds, 3)`` for GD, heavy ball, Nesterov."""
    error = rv.exponent_error(rate, theory)
    with np.errstate(invalid="ignore"):
        speedup = steps[:, 0] / steps[:, 1] / np.sqrt(kappa)
    return verdicts.judge_check(
        [
            check(
                f"{name}: |log measured rate / log theoretical rate - 1|",
                error[:, i],
                cfg.rate_error,
                verdicts.BELOW,
            )
            for i, name in enumerate(METHODS)
        ]
        + [
            check(
                "GD's steps to tolerance / heavy ball's, over sqrt(kappa)",
                speedup,
                cfg.speedup,
                verdicts.ABOVE,
            )
        ]
    )


def judge_c4(rate, theory, cfg: Config) -> verdicts.Verdict:
    """Heavy ball (column 1) against Nesterov (column 2) at their own optimal parameters."""
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.log(rate[:, 1]) / np.log(rate[:, 2])
        expected = np.log(theory[:, 1]) / np.log(theory[:, 2])
    error = np.where(np.isfinite(speed), np.abs(speed / expected - 1), 1.0)
    return verdicts.judge_check(
        [
            check(
                "heavy ball's measured rate - Nesterov's",
                rate[:, 1] - rate[:, 2],
                0.0,
                verdicts.BELOW,
            ),
            check(
                "measured speed ratio log rate(heavy ball) / log rate(Nesterov) vs theory, "
                "relative error",
                error,
                cfg.rate_error,
                verdicts.BELOW,
            ),
        ]
    )


def best_rates(rate: np.ndarray) -> np.ndarray:
    """The best (lowest) fitted rate over the last axis (learning rates); none fitted: 1."""
    return np.where(np.isfinite(rate), rate, 1.0).min(-1)


def judge_c3(betas, rate, cfg: Config) -> verdicts.Verdict:
    """``betas`` ``(seeds, betas)`` with Polyak's at index ``len(cfg.below_polyak)``; ``rate``
    ``(seeds, betas, learning rates)``."""
    best, p = best_rates(rate), len(cfg.below_polyak)
    others = np.delete(best, p, axis=1)
    return verdicts.judge_check(
        [
            check(
                "beta >= Polyak's: |log best rate / log sqrt(beta) - 1|",
                rv.exponent_error(best[:, p:], np.sqrt(betas[:, p:])),
                cfg.rate_error,
                verdicts.BELOW,
            ),
            check(
                "best rate of every other beta - Polyak's",
                others.min(1) - best[:, p],
                0.0,
                verdicts.ABOVE,
            ),
            check(
                "beyond Polyak's beta, the smallest rise of the best rate from one beta to the "
                "next",
                np.diff(best[:, p:], axis=1).min(1),
                0.0,
                verdicts.ABOVE,
            ),
        ]
    )


def judge_c12(coherence) -> verdicts.Verdict:
    """``coherence``: ``(seeds, 2 axes (steep, shallow), steps)``; judged on the median over
    the steps from the third on."""
    median = np.median(coherence[..., 2:], -1)
    return verdicts.judge_check(
        [
            check("steep direction: median coherence", median[:, 0], 0.5, verdicts.BELOW),
            check("shallow direction: median coherence", median[:, 1], 0.5, verdicts.ABOVE),
        ]
    )
