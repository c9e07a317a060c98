"""Integer and boolean leaves (a step counter, an index table, a mask kept among the
parameters) are not trained: every transformation of the table gives them a zero update in
their own dtype, keeps their buffers, and trains the float leaves beside them exactly as it
does without them.

Table-driven over ``helpers.ALL_TRANSFORMS``: a new transformation is covered by a new row.
"""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from tests import helpers
from tests.helpers import PARAMS

ROWS = helpers.ALL_TRANSFORMS
STEPS = 4
FROZEN = {"index": jnp.array([3, 4], jnp.int32), "flags": jnp.array([True, False])}


def _run(opt, params, grads):
    state = opt.init(params)
    update = jax.jit(opt.update)
    for g in grads:
        updates, state = update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params, updates, state


@pytest.mark.parametrize("row", [helpers.fast_or_slow(r) for r in ROWS], ids=repr)
def test_integer_leaves_are_left_unchanged_and_change_nothing_else(row):
    floats = [helpers.grads(t) for t in range(STEPS)]
    # integer gradients of ones (as a hand-made gradient tree would hold): never applied
    grads = [{**g, "index": jnp.ones(2, jnp.int32), "flags": jnp.ones(2, bool)} for g in floats]
    params, updates, state = _run(row.make(), {**PARAMS, **FROZEN}, grads)
    chex.assert_trees_all_equal({k: params[k] for k in FROZEN}, FROZEN)
    chex.assert_trees_all_equal(
        {k: updates[k] for k in FROZEN}, jax.tree.map(jnp.zeros_like, FROZEN)
    )
    initial = row.make().init({**PARAMS, **FROZEN})
    chex.assert_trees_all_equal_dtypes(state, initial)  # no buffer changed its dtype
    # the float leaves train as they do alone: no norm or inner product counts the integers
    alone, alone_updates, _ = _run(row.make(), PARAMS, floats)
    chex.assert_trees_all_close({k: params[k] for k in PARAMS}, alone, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(
        {k: updates[k] for k in PARAMS}, alone_updates, rtol=1e-6, atol=1e-7
    )


def test_fused_sgd_leaves_integer_parameters_as_they_are():
    import momentum_optax as mo

    fused = mo.fused_sgd(0.1, 0.9, nesterov=True)
    params, alone = {**PARAMS, **FROZEN}, PARAMS
    state, alone_state = fused.init(params), fused.init(alone)
    for t in range(STEPS):
        g = helpers.grads(t)
        params, state = fused.apply(
            params, state, {**g, "index": jnp.ones(2, jnp.int32), "flags": jnp.ones(2, bool)}
        )
        alone, alone_state = fused.apply(alone, alone_state, g)
    chex.assert_trees_all_equal({k: params[k] for k in FROZEN}, FROZEN)
    chex.assert_trees_all_close({k: params[k] for k in PARAMS}, alone, rtol=1e-6)
