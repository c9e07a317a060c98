"""C9 and E1 (experiments.claims.restart, restart_quadratic): the judges on hand-made
numbers, the pieces the measurements rest on, and tiny end-to-end runs."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import momentum_optax as mo
from experiments import loop
from experiments.claims import restart as c9
from experiments.parts import practice
from experiments.parts import restart_quadratic as e1
from experiments.protocol import verdicts
from tests import helpers

CFG = c9.QUICK
QCFG = e1.QUICK
K50, K200 = c9.label(50), c9.label(200)


# ------------------------------------------------------------------------------ C9's judge


def c9_numbers(k50, k200, never=(1.0, 1.0, 1.0)):
    train = {K50: np.asarray(k50), K200: np.asarray(k200), c9.NEVER: np.asarray(never)}
    val = {name: np.ones(3) for name in train}  # tied: only the training losses vote
    return train, val, {name: np.full(3, 0.7) for name in train}


@pytest.mark.parametrize(
    "k50, k200, status",
    [
        ((0.5, 0.55, 0.6), (0.95, 1.0, 1.05), verdicts.SUPPORTED),
        ((1.0, 1.05, 0.98), (1.1, 1.2, 1.0), verdicts.NOT_SUPPORTED),
        ((0.7, 1.1, 0.9), (1.2, 1.2, 1.2), verdicts.INCONCLUSIVE),
    ],
)
def test_c9_judge_gives_every_status(k50, k200, status):
    assert c9.judge(*c9_numbers(k50, k200), CFG).status == status


def test_c9_judges_the_best_period_not_the_first():
    verdict = c9.judge(*c9_numbers((1.0, 1.0, 1.0), (0.5, 0.5, 0.6)), CFG)
    assert verdict.primary[0].text.startswith(K200)
    assert verdict.status == verdicts.SUPPORTED


def test_best_period_counts_a_diverged_seed_as_worst():
    train = {
        K50: np.array([0.1, np.nan, 0.1]),
        K200: np.array([0.5, 0.5, 0.5]),
        c9.NEVER: np.array([0.01, 0.01, 0.01]),
    }
    assert c9.best_period(train) == K200


def test_c9_no_restart_arm_is_plain_heavy_ball_over_the_run():
    short = dataclasses.replace(CFG, schedule=loop.Schedule(60, 32, 60))
    never = c9.methods(short)[-1]
    assert never.name == c9.NEVER
    row = {"lr": jnp.float32(0.1), "momentum": jnp.float32(0.9)}
    params = jnp.array([1.0, -2.0])
    grads = [jnp.sin(params + t) for t in range(short.schedule.steps)]
    arm, _ = helpers.run_updates(never.make(row), grads, params)
    heavy_ball, _ = helpers.run_updates(mo.sgd(0.1, 0.9), grads, params)
    chex.assert_trees_all_close(arm, heavy_ball, rtol=1e-5)


def test_c9_restarted_arm_forgets_its_momentum_every_k_steps():
    arm = c9.methods(CFG)[0]
    opt = arm.make({"lr": jnp.float32(1.0), "momentum": jnp.float32(0.5)})
    outs, _ = helpers.run_updates(opt, [jnp.ones(1)] * 52, jnp.zeros(1), jit=True)
    updates = [float(u[0]) for u in outs]
    # m = 2 - 0.5^t grows towards 2, then starts afresh at step 50
    np.testing.assert_allclose(updates[:50], -(2 - 0.5 ** np.arange(50)), rtol=1e-6)
    assert updates[50:] == pytest.approx([-1.0, -1.5])


# ------------------------------------------------------------------------------ E1's judge


def e1_steps(gradient, function, polyak=(100, 200, 300)):
    steps = {name: np.full(3, 1e9) for name in e1.options(QCFG)}
    steps[e1.POLYAK] = np.asarray(polyak, np.float64)
    steps[e1.restarted(e1.NAG, "gradient")] = np.asarray(gradient, np.float64)
    steps[e1.restarted(e1.NAG, "function")] = np.asarray(function, np.float64)
    return steps


@pytest.mark.parametrize(
    "gradient, function, status",
    [
        ((150, 300, 400), (120, 260, 420), verdicts.SUPPORTED),
        ((900, 1500, 2000), (np.inf, np.inf, np.inf), verdicts.NOT_SUPPORTED),
        ((150, 300, 400), (900, 1500, 2000), verdicts.DEPENDS),
        ((150, 300, 400), (200, 1000, 1200), verdicts.INCONCLUSIVE),
    ],
)
def test_e1_judge_gives_every_status(gradient, function, status):
    assert e1.judge(e1_steps(gradient, function), QCFG).status == status


def test_e1_counts_never_as_one_step_past_the_end():
    censored = e1.censored(np.array([5.0, np.inf]), QCFG)
    np.testing.assert_array_equal(censored, [5.0, QCFG.steps + 1])


# ------------------------------------------------------------------- E1's measurement parts


def test_random_quadratic_spans_mu_to_l_and_varies_with_the_seed():
    a, b = (e1.problem(QCFG, jax.random.key(0), s) for s in (0, 1))
    assert QCFG.kappa[0] <= a["kappa"] <= QCFG.kappa[1] and a["kappa"] != b["kappa"]
    assert a["curvatures"][0] == 1.0
    assert a["curvatures"][-1] == pytest.approx(a["kappa"], rel=1e-6)
    assert np.all(np.diff(a["curvatures"]) >= 0)
    np.testing.assert_allclose(a["rotation"] @ a["rotation"].T, np.eye(QCFG.dim), atol=1e-5)
    assert np.linalg.norm(a["x0"]) == pytest.approx(1.0, rel=1e-5)
    assert not np.allclose(a["rotation"], b["rotation"])


def test_only_the_reference_methods_know_mu():
    kappa = 500.0
    s = e1.settings(QCFG, kappa)
    assert s[e1.POLYAK] == pytest.approx(mo.tuning.heavy_ball(kappa, 1.0)[:2])
    assert s[e1.GD] == pytest.approx((2 / (kappa + 1), 0.0))
    for name in (e1.HB, e1.NAG, e1.restarted(e1.HB, "function"), e1.restarted(e1.NAG, "gradient")):
        assert s[name] == pytest.approx((1 / kappa, QCFG.momentum))


def test_nesterov_sequence_is_t_over_t_plus_three():
    np.testing.assert_allclose(e1.nesterov_sequence(jnp.arange(4)), [0, 0.25, 0.4, 0.5])


def test_union_runs_the_chosen_option_exactly():
    opts = [mo.sgd(0.1, 0.9), mo.adaptive_restart(mo.sgd(0.1, 0.9, nesterov=True), "function")]
    loss = lambda v: jnp.sum(jnp.array([10.0, 1.0]) * v**2)
    x0 = jnp.array([1.0, -3.0])

    def run(opt):
        grad, value = helpers.gradient_of(loss), lambda v, t: loss(v)
        return helpers.descend(opt, x0, 12, grad, value_fn=value)

    for index in (0, 1):
        chosen = run(e1.union(opts, jnp.int32(index)))
        # the switch against the option alone: rounding only
        np.testing.assert_allclose(chosen.history, run(opts[index]).history, rtol=1e-5)
    assert int(chosen.state[1].restarts) > 0  # the restarting option did restart


# ------------------------------------------------------------------------ tiny end-to-end

TINY_Q = dataclasses.replace(QCFG, seeds=3, dim=6, kappa=(30.0, 100.0), steps=3000)


@pytest.mark.slow
def test_e1_tiny_measure_orders_the_methods_as_theory_says():
    numbers = e1.measure(TINY_Q, jax.random.key(0))
    steps, restarts = numbers["steps"], numbers["restarts"]
    assert np.all(np.isfinite(steps[e1.POLYAK]))
    assert np.all(steps[e1.GD] > steps[e1.POLYAK])  # optimal GD is slower than Polyak's
    assert np.all(np.isinf(steps[e1.HB]))  # momentum 0.9999 never settles in 3,000 steps
    for scheme in e1.SCHEMES:
        assert np.all(restarts[e1.restarted(e1.NAG, scheme)] > 0)
    assert np.all(restarts[e1.NAG] == 0)


@pytest.mark.slow
def test_tiny_run_writes_both_findings(tmp_path):
    cfg = dataclasses.replace(
        CFG,
        trials=4,
        periods=(50,),
        schedule=loop.Schedule(200, 32, 100),
        quadratic=TINY_Q,
        practice=True,
    )
    findings = c9.run(cfg, jax.random.key(0), tmp_path)
    assert [f.id for f in findings] == ["C9", "E1"]
    for finding in findings:
        assert all((tmp_path / p).is_file() for p in finding.plots)
        assert finding.verdict.status in verdicts.EMPIRICAL
        assert all(
            np.isfinite(c.estimate.low) and np.isfinite(c.estimate.high)
            for c in finding.verdict.primary
        )
    c9_rows = findings[0].table
    suffix = practice.SUFFIX
    assert [r["arm"] for r in c9_rows] == [K50, c9.NEVER, K50 + suffix, c9.NEVER + suffix]
    drilled = [c for c in findings[0].verdict.secondary if suffix in c.text]
    assert len(drilled) == 1 and np.isfinite(drilled[0].estimate.mean)
    assert "epochs" in findings[0].horizon
    for row in c9_rows:
        step = row["lr"] / (1 - row["beta"])
        assert cfg.effective[0] * 0.999 <= step <= cfg.effective[1] * 1.001
        assert helpers.is_drawn_trial(
            row["lr"], row["beta"], cfg.effective, cfg.one_minus_beta, cfg.trials
        ), row
