"""Methods beyond the source documents, each against its paper's formula."""

import json
import pathlib

import chex
import jax
import jax.experimental
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers

STEPS = 40
# jax.enable_x64 from JAX 0.8; jax.experimental.enable_x64 before it (Python 3.10 stops at 0.6)
enable_x64 = jax.enable_x64 if hasattr(jax, "enable_x64") else jax.experimental.enable_x64
FIXTURE = json.loads((pathlib.Path(__file__).parent / "fixtures" / "torch_sgd.json").read_text())


def _updates(opt, grads):
    outs, _ = helpers.run_updates(opt, list(grads), jnp.zeros(grads.shape[1:]), jit=True)
    return np.stack(outs)


# --- QHM and QHAdam (Ma & Yarats, 2019) ---


@pytest.mark.parametrize(
    "nu,decay",
    [(0.7, 0.999), (0.3, 0.9), (helpers.ramp(0.0, 1.0, 10), helpers.ramp(0.5, 0.95, 30))],
    ids=["paper", "constant", "scheduled"],
)
def test_qhm_matches_its_formula(nu, decay):
    grads = helpers.random_steps(0, STEPS, (5,))
    nus, betas = helpers.schedule_values(nu, STEPS), helpers.schedule_values(decay, STEPS)
    m, want = np.zeros(5), []
    for t, g in enumerate(grads.astype(np.float64)):
        m = betas[t] * m + (1 - betas[t]) * g
        want.append((1 - nus[t]) * g + nus[t] * m)
    chex.assert_trees_all_close(
        _updates(mo.qhm(nu, decay), grads), np.stack(want), rtol=1e-5, atol=1e-6
    )


def test_qhm_endpoints_are_plain_gradient_and_ema_momentum():
    grads = helpers.random_steps(1, STEPS, (5,))
    chex.assert_trees_all_close(_updates(mo.qhm(0.0, 0.9), grads), grads, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(
        _updates(mo.qhm(1.0, 0.9), grads), _updates(mo.ema(0.9), grads), rtol=1e-6, atol=1e-7
    )
    # nu = beta is Nesterov's EMA momentum
    chex.assert_trees_all_close(
        _updates(mo.qhm(0.9, 0.9), grads),
        _updates(mo.ema(0.9, nesterov=True), grads),
        rtol=1e-5,
        atol=1e-6,
    )


def test_qhadam_matches_its_formula():
    b1, b2, nu1, nu2, eps, lr = 0.995, 0.999, 0.7, 1.0, 1e-8, 0.01
    grads = helpers.random_steps(2, STEPS, (5,)).astype(np.float64)
    m, v, want = np.zeros(5), np.zeros(5), []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        numerator = (1 - nu1) * g + nu1 * m / (1 - b1**t)
        want.append(-lr * numerator / (np.sqrt((1 - nu2) * g**2 + nu2 * v / (1 - b2**t)) + eps))
    got = _updates(mo.qhadam(lr, b1, b2, nu1, nu2, eps), grads.astype(np.float32))
    chex.assert_trees_all_close(got, np.stack(want), rtol=1e-4, atol=1e-7)


def test_qhadam_with_both_nus_one_is_adam():
    grads = helpers.random_steps(3, STEPS, (5,))
    chex.assert_trees_all_close(
        _updates(mo.qhadam(0.01, 0.9, 0.999, 1.0, 1.0), grads),
        _updates(optax.adam(0.01, 0.9, 0.999), grads),
        rtol=1e-4,
        atol=1e-7,
    )


# --- AggMo (Lucas et al., 2019) and the simple moving average (seed 002) ---


@pytest.mark.parametrize(
    "decays",
    [(0.0, 0.9, 0.99), (0.5,), (0.3, mo.schedules.sutskever(0.999, period=7))],
    ids=["paper", "single", "scheduled"],
)
def test_aggmo_is_the_mean_of_heavy_ball_velocities(decays):
    grads = helpers.random_steps(4, STEPS, (5,)).astype(np.float64)
    velocities = [helpers.np_trace(grads, helpers.schedule_values(b, STEPS + 1)) for b in decays]
    chex.assert_trees_all_close(
        _updates(mo.aggmo(decays), grads.astype(np.float32)),
        np.mean(velocities, axis=0),
        rtol=1e-5,
        atol=1e-5,
    )


def test_aggmo_with_one_decay_is_trace_bit_for_bit():
    grads = helpers.random_steps(5, STEPS, (5,))
    chex.assert_trees_all_equal(_updates(mo.aggmo((0.9,)), grads), _updates(mo.trace(0.9), grads))


@pytest.mark.parametrize("window", [1, 3, 8])
def test_sma_is_the_mean_of_the_last_window_updates(window):
    grads = helpers.random_steps(6, STEPS, (2, 3)).astype(np.float64)
    want = [grads[max(0, t - window + 1) : t + 1].mean(axis=0) for t in range(STEPS)]
    chex.assert_trees_all_close(
        _updates(mo.sma(window), grads.astype(np.float32)), np.stack(want), rtol=1e-5, atol=1e-6
    )


# --- adaptive restart (O'Donoghue & Candes, 2015) ---


def test_gradient_restart_follows_its_rule_in_the_trace_parameterisation():
    # restart (m_{t-1} := 0) exactly when <g_t, m_{t-1}> < 0
    grads = helpers.random_steps(7, STEPS, (3,)).astype(np.float64) + 0.3
    m, want, restarts = np.zeros(3), [], 0
    for g in grads:
        if np.dot(g, m) < 0:
            m, restarts = np.zeros(3), restarts + 1
        m = g + 0.9 * m
        want.append(m)
    opt = mo.adaptive_restart(mo.trace(0.9))
    outs, state = helpers.run_updates(opt, list(grads.astype(np.float32)), jnp.zeros(3), jit=True)
    chex.assert_trees_all_close(np.stack(outs), np.stack(want), rtol=1e-5, atol=1e-5)
    assert 0 < restarts == int(state.restarts)


def test_gradient_restart_test_does_not_depend_on_where_the_learning_rate_sits():
    grads = list(helpers.random_steps(8, STEPS, (3,)) + 0.3)
    outside = mo.adaptive_restart(optax.chain(mo.trace(0.9), optax.scale_by_learning_rate(0.1)))
    inside = mo.adaptive_restart(optax.chain(optax.scale_by_learning_rate(0.1), mo.trace(0.9)))
    u_out, s_out = helpers.run_updates(outside, grads, jnp.zeros(3))
    u_in, s_in = helpers.run_updates(inside, grads, jnp.zeros(3))
    chex.assert_trees_all_close(u_out, u_in, rtol=1e-5, atol=1e-7)
    assert int(s_out.restarts) == int(s_in.restarts) > 0


def test_gradient_restart_with_the_learning_rate_inside_follows_the_rule():
    # chain(scale_by_learning_rate(lr), trace(b)): the inner output is -v_t with
    # v_t = b v_{t-1} + lr g_t; restart when <g_t, v_{t-1}> < 0, as with lr outside
    grads = helpers.random_steps(11, STEPS, (3,)).astype(np.float64) + 0.3
    v, want, restarts = np.zeros(3), [], 0
    for g in grads:
        if np.dot(g, v) < 0:
            v, restarts = np.zeros(3), restarts + 1
        v = 0.9 * v + 0.1 * g
        want.append(-v)
    opt = mo.adaptive_restart(optax.chain(optax.scale_by_learning_rate(0.1), mo.trace(0.9)))
    outs, state = helpers.run_updates(opt, list(grads.astype(np.float32)), jnp.zeros(3), jit=True)
    chex.assert_trees_all_close(np.stack(outs), np.stack(want), rtol=1e-5, atol=1e-6)
    assert 0 < restarts == int(state.restarts)


def test_function_restart_resets_when_the_loss_rises():
    opt = mo.adaptive_restart(mo.trace(0.5), scheme="function")
    state = opt.init(jnp.zeros(()))
    outs = []
    for value in (3.0, 2.0, 2.5, 1.0):
        u, state = opt.update(jnp.float32(1.0), state, value=jnp.float32(value))
        outs.append(float(u))
    # m = 1, 1.5, restart (loss rose) -> 1, 1.5
    assert outs == [1.0, 1.5, 1.0, 1.5]
    assert int(state.restarts) == 1
    with pytest.raises(TypeError, match="value=loss"):
        opt.update(jnp.float32(1.0), state)
    with pytest.raises(ValueError, match=r"value must be the scalar loss; got shape \(3,\)"):
        opt.update(jnp.float32(1.0), state, value=jnp.ones(3))


def test_restart_rescues_too_much_momentum_on_an_ill_conditioned_quadratic():
    # condition number 1e4, momentum 0.9999: without restart it does not converge in 20,000
    # steps; with either restart rule it does (the restarts fire about every other step,
    # since a constant momentum is back at 0.9999 right after each restart)
    curvature = jnp.geomspace(1e-4, 1.0, 10)
    loss = lambda x: 0.5 * jnp.sum(curvature * x**2)

    def steps_to_tolerance(opt, budget=20_000):
        value = lambda x, t: loss(x)
        run = helpers.descend(
            opt, jnp.ones(10), budget, helpers.gradient_of(loss), value_fn=value, scan=True
        )
        losses = jax.vmap(loss)(run.history)
        below = np.flatnonzero(np.asarray(losses) < 1e-6 * float(loss(jnp.ones(10))))
        return int(below[0]) + 1 if below.size else budget + 1

    plain = steps_to_tolerance(optax.with_extra_args_support(mo.sgd(1.0, 0.9999)))
    gradient = steps_to_tolerance(mo.adaptive_restart(mo.sgd(1.0, 0.9999)))
    function = steps_to_tolerance(mo.adaptive_restart(mo.sgd(1.0, 0.9999), scheme="function"))
    assert plain > 20_000
    assert gradient < 15_000 and function < 15_000


# --- PyTorch-faithful SGD, against torch's own recorded trajectories ---


@pytest.mark.parametrize("case", FIXTURE["sgd"], ids=lambda c: json.dumps(c["config"]))
def test_torch_sgd_reproduces_torch_trajectory(case):
    a, c = jnp.asarray(FIXTURE["a"]), jnp.asarray(FIXTURE["c"])
    opt = mo.torch_sgd(**case["config"])
    steps = len(case["trajectory"])
    run = helpers.descend(opt, jnp.asarray(FIXTURE["p0"]), steps, lambda p, t: a * p + c)
    chex.assert_trees_all_close(
        run.history, np.asarray(case["trajectory"], np.float32), rtol=2e-5, atol=2e-6
    )


@pytest.mark.parametrize("nesterov", [False, True])
def test_torch_sgd_with_scheduled_momentum_follows_torchs_rule(nesterov):
    # torch reads the group's momentum at each step (as OneCycleLR sets it): b_t uses mu_t,
    # nesterov's output too (not mu_{t+1})
    schedule = mo.schedules.inverse_cycle(30, pct_start=0.4)
    mus = helpers.schedule_values(schedule, STEPS)
    dampening = 0.0 if nesterov else 0.25
    grads = helpers.random_steps(10, STEPS, (4,)).astype(np.float64)
    buf, want = None, []
    for t, g in enumerate(grads):
        buf = g.copy() if buf is None else mus[t] * buf + (1 - dampening) * g
        want.append(-0.1 * (g + mus[t] * buf if nesterov else buf))
    opt = mo.torch_sgd(0.1, schedule, dampening=dampening, nesterov=nesterov)
    chex.assert_trees_all_close(
        _updates(opt, grads.astype(np.float32)), np.stack(want), rtol=1e-5, atol=1e-6
    )


def test_torch_first_step_is_not_dampened_unlike_trace():
    grads = helpers.random_steps(9, 5, (3,))
    torch_like = _updates(mo.torch_sgd(1.0, 0.9, dampening=0.5), grads)
    np.testing.assert_allclose(torch_like[0], -grads[0], rtol=1e-6)  # b_0 = g_0, undamped
    traced = _updates(optax.chain(optax.scale(0.5), mo.sgd(1.0, 0.9)), grads)
    assert np.max(np.abs(torch_like - traced)) > 0.1


@pytest.mark.parametrize(
    "kwargs", [dict(momentum=0.0, nesterov=True), dict(momentum=0.9, dampening=0.1, nesterov=True)]
)
def test_torch_sgd_nesterov_needs_momentum_and_no_dampening(kwargs):
    with pytest.raises(ValueError, match=r"nesterov must be False unless momentum > 0"):
        mo.torch_sgd(0.1, **kwargs)


# --- schedules ---


@pytest.mark.parametrize("case", FIXTURE["one_cycle"], ids=lambda c: c["anneal_strategy"])
def test_inverse_cycle_matches_torch_one_cycle_momentum(case):
    schedule = mo.schedules.inverse_cycle(
        case["total_steps"], pct_start=case["pct_start"], anneal_strategy=case["anneal_strategy"]
    )
    got = helpers.schedule_values(schedule, case["total_steps"])
    np.testing.assert_allclose(got, case["momentum"], rtol=1e-6, atol=1e-6)


def test_sutskever_schedule_follows_the_paper():
    t = np.arange(0, 5000, 7)
    want = np.minimum(1 - 2.0 ** (-1 - np.log2(np.floor(t / 250) + 1)), 0.995)
    got = [float(mo.schedules.sutskever(0.995)(jnp.int32(s))) for s in t]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_demon_decays_the_future_weight_linearly():
    start, total = 0.95, 200
    betas = helpers.schedule_values(mo.schedules.demon(start, total), 2 * total)
    t = np.arange(2 * total)
    want_ratio = np.maximum(1 - t / total, 0) * start / (1 - start)
    np.testing.assert_allclose(betas / (1 - betas), want_ratio, rtol=1e-4, atol=1e-6)


# --- optimal parameters: the promised rate, measured on a quadratic ---


@pytest.mark.parametrize(
    "kappa",
    [
        pytest.param(10.0, marks=pytest.mark.slow),
        100.0,
        pytest.param(1000.0, marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("method", ["gradient_descent", "heavy_ball", "nesterov"])
def test_tuned_parameters_achieve_the_promised_rate(method, kappa):
    L, mu = 2.0, 2.0 / kappa
    tuned = getattr(mo.tuning, method)(L, mu)
    eigenvalues = jnp.concatenate([jnp.array([mu, L]), jnp.linspace(mu, L, 30)])
    loss = lambda x: 0.5 * jnp.sum(eigenvalues * x**2)
    opt = mo.sgd(tuned.learning_rate, tuned.momentum, nesterov=method == "nesterov")
    steps = int(np.ceil(100 / -np.log(tuned.rate)))  # about 100 e-folds
    with enable_x64(True):
        x0 = jnp.ones(eigenvalues.shape, jnp.float64)
        run = helpers.descend(opt, x0, steps, helpers.gradient_of(loss), scan=True)
        norms = jnp.linalg.norm(run.history, axis=-1)
    window = np.arange(steps // 2, steps)
    slope = np.polyfit(window, np.log(np.asarray(norms)[window]), 1)[0]
    measured = float(np.exp(slope))
    assert abs(measured - tuned.rate) / tuned.rate < 0.02, (measured, tuned.rate)
    # momentum beats gradient descent's best rate (kappa - 1) / (kappa + 1)
    if method != "gradient_descent":
        assert measured < (kappa - 1) / (kappa + 1)
