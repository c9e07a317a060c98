"""Claims C5 (adaptive learning rate), C6 (dips) and E2 (momentum variants): judges on
hand-made numbers, the mechanisms on tiny inputs, and one small end-to-end run each."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from experiments import loop
from experiments import report
from experiments import tasks
from experiments.claims import adaptive_lr
from experiments.claims import minima
from experiments.claims import variants
from experiments.protocol import verdicts
from tests import helpers

KEY = jax.random.key(0)


# ------------------------------------------------------------------------------ C5


def _c5(spread_delta, spread_hb=(3.0, 3.1, 2.9)):
    early = {"delta momentum": np.array([1.2, 1.3, 1.25]), "heavy ball": np.array([3.0, 3.2, 3.1])}
    late = {"delta momentum": np.array([1.1, 1.1, 1.1]), "heavy ball": np.array([2.0, 2.1, 2.2])}
    return adaptive_lr.judge(
        np.asarray(spread_delta), np.asarray(spread_hb), early, late, adaptive_lr.QUICK
    )


@pytest.mark.parametrize(
    "spread, status",
    [
        ((3.0, 3.5, 4.0), verdicts.SUPPORTED),
        ((1.1, 1.2, 1.15), verdicts.NOT_SUPPORTED),
        ((1.5, 2.5, 3.0), verdicts.INCONCLUSIVE),
    ],
)
def test_c5_judge_follows_delta_momentums_spread(spread, status):
    verdict = _c5(spread)
    assert verdict.status == status
    assert len(verdict.secondary) == 5


def test_c5_heavy_ball_spread_does_not_vote():
    assert _c5((1.1, 1.2, 1.15), spread_hb=(5.0, 6.0, 7.0)).status == verdicts.NOT_SUPPORTED


def test_c5_either_applies_the_chosen_transformation():
    g = jnp.array([1.0, -2.0])
    for index, lr in ((0, 0.1), (1, 0.2)):
        opt = adaptive_lr.either(optax.sgd(0.1), optax.sgd(0.2), jnp.asarray(index))
        u, _ = opt.update(g, opt.init(g))
        np.testing.assert_allclose(u, -lr * g)


@pytest.mark.slow
def test_c5_plain_sgd_has_effective_rate_one_and_heavy_ball_more():
    cfg = dataclasses.replace(adaptive_lr.QUICK, steps=20, windows=2)
    task = tasks.mnist1d_mlp()
    fn = jax.jit(lambda m: adaptive_lr.probe(mo.sgd(0.05, m), task, KEY, cfg, task.data))
    sgd, hb = fn(jnp.float32(0.0)), fn(jnp.float32(0.9))
    r_sgd = adaptive_lr.rates(np.asarray(sgd["sum_u"]), np.asarray(sgd["sum_g"]), np.float64(0.05))
    r_hb = adaptive_lr.rates(np.asarray(hb["sum_u"]), np.asarray(hb["sum_g"]), np.float64(0.05))
    np.testing.assert_allclose(r_sgd[np.isfinite(r_sgd)], 1.0, rtol=1e-4)
    assert np.nanmedian(r_hb[-1]) > 2.0  # the buffer has filled by the second window


@pytest.mark.slow
def test_c5_end_to_end_heavy_ball_has_the_larger_effective_rate(tmp_path):
    cfg = dataclasses.replace(adaptive_lr.QUICK, seeds=3, trials=2, steps=100, windows=2)
    [finding] = adaptive_lr.run(cfg, KEY, tmp_path)
    assert finding.id == "C5" and (tmp_path / finding.plots[0]).exists()
    estimate = finding.verdict.primary[0].estimate
    assert estimate.n == 3 and 1.0 <= estimate.low <= estimate.high < np.inf
    lrs = [row["lr"] for row in finding.table]
    assert all(cfg.lr[0] * 0.999 <= lr <= cfg.lr[1] * 1.001 for lr in lrs)
    medians = {
        row["method"]: row["median"].mean for row in finding.table if row["window"] == "last"
    }
    assert medians["heavy ball"] > medians["delta momentum"] > 1.0


# ------------------------------------------------------------------------------ C6


@pytest.mark.parametrize(
    "momentum, gd, status",
    [
        ([0.6, 0.7, 0.65], [0.1, 0.12, 0.1], verdicts.SUPPORTED),
        ([0.1, 0.12, 0.1], [0.1, 0.12, 0.1], verdicts.NOT_SUPPORTED),
        ([0.1, 0.4, 0.2], [0.1, 0.1, 0.1], verdicts.INCONCLUSIVE),
    ],
)
def test_c6_judge_follows_the_paired_difference(momentum, gd, status):
    verdict = minima.judge(np.array(momentum), np.array(gd), np.zeros(3), minima.QUICK)
    assert verdict.status == status
    assert verdict.secondary[0].status == verdicts.NOT_SUPPORTED  # no run rolled past


def test_c6_gradient_descent_stays_in_its_dip_and_heavy_ball_rolls_through():
    one = jax.jit(minima.roll(dataclasses.replace(minima.QUICK, steps=1500)))
    row = lambda start, lr, m: {
        "start": jnp.float32(start),
        "lr": jnp.float32(lr),
        "momentum": jnp.float32(m),
        "amplitude": jnp.float32(0.05),
    }
    inside, dip = one(row(0.3, 0.1, 0.0)), one(row(2.2, 0.1, 0.0))
    assert abs(float(inside["x"])) < 1e-3 and not bool(inside["crossed"])
    assert abs(float(dip["x"]) - 1.9) < 0.1 and not bool(dip["crossed"])  # the bowl shifts it
    rolled = one(row(4.0, 0.05, 0.99))
    assert bool(rolled["crossed"])


@pytest.mark.slow
def test_c6_end_to_end_reports_basin_fractions_per_method(tmp_path):
    cfg = dataclasses.replace(minima.QUICK, seeds=3, starts=16, trials=4, steps=300)
    [finding] = minima.run(cfg, KEY, tmp_path)
    assert finding.id == "C6" and (tmp_path / finding.plots[0]).exists()
    diff = finding.verdict.primary[0].estimate
    assert diff.n == 3 and -1 <= diff.low <= diff.mean <= diff.high <= 1
    for row in finding.table:
        assert 0 <= row["in global basin"].low <= row["in global basin"].high <= 1
        assert cfg.lr[0] * 0.999 <= row["lr"] <= cfg.lr[1] * 1.001
    assert finding.table[0]["momentum"] == 0.0 and finding.table[1]["momentum"] > 0.5
    amplitudes = finding.metrics["amplitudes"]
    assert len(set(amplitudes.tolist())) == 3  # the problem differs per seed


# ------------------------------------------------------------------------------ E2


def _steps(qhm, aggmo, demon, hb=(400.0, 400.0, 400.0)):  # QUICK: 400 steps
    steps = {
        "heavy ball": np.array(hb),
        "QHM": np.array(qhm),
        "AggMo": np.array(aggmo),
        "Demon": np.array(demon),
    }
    test = {name: np.full(3, 0.7) for name in steps}
    return variants.judge(steps, test, variants.QUICK).status


FAST, SAME, UNSURE = [200.0, 300.0, 200.0], [400.0, 400.0, 400.0], [200.0, 400.0, 400.0]


@pytest.mark.parametrize(
    "qhm, aggmo, demon, status",
    [
        (FAST, FAST, FAST, verdicts.SUPPORTED),
        (SAME, SAME, SAME, verdicts.NOT_SUPPORTED),
        (FAST, SAME, SAME, verdicts.DEPENDS),
        (FAST, UNSURE, FAST, verdicts.INCONCLUSIVE),
    ],
)
def test_e2_judge_one_primary_per_variant(qhm, aggmo, demon, status):
    assert _steps(qhm, aggmo, demon) == status


def test_e2_never_reaching_the_target_counts_as_slow():
    assert _steps([np.inf] * 3, FAST, FAST) == verdicts.DEPENDS  # censored: 500 / 400


def test_e2_heavy_ball_and_demon_share_one_state_structure_and_start_alike():
    row = {"lr": jnp.float32(0.1), "momentum": jnp.float32(0.9)}
    hb, dm = variants.heavy_ball(row), variants.demon(100)(row)
    params = jnp.ones(3)
    assert jax.tree.structure(hb.init(params)) == jax.tree.structure(dm.init(params))
    # three steps (the momentum enters from the second step on) against sgd
    u_hb, _ = helpers.run_updates(hb, [params] * 3, params)
    u_ref, _ = helpers.run_updates(mo.sgd(0.1, 0.9), [params] * 3, params)
    np.testing.assert_allclose(u_hb, u_ref, rtol=1e-6)
    np.testing.assert_allclose(u_hb[-1], -0.1 * (1 + 0.9 + 0.81) * params, rtol=1e-6)


@pytest.mark.slow
def test_e2_end_to_end_times_every_variant_to_a_reachable_target(tmp_path):
    cfg = dataclasses.replace(
        variants.QUICK,
        seeds=3,
        trials=2,
        schedule=loop.Schedule(steps=100, batch_size=32, eval_every=50),
    )
    [finding] = variants.run(cfg, KEY, tmp_path)
    assert finding.id == "E2" and (tmp_path / finding.plots[0]).exists()
    assert [row["method"] for row in finding.table] == ["heavy ball", "Demon", "QHM", "AggMo"]
    assert len(finding.verdict.primary) == 3
    target = finding.metrics["target"]
    assert np.isfinite(target) and 0 < target < 2.31  # below the loss of a uniform guess
    for row in finding.table:
        assert 0 < row["steps to target"].mean <= cfg.schedule.steps + cfg.schedule.eval_every
    assert report.fmt(finding.table[0]["test accuracy"])
