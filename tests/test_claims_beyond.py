"""Claims E3 (YellowFin), E4 (SRSGD) and E5 (cautious momentum): judges on hand-made
numbers, k* on hand-made curves, the methods on tiny inputs, and one small end-to-end
run each, written into the report by the runner."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import momentum_optax as mo
from experiments import loop
from experiments import registry
from experiments import runner
from experiments import tasks
from experiments.claims import cautious
from experiments.claims import srsgd
from experiments.claims import yellowfin
from experiments.parts import budget as budget_lib
from experiments.parts import practice
from experiments.parts import wallclock
from experiments.protocol import race
from experiments.protocol import tuning
from experiments.protocol import verdicts
from tests import helpers

KEY = jax.random.key(0)
HORIZON = 400.0  # QUICK: 400 steps, the last evaluation
# per seed (5, as QUICK): heavy ball reaches its target near half its run; ratios to it
# ~0.51 [0.49, 0.53], ~1.01 [0.97, 1.04] and ~0.75 [0.52, 1.08] (straddles 0.8)
REFERENCE = [200.0, 210.0, 190.0, 205.0, 195.0]
FAST = [100.0, 110.0, 100.0, 105.0, 95.0]
SAME = [205.0, 205.0, 195.0, 200.0, 200.0]
UNSURE = [100.0, 210.0, 120.0, 200.0, 150.0]
TINY = loop.Schedule(steps=100, batch_size=32, eval_every=50)


def _arrival(steps, censored=None, horizon=HORIZON):
    """Per-seed steps to target; ``censored`` seeds hold the horizon."""
    steps = np.asarray(steps, np.float64)
    flags = np.zeros(steps.size, bool) if censored is None else np.asarray(censored, bool)
    return race.Arrival(steps, flags, horizon)


NEVER = _arrival([HORIZON] * 5, [True] * 5)


def _inputs(steps):
    """Arrivals (lists: none censored) and equal final losses and test accuracies."""
    steps = {k: v if isinstance(v, race.Arrival) else _arrival(v) for k, v in steps.items()}
    n = next(iter(steps.values())).steps.size
    final = {name: np.full(n, 0.3) for name in steps}
    test = {name: np.full(n, 0.7) for name in steps}
    return steps, final, test


# ---------------------------------------------------------------- shared: steps to target


def test_a_speed_up_resting_on_a_censored_method_is_a_lower_bound_never_supported():
    # 8 seeds: seven at ~0.3 of heavy ball's steps, one never arrives (held at the horizon)
    hb = [200.0, 210.0, 190.0, 205.0, 195.0, 200.0, 205.0, 195.0]
    fast = [60.0, 63.0, 57.0, 62.0, 58.0, 60.0, 61.0, HORIZON]
    censored = [False] * 7 + [True]
    steps = {"heavy ball": hb, "Nesterov": hb, "SRSGD": _arrival(fast, censored)}
    verdict = srsgd.judge(*_inputs(steps), srsgd.QUICK)
    ratio = verdict.primary[0].estimate
    assert ratio.bound == "lower" and ratio.n == 8
    assert ratio.high < srsgd.QUICK.speedup  # the interval alone would say "supported"
    assert verdict.status == verdicts.INCONCLUSIVE
    # the same numbers as measurements (the last seed arrived at the horizon): supported
    steps = {"heavy ball": hb, "Nesterov": hb, "SRSGD": fast}
    measured = srsgd.judge(*_inputs(steps), srsgd.QUICK)
    assert measured.primary[0].estimate.bound == ""
    assert measured.primary[0].estimate.mean == pytest.approx(ratio.mean)
    assert measured.status == verdicts.SUPPORTED


@pytest.mark.parametrize(
    "method, measured, status",
    [
        (FAST, verdicts.SUPPORTED, verdicts.SUPPORTED),
        ([*SAME[:4], 390.0], verdicts.NOT_SUPPORTED, verdicts.INCONCLUSIVE),
    ],
)
def test_a_censored_reference_makes_the_ratio_an_upper_bound(method, measured, status):
    # heavy ball never arrives on the last seed: the true ratio is at most the estimate,
    # so a speed-up can be supported but "not faster" cannot be concluded
    hb = _arrival([*REFERENCE[:4], HORIZON], [False] * 4 + [True])
    steps = {"heavy ball": hb, "Nesterov": REFERENCE, "SRSGD": method}
    verdict = srsgd.judge(*_inputs(steps), srsgd.QUICK)
    [primary] = verdict.primary
    assert primary.estimate.bound == "upper"
    want = np.exp(np.mean(np.log(np.asarray(method) / hb.steps)))
    assert primary.estimate.mean == pytest.approx(want)
    unbounded = dataclasses.replace(primary.estimate, bound="")
    as_measured = dataclasses.replace(primary, estimate=unbounded)
    assert as_measured.status == measured
    assert verdict.status == status


# ------------------------------------------------------------------------------ E3


def _accuracies(yf_test, hb_test=(0.60, 0.62, 0.61), yf_val=(0.55, 0.56, 0.57)):
    hb_val = np.array([[0.3, 0.35, 0.32], [0.6, 0.62, 0.61], [0.5, 0.52, 0.49]])
    return yellowfin.Accuracies(hb_val, np.array(hb_test), np.array(yf_val), np.array(yf_test))


@pytest.mark.parametrize(
    "yf_test, status",
    [
        ((0.60, 0.615, 0.605), verdicts.SUPPORTED),  # within a point of tuned heavy ball
        ((0.50, 0.52, 0.51), verdicts.NOT_SUPPORTED),  # ten points below it
        ((0.58, 0.62, 0.55), verdicts.INCONCLUSIVE),  # -0.02 to -0.06: straddles -0.02
    ],
)
def test_e3_judge_follows_the_paired_test_difference(yf_test, status):
    verdict = yellowfin.judge(_accuracies(yf_test), yellowfin.QUICK)
    assert verdict.status == status
    assert verdict.primary[0].threshold == -yellowfin.QUICK.margin
    # YellowFin's validation accuracy beats heavy ball's expected best of one trial
    assert verdict.secondary[0].status == verdicts.SUPPORTED


def test_e3_the_cnn_arm_is_secondary():
    losing_cnn = _accuracies((0.40, 0.41, 0.42))
    verdict = yellowfin.judge(_accuracies((0.60, 0.615, 0.605)), yellowfin.FULL, losing_cnn)
    assert verdict.status == verdicts.SUPPORTED
    mlp, cnn = verdict.secondary
    assert mlp.text.startswith("validation accuracy") and mlp.status == verdicts.SUPPORTED
    assert cnn.text.startswith("1-D CNN") and cnn.status == verdicts.NOT_SUPPORTED


@pytest.mark.parametrize(
    "value, budget",
    [(0.45, 2.5), (0.5, 3.0), (0.55, 3.5), (0.42, 2.2), (0.2, 1.0), (0.3, 1.0), (0.61, np.inf)],
)
def test_e3_crossing_interpolates_the_budget_at_which_the_expected_best_reaches_the_value(
    value, budget
):
    curve, budgets = np.array([0.3, 0.4, 0.5, 0.6]), np.array([1.0, 2.0, 3.0, 4.0])
    assert budget_lib.crossing(curve, budgets, value) == pytest.approx(budget)


def test_e3_expected_best_of_two_trials_by_hand():
    # trials 0.2 and 0.6: one draw averages 0.4; the best of two draws (with replacement)
    # is 0.2 only when both draw it (1/4): 0.2 / 4 + 0.6 * 3 / 4 = 0.5
    curves = budget_lib.per_seed(np.array([[0.2, 0.2], [0.6, 0.6]]), np.array([1.0, 2.0]))
    np.testing.assert_allclose(curves, [[0.4, 0.5], [0.4, 0.5]])


def test_e3_worth_reads_k_star_off_the_mean_curve_with_an_interval_over_seeds():
    budgets = np.array([1.0, 2.0, 3.0, 4.0])
    same = np.tile([0.3, 0.4, 0.5, 0.6], (3, 1))
    k = budget_lib.worth(same, np.array([0.45, 0.45, 0.45]), budgets)
    # halfway between 2 and 3, on every resample
    np.testing.assert_allclose([k.mean, k.low, k.high], 2.5, rtol=1e-12)
    assert k.n == 3
    # seeds that differ: the point estimate is the mean curve against the mean value
    curves = np.array([[0.3, 0.4, 0.5, 0.6], [0.4, 0.5, 0.6, 0.7], [0.2, 0.3, 0.4, 0.5]])
    k = budget_lib.worth(curves, np.array([0.45, 0.55, 0.6]), budgets)
    # mean curve (0.3, 0.4, 0.5, 0.6) reaches 0.5333 a third of the way from 3 to 4
    assert k.mean == pytest.approx(3.0 + 1.0 / 3.0)
    # some resamples never reach it: they count as the last budget, the interval ends there
    assert k.low <= k.mean <= k.high == 4.0 and k.bound == ""
    # never reached by the mean curve: censored at the last budget, a lower bound
    k = budget_lib.worth(same, np.array([0.65, 0.7, 0.66]), budgets)
    assert (k.mean, k.high, k.bound) == (4.0, 4.0, "lower") and str(k).startswith(">= 4")


# ------------------------------------------------------------------------------ E4


def _e4(srsgd_steps, nesterov=SAME):
    steps = {"heavy ball": REFERENCE, "Nesterov": nesterov, "SRSGD": srsgd_steps}
    return srsgd.judge(*_inputs(steps), srsgd.QUICK)


@pytest.mark.parametrize(
    "srsgd_steps, status",
    [
        (FAST, verdicts.SUPPORTED),
        (SAME, verdicts.NOT_SUPPORTED),
        (UNSURE, verdicts.INCONCLUSIVE),
        (NEVER, verdicts.NOT_SUPPORTED),  # never: at least 400 / ~200
    ],
)
def test_e4_judge_follows_srsgd_over_heavy_ball(srsgd_steps, status):
    verdict = _e4(srsgd_steps)
    assert verdict.status == status
    assert verdict.primary[0].text == "steps to target, SRSGD / heavy ball"
    # one primary condition, judged as one (not as conditions the claim names)
    assert len(verdict.primary) == 1 and verdict.reason.startswith("Primary: steps to target")


def test_e4_a_censored_srsgd_is_a_lower_bound_of_its_ratio():
    estimate = _e4(NEVER).primary[0].estimate
    assert estimate.bound == "lower"
    want = np.exp(np.mean(np.log(HORIZON / np.asarray(REFERENCE))))
    assert estimate.mean == pytest.approx(want) and estimate.low > 1.5


def test_e4_nesterov_is_secondary_and_does_not_vote():
    hb = np.array([0.30, 0.32, 0.31, 0.29, 0.30])
    steps, _, _ = _inputs(
        {"heavy ball": REFERENCE, "Nesterov": [50.0, 55.0, 50.0, 52.0, 48.0], "SRSGD": FAST}
    )  # Nesterov faster still
    final = {"heavy ball": hb, "SRSGD": 0.5 * hb, "Nesterov": 0.4 * hb}
    acc = np.array([0.70, 0.71, 0.69, 0.70, 0.72])
    test = {"heavy ball": acc, "SRSGD": acc + 0.02, "Nesterov": acc + 0.03}
    verdict = srsgd.judge(steps, final, test, srsgd.QUICK)
    assert verdict.status == verdicts.SUPPORTED
    against_nesterov, *beside = verdict.secondary
    assert against_nesterov.text == "steps to target, SRSGD / Nesterov"
    assert against_nesterov.status == verdicts.NOT_SUPPORTED
    assert against_nesterov.estimate.mean > 1.5
    # the final training loss and generalisation beside speed, against both
    assert [c.text for c in beside] == [
        "final training loss, SRSGD / heavy ball",
        "final training loss, SRSGD / Nesterov",
        "test accuracy, SRSGD - heavy ball",
        "test accuracy, SRSGD - Nesterov",
    ]
    means = [c.estimate.mean for c in beside]
    np.testing.assert_allclose(means, [0.5, 1.25, 0.02, -0.01], atol=1e-12)
    assert [c.status for c in beside] == [
        verdicts.SUPPORTED,
        verdicts.NOT_SUPPORTED,
        verdicts.SUPPORTED,
        verdicts.NOT_SUPPORTED,
    ]


def test_e4_the_default_schedule_restarts_after_40_41_42_steps():
    # periods 40, 41, 42, ...: restarts end at 40, 81, 123, ..., 396 (the 9th) < 400
    assert [srsgd.restarts(n) for n in (39, 40, 80, 81, 400)] == [0, 1, 1, 2, 9]


def test_e4_srsgd_is_nesterov_with_the_sequence_until_its_first_restart():
    row = {"lr": jnp.float32(0.1)}
    grads = [jnp.full(2, float(i + 1)) for i in range(45)]
    got, _ = helpers.run_updates(srsgd.srsgd(row), grads, jnp.ones(2))
    sequence = mo.sgd(0.1, mo.schedules.nesterov_sequence(), nesterov=True)
    want, _ = helpers.run_updates(sequence, grads, jnp.ones(2))
    np.testing.assert_allclose(got[:40], want[:40], rtol=1e-6)
    # step 40 starts again from a fresh buffer: plain gradient step
    np.testing.assert_allclose(got[40], -0.1 * grads[40], rtol=1e-6)


# ------------------------------------------------------------------------------ E5


def _e5(careful_hb, careful_nag):
    steps = {
        "heavy ball": REFERENCE,
        "cautious heavy ball": careful_hb,
        "Nesterov": REFERENCE,
        "cautious Nesterov": careful_nag,
    }
    return cautious.judge(*_inputs(steps), cautious.QUICK)


@pytest.mark.parametrize(
    "careful_hb, careful_nag, status",
    [
        (FAST, FAST, verdicts.SUPPORTED),
        (SAME, SAME, verdicts.NOT_SUPPORTED),
        (FAST, SAME, verdicts.SUPPORTED),  # Nesterov is secondary: it does not vote
        (SAME, FAST, verdicts.NOT_SUPPORTED),
        (UNSURE, FAST, verdicts.INCONCLUSIVE),
        (NEVER, FAST, verdicts.NOT_SUPPORTED),  # never: at least 400 / ~200
    ],
)
def test_e5_judge_heavy_ball_is_primary_and_nesterov_secondary(careful_hb, careful_nag, status):
    verdict = _e5(careful_hb, careful_nag)
    assert verdict.status == status
    [primary] = verdict.primary
    assert primary.text == "steps to target, cautious heavy ball / heavy ball"
    nesterov = verdict.secondary[0]
    assert nesterov.text == "steps to target, cautious Nesterov / Nesterov"
    want = np.exp(np.mean(np.log(np.asarray(careful_nag) / np.asarray(REFERENCE))))
    assert nesterov.estimate.mean == pytest.approx(want)


def test_e5_all_four_methods_share_one_state_and_cautious_masks_disagreeing_signs():
    [group] = cautious.methods(cautious.QUICK)
    assert [m.name for m in group] == [
        "heavy ball",
        "cautious heavy ball",
        "Nesterov",
        "cautious Nesterov",
    ]
    row = {"lr": jnp.float32(0.1), "momentum": jnp.float32(0.9)}
    params = jnp.ones(3)
    opts = [m.make(row) for m in group]
    assert len({jax.tree.structure(o.init(params)) for o in opts}) == 1
    grads = [jnp.array([1.0, 1.0, 1.0]), jnp.array([1.0, -0.5, 1.0])]
    plain, _ = helpers.run_updates(opts[0], grads, params)
    careful, _ = helpers.run_updates(opts[1], grads, params)
    np.testing.assert_allclose(plain[1], -0.1 * np.array([1.9, 0.4, 1.9]), rtol=1e-6)
    # the middle component (momentum 0.4 against gradient -0.5) is dropped, the rest
    # rescaled by d / (kept + 1) = 3 / 3
    np.testing.assert_allclose(careful[1], -0.1 * np.array([1.9, 0.0, 1.9]), rtol=1e-6)


# --------------------------------------------------------------------- end to end (slow)


def _run(module, cfg, tmp_path, monkeypatch):
    """The experiment through the runner at ``cfg``: its findings and its report."""
    monkeypatch.setattr(module, "QUICK", cfg)
    [finding] = runner.run(
        [module.NAME], quick=True, out=tmp_path, seed=0, modules={module.NAME: module}
    )
    folder = tmp_path / module.NAME
    assert all((folder / plot).exists() for plot in finding.plots)
    text = (folder / "REPORT.md").read_text()
    assert f"## {finding.id}. {registry.STATEMENTS[finding.id].title}" in text
    # a quick run beside the committed full run (results/last-full.json) is provisional
    label = "Verdict (provisional: quick run)" if finding.provisional else "Verdict"
    assert f"**{label}: {finding.verdict.status}.**" in text
    assert finding.provisional == (f"{module.NAME}/{finding.id}" in runner.last_full())
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["claims"][finding.id]["status"] == finding.verdict.status
    return finding


@pytest.mark.slow
def test_e3_end_to_end_places_yellowfin_on_heavy_balls_curve(tmp_path, monkeypatch):
    cfg = dataclasses.replace(yellowfin.QUICK, seeds=3, trials=3, schedule=TINY)
    measured = {}
    measure = yellowfin.measure
    monkeypatch.setattr(
        yellowfin, "measure", lambda *a, **k: measured.setdefault("numbers", measure(*a, **k))
    )
    finding = _run(yellowfin, cfg, tmp_path, monkeypatch)
    diff = finding.verdict.primary[0].estimate
    assert diff.n == cfg.seeds and -1 <= diff.low <= diff.mean <= diff.high <= 1
    for row in finding.table:
        assert 0.05 < row["validation accuracy"].mean < 1  # above chance after 100 steps
    # k*, recomputed by hand from the measured accuracies: Dodge et al.'s expected best of
    # k draws with replacement, E max = sum_i v_(i) ((i/n)^k - ((i-1)/n)^k), averaged over
    # seeds, where it reaches YellowFin's mean validation accuracy (linear between budgets)
    mlp = measured["numbers"].mlp
    budgets, acc = mlp.budgets, mlp.accuracies
    ranks = np.arange(1, acc.heavy_ball_val.shape[0] + 1)[:, None] / acc.heavy_ball_val.shape[0]
    weights = ranks ** budgets[None] - (ranks - 1 / len(ranks)) ** budgets[None]
    curve = np.mean([np.sort(seed) @ weights for seed in acc.heavy_ball_val.T], axis=0)
    value = acc.yellowfin_val.mean()
    reached = curve >= value
    i = int(reached.argmax())
    if not reached.any():
        want = np.inf
    elif i == 0:
        want = budgets[0]
    else:
        share = (value - curve[i - 1]) / (curve[i] - curve[i - 1])
        want = budgets[i - 1] + share * (budgets[i] - budgets[i - 1])
    worth = finding.metrics["worth"]
    assert worth.mean == pytest.approx(want, rel=1e-9)
    assert worth.low <= worth.mean <= worth.high
    tuned = finding.metrics["tuned_values"]
    assert tuned["learning_rate"].shape == (TINY.steps,)
    assert np.all(np.isfinite(tuned["learning_rate"])) and np.all(tuned["learning_rate"] > 0)
    assert np.all((tuned["momentum"] >= 0) & (tuned["momentum"] < 1))
    assert tuned["momentum"][-1] > 0  # it tuned a momentum, not plain SGD
    # the full configuration's CNN arm through judge, figure and describe (the MLP's
    # numbers stand in for it: no second compile)
    numbers = measured["numbers"]._replace(wall=finding.metrics["seconds_per_step"])
    numbers = numbers._replace(cnn=numbers.mlp)
    full = dataclasses.replace(cfg, cnn_trials=3, cnn_seeds=3)
    verdict = yellowfin.judge(numbers.mlp.accuracies, full, numbers.cnn.accuracies)
    assert verdict.secondary[-1].text.startswith("1-D CNN")
    plots = yellowfin.figure(numbers, full, tmp_path / "cnn")
    both = yellowfin.describe(numbers, verdict, plots, full)
    assert (tmp_path / "cnn" / plots[0]).exists() and "1-D CNN" in both.setup
    assert [row["method"] for row in both.table[3:]] == [
        row["method"] + " (1-D CNN)" for row in finding.table
    ]


@pytest.mark.slow
def test_e4_end_to_end_times_srsgd_to_heavy_balls_target(tmp_path, monkeypatch):
    cfg = dataclasses.replace(srsgd.QUICK, seeds=3, trials=4, schedule=TINY)  # a 2 x 2 grid
    finding = _run(srsgd, cfg, tmp_path, monkeypatch)
    assert [row["method"] for row in finding.table] == ["heavy ball", "Nesterov", "SRSGD"]
    target = finding.metrics["target"]
    assert np.isfinite(target) and 0 < target < 2.31  # below the loss of a uniform guess
    ratio = finding.verdict.primary[0].estimate
    assert ratio.n == cfg.seeds and 0 < ratio.low <= ratio.mean <= ratio.high < np.inf
    assert finding.metrics["restarts"] == 2  # after 40 and 81 steps, within 100
    for row in finding.table:
        name = row["method"]
        steps, censored = finding.metrics["steps"][name], finding.metrics["censored"][name]
        assert steps.shape == censored.shape == (cfg.seeds,)
        assert np.all((0 < steps) & (steps <= TINY.steps))
        assert np.all(steps[censored] == TINY.steps)  # censored at the horizon
        assert row["steps to target"] == race.Arrival(steps, censored, TINY.steps).cell()


@pytest.mark.slow
def test_e5_end_to_end_sets_each_pairs_target_from_its_plain_optimizer(tmp_path, monkeypatch):
    cfg = dataclasses.replace(
        cautious.QUICK, seeds=3, trials=4, schedule=TINY, practice=True
    )  # a 2 x 2 grid, and the practice arm of the primary pair
    finding = _run(cautious, cfg, tmp_path, monkeypatch)
    assert len(finding.verdict.primary) == 1
    assert any("cautious Nesterov / Nesterov" in c.text for c in finding.verdict.secondary)
    targets = finding.metrics["targets"]
    assert targets["cautious heavy ball"] == targets["heavy ball"]
    assert targets["cautious Nesterov"] == targets["Nesterov"]
    drilled = {n: t for n, t in targets.items() if n.endswith(practice.SUFFIX)}
    assert sorted(drilled) == sorted(n + practice.SUFFIX for n in cautious.PAIRS["heavy ball"])
    assert len(set(drilled.values())) == 1  # its own reference's target, not the main arm's
    assert next(iter(drilled.values())) != targets["heavy ball"]
    assert any(
        c.text
        == "steps to target, cautious heavy ball"
        + practice.SUFFIX
        + " / heavy ball"
        + practice.SUFFIX
        for c in finding.verdict.secondary
    )
    assert "epochs" in finding.horizon and "Practice arm" in finding.setup
    assert all(np.isfinite(t) and 0 < t < 2.31 for t in targets.values())
    for condition in finding.verdict.primary + finding.verdict.secondary[:1]:
        assert 0 < condition.estimate.low <= condition.estimate.high < np.inf
    # the same trials: every method picks from the same (lr, beta) points of the space
    points = {(s["lr"], s["momentum"]) for s in finding.metrics["settings"].values()}
    space = cautious.methods(cfg)[0][0].space
    table = tuning.trials(space, cfg.trials)
    assert points <= set(zip(table["lr"].tolist(), table["momentum"].tolist()))
    # wall-clock beside steps: seconds to target = mean steps x seconds per step
    wall = finding.metrics["wallclock"]
    for row in finding.table[:4]:  # the main arm's methods
        cell = wall[row["method"]]
        steps = finding.metrics["steps"][row["method"]].mean()
        assert row["ms / step"] == cell["ms / step"] > 0
        assert row["seconds to target"] == pytest.approx(steps * cell["ms / step"] / 1e3)
    assert "the cautious step costs" in finding.notes


def test_wallclock_times_each_optimizer_and_scales_steps_by_it():
    opts = {"plain": mo.sgd(0.1, 0.9), "cautious": mo.cautious(mo.sgd(0.1, 0.9), flip_sign=True)}
    got = wallclock.seconds_per_step(
        opts, tasks.digits_mlp(), batch_size=8, key=jax.random.key(0), steps=5, rounds=2
    )
    assert set(got) == set(opts) and all(0 < s < 1 for s in got.values())
    cells = wallclock.cells({"a": 0.002, "b": 0.004}, {"a": 100.0})
    assert cells["a"] == {"ms / step": 2.0, "seconds to target": pytest.approx(0.2)}
    assert np.isnan(cells["b"]["seconds to target"]) and cells["b"]["ms / step"] == 4.0


def test_the_three_experiments_are_registered_with_their_sources():
    modules = registry.experiments()
    for name, claim in (("yellowfin", "E3"), ("srsgd", "E4"), ("cautious", "E5")):
        assert modules[name].CLAIMS == (claim,)
        statement = registry.STATEMENTS[claim]
        assert statement.quote and all(s in registry.SOURCES for s in statement.sources)
