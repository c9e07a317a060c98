"""The protocol: t-intervals, paired comparisons, tuning draws and selection, verdicts."""

import dataclasses

import numpy as np
import pytest

from experiments.protocol import stats
from experiments.protocol import tuning
from experiments.protocol import verdicts


def test_t_interval_contains_the_mean_and_shrinks_with_more_seeds():
    rng = np.random.default_rng(0)
    few, many = rng.normal(1.0, 1.0, 5), rng.normal(1.0, 1.0, 200)
    small, large = stats.mean(few), stats.mean(many)
    assert small.low < small.mean < small.high
    assert small.mean == pytest.approx(few.mean())
    assert large.high - large.low < (small.high - small.low) / 2
    assert large.low < 1.0 < large.high  # the true mean


def test_t_interval_is_the_student_formula_not_the_range_of_the_seeds():
    values = np.array([1.0, 2.0, 4.0])
    interval = stats.mean(values)
    # mean 7/3, s = sqrt(7/3), t_{0.975, 2} = 4.302653: half width 4.302653 s / sqrt(3)
    half = 4.302653 * np.sqrt(7 / 3) / np.sqrt(3)
    assert interval.low == pytest.approx(7 / 3 - half, rel=1e-6)
    assert interval.high == pytest.approx(7 / 3 + half, rel=1e-6)
    assert interval.low < values.min() and interval.high > values.max()  # wider than [min, max]


def test_paired_difference_removes_the_shared_seed_effect():
    seed_effect = np.array([0.0, 10.0, -10.0, 5.0, -5.0])
    a, b = seed_effect + 1.0, seed_effect  # a is better by exactly 1 on every seed
    paired = stats.paired_difference(a, b)
    assert paired.mean == pytest.approx(1.0) and paired.low == pytest.approx(1.0)
    assert paired.high == pytest.approx(1.0)
    unpaired = stats.mean(a).low - stats.mean(b).high
    assert unpaired < 0  # as independent means, the two would overlap


def test_paired_ratio_is_the_geometric_mean_of_the_per_seed_ratios():
    ratio = stats.paired_ratio(np.array([50.0, 60.0, 70.0]), np.array([100.0, 120.0, 140.0]))
    assert ratio.mean == pytest.approx(0.5) and ratio.high == pytest.approx(0.5)
    mixed = stats.paired_ratio(np.array([1.0, 4.0]), np.array([1.0, 1.0]))
    assert mixed.mean == pytest.approx(2.0)  # sqrt(1 * 4), not (1 + 4) / 2
    never = stats.paired_ratio(np.array([np.inf, np.inf, np.inf]), np.array([10.0, 20.0, 30.0]))
    assert never.mean == np.inf and never.low == np.inf
    with pytest.raises(ValueError, match="positive"):
        stats.paired_ratio(np.array([0.0, 1.0]), np.array([1.0, 1.0]))


def test_censored_runs_make_a_ratio_a_bound_and_keep_only_the_status_it_guarantees():
    a, b = np.array([300.0, 400.0, 400.0]), np.array([400.0, 410.0, 420.0])
    lower = stats.paired_ratio(a, b, censored_a=np.array([False, True, True]))
    assert lower.bound == "lower" and str(lower).startswith(">= ")
    upper = stats.paired_ratio(b, a, censored_b=np.array([False, True, True]))
    assert upper.bound == "upper"
    # the method censored: its true ratio is at least the estimate
    below = lambda iv, t: verdicts.Condition("ratio", iv, t, verdicts.BELOW).status
    assert below(lower, 0.5) == verdicts.NOT_SUPPORTED  # guaranteed by a lower bound
    assert below(lower, 1.2) == verdicts.INCONCLUSIVE  # "faster" cannot rest on it
    assert below(upper, 3.0) == verdicts.SUPPORTED  # an upper bound below the threshold
    assert below(upper, 0.5) == verdicts.INCONCLUSIVE  # "slower" cannot rest on it
    both = stats.paired_ratio(a, b, censored_a=np.ones(3, bool), censored_b=np.ones(3, bool))
    assert below(both, 10.0) == verdicts.INCONCLUSIVE and below(both, 0.1) == verdicts.INCONCLUSIVE
    with pytest.raises(ValueError, match="bound"):
        stats.Interval(1.0, 0.0, 2.0, 3, "sideways")


def test_non_finite_values_give_one_sided_or_undetermined_intervals():
    up = stats.mean(np.array([1.0, 2.0, np.inf]))
    assert up.mean == np.inf and up.high == np.inf and np.isfinite(up.low)
    nan = stats.mean(np.array([1.0, np.nan]))
    assert np.isnan(nan.mean) and nan.low == -np.inf and nan.high == np.inf


def test_bca_interval_of_a_statistic_that_is_not_a_mean():
    rng = np.random.default_rng(1)
    values = rng.normal(0.0, 1.0, 12)
    interval = stats.bca(values, np.median)
    assert interval.mean == pytest.approx(np.median(values))
    assert interval.low < interval.mean < interval.high
    assert stats.bca(values, np.median) == interval  # a fixed generator


def test_paired_values_must_match_seed_for_seed():
    with pytest.raises(ValueError, match="one entry per seed"):
        stats.paired_difference(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="at least one value"):
        stats.mean(np.array([]))


def test_band_is_the_pointwise_t_interval_of_the_tables():
    curves = np.array([[1.0, 2.0], [3.0, 2.0], [2.0, 2.0]])
    mean, low, high = stats.band(curves)
    np.testing.assert_allclose(mean, [2.0, 2.0])
    point = stats.mean(curves[:, 0])
    assert (low[0], high[0]) == pytest.approx((point.low, point.high))
    assert low[1] == high[1] == 2.0


def _condition(low, high, threshold=0.8, side=verdicts.BELOW):
    return verdicts.Condition(
        "ratio", stats.Interval((low + high) / 2, low, high, 3), threshold, side
    )


@pytest.mark.parametrize(
    "low, high, side, status",
    [
        (0.5, 0.7, verdicts.BELOW, verdicts.SUPPORTED),
        (0.9, 1.1, verdicts.BELOW, verdicts.NOT_SUPPORTED),
        (0.7, 0.9, verdicts.BELOW, verdicts.INCONCLUSIVE),
        (0.9, 1.1, verdicts.ABOVE, verdicts.SUPPORTED),
        (0.5, 0.7, verdicts.ABOVE, verdicts.NOT_SUPPORTED),
        (0.7, 0.9, verdicts.ABOVE, verdicts.INCONCLUSIVE),
    ],
)
def test_condition_status_follows_the_interval_and_the_threshold(low, high, side, status):
    condition = _condition(low, high, side=side)
    assert condition.status == status
    verdict = verdicts.judge(condition, [_condition(0.9, 1.1)])
    assert verdict.status == status and not verdict.check
    assert len(verdict.secondary) == 1 and status in verdict.reason


def test_secondary_conditions_do_not_vote():
    supported = _condition(0.5, 0.7)
    assert verdicts.judge(supported, [_condition(0.9, 1.1)] * 3).status == verdicts.SUPPORTED


@pytest.mark.parametrize(
    "intervals, status",
    [
        ([(0.5, 0.7), (0.5, 0.6)], verdicts.SUPPORTED),
        ([(0.9, 1.1), (1.0, 1.2)], verdicts.NOT_SUPPORTED),
        ([(0.5, 0.7), (0.9, 1.1)], verdicts.DEPENDS),
        ([(0.5, 0.7), (0.7, 0.9)], verdicts.INCONCLUSIVE),
        ([(0.7, 0.9), (0.7, 0.9)], verdicts.INCONCLUSIVE),
    ],
)
def test_depends_only_when_the_named_conditions_disagree(intervals, status):
    named = {f"batch {b}": _condition(*iv) for b, iv in zip((32, 2048), intervals)}
    verdict = verdicts.judge_depends(named)
    assert verdict.status == status
    if status == verdicts.DEPENDS:
        assert "Holds for batch 32 only" in verdict.reason


def test_checks_pass_only_when_every_condition_is_clearly_met():
    assert verdicts.judge_check([_condition(0.5, 0.7)] * 2).status == verdicts.CHECK_PASSED
    failed = verdicts.judge_check([_condition(0.5, 0.7), _condition(0.7, 0.9)])
    assert failed.status == verdicts.CHECK_FAILED and failed.check
    exact = verdicts.Condition("error", verdicts.exact(1e-7), 1e-5, verdicts.BELOW)
    assert verdicts.judge_check([exact]).status == verdicts.CHECK_PASSED


def test_verdicts_refuse_empty_conditions_and_unknown_sides():
    with pytest.raises(ValueError, match="at least one"):
        verdicts.judge_check([])
    with pytest.raises(ValueError, match="at least one"):
        verdicts.judge_depends({})
    with pytest.raises(ValueError, match="side"):
        _condition(0.1, 0.2, side="left")


def test_one_dimensional_trials_are_a_log_grid_with_the_fixed_momentum():
    table = tuning.trials(tuning.Space(lr=(1e-3, 1e-1), momentum=0.9), 3)
    np.testing.assert_allclose(table["lr"], [1e-3, 1e-2, 1e-1], rtol=1e-6)
    np.testing.assert_allclose(table["momentum"], 0.9)


def test_two_dimensional_trials_are_a_grid_of_effective_step_and_beta():
    space = tuning.Space(effective=(0.01, 10.0), one_minus_beta=(1e-3, 0.1))
    table = tuning.trials(space, 16)
    beta = table["momentum"].astype(np.float64)
    step = table["lr"] / (1 - beta)
    np.testing.assert_allclose(sorted(set(np.round(np.log10(step), 3))), [-2, -1, 0, 1], atol=2e-3)
    gaps = sorted(set(np.round(np.log10(1 - beta), 3)))
    np.testing.assert_allclose(gaps, np.linspace(-3, -1, 4), atol=2e-3)
    assert len(set(zip(table["lr"].tolist(), beta.tolist()))) == 16
    with pytest.raises(ValueError, match="n = k"):
        tuning.trials(space, 13)


def test_random_trials_are_independent_draws_from_their_seed():
    space = tuning.Space(effective=(0.01, 10.0), one_minus_beta=(1e-3, 0.1), grid=False)
    first = tuning.trials(space, 50)
    assert tuning.trials(space, 50)["lr"].tolist() == first["lr"].tolist()
    other = tuning.trials(dataclasses.replace(space, draw_seed=1), 50)
    assert other["lr"].tolist() != first["lr"].tolist()
    step = first["lr"] / (1 - first["momentum"].astype(np.float64))
    assert np.all((step >= 0.01 * 0.999) & (step <= 10.0 * 1.001))
    assert len(set(np.round(step, 6).tolist())) == 50  # not a handful of repeated points


def test_grid_trials_cross_the_dimensions():
    space = tuning.Space(lr=(1e-2, 1.0), eps=(1e-8, 1e-4))
    table = tuning.trials(space, 9)
    assert sorted(set(np.round(np.log10(table["lr"]), 4).tolist())) == [-2.0, -1.0, 0.0]
    assert len(set(zip(table["lr"].tolist(), table["eps"].tolist()))) == 9
    with pytest.raises(ValueError, match="n = k"):
        tuning.trials(space, 8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": (0.0, 1.0)}, "Space.lr"),
        ({"lr": (1.0, 0.1)}, "Space.lr"),
        ({"one_minus_beta": (0.1, 2.0)}, "one_minus_beta"),
        ({"eps": (-1.0, 1.0)}, "Space.eps"),
    ],
)
def test_bad_spaces_are_refused_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tuning.Space(**kwargs)


def test_bad_trial_counts_are_refused():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        tuning.trials(tuning.Space(), 0)


def test_selection_takes_the_best_mean_and_counts_divergence_as_worst():
    objective = np.array([[1.0, 1.0], [0.5, np.nan], [0.8, 0.9]])
    assert tuning.select(objective) == 2  # trial 1 diverged on a seed
    assert tuning.select(-objective, lower_is_better=False) == 2


def test_edge_flags_for_a_grid_choice_at_either_end():
    space = tuning.Space(lr=(1e-3, 1.0), momentum=0.9)
    table = tuning.trials(space, 4)
    assert tuning.on_edge(space, table, 0) == ["lr"]
    assert tuning.on_edge(space, table, 3) == ["lr"]
    assert tuning.on_edge(space, table, 1) == []


def test_expected_best_rises_from_the_mean_to_the_best_value():
    values = np.array([0.1, 0.5, 0.9, 0.3])
    best = tuning.expected_best(values, np.array([1, 2, 100]), lower_is_better=False)
    assert best[0] == pytest.approx(values.mean())
    # best of 2 draws with replacement: sum over ordered values of P(max = v)
    expected_two = sum(
        v * ((i / 4) ** 2 - ((i - 1) / 4) ** 2) for i, v in enumerate(np.sort(values), start=1)
    )
    assert best[1] == pytest.approx(expected_two)
    assert best[2] == pytest.approx(0.9, abs=1e-9)
    lower = tuning.expected_best(values, np.array([1, 100]))
    assert lower[0] == pytest.approx(values.mean()) and lower[1] == pytest.approx(0.1)


def test_edge_flags_for_a_random_choice_near_the_ends_of_the_log_range():
    space = tuning.Space(lr=(1e-4, 1.0), one_minus_beta=(1e-3, 0.5), grid=False)
    table = {
        "lr": np.array([1.2e-4, 1e-2, 0.9, 1e-3], np.float32),
        "momentum": np.array([0.5, 0.99, 0.9, 0.9], np.float32),
    }
    assert tuning.on_edge(space, table, 0) == ["lr", "one_minus_beta", "effective step"]
    assert tuning.on_edge(space, table, 1) == []
    assert tuning.on_edge(space, table, 2) == ["lr", "effective step"]


def test_edge_flags_in_effective_step_and_at_the_largest_step_that_did_not_diverge():
    space = tuning.Space(effective=(0.01, 10.0), one_minus_beta=(1e-3, 0.1))
    table = tuning.trials(space, 16)
    step = table["lr"] / (1 - table["momentum"].astype(np.float64))
    top = int(np.argmax(step))
    assert "effective step" in tuning.on_edge(space, table, top)
    # the two largest steps diverged: the largest stable one is an edge too
    finite = step < 1.0  # the largest effective step, 10, diverged at every beta
    stable_top = int(np.flatnonzero(finite)[np.argmax(step[finite])])
    inner = tuning.on_edge(space, table, stable_top, finite)
    assert any("did not diverge" in e for e in inner)
    assert not any("did not diverge" in e for e in tuning.on_edge(space, table, stable_top))
    gap = 1 - table["momentum"].astype(np.float64)
    middle = int(np.argmin(np.abs(np.log(step / 0.1)) + np.abs(np.log(gap / 10**-2.333))))
    assert tuning.on_edge(space, table, middle, finite) == []
