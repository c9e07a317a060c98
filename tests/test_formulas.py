"""Every accumulator against its formula: by hand for a few steps, then a NumPy loop."""

import chex
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import parameterized

import momentum_optax as mo
from tests import helpers

SCHEDULE = helpers.ramp(0.3, 0.95, 25)
STEPS = 40


def _run_variant(variant, opt, grads, params):
    update = variant(opt.update)
    state = opt.init(params)
    outs = []
    for g in grads:
        u, state = update(g, state)
        outs.append(u)
    return np.stack(outs), state


class ByHandTest(parameterized.TestCase):
    """Three steps with gradients 1, 2, 3 worked out on paper."""

    def _three_steps(self, opt):
        state = opt.init(jnp.zeros(()))
        outs = []
        for g in (1.0, 2.0, 3.0):
            u, state = opt.update(jnp.float32(g), state)
            outs.append(float(u))
        return outs

    def test_trace_by_hand(self):
        # m = 1; 2 + 0.5 * 1 = 2.5; 3 + 0.5 * 2.5 = 4.25
        np.testing.assert_allclose(self._three_steps(mo.trace(0.5)), [1.0, 2.5, 4.25])

    def test_trace_nesterov_by_hand(self):
        # g + 0.5 m: 1 + 0.5, 2 + 1.25, 3 + 2.125
        np.testing.assert_allclose(
            self._three_steps(mo.trace(0.5, nesterov=True)), [1.5, 3.25, 5.125]
        )

    def test_ema_by_hand(self):
        # m = 0.5; 0.25 + 1 = 1.25; 0.625 + 1.5 = 2.125
        np.testing.assert_allclose(self._three_steps(mo.ema(0.5)), [0.5, 1.25, 2.125])

    def test_ema_debias_by_hand(self):
        # divided by 1 - 0.5, 1 - 0.25, 1 - 0.125
        np.testing.assert_allclose(
            self._three_steps(mo.ema(0.5, debias=True)),
            [1.0, 1.25 / 0.75, 2.125 / 0.875],
            rtol=1e-6,
        )

    def test_delta_momentum_by_hand(self):
        # d + 0.5 * previous d: 1, 2 + 0.5, 3 + 1
        np.testing.assert_allclose(self._three_steps(mo.delta_momentum(0.5)), [1.0, 2.5, 4.0])

    def test_scheduled_trace_reads_the_schedule_at_each_count(self):
        # b_t = 0, 0.5, 1: m = 1; 2 + 0.5 * 1 = 2.5; 3 + 1 * 2.5 = 5.5
        opt = mo.trace(optax.linear_schedule(0.0, 1.0, 2))
        np.testing.assert_allclose(self._three_steps(opt), [1.0, 2.5, 5.5])

    def test_scheduled_nesterov_uses_the_next_coefficient(self):
        # b_t = 0, 0.5, 1, 1: out_t = g_t + b_{t+1} m_t with m = 1, 2.5, 5.5
        opt = mo.trace(optax.linear_schedule(0.0, 1.0, 2), nesterov=True)
        np.testing.assert_allclose(self._three_steps(opt), [1.5, 2.0 + 2.5, 3.0 + 5.5])


class NumpyLoopTest(chex.TestCase):
    """40 random steps of each accumulator against an independent NumPy loop."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        ("constant", 0.9, False),
        ("constant_nesterov", 0.9, True),
        ("scheduled", SCHEDULE, False),
        ("scheduled_nesterov", SCHEDULE, True),
    )
    def test_trace_matches_numpy_loop(self, decay, nesterov):
        grads = helpers.random_steps(0, STEPS, (3, 4))
        got, _ = _run_variant(
            self.variant, mo.trace(decay, nesterov=nesterov), grads, jnp.zeros((3, 4))
        )
        want = helpers.np_trace(
            grads.astype(np.float64), helpers.schedule_values(decay, STEPS + 1), nesterov
        )
        chex.assert_trees_all_close(got, want, rtol=2e-5, atol=2e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        (
            f"{name}{'_debias' if debias else ''}{'_nesterov' if nesterov else ''}",
            decay,
            debias,
            nesterov,
        )
        for name, decay in (("constant", 0.9), ("scheduled", SCHEDULE))
        for debias in (False, True)
        for nesterov in (False, True)
    )
    def test_ema_matches_numpy_loop(self, decay, debias, nesterov):
        grads = helpers.random_steps(1, STEPS, (7,))
        got, _ = _run_variant(
            self.variant, mo.ema(decay, debias=debias, nesterov=nesterov), grads, jnp.zeros(7)
        )
        want = helpers.np_ema(
            grads.astype(np.float64), helpers.schedule_values(decay, STEPS + 1), debias, nesterov
        )
        chex.assert_trees_all_close(got, want, rtol=2e-5, atol=2e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("constant", 0.5), ("scheduled", SCHEDULE))
    def test_delta_momentum_matches_numpy_loop(self, momentum):
        deltas = helpers.random_steps(2, STEPS, (2, 3))
        got, state = _run_variant(
            self.variant, mo.delta_momentum(momentum), deltas, jnp.zeros((2, 3))
        )
        want = helpers.np_delta_momentum(
            deltas.astype(np.float64), helpers.schedule_values(momentum, STEPS)
        )
        chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-6)
        # the stored delta is the last incoming delta, without the momentum term
        chex.assert_trees_all_equal(state.previous_delta, jnp.asarray(deltas[-1]))

    @chex.variants(with_jit=True, without_jit=True)
    def test_periodic_reset_matches_numpy_loop(self):
        grads = helpers.random_steps(3, STEPS, (4,))
        got, _ = _run_variant(
            self.variant, mo.periodic_reset(mo.trace(0.8), every=7), grads, jnp.zeros(4)
        )
        want = np.concatenate(
            [
                helpers.np_trace(grads[i : i + 7].astype(np.float64), np.full(8, 0.8))
                for i in range(0, STEPS, 7)
            ]
        )
        chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-5)


class CountTest(parameterized.TestCase):
    def test_constant_coefficients_keep_no_count(self):
        params = {"w": jnp.zeros(3)}
        for opt in (
            mo.trace(0.9),
            mo.trace(0.9, nesterov=True),
            mo.ema(0.9),
            mo.delta_momentum(0.5),
        ):
            state = opt.init(params)
            self.assertEqual(len(optax.tree.get_all_with_path(state, "count")), 1)
            self.assertIsNone(state.count)

    def test_scheduled_coefficient_advances_an_int32_count(self):
        opt = mo.trace(SCHEDULE)
        state = opt.init(jnp.zeros(2))
        for _ in range(3):
            _, state = opt.update(jnp.ones(2), state)
        self.assertEqual(state.count.dtype, jnp.int32)
        self.assertEqual(int(state.count), 3)
