"""The time-to-result instrument (``protocol.race``): interpolated crossings, censoring,
targets part-way through the reference's run, cross-fitted selection, and the claims'
configurations that use it."""

import numpy as np
import pytest

from experiments import registry
from experiments.protocol import race
from experiments.protocol import verdicts

STEPS = np.array([0.0, 10.0, 20.0, 30.0])


def test_the_crossing_is_interpolated_between_evaluations():
    curve = np.array([4.0, 3.0, 1.0, 0.5])  # reaches 2 halfway between steps 10 and 20
    assert race.crossing(curve, 2.0, STEPS, higher_is_better=False) == pytest.approx(15.0)
    assert race.crossing(curve, 2.5, STEPS, higher_is_better=False) == pytest.approx(12.5)
    accuracy = np.array([0.1, 0.3, 0.7, 0.8])
    assert race.crossing(accuracy, 0.5, STEPS, higher_is_better=True) == pytest.approx(15.0)
    # already there at the first evaluation; never there; NaN never arrives
    assert race.crossing(curve, 5.0, STEPS, higher_is_better=False) == 0.0
    assert race.crossing(curve, 0.1, STEPS, higher_is_better=False) == np.inf
    nan = np.array([4.0, np.nan, 1.0, 0.5])
    assert race.crossing(nan, 2.0, STEPS, higher_is_better=False) == 20.0


def test_interpolated_ratios_are_continuous_not_ratios_of_evaluation_steps():
    # two runs 1 step apart in truth: quantised to the first evaluation they would tie
    fast = np.array([4.0, 2.2, 1.0, 0.5])
    slow = np.array([4.0, 2.3, 1.0, 0.5])
    a = race.crossing(fast, 2.0, STEPS, higher_is_better=False)
    b = race.crossing(slow, 2.0, STEPS, higher_is_better=False)
    assert a < b < 20.0 and a % 10 != 0


def test_runs_that_never_arrive_are_censored_counted_and_make_the_ratio_a_bound():
    curves = np.array([[4.0, 3.0, 1.0, 0.5], [4.0, 3.9, 3.8, 3.7]])
    got = race.arrival(curves, 2.0, STEPS, higher_is_better=False)
    np.testing.assert_allclose(got.steps, [15.0, 30.0])
    assert got.censored.tolist() == [False, True] and got.count == 1 and got.horizon == 30.0
    assert got.mean().bound == "lower" and "1/2 censored" in got.cell()
    ref = race.arrival(curves[[0, 0]], 2.0, STEPS, higher_is_better=False)
    ratio = race.ratio(got, ref)
    assert ratio.bound == "lower"
    # a "faster" verdict cannot rest on a censored method
    assert verdicts.Condition("r", ratio, 10.0, verdicts.BELOW).status == verdicts.INCONCLUSIVE


def test_a_run_at_the_target_from_the_start_counts_one_step_in_a_ratio():
    at_start = race.Arrival(np.zeros(3), np.zeros(3, bool), 30.0)
    later = race.Arrival(np.full(3, 10.0), np.zeros(3, bool), 30.0)
    assert race.ratio(at_start, later).mean == pytest.approx(0.1)


def test_the_target_is_the_reference_part_way_through_its_run():
    curves = np.array([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]])
    assert race.target_at(curves, STEPS, 0.5) == pytest.approx(2.5)  # step 15
    with pytest.raises(ValueError, match="fraction"):
        race.target_at(curves, STEPS, 1.0)


def test_crossfit_scores_each_seed_with_the_trial_chosen_on_the_other_seeds():
    # trial 0 is fastest on even seeds, trial 1 on odd ones
    steps = np.array([[10.0, 50.0, 10.0, 50.0], [50.0, 10.0, 50.0, 10.0]])
    censored = np.zeros(steps.shape, bool)
    chosen = race.crossfit(steps, censored, np.zeros(steps.shape))
    # the even seeds are scored by the trial the odd seeds chose, and vice versa
    assert chosen.tolist() == [1, 0, 1, 0]
    # fewer censored runs come first, whatever the steps
    censored[0] = [True, False, True, False]
    assert race.crossfit(steps, censored, np.zeros(steps.shape)).tolist() == [1, 1, 1, 1]


def test_fastest_picks_per_seed_and_overall():
    t = np.arange(5) * 10.0
    quick = np.array([4.0, 2.0, 1.0, 0.5, 0.2])
    slow = np.array([4.0, 3.5, 3.0, 1.5, 1.0])
    curve = np.stack([np.stack([slow] * 4), np.stack([quick] * 4)])  # (trials, seeds, evals)
    pick = race.fastest(curve, 1.8, t, higher_is_better=False)
    assert pick.overall == 1 and pick.chosen.tolist() == [1] * 4
    assert pick.arrival.count == 0
    np.testing.assert_allclose(pick.arrival.steps, 10.0 + 10.0 * 0.2 / 1.0)


def _configs():
    """Every registered experiment's quick and full configuration."""
    for name, module in registry.experiments().items():
        for mode in ("QUICK", "FULL"):
            yield f"{name}.{mode}", getattr(module, mode)


def _schedules(cfg):
    return [v for v in vars(cfg).values() if hasattr(v, "eval_every")] + [
        a.schedule for a in getattr(cfg, "arms", ())
    ]


@pytest.mark.parametrize(
    "name, cfg", list(_configs()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_races_evaluate_often_enough_to_resolve_their_thresholds(name, cfg):
    """Every configuration with a steps threshold (``speedup``) evaluates every 10-20 steps:
    interpolated between evaluations that fine, no threshold is an attainable quantised
    ratio of evaluation steps."""
    if not hasattr(cfg, "speedup") or not hasattr(cfg, "target_at"):
        return
    assert 0.5 <= cfg.target_at <= 0.6, name
    for schedule in _schedules(cfg):
        assert schedule.eval_every <= 20, (name, schedule)
        # the target sits part-way: at least 10 evaluations before it
        assert cfg.target_at * schedule.steps / schedule.eval_every >= 10, (name, schedule)


@pytest.mark.parametrize(
    "name, cfg", list(_configs()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_comparison_runs_enough_seeds(name, cfg):
    seeds = getattr(cfg, "seeds", None)
    if seeds is None:
        return
    assert seeds >= (5 if name.endswith("QUICK") else 8), name
