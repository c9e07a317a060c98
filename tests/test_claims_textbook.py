"""The textbook checks (C1, C2, C3/C4 quadratic parts, C7, C12) and C13 (oscillation):
judges on hand-made numbers for every status, the rate fit, and tiny end-to-end runs."""

import dataclasses

import jax
import numpy as np
import pytest

from experiments import loop
from experiments.claims import oscillation
from experiments.claims import textbook
from experiments.parts import ema_check
from experiments.parts import quadratic_checks
from experiments.parts import ravines
from experiments.protocol import race
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


OSC = oscillation.QUICK  # momenta: GD, heavy ball 0.5, heavy ball 0.9; 5 seeds
POINTS = {"below 1/L": 27, "1/L to 2/L": 6, "above 2/L": 8}  # the QUICK grid's split
STABLE = np.tile([2.0, 3.0, 3.8], (5, 1))  # theory: 2 (1 + beta) / L
TUNED = race.Arrival(  # steps to tolerance at each method's tuned lr: GD, 0.5, 0.9
    np.stack(
        [
            [3000.0, 2500, 2600, 2400, 2700],
            [900.0, 800, 850, 950, 870],
            [300.0, 310, 290, 280, 305],
        ],
        -1,
    ),
    np.array([[True, False, False]] + [[False] * 3] * 4),  # GD censored on seed 0
    3000.0,
)
RISES_HB, RISES_GD = np.array([0.10, 0.12, 0.08, 0.11, 0.09]), np.full(5, 0.2)

# sign changes summed over each regime's grid points, per seed: GD, heavy ball 0.5, 0.9
NONE = np.zeros(5)
GD_MIDDLE = np.array([120.0, 110, 130, 125, 115])  # GD oscillates and converges
GD_ABOVE = np.full(5, 400.0)  # GD diverges: a sign change every step
FEWER_MIDDLE = np.array([40.0, 35, 45, 50, 38])  # about a third of GD's
FEWER_ABOVE = np.array([100.0, 110, 90, 120, 80])
STRADDLES = np.array([40.0, 150, 60, 140, 70])  # per-seed ratios 0.33 to 1.36
MORE = np.array([30.0, 31, 29, 33, 32])  # heavy ball 0.5 oscillates where GD cannot


def c13(below, middle, above):
    """C13's verdict from the per-regime sign changes ``(gd, heavy ball 0.5, heavy ball
    0.9)``, each per seed; heavy ball 0.9 repeats heavy ball 0.5 times 2."""
    stack = lambda gd, hb: np.stack([gd, hb, 2 * hb], -1)
    regimes = {
        "below 1/L": stack(*below),
        "1/L to 2/L": stack(*middle),
        "above 2/L": stack(*above),
    }
    return oscillation.judge(regimes, POINTS, STABLE, TUNED, RISES_HB, RISES_GD, OSC)


def floored_ratio(a, b):
    a, b = np.maximum(a, 0.5), np.maximum(b, 0.5)
    return float(np.exp(np.mean(np.log(a / b))))


@pytest.mark.parametrize(
    "below, middle, above, status, statuses",
    [
        # hand-made: GD changing sign below 1/L (it cannot), heavy ball less
        (
            (MORE, NONE),
            (GD_MIDDLE, FEWER_MIDDLE),
            (GD_ABOVE, FEWER_ABOVE),
            verdicts.SUPPORTED,
            ("supported",) * 3,
        ),
        (
            (NONE, MORE),
            (GD_MIDDLE, GD_MIDDLE * 1.25),
            (GD_ABOVE, GD_ABOVE * 0.95),
            verdicts.NOT_SUPPORTED,
            ("not supported",) * 3,
        ),
        # the physical picture: heavy ball adds sign changes below 1/L, removes them above
        (
            (NONE, MORE),
            (GD_MIDDLE, FEWER_MIDDLE),
            (GD_ABOVE, FEWER_ABOVE),
            verdicts.DEPENDS,
            ("not supported", "supported", "supported"),
        ),
        (
            (MORE, NONE),
            (GD_MIDDLE, STRADDLES),
            (GD_ABOVE, FEWER_ABOVE),
            verdicts.INCONCLUSIVE,
            ("supported", "inconclusive", "supported"),
        ),
        (
            (NONE, MORE),
            (GD_MIDDLE, STRADDLES),
            (GD_ABOVE, GD_ABOVE),
            verdicts.INCONCLUSIVE,
            ("not supported", "inconclusive", "not supported"),
        ),
        # neither changes sign below 1/L: no risk added there, which is all it can mean
        (
            (NONE, NONE),
            (GD_MIDDLE, FEWER_MIDDLE),
            (GD_ABOVE, FEWER_ABOVE),
            verdicts.SUPPORTED,
            ("supported",) * 3,
        ),
    ],
)
def test_c13_is_judged_per_regime_of_the_learning_rate(below, middle, above, status, statuses):
    verdict = c13(below, middle, above)
    assert verdict.status == status
    assert [c.text.split(":")[0] for c in verdict.primary] == list(POINTS)
    assert tuple(c.status for c in verdict.primary) == statuses
    first, second, third = (c.estimate for c in verdict.primary)
    # below 1/L: sign changes added per grid point, heavy ball 0.5 - GD, below 0.5
    assert first.mean == pytest.approx(np.mean((below[1] - below[0]) / POINTS["below 1/L"]))
    assert verdict.primary[0].threshold == OSC.added == 0.5
    # the other two: the geometric mean of the per-seed ratios, counts floored at 0.5
    assert second.mean == pytest.approx(floored_ratio(middle[1], middle[0]))
    assert third.mean == pytest.approx(floored_ratio(above[1], above[0]))
    assert verdict.primary[2].threshold == OSC.threshold
    if status == verdicts.DEPENDS:
        assert "Holds for 1/L to 2/L, above 2/L only." in verdict.reason


def test_c13_secondaries_are_reported_and_do_not_vote():
    verdict = c13((MORE, NONE), (GD_MIDDLE, FEWER_MIDDLE), (GD_ABOVE, FEWER_ABOVE))
    assert verdict.status == verdicts.SUPPORTED
    by_text = {c.text: c for c in verdict.secondary}
    assert len(by_text) == 8
    # heavy ball 0.9 per regime: here twice heavy ball 0.5's sign changes
    middle = by_text["1/L to 2/L: sign changes, heavy ball 0.9 / GD"].estimate
    assert middle.mean == pytest.approx(floored_ratio(2 * FEWER_MIDDLE, GD_MIDDLE))
    below = by_text["below 1/L: sign changes, heavy ball 0.9 / GD"]
    assert below.estimate.mean == pytest.approx(floored_ratio(2 * NONE, MORE))
    assert below.status == verdicts.SUPPORTED
    stable = [by_text[f"largest stable lr, heavy ball {b} / GD"] for b in ("0.5", "0.9")]
    assert [c.estimate.mean for c in stable] == pytest.approx([1.5, 1.9])
    assert all(c.status == verdicts.SUPPORTED for c in stable)
    # steps at each method's tuned lr: GD censored on seed 0, so an upper bound
    speed = by_text["steps to tolerance at own tuned lr, heavy ball 0.5 / GD"]
    assert speed.estimate.bound == "upper" and speed.status == verdicts.SUPPORTED
    expected = np.exp(np.mean(np.log(TUNED.steps[:, 1] / TUNED.steps[:, 0])))
    assert speed.estimate.mean == pytest.approx(expected)
    mnist = next(c for c in verdict.secondary if c.text.startswith("MNIST-1D"))
    assert mnist.estimate.mean == pytest.approx(-0.1) and mnist.status == verdicts.SUPPORTED
    # the same primary with every secondary against it: the status does not move
    against = oscillation.judge(
        {
            "below 1/L": np.stack([MORE, NONE, 10 * MORE], -1),
            "1/L to 2/L": np.stack([GD_MIDDLE, FEWER_MIDDLE, 3 * GD_MIDDLE], -1),
            "above 2/L": np.stack([GD_ABOVE, FEWER_ABOVE, 3 * GD_ABOVE], -1),
        },
        POINTS,
        STABLE[:, ::-1],
        race.Arrival(TUNED.steps[:, ::-1], np.zeros((5, 3), bool), TUNED.horizon),
        RISES_GD,
        RISES_HB,
        OSC,
    )
    assert all(c.status == verdicts.NOT_SUPPORTED for c in against.secondary)
    assert against.status == verdicts.SUPPORTED


def test_c13_floors_counts_at_half_a_sign_change_so_that_a_ratio_exists():
    # heavy ball never changes sign above 2/L, GD on every step: 0.5 / 400 on every seed
    verdict = c13((MORE, NONE), (GD_MIDDLE, FEWER_MIDDLE), (GD_ABOVE, NONE))
    above = verdict.primary[2].estimate
    assert above.mean == pytest.approx(0.5 / 400) and above.high == pytest.approx(0.5 / 400)
    assert verdict.status == verdicts.SUPPORTED
    # neither changes sign: a ratio of 1, not a speedup
    verdict = c13((MORE, NONE), (NONE, NONE), (GD_ABOVE, FEWER_ABOVE))
    assert verdict.primary[1].estimate.mean == pytest.approx(1.0)
    assert verdict.primary[1].status == verdicts.NOT_SUPPORTED
    assert verdict.status == verdicts.DEPENDS


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
    regimes, points = finding.metrics["regimes"], finding.metrics["points"]
    assert list(regimes) == list(oscillation.REGIMES) and sum(points.values()) == cfg.lrs
    for name, flips in regimes.items():
        assert flips.shape == (cfg.seeds, len(cfg.momenta)), name
    assert np.all(regimes["below 1/L"][:, 0] == 0)  # GD below 1/L cannot change sign
    assert [c.text.split(":")[0] for c in finding.verdict.primary] == list(points)
