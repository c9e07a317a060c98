"""Every accumulator against its formula: by hand for a few steps, then a NumPy loop."""

import chex
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers

SCHEDULE = helpers.ramp(0.3, 0.95, 25)
STEPS = 40
JIT = pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])


def _three_steps(opt):
    """The updates for gradients 1, 2, 3 (worked out on paper in each test)."""
    outs, _ = helpers.run_updates(opt, [jnp.float32(g) for g in (1.0, 2.0, 3.0)], jnp.zeros(()))
    return [float(u) for u in outs]


def test_trace_matches_three_steps_worked_by_hand():
    # m = 1; 2 + 0.5 * 1 = 2.5; 3 + 0.5 * 2.5 = 4.25
    np.testing.assert_allclose(_three_steps(mo.trace(0.5)), [1.0, 2.5, 4.25])


def test_trace_nesterov_matches_three_steps_worked_by_hand():
    # g + 0.5 m: 1 + 0.5, 2 + 1.25, 3 + 2.125
    np.testing.assert_allclose(_three_steps(mo.trace(0.5, nesterov=True)), [1.5, 3.25, 5.125])


def test_ema_matches_three_steps_worked_by_hand():
    # m = 0.5; 0.25 + 1 = 1.25; 0.625 + 1.5 = 2.125
    np.testing.assert_allclose(_three_steps(mo.ema(0.5)), [0.5, 1.25, 2.125])


def test_ema_debias_matches_three_steps_worked_by_hand():
    # divided by 1 - 0.5, 1 - 0.25, 1 - 0.125
    np.testing.assert_allclose(
        _three_steps(mo.ema(0.5, debias=True)), [1.0, 1.25 / 0.75, 2.125 / 0.875], rtol=1e-6
    )


def test_delta_momentum_matches_three_steps_worked_by_hand():
    # d + 0.5 * previous d: 1, 2 + 0.5, 3 + 1
    np.testing.assert_allclose(_three_steps(mo.delta_momentum(0.5)), [1.0, 2.5, 4.0])


def test_scheduled_trace_reads_the_schedule_at_each_count():
    # b_t = 0, 0.5, 1: m = 1; 2 + 0.5 * 1 = 2.5; 3 + 1 * 2.5 = 5.5
    opt = mo.trace(optax.linear_schedule(0.0, 1.0, 2))
    np.testing.assert_allclose(_three_steps(opt), [1.0, 2.5, 5.5])


def test_scheduled_nesterov_uses_the_next_coefficient():
    # b_t = 0, 0.5, 1, 1: out_t = g_t + b_{t+1} m_t with m = 1, 2.5, 5.5
    opt = mo.trace(optax.linear_schedule(0.0, 1.0, 2), nesterov=True)
    np.testing.assert_allclose(_three_steps(opt), [1.5, 2.0 + 2.5, 3.0 + 5.5])


# --- 40 random steps of each accumulator against an independent NumPy loop ---


@JIT
@pytest.mark.parametrize("nesterov", [False, True], ids=["classical", "nesterov"])
@pytest.mark.parametrize("decay", [0.9, SCHEDULE], ids=["constant", "scheduled"])
def test_trace_matches_numpy_loop(decay, nesterov, jit):
    grads = helpers.random_steps(0, STEPS, (3, 4))
    opt = mo.trace(decay, nesterov=nesterov)
    got, _ = helpers.run_updates(opt, list(grads), jnp.zeros((3, 4)), jit=jit)
    want = helpers.np_trace(
        grads.astype(np.float64), helpers.schedule_values(decay, STEPS + 1), nesterov
    )
    chex.assert_trees_all_close(np.stack(got), want, rtol=2e-5, atol=2e-5)


@JIT
@pytest.mark.parametrize("nesterov", [False, True], ids=["classical", "nesterov"])
@pytest.mark.parametrize("debias", [False, True], ids=["biased", "debiased"])
@pytest.mark.parametrize("decay", [0.9, SCHEDULE], ids=["constant", "scheduled"])
def test_ema_matches_numpy_loop(decay, debias, nesterov, jit):
    grads = helpers.random_steps(1, STEPS, (7,))
    opt = mo.ema(decay, debias=debias, nesterov=nesterov)
    got, _ = helpers.run_updates(opt, list(grads), jnp.zeros(7), jit=jit)
    want = helpers.np_ema(
        grads.astype(np.float64), helpers.schedule_values(decay, STEPS + 1), debias, nesterov
    )
    chex.assert_trees_all_close(np.stack(got), want, rtol=2e-5, atol=2e-5)


@JIT
@pytest.mark.parametrize("momentum", [0.5, SCHEDULE], ids=["constant", "scheduled"])
def test_delta_momentum_matches_numpy_loop(momentum, jit):
    deltas = helpers.random_steps(2, STEPS, (2, 3))
    got, state = helpers.run_updates(
        mo.delta_momentum(momentum), list(deltas), jnp.zeros((2, 3)), jit=jit
    )
    want = helpers.np_delta_momentum(
        deltas.astype(np.float64), helpers.schedule_values(momentum, STEPS)
    )
    chex.assert_trees_all_close(np.stack(got), want, rtol=1e-6, atol=1e-6)
    # the stored delta is the last incoming delta, without the momentum term
    chex.assert_trees_all_equal(state.previous_delta, jnp.asarray(deltas[-1]))


@JIT
def test_periodic_reset_matches_numpy_loop(jit):
    grads = helpers.random_steps(3, STEPS, (4,))
    opt = mo.periodic_reset(mo.trace(0.8), every=7)
    got, _ = helpers.run_updates(opt, list(grads), jnp.zeros(4), jit=jit)
    want = np.concatenate(
        [
            helpers.np_trace(grads[i : i + 7].astype(np.float64), np.full(8, 0.8))
            for i in range(0, STEPS, 7)
        ]
    )
    chex.assert_trees_all_close(np.stack(got), want, rtol=1e-5, atol=1e-5)


# --- the step count: only where a coefficient is scheduled ---


@pytest.mark.parametrize("nesterov", [False, True], ids=["classical", "nesterov"])
def test_a_constant_trace_keeps_optaxs_state_without_a_count(nesterov):
    state = mo.trace(0.9, nesterov=nesterov).init({"w": jnp.zeros(3)})
    assert type(state) is optax.TraceState
    assert optax.tree.get_all_with_path(state, "count") == []


@pytest.mark.parametrize(
    "make",
    [lambda: mo.ema(0.9), lambda: mo.delta_momentum(0.5)],
    ids=["ema", "delta_momentum"],
)
def test_constant_coefficients_keep_no_count(make):
    state = make().init({"w": jnp.zeros(3)})
    assert len(optax.tree.get_all_with_path(state, "count")) == 1
    assert state.count is None


def test_scheduled_coefficient_advances_an_int32_count():
    _, state = helpers.run_updates(mo.trace(SCHEDULE), [jnp.ones(2)] * 3, jnp.zeros(2))
    assert type(state) is mo.ScheduledTraceState
    assert state.count.dtype == jnp.int32
    assert int(state.count) == 3
