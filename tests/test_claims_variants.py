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
from experiments.protocol import race
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


HELPS = ([0.6, 0.7, 0.65, 0.62, 0.68], [0.1, 0.12, 0.1, 0.11, 0.09])  # +0.55 [0.5, 0.6]
SAME = ([0.1, 0.12, 0.1, 0.11, 0.09], [0.1, 0.12, 0.1, 0.11, 0.09])  # 0 exactly
UNSURE = ([0.1, 0.4, 0.2, 0.3, 0.15], [0.1] * 5)  # +0.13 [-0.02, 0.28]: straddles 0.1
PAST = [0.1, 0.12, 0.11, 0.09, 0.1]  # 0.104 [0.09, 0.12]: above 0.05
NONE = [0.0] * 5
UNSURE_PAST = [0.0, 0.1, 0.02, 0.12, 0.06]  # 0.06 [-0.003, 0.12]: straddles 0.05


def _c6(basin, past):
    momentum, gd = basin
    return minima.judge(np.array(momentum), np.array(gd), np.array(past), minima.QUICK)


@pytest.mark.parametrize(
    "basin, past, dips, rolls, status",
    [
        (HELPS, PAST, verdicts.SUPPORTED, verdicts.SUPPORTED, verdicts.SUPPORTED),
        # every part must hold: one not supported is enough against the claim
        (HELPS, NONE, verdicts.SUPPORTED, verdicts.NOT_SUPPORTED, verdicts.NOT_SUPPORTED),
        (SAME, PAST, verdicts.NOT_SUPPORTED, verdicts.SUPPORTED, verdicts.NOT_SUPPORTED),
        (UNSURE, NONE, verdicts.INCONCLUSIVE, verdicts.NOT_SUPPORTED, verdicts.NOT_SUPPORTED),
        # otherwise an inconclusive part leaves the claim inconclusive
        (UNSURE, PAST, verdicts.INCONCLUSIVE, verdicts.SUPPORTED, verdicts.INCONCLUSIVE),
        (HELPS, UNSURE_PAST, verdicts.SUPPORTED, verdicts.INCONCLUSIVE, verdicts.INCONCLUSIVE),
    ],
)
def test_c6_judge_needs_both_halves_of_the_claim(basin, past, dips, rolls, status):
    verdict = _c6(basin, past)
    assert verdict.status == status
    through, beyond = verdict.primary
    assert through.text.startswith("fraction in the global basin") and through.status == dips
    assert beyond.text.startswith("fraction of heavy ball's runs") and beyond.status == rolls
    assert verdict.secondary == ()


def test_c6_judge_reads_the_paired_difference_and_the_mean_fraction_rolled_past():
    through, beyond = _c6(UNSURE, UNSURE_PAST).primary
    # per seed differences 0, 0.3, 0.1, 0.2, 0.05: mean 0.13, t_4 = 2.776
    d = np.array([0.0, 0.3, 0.1, 0.2, 0.05])
    half = 2.7764451 * d.std(ddof=1) / np.sqrt(5)
    np.testing.assert_allclose(
        [through.estimate.mean, through.estimate.low, through.estimate.high],
        [0.13, 0.13 - half, 0.13 + half],
        rtol=1e-6,
    )
    assert (through.threshold, through.side) == (minima.QUICK.helps, verdicts.ABOVE)
    assert beyond.estimate.mean == pytest.approx(0.06)
    assert (beyond.threshold, beyond.side) == (minima.QUICK.rolls_past, verdicts.ABOVE)


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
    diff, past = (c.estimate for c in finding.verdict.primary)
    assert diff.n == 3 and -1 <= diff.low <= diff.mean <= diff.high <= 1
    assert past.n == 3 and 0 <= past.mean <= 1
    assert past.mean == pytest.approx(finding.table[1]["rolled past the minimum"].mean)
    for row in finding.table:
        basin = row["in global basin"]  # a t-interval: its ends may pass 0 or 1, not its mean
        assert 0 <= basin.mean <= 1 and basin.low <= basin.mean <= basin.high
        assert cfg.lr[0] * 0.999 <= row["lr"] <= cfg.lr[1] * 1.001
    assert finding.table[0]["momentum"] == 0.0 and finding.table[1]["momentum"] > 0.5
    amplitudes = finding.metrics["amplitudes"]
    assert len(set(amplitudes.tolist())) == 3  # the problem differs per seed


# ------------------------------------------------------------------------------ E2


HORIZON = 400.0  # QUICK: 400 steps, the last evaluation
# per seed (5, as QUICK): heavy ball reaches its target near half its run; ratios to it
# ~0.51 [0.49, 0.53], ~1.01 [0.97, 1.04] and ~0.75 [0.52, 1.08] (straddles 0.8)
REFERENCE = [200.0, 210.0, 190.0, 205.0, 195.0]
FAST = [100.0, 110.0, 100.0, 105.0, 95.0]
SLOW = [205.0, 205.0, 195.0, 200.0, 200.0]
DOUBT = [100.0, 210.0, 120.0, 200.0, 150.0]


def _arrival(steps, censored=None):
    """Per-seed steps to target; ``censored`` seeds hold the horizon."""
    steps = np.asarray(steps, np.float64)
    flags = np.zeros(steps.size, bool) if censored is None else np.asarray(censored, bool)
    return race.Arrival(steps, flags, HORIZON)


def _e2(qhm, aggmo, demon, hb=REFERENCE):
    steps = {"heavy ball": hb, "QHM": qhm, "AggMo": aggmo, "Demon": demon}
    steps = {k: v if isinstance(v, race.Arrival) else _arrival(v) for k, v in steps.items()}
    final = {name: np.full(5, 0.3) for name in steps}
    test = {name: np.full(5, 0.7) for name in steps}
    return variants.judge(steps, final, test, variants.QUICK)


@pytest.mark.parametrize(
    "qhm, aggmo, demon, status",
    [
        (FAST, FAST, FAST, verdicts.SUPPORTED),
        (SLOW, SLOW, SLOW, verdicts.NOT_SUPPORTED),
        (FAST, SLOW, SLOW, verdicts.DEPENDS),
        (FAST, DOUBT, FAST, verdicts.INCONCLUSIVE),
    ],
)
def test_e2_judge_one_primary_per_variant(qhm, aggmo, demon, status):
    verdict = _e2(qhm, aggmo, demon)
    assert verdict.status == status
    assert [c.text for c in verdict.primary] == [
        f"steps to target, {name} / heavy ball" for name in ("QHM", "AggMo", "Demon")
    ]
    for condition, steps in zip(verdict.primary, (qhm, aggmo, demon)):
        want = np.exp(np.mean(np.log(np.asarray(steps) / np.asarray(REFERENCE))))
        assert condition.estimate.mean == pytest.approx(want)


def test_e2_depends_names_the_variants_it_holds_for():
    verdict = _e2(FAST, SLOW, FAST)
    assert verdict.status == verdicts.DEPENDS
    assert verdict.reason.endswith("Holds for QHM, Demon only.")


def test_e2_a_variant_that_never_reaches_the_target_is_slow_and_a_lower_bound():
    never = _arrival([HORIZON] * 5, [True] * 5)
    verdict = _e2(never, FAST, FAST)
    assert verdict.status == verdicts.DEPENDS
    qhm = verdict.primary[0]
    assert qhm.estimate.bound == "lower" and qhm.status == verdicts.NOT_SUPPORTED
    assert qhm.estimate.low > 1.5  # at least 400 / ~200


def test_e2_a_variant_censored_on_one_seed_cannot_be_called_faster():
    # 8 seeds: seven at ~0.3 of heavy ball's steps, one held at the horizon
    hb = _arrival([200.0, 210.0, 190.0, 205.0, 195.0, 200.0, 205.0, 195.0])
    fast = _arrival([60.0, 63.0, 57.0, 62.0, 58.0, 60.0, 61.0, 100.0])
    late = _arrival([60.0, 63.0, 57.0, 62.0, 58.0, 60.0, 61.0, HORIZON], [False] * 7 + [True])
    steps = {"heavy ball": hb, "QHM": late, "AggMo": fast, "Demon": fast}
    final = {name: np.full(8, 0.3) for name in steps}
    test = {name: np.full(8, 0.7) for name in steps}
    verdict = variants.judge(steps, final, test, variants.QUICK)
    qhm, aggmo, _ = verdict.primary
    assert aggmo.status == verdicts.SUPPORTED and aggmo.estimate.bound == ""
    # QHM's interval lies below 0.8 too, but rests on a censored run: a lower bound
    assert qhm.estimate.bound == "lower" and qhm.estimate.high < variants.QUICK.speedup
    assert qhm.status == verdicts.INCONCLUSIVE
    assert verdict.status == verdicts.INCONCLUSIVE


def test_e2_a_reference_that_never_arrives_cannot_make_a_variant_slower():
    hb = _arrival([*REFERENCE[:4], HORIZON], [False] * 4 + [True])
    verdict = _e2([*SLOW[:4], 390.0], FAST, FAST, hb=hb)
    qhm = verdict.primary[0]
    assert qhm.estimate.bound == "upper" and qhm.estimate.low >= variants.QUICK.speedup
    assert qhm.status == verdicts.INCONCLUSIVE
    assert verdict.status == verdicts.INCONCLUSIVE  # supported twice, inconclusive once


def test_e2_final_loss_and_test_accuracy_are_reported_beside_and_do_not_vote():
    steps = {
        n: _arrival(v)
        for n, v in (("heavy ball", REFERENCE), ("QHM", FAST), ("AggMo", FAST), ("Demon", FAST))
    }
    hb = np.array([0.30, 0.32, 0.31, 0.29, 0.30])
    final = {"heavy ball": hb, "QHM": 2.0 * hb, "AggMo": hb, "Demon": hb}
    acc = np.array([0.70, 0.71, 0.69, 0.70, 0.72])
    test = {"heavy ball": acc, "QHM": acc - 0.05, "AggMo": acc, "Demon": acc}
    verdict = variants.judge(steps, final, test, variants.QUICK)
    assert verdict.status == verdicts.SUPPORTED
    beside = {c.text: c for c in verdict.secondary}
    assert len(beside) == 6
    loss = beside["final training loss, QHM / heavy ball"]
    assert loss.estimate.mean == pytest.approx(2.0) and loss.status == verdicts.NOT_SUPPORTED
    accuracy = beside["test accuracy, QHM - heavy ball"]
    assert accuracy.estimate.mean == pytest.approx(-0.05)
    assert accuracy.status == verdicts.NOT_SUPPORTED


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
        trials=4,  # a 2 x 2 grid
        schedule=loop.Schedule(steps=100, batch_size=32, eval_every=50),
    )
    [finding] = variants.run(cfg, KEY, tmp_path)
    assert finding.id == "E2" and (tmp_path / finding.plots[0]).exists()
    assert [row["method"] for row in finding.table] == ["heavy ball", "Demon", "QHM", "AggMo"]
    assert len(finding.verdict.primary) == 3
    target = finding.metrics["target"]
    assert np.isfinite(target) and 0 < target < 2.31  # below the loss of a uniform guess
    assert finding.metrics["targets"]["QHM"] == target  # heavy ball's target for everyone
    horizon = cfg.schedule.steps
    for row in finding.table:
        name = row["method"]
        steps, censored = finding.metrics["steps"][name], finding.metrics["censored"][name]
        assert steps.shape == censored.shape == (cfg.seeds,)
        assert np.all((0 < steps) & (steps <= horizon))
        assert np.all(steps[censored] == horizon)  # censored at the horizon
        assert row["steps to target"] == race.Arrival(steps, censored, horizon).cell()
    assert report.fmt(finding.table[0]["test accuracy"])
