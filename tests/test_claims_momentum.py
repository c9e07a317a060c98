"""C3 (how much momentum), C4 (Nesterov vs heavy ball) and C15 (the cost of tuning beta):
the judges on hand-made per-seed numbers, the helpers, and one tiny end-to-end run each."""

import dataclasses

import jax
import numpy as np
import pytest

from experiments import loop
from experiments.claims import momentum_size as c3
from experiments.claims import nesterov as c4
from experiments.protocol import verdicts
from tests import helpers

S, N, I = verdicts.SUPPORTED, verdicts.NOT_SUPPORTED, verdicts.INCONCLUSIVE
SEEDS = 3


def losses(**by_beta):
    """``{beta: per-seed values}`` from keyword ``b0``, ``b09``, ``b099`` style names."""
    names = {"b0": 0.0, "b09": 0.9, "b099": 0.99}
    return {names[k]: np.asarray(v, np.float64) for k, v in by_beta.items()}


# ------------------------------------------------------------------------------- C3 judge


@pytest.mark.parametrize(
    "high, status",
    [
        ([1.40, 1.42, 1.38], S),  # 0.99 is 0.2 nats worse than 0.9 on every seed
        ([1.19, 1.21, 1.20], N),  # no worse than 0.9
        ([1.20, 1.45, 1.22], I),  # worse on one seed only: the interval straddles 0.05
    ],
)
def test_c3_judge_compares_099_with_09_each_at_its_own_lr(high, status):
    own = losses(b0=[1.25, 1.25, 1.25], b09=[1.2, 1.2, 1.2], b099=high)
    shared = losses(b0=[2.0] * 3, b09=[1.2] * 3, b099=[2.3] * 3)
    train = losses(b0=[1.0] * 3, b09=[1.0] * 3, b099=[0.9] * 3)
    verdict = c3.judge(own, shared, train, c3.QUICK)
    assert verdict.status == status
    # the shared-lr overshoot is secondary: it never changes the status
    assert verdict.secondary[1].status == S


def test_c3_judge_secondary_finds_the_best_beta():
    own = losses(b0=[1.0, 1.0, 1.0], b09=[1.2, 1.2, 1.2], b099=[1.5, 1.5, 1.5])
    verdict = c3.judge(own, own, own, c3.QUICK)
    works_well = verdict.secondary[0]
    assert "best beta (0)" in works_well.text
    assert works_well.estimate.mean == pytest.approx(0.2)
    assert works_well.status == N


def test_c3_judge_counts_a_diverged_099_as_overshooting():
    own = losses(b0=[1.3] * 3, b09=[1.2] * 3, b099=[np.inf, 1.4, 1.4])
    assert c3.judge(own, own, own, c3.QUICK).status == S


def test_c3_grid_crosses_every_beta_with_every_lr():
    table = c3.grid(c3.QUICK)
    assert len(table["lr"]) == len(c3.QUICK.betas) * c3.QUICK.lrs
    np.testing.assert_allclose(np.unique(table["momentum"]), sorted(c3.QUICK.betas), rtol=1e-6)
    assert c3.units(c3.QUICK) <= 100_000 and c3.units(c3.FULL) <= 500_000


# ------------------------------------------------------------------------------ C4 judge


@pytest.mark.parametrize(
    "nag, status",
    [
        ([300, 300, 350], S),  # about 0.6 of heavy ball's steps
        ([500, 600, 500], N),  # as slow as heavy ball or slower
        ([300, 600, 500], I),
    ],
)
def test_c4_judge_on_the_steps_ratio(nag, status):
    steps = {"heavy ball": np.array([500.0, 600.0, 500.0]), "Nesterov": np.array(nag, float)}
    robust = {"heavy ball": np.full(SEEDS, 0.2), "Nesterov": np.full(SEEDS, 0.6)}
    diverged = {"heavy ball": np.full(SEEDS, 2.0), "Nesterov": np.zeros(SEEDS)}
    verdict = c4.judge_c4(steps, robust, diverged, c4.QUICK)
    assert verdict.status == status
    assert [c.status for c in verdict.secondary] == [S, S]


def test_c4_cnn_steps_are_reported_as_secondary_and_do_not_vote():
    steps = {
        "heavy ball": np.array([500.0, 600.0, 500.0]),
        "Nesterov": np.array([300.0, 300.0, 350.0]),
    }
    slower_on_cnn = {
        "heavy ball": np.array([300.0, 300.0, 300.0]),
        "Nesterov": np.array([600.0, 650.0, 600.0]),
    }
    same = {m: np.zeros(SEEDS) for m in steps}
    verdict = c4.judge_c4(steps, same, same, c4.FULL, slower_on_cnn)
    assert verdict.status == S
    (cnn,) = [c for c in verdict.secondary if "CNN" in c.text]
    assert cnn.status == N and cnn.estimate.mean == pytest.approx(1850 / 900)


def test_c4_robustness_is_the_share_near_each_seeds_best():
    val = np.array([[1.0, 2.0], [1.05, 2.5], [1.5, np.nan], [np.inf, 2.1]])  # (trials, seeds)
    np.testing.assert_allclose(c4.robustness(val, 0.1), [0.5, 0.5])


def test_c4_censored_counts_never_as_one_evaluation_past_the_end():
    cfg = c4.QUICK
    np.testing.assert_array_equal(
        c4.censored(np.array([100.0, np.inf]), cfg.schedule),
        [100.0, cfg.schedule.steps + cfg.schedule.eval_every],
    )


# ----------------------------------------------------------------------------- C15 judge


@pytest.mark.parametrize(
    "hb, status",
    [
        ([6.0, 7.0, 6.5], S),  # heavy ball needs ~4 trials more than SGD
        ([2.0, 2.5, 2.2], N),  # fewer than SGD
        ([2.0, 6.0, 4.0], I),
    ],
)
def test_c15_judge_on_the_extra_trials_of_heavy_ball(hb, status):
    needed = {
        "SGD": np.array([2.5, 2.5, 2.5]),
        "heavy ball": np.array(hb),
        "Nesterov": np.array([9.0, 2.0, 5.0]),
    }  # secondary only
    first = {
        "SGD": np.full(SEEDS, 0.3),
        "heavy ball": np.full(SEEDS, 0.4),
        "Nesterov": np.full(SEEDS, 0.4),
    }
    assert c4.judge_c15(needed, first, c4.QUICK).status == status


def test_c15_trials_needed_grows_when_fewer_trials_are_good():
    cfg = dataclasses.replace(c4.QUICK, tolerance=0.02)
    all_good = np.full((4, 2), 0.5)
    one_good = np.array([[0.6, 0.6], [0.3, 0.3], [0.3, 0.3], [0.3, 0.3]])
    two_good = np.array([[0.6, 0.6], [0.6, 0.6], [0.3, 0.3], [0.3, 0.3]])
    np.testing.assert_allclose(c4.trials_needed(all_good, cfg), 1.0)
    # one of four good: (3/4)^k * 0.3 <= 0.02 -> k >= 9.4; two of four: (1/2)^k -> k >= 3.9
    np.testing.assert_allclose(c4.trials_needed(one_good, cfg), 9.41, rtol=0.02)
    np.testing.assert_allclose(c4.trials_needed(two_good, cfg), 3.91, rtol=0.02)


def test_c15_expected_curves_start_at_the_mean_and_end_below_the_best():
    acc = np.array([[0.2, 0.5], [0.4, 0.5], [0.6, 0.5]])
    curves = c4.expected_curves(acc, 3)
    np.testing.assert_allclose(curves[:, 0], [0.4, 0.5])
    assert np.all(np.diff(curves, axis=1) >= -1e-12) and np.all(curves[:, -1] <= 0.6)


# ------------------------------------------------------------------------ end-to-end runs


@pytest.mark.slow
def test_c3_end_to_end_picks_each_betas_best_lr_and_reports_their_difference(tmp_path):
    cfg = dataclasses.replace(
        c3.QUICK,
        betas=(0.0, 0.9, 0.99),
        lr=(1e-2, 1.0),
        lrs=3,
        schedule=loop.Schedule(steps=100, batch_size=32, eval_every=100),
    )
    [finding] = c3.run(cfg, jax.random.key(0), tmp_path)
    assert finding.id == "C3" and (tmp_path / finding.plots[0]).exists()
    val, best = finding.metrics["val_loss"], finding.metrics["best_lr_index"]
    assert val.shape == (3, 3, SEEDS)
    assert best == [int(np.argmin(v.mean(-1))) for v in val]
    # the primary condition is 0.99's cell minus 0.9's cell, each at its own lr
    expected = (val[2, best[2]] - val[1, best[1]]).mean()
    assert finding.verdict.primary[0].estimate.mean == pytest.approx(expected)
    lrs = [row["tuned lr"] for row in finding.table]
    assert all(np.isclose(lr, np.geomspace(1e-2, 1.0, 3)).any() for lr in lrs)
    assert finding.verdict.status in verdicts.EMPIRICAL


@pytest.mark.slow
def test_c4_c15_end_to_end_reports_drawn_settings_and_the_nesterov_step_ratio(tmp_path):
    cfg = dataclasses.replace(
        c4.QUICK, trials=3, schedule=loop.Schedule(steps=200, batch_size=32, eval_every=100)
    )
    f4, f15 = c4.run(cfg, jax.random.key(0), tmp_path)
    assert (f4.id, f15.id) == ("C4", "C15") and (tmp_path / f4.plots[0]).exists()
    assert 0.1 < f4.metrics["target"] < 1.0
    for method, steps in f4.metrics["steps"].items():
        assert np.all((steps > 0) & (steps <= 300)), method
    for row in f4.table:
        assert cfg.lr[0] * 0.999 <= row["lr"] <= cfg.lr[1] * 1.001
        assert helpers.is_drawn_trial(
            row["lr"], row["beta"], cfg.lr, cfg.one_minus_beta, cfg.trials
        ), row
    ratio = f4.metrics["steps"]["Nesterov"].mean() / f4.metrics["steps"]["heavy ball"].mean()
    assert f4.verdict.primary[0].estimate.mean == pytest.approx(ratio)
    expected = f15.metrics["expected"]
    assert set(expected) == set(c4.METHODS) and expected["SGD"].shape == (SEEDS, 3)
    assert all(np.all(np.diff(e, axis=1) >= -1e-9) for e in expected.values())
    assert f15.verdict.status in verdicts.EMPIRICAL and np.isfinite(
        f15.verdict.primary[0].estimate.mean
    )
