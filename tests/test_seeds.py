"""The source documents' formulas and worked examples, checked number for number."""

import chex
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import parameterized

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
    params = jnp.asarray(THETA0, jnp.float32)
    state = opt.init(params)
    a, c = jnp.asarray(A, jnp.float32), jnp.asarray(C, jnp.float32)
    out = []
    for _ in range(steps):
        updates, state = opt.update(a @ params - c, state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.asarray(params, np.float64))
    return np.stack(out)


class Seed000Test(parameterized.TestCase):
    """Seed 000's worked example: 3.56 -> 3.587 without momentum, 3.609 with it."""

    # seed 000 writes w += lr * grad, i.e. its "gradient" 2.70 is the negative derivative
    WEIGHT, LR, GRAD, MU, PREVIOUS_DELTA = 3.56, 0.01, 2.70, 0.50, 0.044

    def _step(self, momentum):
        opt = optax.chain(optax.scale_by_learning_rate(self.LR), mo.delta_momentum(momentum))
        state = opt.init(jnp.float32(self.WEIGHT))
        state = (state[0], state[1]._replace(previous_delta=jnp.float32(self.PREVIOUS_DELTA)))
        updates, state = opt.update(jnp.float32(-self.GRAD), state)
        return float(optax.apply_updates(jnp.float32(self.WEIGHT), updates)), state

    def test_without_momentum_gives_3_587(self):
        weight, _ = self._step(0.0)
        self.assertAlmostEqual(weight, 3.587, places=6)

    def test_with_momentum_gives_3_609(self):
        weight, state = self._step(self.MU)
        self.assertAlmostEqual(weight, 3.609, places=6)
        # the stored delta is lr * grad = 0.027, not the 0.049 actually applied
        self.assertAlmostEqual(float(state[1].previous_delta), 0.027, places=7)


class Seed001Test(parameterized.TestCase):
    @parameterized.named_parameters(
        ("constant", 0.9),
        ("scheduled", optax.linear_schedule(0.5, 0.95, 20)),
        ("linear_to_one", mo.schedules.linear_to_one(0.3, 25)),
    )
    def test_nesterov_equals_lookahead_form(self, gamma):
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
        self.assertGreater(np.max(np.abs(classical - ours)), 1e-2)

    def test_heavy_ball_equals_velocity_form(self):
        # v_t = g v_{t-1} + eta grad J(theta_t); theta_{t+1} = theta_t - v_t
        eta, gamma, steps = 0.1, 0.9, 30
        theta, v, want = THETA0.copy(), np.zeros(4), []
        for _ in range(steps):
            v = gamma * v + eta * grad_j(theta)
            theta = theta - v
            want.append(theta)
        ours = chain_trajectory(mo.sgd(eta, gamma), steps)
        chex.assert_trees_all_close(ours, np.stack(want), rtol=1e-4, atol=1e-5)


class LearningRatePlacementTest(parameterized.TestCase):
    """DESIGN principle 2: chain order places the learning rate inside or outside the velocity."""

    BETA, STEPS = 0.9, 30

    def _pair(self, lr):
        outside = optax.chain(mo.trace(self.BETA), optax.scale_by_learning_rate(lr))
        inside = optax.chain(optax.scale_by_learning_rate(lr), mo.trace(self.BETA))
        return chain_trajectory(outside, self.STEPS), chain_trajectory(inside, self.STEPS)

    def test_constant_learning_rate_places_agree(self):
        outside, inside = self._pair(0.05)
        chex.assert_trees_all_close(outside, inside, rtol=1e-5, atol=1e-6)

    def test_scheduled_learning_rate_places_differ_and_each_follows_its_formula(self):
        schedule = optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.8)
        lrs = helpers.schedule_values(schedule, self.STEPS)
        outside, inside = self._pair(schedule)
        # outside: u_t = -eta_t m_t, m_t = g_t + b m_{t-1}
        theta, m, want_outside = THETA0.copy(), np.zeros(4), []
        for t in range(self.STEPS):
            m = grad_j(theta) + self.BETA * m
            theta = theta - lrs[t] * m
            want_outside.append(theta)
        # inside (seed 001): v_t = b v_{t-1} + eta_t g_t, u_t = -v_t
        theta, v, want_inside = THETA0.copy(), np.zeros(4), []
        for t in range(self.STEPS):
            v = self.BETA * v + lrs[t] * grad_j(theta)
            theta = theta - v
            want_inside.append(theta)
        chex.assert_trees_all_close(outside, np.stack(want_outside), rtol=1e-4, atol=1e-5)
        chex.assert_trees_all_close(inside, np.stack(want_inside), rtol=1e-4, atol=1e-5)
        self.assertGreater(np.max(np.abs(outside - inside)), 1e-2)


class Seed002Test(parameterized.TestCase):
    @parameterized.parameters(0.5, 0.9, 0.99)
    def test_ema_momentum_equals_trace_with_learning_rate_scaled_by_one_minus_beta(self, beta):
        lr, steps = 0.2, 50
        with_ema = chain_trajectory(mo.sgd(lr, beta, ema=True), steps)
        with_trace = chain_trajectory(mo.sgd(lr * (1 - beta), beta), steps)
        chex.assert_trees_all_close(with_ema, with_trace, rtol=1e-4, atol=1e-5)
        # not a trivial identity: without the (1 - beta) scaling the runs differ
        unscaled = chain_trajectory(mo.sgd(lr, beta), steps)
        self.assertGreater(np.max(np.abs(with_ema - unscaled)), 1e-2)

    def test_ema_weights_are_beta_powers_times_one_minus_beta(self):
        # V_t = sum_i (1 - b) b^(t-i) S_i: feed a unit impulse, read the weights back
        beta, steps = 0.8, 6
        opt = mo.ema(beta)
        state = opt.init(jnp.zeros(()))
        weights = []
        for t in range(steps):
            u, state = opt.update(jnp.float32(1.0 if t == 0 else 0.0), state)
            weights.append(float(u))
        np.testing.assert_allclose(weights, (1 - beta) * beta ** np.arange(steps), rtol=1e-6)
