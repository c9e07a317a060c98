"""C3 (how much momentum), C4 (Nesterov vs heavy ball) and C15 (the cost of tuning beta):
the judges on hand-made per-seed numbers, the helpers, and one tiny end-to-end run each."""

import dataclasses
import types

import jax
import numpy as np
import pytest

from experiments import loop
from experiments.claims import momentum_size as c3
from experiments.claims import nesterov as c4
from experiments.parts import budget
from experiments.protocol import race
from experiments.protocol import stats
from experiments.protocol import verdicts

S, N, I = verdicts.SUPPORTED, verdicts.NOT_SUPPORTED, verdicts.INCONCLUSIVE
SEEDS = 5  # the quick runs' seeds
HB, NAG, DEFAULT = c4.HB, c4.NAG, c4.DEFAULT


def by_beta(b0, b09, b099) -> dict[float, np.ndarray]:
    """``{beta: per-seed values}`` for betas 0, 0.9 and 0.99."""
    return {b: np.asarray(v, np.float64) for b, v in zip((0.0, 0.9, 0.99), (b0, b09, b099))}


JITTER = np.array([0.01, -0.01, 0.005, -0.005, 0.0])  # a small spread over the seeds
RISES_09 = np.array([0.10, 0.12, 0.08, 0.11, 0.09])
VAL = by_beta(1.30 + JITTER, 1.20 + JITTER, 1.45 - JITTER)  # 0.99 0.25 nats worse; 0.9 best
TRAIN = by_beta(1.10 + JITTER, 1.00 + JITTER, 0.90 + JITTER)  # 0.99 lower on training


def own(rises=None, val=None, train=None) -> dict:
    """C3's per-seed numbers at each beta's own cross-fitted lr (``measure``'s ``own``)."""
    rises = rises if rises is not None else by_beta(RISES_09, RISES_09, RISES_09 + 0.3)
    return {"rises": rises, "val": val or VAL, "train": train or TRAIN}


# ------------------------------------------------------------------------------- C3 judge


@pytest.mark.parametrize(
    "high, status",
    [
        ([0.40, 0.43, 0.37, 0.42, 0.38], S),  # 0.99 rises in 30% more intervals, every seed
        ([0.10, 0.13, 0.09, 0.10, 0.10], N),  # no more oscillation than 0.9
        ([0.10, 0.52, 0.08, 0.51, 0.09], I),  # more on two seeds only: straddles 0.1
    ],
)
def test_c3_primary_is_the_paired_difference_of_rising_intervals(high, status):
    rises = by_beta(np.full(SEEDS, 0.5), RISES_09, high)
    verdict = c3.judge(own(rises=rises), c3.QUICK)
    (primary,) = verdict.primary
    assert verdict.status == status == primary.status
    assert primary.threshold == c3.QUICK.rises == 0.1 and primary.side == verdicts.ABOVE
    assert primary.estimate.mean == pytest.approx(np.mean(np.asarray(high) - RISES_09))
    assert primary.estimate.n == SEEDS
    # the final losses are secondary: the same numbers whatever the status
    assert [c.status for c in verdict.secondary] == [S, S, N]


def test_c3_primary_pairs_the_seeds_and_reads_only_099_and_09():
    usual = np.array([0.0, 0.3, 0.6, 0.15, 0.45])  # seeds differ a lot ...
    high = usual + 0.2 + np.array([0.01, -0.01, 0.0, 0.005, -0.005])  # ... the gap does not
    verdict = c3.judge(own(rises=by_beta(np.zeros(SEEDS), usual, high)), c3.QUICK)
    assert verdict.status == S
    assert verdict.primary[0].estimate.low > 0.18
    # unpaired, the two means' intervals would overlap: the pairing is what resolves it
    assert stats.mean(high).low < stats.mean(usual).high
    # beta 0 (and every other beta) never enters the primary
    again = c3.judge(own(rises=by_beta(np.ones(SEEDS), usual, high)), c3.QUICK)
    assert again.primary[0].estimate == verdict.primary[0].estimate


def test_c3_the_betas_compared_are_the_configurations():
    cfg = dataclasses.replace(c3.QUICK, high=0.95, usual=0.0)
    rises = {0.0: RISES_09, 0.9: RISES_09 + 0.5, 0.95: RISES_09 + 0.05, 0.99: RISES_09 + 0.5}
    val = {b: 1.2 + JITTER for b in rises}
    verdict = c3.judge({"rises": rises, "val": val, "train": val}, cfg)
    assert verdict.primary[0].estimate.mean == pytest.approx(0.05)
    assert "beta 0.95 - beta 0" in verdict.primary[0].text and verdict.status == N


def test_c3_a_run_that_diverges_at_099_counts_as_rising_and_as_worse():
    # a non-finite curve rises in every interval from there on: the share is 1 at most
    curve = np.array([2.3, 1.5, np.nan, np.nan, np.nan])
    high = c3.rise_share(np.stack([curve] + [np.array([2.3, 2.0, 1.7, 1.8, 1.5])] * 4))
    np.testing.assert_allclose(high, [0.75, 0.25, 0.25, 0.25, 0.25])
    val = by_beta(VAL[0.0], VAL[0.9], [np.inf, 1.45, 1.46, 1.44, 1.45])
    verdict = c3.judge(own(rises=by_beta(RISES_09, RISES_09, high), val=val), c3.QUICK)
    worse = verdict.secondary[0]
    assert worse.estimate.mean == np.inf and worse.status == S
    assert worse.estimate.low > c3.QUICK.overshoot


@pytest.mark.parametrize(
    "high, status",
    [
        (1.45 - JITTER, S),  # 0.25 nats worse on every seed
        (1.20 - JITTER, N),  # as good as 0.9
        ([1.20, 1.60, 1.21, 1.19, 1.60], I),  # worse on two seeds
    ],
)
def test_c3_worse_at_a_fixed_budget_is_secondary(high, status):
    val = by_beta(VAL[0.0], VAL[0.9], high)
    verdict = c3.judge(own(val=val), c3.QUICK)
    worse = verdict.secondary[0]
    assert worse.text.startswith("worse at a fixed budget") and worse.status == status
    assert worse.threshold == c3.QUICK.overshoot and worse.side == verdicts.ABOVE
    assert worse.estimate.mean == pytest.approx(np.mean(np.asarray(high) - VAL[0.9]))
    assert verdict.status == S  # the oscillation alone decides


def test_c3_works_well_compares_09_with_the_best_beta_at_its_own_lr():
    # beta 0 is 0.2 nats better than 0.9 on every seed: 0.9 does not "work well"
    val = by_beta(1.0 + JITTER, 1.2 + JITTER, 1.5 + JITTER)
    works = c3.judge(own(val=val), c3.QUICK).secondary[1]
    assert "best beta (0)" in works.text and works.threshold == c3.QUICK.tolerance
    assert works.estimate.mean == pytest.approx(0.2) and works.status == N
    # within 0.02 nats of the best: it does
    val = by_beta(1.18 + JITTER, 1.2 + JITTER, 1.5 + JITTER)
    works = c3.judge(own(val=val), c3.QUICK).secondary[1]
    assert works.estimate.mean == pytest.approx(0.02) and works.status == S
    # 0.9 itself the best: a difference of exactly 0
    works = c3.judge(own(), c3.QUICK).secondary[1]
    assert "best beta (0.9)" in works.text
    assert works.estimate.mean == works.estimate.high == 0.0 and works.status == S


def test_c3_a_diverged_beta_is_never_the_best():
    # beta 0 is lower on four seeds but diverged (inf or NaN) on the fifth
    for bad in (np.inf, np.nan):
        val = by_beta([bad, 0.5, 0.5, 0.5, 0.5], 1.2 + JITTER, 1.45 + JITTER)
        works = c3.judge(own(val=val), c3.QUICK).secondary[1]
        assert "best beta (0.9)" in works.text and works.estimate.mean == 0.0


def test_c3_final_training_loss_is_reported_as_a_difference():
    train = by_beta(TRAIN[0.0], TRAIN[0.9], TRAIN[0.9] + 0.3)
    cond = c3.judge(own(train=train), c3.QUICK).secondary[2]
    assert cond.text.startswith("final training loss, beta 0.99 - beta 0.9")
    assert cond.estimate.mean == pytest.approx(0.3) and cond.status == S
    assert c3.judge(own(), c3.QUICK).secondary[2].estimate.mean == pytest.approx(-0.1)


# ------------------------------------------------------------------------------ C3 helpers


def test_rise_share_counts_the_intervals_in_which_the_loss_goes_up():
    curves = np.array(
        [
            [3.0, 2.0, 2.5, 1.0, 1.5],  # up in 2 of 4 intervals
            [3.0, 2.0, 1.0, 0.5, 0.25],  # never up
            [3.0, 3.0, 3.0, 3.0, 3.0],  # flat is not a rise
            [3.0, 4.0, 5.0, 6.0, 7.0],  # always up
            [3.0, 2.0, 1.0, np.inf, np.nan],  # up from the first non-finite evaluation
        ]
    )
    np.testing.assert_allclose(c3.rise_share(curves), [0.5, 0.0, 0.0, 1.0, 0.5])
    # any leading axes (betas x steps x seeds): the share is taken over the last one
    stacked = np.broadcast_to(curves, (2, 3, *curves.shape))
    assert c3.rise_share(stacked).shape == (2, 3, 5)


def test_c3_grid_places_every_betas_lr_by_its_effective_step():
    cfg = c3.QUICK
    table = c3.grid(cfg)
    assert set(table) == {"lr", "momentum"} and table["lr"].dtype == np.float32
    assert len(table["lr"]) == len(cfg.betas) * cfg.lrs
    momentum = table["momentum"].reshape(len(cfg.betas), cfg.lrs)
    np.testing.assert_allclose(momentum[:, 0], cfg.betas, rtol=1e-6)  # beta varies slowest
    assert np.all(momentum == momentum[:, :1])
    effective = table["lr"].reshape(momentum.shape) / (1 - momentum)
    steps = np.geomspace(*cfg.effective, cfg.lrs)
    np.testing.assert_allclose(effective, np.broadcast_to(steps, momentum.shape), rtol=1e-4)
    # lr = step x (1 - beta): beta 0 runs the steps themselves, 0.99 a hundredth of them
    lr = table["lr"].reshape(momentum.shape)
    np.testing.assert_allclose(lr[0], steps, rtol=1e-6)
    np.testing.assert_allclose(lr[cfg.betas.index(0.99)], steps / 100, rtol=1e-4)
    assert steps[0] == pytest.approx(0.01) and steps[-1] == pytest.approx(10.0)


def test_c3_units_count_every_cell_seed_step_and_evaluation():
    # quick: 4 betas x 8 steps x 5 seeds runs of 500 steps and 26 evaluations of 40 units
    assert c3.units(c3.QUICK) == 4 * 8 * 5 * (500 + 26 * 40) == 246_400
    # full: 6 x 10 x 8 runs of 2000 steps and 101 evaluations
    assert c3.units(c3.FULL) == 6 * 10 * 8 * (2000 + 101 * 40) == 2_899_200
    batch64 = dataclasses.replace(c3.QUICK, schedule=loop.Schedule(500, 64, 20))
    assert c3.units(batch64) == 4 * 8 * 5 * (2 * 500 + 26 * 40)
    # the budget (2.6x / 6.4x the units of 3 seeds / 5 seeds and two evaluations per run
    # before): the full grid ran in 137 s on 2 CPU cores
    assert c3.units(c3.QUICK) <= 250_000 and c3.units(c3.FULL) <= 3_000_000


# ------------------------------------------------------------------------------ C4 judge

HB_STEPS = np.array([200.0, 240.0, 220.0, 260.0, 180.0])


def arrived(steps, censored=(), horizon: float = 400.0) -> race.Arrival:
    """Per-seed arrivals; the seeds in ``censored`` never arrived (held at ``horizon``)."""
    steps = np.asarray(steps, np.float64)
    flags = np.zeros(steps.size, bool)
    flags[list(censored)] = True
    return race.Arrival(np.where(flags, horizon, steps), flags, horizon)


def c4_verdict(
    nag,
    hb=HB_STEPS,
    *,
    censored=(),
    hb_censored=(),
    horizon=400.0,
    robust=(0.2, 0.6),
    diverged=(2.0, 0.0),
    cnn=None,
):
    """C4's verdict from per-seed steps of Nesterov and heavy ball (robustness and diverged
    trials constant per seed: Nesterov better on both by default)."""
    n = len(np.asarray(hb))
    steps = {HB: arrived(hb, hb_censored, horizon), NAG: arrived(nag, censored, horizon)}
    return c4.judge_c4(
        steps,
        {HB: np.full(n, robust[0]), NAG: np.full(n, robust[1])},
        {HB: np.full(n, diverged[0]), NAG: np.full(n, diverged[1])},
        c4.QUICK,
        cnn,
    )


@pytest.mark.parametrize(
    "nag, status",
    [
        ([120.0, 150.0, 130.0, 155.0, 110.0], S),  # about 0.6 of heavy ball's steps
        ([200.0, 250.0, 215.0, 260.0, 185.0], N),  # as slow as heavy ball
        ([120.0, 240.0, 130.0, 260.0, 110.0], I),  # faster on three seeds only
    ],
)
def test_c4_primary_is_the_paired_ratio_of_steps(nag, status):
    verdict = c4_verdict(nag)
    (primary,) = verdict.primary
    assert verdict.status == status and primary.text == "steps to target, Nesterov / heavy ball"
    assert primary.threshold == c4.QUICK.speedup and primary.side == verdicts.BELOW
    # the geometric mean over seeds of the per-seed ratios
    geometric = np.exp(np.mean(np.log(np.asarray(nag) / HB_STEPS)))
    assert primary.estimate.mean == pytest.approx(geometric) and primary.estimate.bound == ""
    # robustness and divergence are secondary: Nesterov better on both, whatever the speed
    assert [c.status for c in verdict.secondary] == [S, S]


def test_c4_censored_nesterov_makes_the_ratio_a_lower_bound():
    hb = np.array([200.0, 240.0, 220.0, 260.0, 180.0, 210.0, 230.0, 250.0])  # 8 seeds
    nag = 0.6 * hb  # and on seed 3 never arrived: held at the horizon, 260
    verdict = c4_verdict(nag, hb, censored=[3], horizon=260.0)
    estimate = verdict.primary[0].estimate
    assert estimate.bound == "lower" and estimate.high < c4.QUICK.speedup
    # the same numbers read as measured would be "supported"; a lower bound cannot be
    held = np.where(np.arange(8) == 3, 260.0, nag)
    assert estimate == dataclasses.replace(stats.paired_ratio(held, hb), bound="lower")
    assert verdicts.Condition("r", stats.paired_ratio(held, hb), 0.8, verdicts.BELOW).status == S
    assert verdict.status == I


def test_c4_censored_heavy_ball_keeps_supported_and_only_supported():
    # heavy ball censored on seed 1 (held at 400): the true ratio is even smaller there
    fast = c4_verdict([120.0, 150.0, 130.0, 155.0, 110.0], hb_censored=[1])
    assert fast.primary[0].estimate.bound == "upper" and fast.status == S
    # as slow as heavy ball: "not supported" would rest on the open side of the bound
    slow = c4_verdict([200.0, 390.0, 215.0, 260.0, 185.0], hb_censored=[1])
    assert slow.primary[0].estimate.low > c4.QUICK.speedup and slow.status == I
    assert c4_verdict([200.0, 390.0, 215.0, 260.0, 185.0], [200, 400, 220, 260, 180]).status == N


def test_c4_robustness_and_divergence_are_reported_not_voted():
    fast = [120.0, 150.0, 130.0, 155.0, 110.0]
    verdict = c4_verdict(fast, robust=(0.6, 0.2), diverged=(0.0, 3.0))
    robust, diverged = verdict.secondary
    assert robust.text.startswith("share of trials within 10% of the best, Nesterov - heavy ball")
    assert robust.estimate.mean == pytest.approx(-0.4) and robust.status == N
    assert diverged.text == "diverged trials, heavy ball - Nesterov"
    assert diverged.estimate.mean == pytest.approx(-3.0) and diverged.status == N
    assert verdict.status == S


def test_c4_cnn_steps_are_reported_as_secondary_and_do_not_vote():
    slower_on_cnn = {
        HB: arrived([300.0, 300.0, 300.0, 320.0, 280.0]),
        NAG: arrived([600.0, 650.0, 600.0, 640.0, 560.0]),
    }
    assert len(c4_verdict([120.0, 150.0, 130.0, 155.0, 110.0]).secondary) == 2  # no CNN arm
    verdict = c4_verdict([120.0, 150.0, 130.0, 155.0, 110.0], cnn=slower_on_cnn)
    assert verdict.status == S
    (cnn,) = [c for c in verdict.secondary if "CNN" in c.text]
    assert cnn.text == "1-D CNN: steps to target, Nesterov / heavy ball" and cnn.status == N
    ratios = slower_on_cnn[NAG].steps / slower_on_cnn[HB].steps
    assert cnn.estimate.mean == pytest.approx(np.exp(np.log(ratios).mean()))
    # censored on the CNN: a bound there too
    censored = {
        HB: arrived(slower_on_cnn[HB].steps, horizon=700.0),
        NAG: arrived([600.0, 650.0, 600.0, 640.0, 0.0], [4], horizon=700.0),
    }
    cnn = c4_verdict([120.0, 150.0, 130.0, 155.0, 110.0], cnn=censored).secondary[-1]
    assert cnn.estimate.bound == "lower"


def test_c4_robustness_is_the_share_near_each_seeds_best():
    val = np.array([[1.0, 2.0], [1.05, 2.5], [1.5, np.nan], [np.inf, 2.1]])  # (trials, seeds)
    np.testing.assert_allclose(c4.robustness(val, 0.1), [0.5, 0.5])
    np.testing.assert_allclose(c4.robustness(val, 0.6), [0.75, 0.75])


def test_diverged_per_seed_counts_non_finite_and_rising_runs():
    loss = np.array(  # (trials, seeds, evaluations)
        [
            [[2.3, 1.0], [2.3, 2.4]],  # trial 0: on seed 1 it ends above its start
            [[2.3, np.nan], [2.3, 1.9]],  # trial 1: on seed 0 not finite
            [[2.3, 2.3], [2.3, np.inf]],  # trial 2: ending at its start is not diverged
        ]
    )
    trials = types.SimpleNamespace(curves=types.SimpleNamespace(train_loss=loss))
    np.testing.assert_array_equal(c4.diverged_per_seed(trials), [1, 2])


# ----------------------------------------------------------------------------- C15 judge

ACC_DEFAULT = np.array([0.76, 0.78, 0.75, 0.77, 0.76])


@pytest.mark.parametrize(
    "gain, status",
    [
        (0.04 + JITTER / 2, S),  # tuning beta buys 4 points on every seed
        ([0.001, -0.002, 0.0, 0.002, -0.001], N),  # nothing
        ([0.04, -0.02, 0.05, -0.01, 0.03], I),  # on three seeds only
    ],
)
def test_c15_primary_is_the_paired_gain_of_tuning_beta(gain, status):
    accuracy = {HB: ACC_DEFAULT + gain, DEFAULT: ACC_DEFAULT}
    at_budget = {HB: ACC_DEFAULT - 0.05, DEFAULT: ACC_DEFAULT}  # secondary only
    verdict = c4.judge_c15(accuracy, at_budget, c4.QUICK)
    (primary,) = verdict.primary
    assert verdict.status == status
    assert primary.threshold == c4.QUICK.gain and primary.side == verdicts.ABOVE
    assert primary.estimate.mean == pytest.approx(np.mean(gain))
    (budget,) = verdict.secondary
    assert f"{c4.QUICK.budget} random trials" in budget.text
    assert budget.estimate.mean == pytest.approx(-0.05) and budget.status == N


def test_c15_the_expected_best_at_the_budget_is_a_paired_difference():
    accuracy = {HB: ACC_DEFAULT, DEFAULT: ACC_DEFAULT}
    spread = np.array([0.0, 0.3, 0.1, 0.2, 0.05])  # seeds differ, the gap does not
    at_budget = {HB: spread + 0.02, DEFAULT: spread}
    verdict = c4.judge_c15(accuracy, at_budget, c4.QUICK)
    assert verdict.status == N and verdict.primary[0].estimate.mean == 0.0
    assert verdict.secondary[0].estimate.mean == pytest.approx(0.02)
    assert verdict.secondary[0].status == S


# ---------------------------------------------------------------------------- C15 helpers


def test_crossfit_accuracy_scores_each_seed_by_the_trial_chosen_on_the_other_fold():
    final = np.array([[0.9, 0.5, 0.9, 0.5], [0.5, 0.8, 0.5, 0.8]])  # (trials, seeds)
    early = np.array([[0.1] * 4, [0.99] * 4])  # only the last evaluation counts
    acc = np.stack([early, final], -1)
    trials = types.SimpleNamespace(curves=types.SimpleNamespace(val_accuracy=acc))
    # even seeds: trial 1 (best on the odd seeds) scores them 0.5; odd seeds: trial 0 does
    np.testing.assert_allclose(budget.crossfit_accuracy(trials), [0.5, 0.5, 0.5, 0.5])
    # a trial that diverged (NaN) on a seed of the other fold is never chosen for it
    final = np.array([[0.9, np.nan, 0.9, 0.9], [0.7, 0.6, 0.7, 0.6]])
    acc = np.stack([np.zeros_like(final), final], -1)
    trials = types.SimpleNamespace(curves=types.SimpleNamespace(val_accuracy=acc))
    # (the odd seeds choose trial 0, whose own run on seed 1 diverged: scored as NaN)
    np.testing.assert_allclose(budget.crossfit_accuracy(trials), [0.7, np.nan, 0.7, 0.9])


VALUES = np.array([[0.2, 0.5], [0.4, 0.5], [0.6, 0.5]])  # (trials, seeds)


def test_per_seed_expected_is_dodge_et_als_expected_best():
    # k = 1: the mean; k = 2 of (0.2, 0.4, 0.6): (1 x 0.2 + 3 x 0.4 + 5 x 0.6) / 9
    np.testing.assert_allclose(budget.per_seed_expected(VALUES, 1), [0.4, 0.5])
    np.testing.assert_allclose(budget.per_seed_expected(VALUES, 2), [4.4 / 9, 0.5])
    np.testing.assert_allclose(budget.per_seed_expected(VALUES, 3), [14.4 / 27, 0.5])
    # a diverged trial (NaN) counts as the seed's worst
    diverged = np.array([[np.nan], [0.4], [0.6]])
    np.testing.assert_allclose(budget.per_seed_expected(diverged, 1), [(0.4 + 0.4 + 0.6) / 3])


def test_expected_band_is_the_seed_mean_of_the_expected_best_with_a_bootstrap_band():
    k = np.arange(1, 4)
    mean, low, high = budget.expected_band(VALUES, k, resamples=50)
    np.testing.assert_allclose(mean, [0.45, (4.4 / 9 + 0.5) / 2, (14.4 / 27 + 0.5) / 2])
    assert np.all(low <= high) and low.shape == high.shape == (3,)
    assert np.all(low >= 0.2) and np.all(high <= 0.6)
    # reproducible from its seed
    again = budget.expected_band(VALUES, k, resamples=50)
    np.testing.assert_array_equal(again[1], low)
    np.testing.assert_array_equal(again[2], high)
    # constant values: no spread to resample
    flat = budget.expected_band(np.full((4, 3), 0.7), k, resamples=20)
    for part in flat:
        np.testing.assert_allclose(part, 0.7)


def test_expected_band_redraws_the_seeds_as_well_as_the_trials():
    # every trial the same on a seed: only redrawing the seeds moves the curve
    per_seed = np.tile([0.5, 0.6, 0.7, 0.8], (4, 1))  # (trials, seeds)
    mean, low, high = budget.expected_band(per_seed, np.arange(1, 5), resamples=200)
    np.testing.assert_allclose(mean, 0.65)
    assert np.all(high - low > 0.05) and np.all(low >= 0.5) and np.all(high <= 0.8)
    np.testing.assert_allclose(low, low[0])
    np.testing.assert_allclose(high, high[0])


# ------------------------------------------------------------------------ end-to-end runs


@pytest.mark.slow
def test_c3_end_to_end_scores_each_beta_at_its_own_step_and_reports_their_oscillation(tmp_path):
    cfg = dataclasses.replace(
        c3.QUICK,
        betas=(0.0, 0.9, 0.99),
        effective=(1e-2, 1.0),
        lrs=3,
        schedule=loop.Schedule(steps=100, batch_size=32, eval_every=20),
    )
    [finding] = c3.run(cfg, jax.random.key(0), tmp_path)
    assert finding.id == "C3" and (tmp_path / finding.plots[0]).exists()
    m = finding.metrics
    val, best, chosen, rises = m["val_loss"], m["best_step_index"], m["chosen"], m["rises"]
    assert val.shape == rises.shape == (3, 3, cfg.seeds)
    assert np.all((rises >= 0) & (rises <= 1))
    assert best == [int(np.argmin(np.where(np.isfinite(v), v, np.inf).mean(-1))) for v in val]
    seeds = np.arange(cfg.seeds)
    # the primary condition is 0.99's share of rising intervals minus 0.9's, each seed
    # at the step chosen on the other seeds
    expected = (rises[2, chosen[2], seeds] - rises[1, chosen[1], seeds]).mean()
    assert finding.verdict.primary[0].estimate.mean == pytest.approx(expected)
    steps = np.geomspace(*cfg.effective, cfg.lrs)
    np.testing.assert_allclose(m["effective"], steps)
    for row in finding.table:
        step = row["tuned lr / (1 - beta) (all seeds)"]
        assert np.isclose(step, steps).any()
        assert row["tuned lr"] == pytest.approx(step * (1 - row["beta"]))
    assert m["units"] == c3.units(cfg) and finding.verdict.status in verdicts.EMPIRICAL


@pytest.mark.slow
def test_c4_c15_end_to_end_reports_grid_settings_and_the_nesterov_step_ratio(tmp_path):
    schedule = loop.Schedule(steps=200, batch_size=32, eval_every=20)
    cfg = dataclasses.replace(c4.QUICK, trials=4, budget=2, schedule=schedule)
    f4, f15 = c4.run(cfg, jax.random.key(0), tmp_path)
    assert (f4.id, f15.id) == ("C4", "C15") and (tmp_path / f4.plots[0]).exists()
    assert 0.1 < f4.metrics["target"] < 2.5
    for method in (HB, NAG):
        steps, censored = f4.metrics["steps"][method], f4.metrics["censored"][method]
        assert steps.shape == (cfg.seeds,) and np.all((steps > 0) & (steps <= 200)), method
        np.testing.assert_array_equal(steps[censored], 200.0)
    # every reported setting is a point of the 2 x 2 grid of effective step x 1 - beta
    effective = np.geomspace(*cfg.effective, 2)
    one_minus_beta = np.geomspace(*cfg.one_minus_beta, 2)
    for row in f4.table:
        assert np.isclose(row["lr / (1 - beta)"], effective, rtol=1e-4).any(), row
        assert np.isclose(1 - row["beta"], one_minus_beta, rtol=1e-4).any(), row
    # the geometric mean of the per-seed ratios (a run there from the start counts one step)
    steps = {m: np.maximum(f4.metrics["steps"][m], 1.0) for m in (HB, NAG)}
    log = np.log(steps[NAG]) - np.log(steps[HB])
    assert f4.verdict.primary[0].estimate.mean == pytest.approx(np.exp(log.mean()))
    accuracy = f15.metrics["accuracy"]
    assert set(accuracy) == {HB, DEFAULT}
    assert f15.verdict.primary[0].estimate.mean == pytest.approx(
        (accuracy[HB] - accuracy[DEFAULT]).mean()
    )
    expected = f15.metrics["expected"]
    assert set(expected) == {HB, DEFAULT} and expected[HB].shape == (cfg.trials,)
    assert all(np.all(np.diff(e) >= -1e-9) for e in expected.values())
    at_budget = f15.metrics["at_budget"]
    assert f15.verdict.secondary[0].estimate.mean == pytest.approx(
        (at_budget[HB] - at_budget[DEFAULT]).mean()
    )
    assert f15.verdict.status in verdicts.EMPIRICAL
