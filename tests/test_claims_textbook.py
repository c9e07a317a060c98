"""The textbook checks (C1, C2, C3/C4 quadratic parts, C7, C12) and C13 (oscillation):
judges on hand-made numbers for every status, the rate fit, and tiny end-to-end runs."""

import dataclasses

import jax
import numpy as np
import pytest

from experiments import loop
from experiments.claims import ema_check
from experiments.claims import oscillation
from experiments.claims import quadratic_checks
from experiments.claims import ravines
from experiments.claims import textbook
from experiments.protocol import verdicts

CFG = textbook.QUICK
PASSED, FAILED = verdicts.CHECK_PASSED, verdicts.CHECK_FAILED


# ------------------------------------------------------------------------ textbook: the fit


def test_fitted_rate_recovers_a_double_root():
    t = np.arange(3000)
    errors = (1 + 0.3 * t) * 0.97**t
    np.testing.assert_allclose(ravines.fitted_rate(errors), 0.97, rtol=1e-4)


def test_fitted_rate_reads_heavy_ball_just_beyond_polyak_at_sqrt_beta():
    kappa = 219.3  # two modes beat slowly: a fit through the troughs is off by ~0.5%
    beta = 1 - (1 - quadratic_checks.polyak_beta(kappa)) / 2
    lr, curvature = 2 * (1 + beta) / (kappa + 1), np.array([kappa, 1.0])
    z = prev = np.array([0.99, 0.14])
    errors = [1.0]
    for _ in range(3000):  # heavy ball in float64, one eigen-coordinate per mode
        z, prev = z - lr * curvature * z + beta * (z - prev), z
        errors.append(np.linalg.norm(z))
    assert ravines.exponent_error(ravines.fitted_rate(np.array(errors)), np.sqrt(beta)) < 2e-3


def test_flip_fraction_ignores_rounding_below_the_floor():
    z = np.array([1.0, -0.5, 0.25, -1e-7, 1e-7, -1e-7])
    assert ravines.flip_fraction(z, 1e-5) == 1.0  # 2 pairs above the floor, both flip
    assert ravines.flip_fraction(np.abs(z), 1e-5) == 0.0


def test_rotation_is_orthogonal_and_the_run_is_in_eigen_coordinates():
    row = {
        "theta": np.float32(0.7),
        "phi": np.float32(0.3),
        "kappa": np.float32(10.0),
        "lr": np.float32(0.05),
        "momentum": np.float32(0.0),
        "nesterov": np.int32(0),
    }
    q = np.asarray(ravines.rotation(row["theta"]))
    np.testing.assert_allclose(q @ q.T, np.eye(2), atol=1e-6)
    run = ravines.ravine_run(row, 3)
    # gradient descent multiplies eigen-coordinate i by 1 - lr c_i, c = (kappa, 1)
    np.testing.assert_allclose(run.z[1] / run.z[0], [1 - 0.5, 1 - 0.05], rtol=1e-4)


# ---------------------------------------------------------------------- textbook: the judges


def c1_numbers():
    m = np.asarray(CFG.lr_multiples)
    steps = np.tile(np.where(m > 2, np.inf, 100.0 / m), (3, 1))
    diverged = np.tile(m > 2, (3, 1))
    flips = np.tile(np.where(m > 1, 1.0, 0.0), (3, 1))
    return steps, np.zeros_like(flips), flips, diverged


def test_c1_passes_on_textbook_numbers():
    steps, rises, flips, diverged = c1_numbers()
    assert (
        quadratic_checks.judge_c1(steps, rises, flips, diverged, CFG.lr_multiples).status == PASSED
    )


@pytest.mark.parametrize("broken", ["slow", "rises", "flips", "diverged"])
def test_c1_fails_when_one_seed_breaks_one_condition(broken):
    steps, rises, flips, diverged = c1_numbers()
    if broken == "slow":
        steps[1, 0] = 200.0  # only 3.6x the best lr's steps
    elif broken == "rises":
        rises[2, 0] = 1
    elif broken == "flips":
        flips[0, 5] = 0.9
    else:
        diverged[0, 6] = True  # lr 1.8/L diverging
    assert (
        quadratic_checks.judge_c1(steps, rises, flips, diverged, CFG.lr_multiples).status == FAILED
    )


def tuned_numbers():
    kappa = np.array([100.0, 400.0, 900.0])
    theory = np.stack(
        [[(k - 1) / (k + 1), (k**0.5 - 1) / (k**0.5 + 1), 1 - k**-0.5] for k in kappa]
    )
    steps = np.stack([[13.8 * k / 2, 13.8 * k**0.5 / 2, 13.8 * k**0.5] for k in kappa])
    return theory.copy(), theory, steps, kappa


def test_c2_and_c4_pass_at_the_theoretical_rates():
    rate, theory, steps, kappa = tuned_numbers()
    assert quadratic_checks.judge_c2(rate, theory, steps, kappa, CFG).status == PASSED
    assert quadratic_checks.judge_c4(rate, theory, CFG).status == PASSED


def test_c2_fails_when_a_rate_is_off_by_ten_percent_in_one_seed():
    rate, theory, steps, kappa = tuned_numbers()
    rate[2, 2] = np.exp(1.1 * np.log(theory[2, 2]))
    assert quadratic_checks.judge_c2(rate, theory, steps, kappa, CFG).status == FAILED


def test_c2_fails_without_the_heavy_ball_speedup():
    rate, theory, steps, kappa = tuned_numbers()
    steps[:, 1] = steps[:, 0] / 2
    assert quadratic_checks.judge_c2(rate, theory, steps, kappa, CFG).status == FAILED


def test_c4_fails_when_nesterov_is_measured_faster():
    rate, theory, _, _ = tuned_numbers()
    rate[:, 1], rate[:, 2] = theory[:, 2], theory[:, 1]
    assert quadratic_checks.judge_c4(rate, theory, CFG).status == FAILED


def c3_numbers():
    polyak = 0.8
    betas = np.tile([0.0, 0.4, polyak, 0.9, 0.95, 0.975], (3, 1))
    best = np.where(betas >= polyak, np.sqrt(betas), [0.99, 0.95, 0, 0, 0, 0])
    rate = np.stack([best, best + 0.01, np.full_like(best, np.nan)], -1)  # (seeds, betas, lrs)
    return betas, rate


def test_c3_passes_when_the_best_rate_is_sqrt_beta_beyond_polyak():
    betas, rate = c3_numbers()
    assert quadratic_checks.judge_c3(betas, rate, CFG).status == PASSED


def test_c3_fails_when_a_large_beta_beats_polyak():
    betas, rate = c3_numbers()
    rate[1, 5, 0] = 0.85  # beta 0.975 faster than sqrt(0.975)
    assert quadratic_checks.judge_c3(betas, rate, CFG).status == FAILED


def test_c12_passes_and_fails_on_the_coherence_medians():
    coherence = np.stack([np.full((3, 50), 0.1), np.full((3, 50), 0.9)], 1)
    assert quadratic_checks.judge_c12(coherence).status == PASSED
    coherence[2, 1] = 0.4  # the shallow components of one seed cancel
    assert quadratic_checks.judge_c12(coherence).status == FAILED


def test_c7_needs_agreement_and_a_control_that_disagrees():
    differences = np.stack(
        [np.full((3, 3), 1e-7), np.full((3, 3), 1.0), np.full((3, 3), 1e-2)], -1
    )  # free-running: reported, not judged
    assert ema_check.judge_c7(differences, CFG).status == PASSED
    differences[1, 1, 0] = 1e-3
    assert ema_check.judge_c7(differences, CFG).status == FAILED
    differences[1, 1, 0], differences[0, 0, 1] = 1e-7, 1e-6  # the control agrees too
    assert ema_check.judge_c7(differences, CFG).status == FAILED


# ------------------------------------------------------------------------ C13: the judge


def c13_judge(hb_factor):
    gd = np.array([100.0, 90.0, 110.0])
    same_lr = np.stack([gd, gd * np.asarray(hb_factor), gd * 3], -1)
    stable = np.tile([2.0, 3.0, 3.8], (3, 1))
    steps = np.tile([500.0, 150.0, 200.0], (3, 1))
    return oscillation.judge(
        same_lr, stable, steps, np.zeros(3), np.full(3, 0.1), oscillation.QUICK
    )


def test_c13_supported_when_heavy_ball_changes_sign_half_as_often():
    verdict = c13_judge(0.5)
    assert verdict.status == verdicts.SUPPORTED
    assert len(verdict.secondary) == 6


def test_c13_not_supported_when_heavy_ball_changes_sign_more_often():
    assert c13_judge(1.25).status == verdicts.NOT_SUPPORTED


def test_c13_inconclusive_when_the_seeds_straddle_the_threshold():
    assert c13_judge([0.2, 0.8, 1.4]).status == verdicts.INCONCLUSIVE


# -------------------------------------------------------------------------- end to end

TINY = dataclasses.replace(
    textbook.QUICK,
    steps=3000,
    rate_kappa=(10.0, 30.0),
    lr_kappa=(5.0, 20.0),
    ema_steps=20,
    ema_betas=(0.5, 0.9),
)


@pytest.mark.slow
def test_textbook_checks_pass_end_to_end(tmp_path):
    findings = textbook.run(TINY, jax.random.key(0), tmp_path)
    assert [f.id for f in findings] == list(textbook.CLAIMS)
    for f in findings:
        assert f.check and f.verdict.status == PASSED, (f.id, f.verdict.reason)
        assert all((tmp_path / p).exists() for p in f.plots)
    c2 = findings[1].metrics
    assert np.all(np.abs(c2["rate"] / c2["theory"] - 1) < 1e-2)
    assert len(set(np.round(c2["kappa"], 3))) == TINY.seeds  # the seeds draw different ravines


@pytest.mark.slow
def test_oscillation_end_to_end_matches_the_stability_limits(tmp_path):
    cfg = dataclasses.replace(
        oscillation.QUICK,
        lrs=21,
        steps=600,
        kappa=(10.0, 30.0),
        trials=2,
        schedule=loop.Schedule(steps=100, batch_size=32, eval_every=50),
    )
    (finding,) = oscillation.run(cfg, jax.random.key(0), tmp_path)
    assert finding.id == "C13" and finding.verdict.status in verdicts.EMPIRICAL
    assert (tmp_path / finding.plots[0]).exists()
    stable, m = finding.metrics["stable"], oscillation.grid(cfg)
    step = m[1] / m[0]  # the grid's resolution
    for j, beta in enumerate(cfg.momenta):  # theory: GD 2/L, heavy ball 2 (1 + beta) / L
        assert np.all(stable[:, j] <= 2 * (1 + beta)) and np.all(
            stable[:, j] * step > 2 * (1 + beta)
        )
    assert finding.metrics["same_lr"].shape == (cfg.seeds, len(cfg.momenta))
