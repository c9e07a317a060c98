"""The source documents' formulas and worked examples, checked number for number."""

import chex
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers

# A random positive-definite quadratic J(theta) = 0.5 theta^T A theta - c^T theta.
_RNG = np.random.default_rng(0)
_Q, _ = np.linalg.qr(_RNG.standard_normal((4, 4)))
A = (_Q * np.array([0.1, 0.5, 1.0, 2.0])) @ _Q.T
C = _RNG.standard_normal(4)
THETA0 = _RNG.standard_normal(4)


def grad_j(theta):
    return A @ theta - C


def chain_trajectory(opt, steps):
    """Parameters theta_1..theta_steps of ``opt`` on the quadratic (float32, gradient at params)."""
    a, c = jnp.asarray(A, jnp.float32), jnp.asarray(C, jnp.float32)
    run = helpers.descend(opt, jnp.asarray(THETA0, jnp.float32), steps, lambda p, t: a @ p - c)
    return np.asarray(run.history, np.float64)


# Seed 000's worked example: 3.56 -> 3.587 without momentum, 3.609 with it. Seed 000 writes
# w += lr * grad, i.e. its "gradient" 2.70 is the negative derivative.
WEIGHT, LR, GRAD, MU, PREVIOUS_DELTA = 3.56, 0.01, 2.70, 0.50, 0.044


def _seed_000_step(momentum):
    opt = optax.chain(optax.scale_by_learning_rate(LR), mo.delta_momentum(momentum))
    state = opt.init(jnp.float32(WEIGHT))
    state = (state[0], state[1]._replace(previous_delta=jnp.float32(PREVIOUS_DELTA)))
    updates, state = opt.update(jnp.float32(-GRAD), state)
    return float(optax.apply_updates(jnp.float32(WEIGHT), updates)), state


def test_seed_000_without_momentum_gives_3_587():
    weight, _ = _seed_000_step(0.0)
    assert weight == pytest.approx(3.587, abs=1e-6)


def test_seed_000_with_momentum_gives_3_609():
    weight, state = _seed_000_step(MU)
    assert weight == pytest.approx(3.609, abs=1e-6)
    # the stored delta is lr * grad = 0.027, not the 0.049 actually applied
    assert float(state[1].previous_delta) == pytest.approx(0.027, abs=1e-7)


@pytest.mark.parametrize(
    "gamma",
    [0.9, optax.linear_schedule(0.5, 0.95, 20), mo.schedules.linear_to_one(0.3, 25)],
    ids=["constant", "scheduled", "linear_to_one"],
)
def test_nesterov_equals_lookahead_form(gamma):
    # v_t = g_t v_{t-1} + eta grad J(theta_t - g_t v_{t-1});  theta_{t+1} = theta_t - v_t
    eta, steps = 0.1, 30
    gammas = helpers.schedule_values(gamma, steps + 1)
    theta, v, lookahead = THETA0.copy(), np.zeros(4), []
    for t in range(steps):
        v = gammas[t] * v + eta * grad_j(theta - gammas[t] * v)
        theta = theta - v
        lookahead.append(theta - gammas[t + 1] * v)  # where the next gradient is taken
    ours = chain_trajectory(
        optax.chain(mo.trace(gamma, nesterov=True), optax.scale_by_learning_rate(eta)), steps
    )
    chex.assert_trees_all_close(ours, np.stack(lookahead), rtol=1e-4, atol=1e-5)
    # and the look-ahead really differs from classical momentum on this problem
    classical = chain_trajectory(
        optax.chain(mo.trace(gamma), optax.scale_by_learning_rate(eta)), steps
    )
    assert np.max(np.abs(classical - ours)) > 1e-2


def test_heavy_ball_equals_velocity_form():
    # v_t = g v_{t-1} + eta grad J(theta_t); theta_{t+1} = theta_t - v_t
    eta, gamma, steps = 0.1, 0.9, 30
    theta, v, want = THETA0.copy(), np.zeros(4), []
    for _ in range(steps):
        v = gamma * v + eta * grad_j(theta)
        theta = theta - v
        want.append(theta)
    ours = chain_trajectory(mo.sgd(eta, gamma), steps)
    chex.assert_trees_all_close(ours, np.stack(want), rtol=1e-4, atol=1e-5)


# DESIGN principle 2: chain order places the learning rate inside or outside the velocity
BETA, STEPS = 0.9, 30


def _placements(lr):
    outside = optax.chain(mo.trace(BETA), optax.scale_by_learning_rate(lr))
    inside = optax.chain(optax.scale_by_learning_rate(lr), mo.trace(BETA))
    return chain_trajectory(outside, STEPS), chain_trajectory(inside, STEPS)


def test_constant_learning_rate_inside_or_outside_the_velocity_agree():
    outside, inside = _placements(0.05)
    chex.assert_trees_all_close(outside, inside, rtol=1e-5, atol=1e-6)


def test_scheduled_learning_rate_places_differ_and_each_follows_its_formula():
    schedule = optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.8)
    lrs = helpers.schedule_values(schedule, STEPS)
    outside, inside = _placements(schedule)
    # outside: u_t = -eta_t m_t, m_t = g_t + b m_{t-1}
    theta, m, want_outside = THETA0.copy(), np.zeros(4), []
    for t in range(STEPS):
        m = grad_j(theta) + BETA * m
        theta = theta - lrs[t] * m
        want_outside.append(theta)
    # inside (seed 001): v_t = b v_{t-1} + eta_t g_t, u_t = -v_t
    theta, v, want_inside = THETA0.copy(), np.zeros(4), []
    for t in range(STEPS):
        v = BETA * v + lrs[t] * grad_j(theta)
        theta = theta - v
        want_inside.append(theta)
    chex.assert_trees_all_close(outside, np.stack(want_outside), rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(inside, np.stack(want_inside), rtol=1e-4, atol=1e-5)
    assert np.max(np.abs(outside - inside)) > 1e-2


@pytest.mark.parametrize("beta", [0.5, 0.9, 0.99])
def test_ema_momentum_equals_trace_with_learning_rate_scaled_by_one_minus_beta(beta):
    lr, steps = 0.2, 50
    with_ema = chain_trajectory(mo.sgd(lr, beta, ema=True), steps)
    with_trace = chain_trajectory(mo.sgd(lr * (1 - beta), beta), steps)
    chex.assert_trees_all_close(with_ema, with_trace, rtol=1e-4, atol=1e-5)
    # not a trivial identity: without the (1 - beta) scaling the runs differ
    unscaled = chain_trajectory(mo.sgd(lr, beta), steps)
    assert np.max(np.abs(with_ema - unscaled)) > 1e-2


def test_ema_weights_are_beta_powers_times_one_minus_beta():
    # V_t = sum_i (1 - b) b^(t-i) S_i: feed a unit impulse, read the weights back
    beta, steps = 0.8, 6
    impulse = [jnp.float32(1.0 if t == 0 else 0.0) for t in range(steps)]
    weights, _ = helpers.run_updates(mo.ema(beta), impulse, jnp.zeros(()))
    np.testing.assert_allclose(weights, (1 - beta) * beta ** np.arange(steps), rtol=1e-6)
