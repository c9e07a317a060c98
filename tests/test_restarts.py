"""periodic_reset: a restart is a fresh inner transformation on each chunk of steps."""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers

INNER = {
    "trace": lambda: mo.trace(0.9),
    "scheduled_trace": lambda: mo.trace(mo.schedules.anneal(0.5, 0.9, steps=3)),
    "ema": lambda: mo.ema(0.8, debias=True),
}


@pytest.mark.parametrize("make_inner", INNER.values(), ids=INNER.keys())
@pytest.mark.parametrize(
    "every", [pytest.param(1, marks=pytest.mark.slow), 3, pytest.param(5, marks=pytest.mark.slow)]
)
def test_periodic_reset_equals_a_fresh_inner_on_consecutive_chunks(every, make_inner):
    grads = list(helpers.random_steps(0, 3 * every + 2, (2, 3)))
    params = jnp.zeros((2, 3))
    got, _ = helpers.run_updates(mo.periodic_reset(make_inner(), every), grads, params, jit=True)
    want = []
    for start in range(0, len(grads), every):
        chunk, _ = helpers.run_updates(make_inner(), grads[start : start + every], params, jit=True)
        want.extend(chunk)
    chex.assert_trees_all_equal(got, want)


def test_periodic_reset_adds_only_a_scalar_phase_to_the_inner_state():
    inner_state = mo.trace(0.9).init(helpers.PARAMS)
    state = mo.periodic_reset(mo.trace(0.9), 10).init(helpers.PARAMS)
    chex.assert_trees_all_equal(state.inner_state, inner_state)
    assert state.phase.shape == ()
    assert state.phase.dtype == jnp.int32
    assert len(jax.tree.leaves(state)) == len(jax.tree.leaves(inner_state)) + 1


def test_periodic_reset_phase_wraps_at_every():
    opt = mo.periodic_reset(mo.trace(0.5), 3)
    state = opt.init(jnp.zeros(1))
    phases = []
    for _ in range(7):
        _, state = opt.update(jnp.ones(1), state)
        phases.append(int(state.phase))
    assert phases == [1, 2, 0, 1, 2, 0, 1]


def test_periodic_reset_reinitialises_with_the_params_dtype_when_params_are_not_passed():
    # bfloat16 params, float32 gradients: the fresh state keeps the bfloat16 buffer
    opt = mo.periodic_reset(mo.trace(0.9), 2)
    state = opt.init(jnp.zeros(3, jnp.bfloat16))
    before = jax.tree.map(lambda x: x.dtype, state)
    for _ in range(5):
        _, state = jax.jit(opt.update)(jnp.ones(3, jnp.float32), state)
    assert jax.tree.map(lambda x: x.dtype, state) == before
    assert state.inner_state.trace.dtype == jnp.bfloat16


def test_periodic_reset_forwards_extra_args_to_the_inner_transformation():
    class LastValue(NamedTuple):
        value: jax.Array

    def record_value():
        return optax.GradientTransformationExtraArgs(
            lambda params: LastValue(jnp.zeros([])),
            lambda updates, state, params=None, *, value, **extra: (updates, LastValue(value)),
        )

    opt = mo.periodic_reset(record_value(), 4)
    state = opt.init(jnp.zeros(2))
    _, state = opt.update(jnp.ones(2), state, value=jnp.float32(7.5))
    assert float(state.inner_state.value) == 7.5


def test_sgd_reset_restarts_momentum_but_not_the_learning_rate_schedule():
    lr = optax.linear_schedule(1.0, 0.0, 8)
    opt = mo.sgd(lr, 0.5, reset_every=2)
    outs, _ = helpers.run_updates(opt, [jnp.float32(1.0)] * 4, jnp.zeros(()))
    # m = 1, 1.5, 1, 1.5 (restarted) times -lr_t with lr_t = 1, 0.875, 0.75, 0.625
    np.testing.assert_allclose(outs, [-1.0, -1.5 * 0.875, -0.75, -1.5 * 0.625], rtol=1e-6)
