"""C8 (experiments.claims.schedules): the judge on hand-made numbers, the schedules' fidelity
to the sources, and one tiny end-to-end run."""

import dataclasses

import jax
import numpy as np
import pytest

from experiments import loop
from experiments.claims import schedules as c8
from experiments.parts import practice
from experiments.protocol import verdicts
from tests import helpers

CFG = c8.QUICK


def numbers(anneal_val, linear_val, constant_val=(1.0, 1.0, 1.0)):
    """Per-seed final validation losses; training losses and test accuracies tied, so only
    the validation losses can move the verdict."""
    val = {
        c8.CONSTANT: np.asarray(constant_val),
        c8.ANNEAL: np.asarray(anneal_val),
        c8.LINEAR: np.asarray(linear_val),
    }
    test = {name: np.full(3, 0.7) for name in val}
    return val, {name: np.ones(3) for name in val}, test


@pytest.mark.parametrize(
    "anneal, linear, status",
    [
        ((0.98, 1.0, 1.01), (1.0, 0.99, 1.02), verdicts.SUPPORTED),
        ((1.2, 1.25, 1.3), (1.3, 1.2, 1.4), verdicts.NOT_SUPPORTED),
        ((1.0, 1.01, 0.99), (1.3, 1.2, 1.4), verdicts.DEPENDS),
        ((0.95, 1.15, 1.05), (1.0, 0.99, 1.02), verdicts.INCONCLUSIVE),
    ],
)
def test_judge_gives_every_status(anneal, linear, status):
    verdict = c8.judge(*numbers(anneal, linear), CFG)
    assert verdict.status == status
    assert len(verdict.primary) == 2 and not verdict.check


def test_depends_names_the_schedule_that_holds():
    verdict = c8.judge(*numbers((1.0, 1.01, 0.99), (1.3, 1.2, 1.4)), CFG)
    # the anneal holds, the linear rise does not: the reason names the one that holds
    assert f"Holds for {c8.NAMED[c8.ANNEAL]} only." in verdict.reason
    assert c8.NAMED[c8.LINEAR] not in verdict.reason.split("Holds for")[-1]


def test_linear_rise_reaches_one_exactly_at_the_last_step():
    total = CFG.schedule.steps
    linear = c8.schedules(CFG)[c8.LINEAR]
    assert float(linear(0)) == pytest.approx(0.5)
    assert float(linear(total // 2)) == pytest.approx(0.75)  # v1 reached 1 here
    assert float(linear(total - 1)) < 1.0
    assert float(linear(total)) == pytest.approx(1.0)


def test_anneal_reaches_its_end_at_the_chosen_fraction():
    anneal = c8.schedules(CFG)[c8.ANNEAL]
    at = round(CFG.anneal_fraction * CFG.schedule.steps)
    assert float(anneal(at - 1)) < 0.9
    assert float(anneal(at)) == pytest.approx(0.9)
    assert float(anneal(CFG.schedule.steps)) == pytest.approx(0.9)


def test_arms_share_one_state_structure():
    row = {"lr": np.float32(0.1), "momentum": np.float32(0.8)}
    params = {"w": np.zeros(3, np.float32)}
    shapes = [jax.tree.structure(m.make(row).init(params)) for m in c8.methods(CFG)]
    assert shapes[0] == shapes[1] == shapes[2]


@pytest.mark.slow
def test_tiny_run_writes_a_finding_with_finite_intervals(tmp_path):
    cfg = dataclasses.replace(CFG, trials=4, schedule=loop.Schedule(200, 32, 100), practice=True)
    numbers_ = c8.measure(cfg, jax.random.key(0))  # run()'s steps, keeping the numbers
    verdict = c8.judge(*c8.per_seed(numbers_.selected), cfg)
    finding = c8.describe(numbers_, verdict, c8.figure(numbers_, cfg, tmp_path), cfg)
    assert finding.id == "C8"
    assert (tmp_path / finding.plots[0]).is_file()
    assert finding.verdict.status in verdicts.EMPIRICAL
    assert all(
        np.isfinite(c.estimate.low) and np.isfinite(c.estimate.high)
        for c in finding.verdict.primary
    )
    # the practice arm: the same three arms, suffixed, judged as secondary conditions
    names = [s.method for s in numbers_.selected]
    assert names[3:] == [n + practice.SUFFIX for n in names[:3]]
    drilled = [c for c in verdict.secondary if practice.SUFFIX in c.text]
    assert len(drilled) == 2 and all(np.isfinite(c.estimate.mean) for c in drilled)
    assert "Practice arm" in finding.setup and "epochs" in finding.horizon
    runs = {r.method: r for r in numbers_.trials}
    suffixed = runs[c8.CONSTANT + practice.SUFFIX].curves.train_loss
    assert not np.allclose(suffixed, runs[c8.CONSTANT].curves.train_loss)
    # same seed = same initialisation: every arm starts from the same training loss
    start = [r.curves.train_loss[..., 0] for r in runs.values()]
    np.testing.assert_allclose(start[0], start[1], rtol=1e-6)
    np.testing.assert_allclose(start[0], start[2], rtol=1e-6)
    # the two schedules really differ (a copy-paste of one schedule would not)
    assert not np.allclose(runs[c8.ANNEAL].curves.train_loss, runs[c8.LINEAR].curves.train_loss)
    for sel in numbers_.selected[1:3]:  # the schedules: a grid of lr
        assert cfg.lr[0] * 0.999 <= sel.setting["lr"] <= cfg.lr[1] * 1.001
    constant = numbers_.selected[0].setting  # constant momentum: effective step x beta
    assert helpers.is_drawn_trial(
        constant["lr"], constant["momentum"], cfg.effective, cfg.one_minus_beta, cfg.trials
    ), constant
