"""C10: the judge on hand-made per-seed arrivals (every status, censored runs), the arms'
search spaces (RMSprop's momentum placed by 1 - beta, Adam's not), and a tiny end-to-end
run."""

import dataclasses

import jax
import numpy as np
import pytest

from experiments import loop
from experiments.claims import adaptive_methods as c10
from experiments.protocol import race
from experiments.protocol import tuning
from experiments.protocol import verdicts

CFG = c10.QUICK
HORIZON = float(CFG.schedule.steps)


def arrival(steps, censored=None):
    steps = np.asarray(steps, float)
    censored = np.zeros(steps.shape, bool) if censored is None else np.asarray(censored, bool)
    return race.Arrival(steps, censored, HORIZON)


def _judge(rms_with, rms_without, adam_with, adam_without, acc_with=None, acc_without=None):
    """The arms' steps as arrays, or ``race.Arrival`` where a seed is censored."""
    a = lambda s: s if isinstance(s, race.Arrival) else arrival(s)
    steps_with = {"RMSprop": a(rms_with), "Adam": a(adam_with)}
    steps_without = {"RMSprop": a(rms_without), "Adam": a(adam_without)}
    flat = {"RMSprop": np.full(5, 0.6), "Adam": np.full(5, 0.6)}
    return c10.judge(steps_with, steps_without, acc_with or flat, acc_without or flat, CFG)


def geometric_ratio(a, b):
    return float(np.exp(np.mean(np.log(np.asarray(a, float) / np.asarray(b, float)))))


FAST = [300, 350, 400, 330, 370]  # about 0.37 of SLOW on every seed
SLOW = [900, 1000, 950, 920, 980]
SAME = [950, 920, 1000, 900, 960]  # SLOW reordered: ratios around 1
NOISY = [300, 1100, 500, 1000, 600]  # per-seed ratios 0.33 to 1.1: straddles 0.8


@pytest.mark.parametrize(
    "numbers, status, holds",
    [
        ((FAST, SLOW, FAST, SLOW), verdicts.SUPPORTED, ("supported", "supported")),
        ((SAME, SLOW, SAME, SLOW), verdicts.NOT_SUPPORTED, ("not supported", "not supported")),
        ((FAST, SLOW, SAME, SLOW), verdicts.DEPENDS, ("supported", "not supported")),
        ((NOISY, SLOW, FAST, SLOW), verdicts.INCONCLUSIVE, ("inconclusive", "supported")),
    ],
)
def test_judge_gives_every_status(numbers, status, holds):
    verdict = _judge(*numbers)
    assert verdict.status == status
    assert len(verdict.primary) == 2 and len(verdict.secondary) == 2
    assert tuple(c.status for c in verdict.primary) == holds
    rms, adam = verdict.primary
    assert rms.text.startswith("RMSprop") and adam.text.startswith("Adam")
    # the primary is the geometric mean of the per-seed ratios, with / without
    assert rms.estimate.mean == pytest.approx(geometric_ratio(numbers[0], numbers[1]))
    assert adam.estimate.mean == pytest.approx(geometric_ratio(numbers[2], numbers[3]))
    assert rms.estimate.low < rms.estimate.mean < rms.estimate.high
    assert rms.threshold == CFG.speedup and rms.side == verdicts.BELOW
    if status == verdicts.DEPENDS:
        assert "Holds for RMSprop only" in verdict.reason


def test_the_interval_is_the_t_interval_of_the_log_ratios():
    verdict = _judge(NOISY, SLOW, FAST, SLOW)
    logs = np.log(np.asarray(NOISY, float) / np.asarray(SLOW, float))
    half = 2.7764451051977987 * logs.std(ddof=1) / np.sqrt(5)  # t_{0.975, 4}
    rms = verdict.primary[0].estimate
    assert rms.low == pytest.approx(np.exp(logs.mean() - half))
    assert rms.high == pytest.approx(np.exp(logs.mean() + half))
    assert rms.low < CFG.speedup < rms.high and rms.n == 5


def test_a_momentum_arm_that_never_arrives_bounds_the_ratio_and_cannot_count_as_faster():
    # RMSprop with momentum never reaches the target: censored at the horizon, the ratio is
    # a lower bound above 1 (not supported, whatever the censored steps would have been)
    never = arrival(np.full(5, HORIZON), np.ones(5, bool))
    near = [500, 520, 480, 510, 490]
    verdict = _judge(never, near, FAST, SLOW)
    rms = verdict.primary[0]
    assert rms.estimate.bound == "lower" and rms.estimate.mean == pytest.approx(
        geometric_ratio(np.full(5, HORIZON), near)
    )
    assert rms.status == verdicts.NOT_SUPPORTED and verdict.status == verdicts.DEPENDS
    assert "Holds for Adam only" in verdict.reason and "lower bound" in verdict.reason
    # one censored seed in an otherwise faster arm: the interval lies below the threshold,
    # but it is a lower bound, so "faster" rests on its open side: inconclusive
    one = arrival([100, 100, 100, 100, HORIZON], [False] * 4 + [True])
    verdict = _judge(one, [500, 500, 500, 500, 590], FAST, SLOW)
    rms = verdict.primary[0]
    assert rms.estimate.bound == "lower" and rms.estimate.high < CFG.speedup
    assert rms.status == verdicts.INCONCLUSIVE and verdict.status == verdicts.INCONCLUSIVE


def test_an_arm_without_momentum_that_never_arrives_still_lets_momentum_win():
    # the reference censored: the ratio is an upper bound, which can confirm "faster"
    never = arrival(np.full(5, HORIZON), np.ones(5, bool))
    verdict = _judge([100, 110, 90, 120, 105], never, FAST, SLOW)
    rms = verdict.primary[0]
    assert rms.estimate.bound == "upper" and rms.status == verdicts.SUPPORTED
    assert verdict.status == verdicts.SUPPORTED


def test_test_accuracy_is_secondary_and_does_not_vote():
    acc_with = {"RMSprop": np.array([0.7, 0.72, 0.69, 0.71, 0.7]), "Adam": np.full(5, 0.5)}
    acc_without = {"RMSprop": np.full(5, 0.6), "Adam": np.full(5, 0.6)}
    verdict = _judge(FAST, SLOW, FAST, SLOW, acc_with, acc_without)
    assert verdict.status == verdicts.SUPPORTED
    rms, adam = verdict.secondary
    assert rms.estimate.mean == pytest.approx(0.104) and rms.status == verdicts.SUPPORTED
    assert adam.estimate.mean == pytest.approx(-0.1) and adam.status == verdicts.NOT_SUPPORTED


def test_each_family_has_an_arm_with_and_without_momentum_over_the_same_budget():
    arms = c10.methods(CFG)
    assert list(arms) == ["RMSprop", "Adam"]
    names = [[m.name for m in pair] for pair in arms.values()]
    assert names == [
        ["RMSprop, momentum 0.9", "RMSprop, no momentum"],
        ["Adam, momentum 0.9", "Adam, no momentum"],
    ]
    assert arms["RMSprop"][0].make is c10.rmsprop and arms["Adam"][0].make is c10.adam


def test_rmsprop_with_momentum_places_its_lr_by_one_minus_beta_and_adam_does_not():
    tables = {
        family: [tuning.trials(m.space, CFG.trials) for m in pair]
        for family, pair in c10.methods(CFG).items()
    }
    for with_m, without in tables.values():
        assert len(without["lr"]) == CFG.trials == 16  # a 4 x 4 grid of lr x eps
        np.testing.assert_array_equal(with_m["eps"], without["eps"])
        np.testing.assert_allclose(with_m["momentum"], 0.9)
        np.testing.assert_array_equal(without["momentum"], 0.0)
        assert without["lr"].min() == pytest.approx(CFG.lr[0], rel=1e-6)
        assert without["lr"].max() == pytest.approx(CFG.lr[1], rel=1e-6)
        assert len(np.unique(without["lr"])) == 4 and len(np.unique(without["eps"])) == 4
    rms_with, rms_without = tables["RMSprop"]
    # RMSprop's momentum multiplies its steady step by 1 / (1 - beta): the same effective
    # steps as without momentum
    np.testing.assert_allclose(rms_with["lr"], rms_without["lr"] * (1 - 0.9), rtol=1e-6)
    adam_with, adam_without = tables["Adam"]
    np.testing.assert_array_equal(adam_with["lr"], adam_without["lr"])  # b1 is an average


@pytest.mark.slow
def test_tiny_run_tunes_each_arm_and_writes_its_plot(tmp_path):
    cfg = dataclasses.replace(
        c10.QUICK,
        trials=9,  # a 3 x 3 grid of lr x eps: its middle lr learns within the run
        seeds=3,
        schedule=loop.Schedule(steps=100, batch_size=16, eval_every=50),
    )
    (finding,) = c10.run(cfg, jax.random.key(0), tmp_path)
    assert finding.id == "C10" and finding.verdict.status in verdicts.EMPIRICAL
    assert (tmp_path / finding.plots[0]).stat().st_size > 10_000
    assert {row["arm"] for row in finding.table} == {
        "RMSprop, momentum 0.9",
        "RMSprop, no momentum",
        "Adam, momentum 0.9",
        "Adam, no momentum",
    }
    for row in finding.table:
        # RMSprop with momentum searches the lr range as effective step: lr x (1 - 0.9)
        scale = 1 - cfg.momentum if row["arm"] == "RMSprop, momentum 0.9" else 1.0
        low, high = cfg.lr[0] * scale, cfg.lr[1] * scale
        assert low * (1 - 1e-6) <= row["lr"] <= high * (1 + 1e-6)
        assert cfg.eps[0] * (1 - 1e-6) <= row["eps"] <= cfg.eps[1] * (1 + 1e-6)
        assert 0.1 < row["test accuracy"].mean < 1.0  # learned something in 100 steps
    targets = [finding.metrics[f]["target"] for f in ("RMSprop", "Adam")]
    assert all(0.0 < t < np.log(10) for t in targets)  # below the loss of a uniform guess
