"""Invariants every transformation keeps, driven by the table ``helpers.ALL_TRANSFORMS``.

A new transformation is covered by adding a row to that table.
"""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests import helpers
from tests.helpers import PARAMS

ROWS = helpers.ALL_TRANSFORMS


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_state_structure_shapes_and_dtypes_are_stable(row):
    opt = row.make()
    state0 = opt.init(PARAMS)
    state = state0
    update = jax.jit(opt.update)
    for seed in range(5):
        updates, state = update(helpers.grads(seed), state, PARAMS)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, PARAMS)
        chex.assert_tree_all_finite(updates)
    chex.assert_trees_all_equal_structs(state, state0)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, state0)


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_jit_equals_eager(row):
    grads = [helpers.grads(seed) for seed in range(8)]
    eager, _ = helpers.run_updates(row.make(), grads, PARAMS)
    jitted, _ = helpers.run_updates(row.make(), grads, PARAMS, jit=True)
    chex.assert_trees_all_close(jitted, eager, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_jitted_step_compiles_once_over_100_steps(row):
    chex.clear_trace_counter()
    run = helpers.descend(
        row.make(),
        PARAMS,
        100,
        helpers.given([helpers.grads(0)] * 100),
        compile_step=lambda step: jax.jit(chex.assert_max_traces(step, n=1)),
    )
    chex.assert_tree_all_finite(run.params)


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_scan_equals_python_loop(row):
    grads = helpers.given([helpers.grads(seed) for seed in range(12)])
    looped = helpers.descend(row.make(), PARAMS, 12, grads)
    scanned = helpers.descend(row.make(), PARAMS, 12, grads, scan=True)
    chex.assert_trees_all_close(scanned, looped, rtol=1e-6, atol=1e-6)


# an ill-conditioned quadratic 0.5 sum h (x + 1)^2, curvatures h from 0.01 to 1 over the
# 17 coordinates of PARAMS (kernel, bias, scale)
_CURVATURE = np.geomspace(0.01, 1.0, 17)
CURVATURES = {
    "dense": {
        "kernel": jnp.asarray(_CURVATURE[:12].reshape(3, 4), jnp.float32),
        "bias": jnp.asarray(_CURVATURE[12:16], jnp.float32),
    },
    "scale": jnp.float32(_CURVATURE[16]),
}


def _quadratic(params):
    return sum(
        0.5 * jnp.sum(h * (x + 1.0) ** 2)
        for h, x in zip(jax.tree.leaves(CURVATURES), jax.tree.leaves(params))
    )


def _in_a_chain(opt, learning_rate):
    return optax.chain(optax.clip(10.0), opt, optax.scale_by_learning_rate(learning_rate))


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_minimises_a_quadratic_inside_a_chain_and_moves_unlike_gradient_descent(row):
    # learning-rate free rows sit between a clip and a learning rate, in a chain
    lr, steps = 0.5, 60
    opt = row.make() if row.optimizer else _in_a_chain(row.make(), lr)
    gradient = helpers.gradient_of(_quadratic)
    run = helpers.descend(opt, PARAMS, steps, gradient)
    assert float(_quadratic(run.params)) < 0.25 * float(_quadratic(PARAMS))
    if not row.optimizer:
        # the same chain without the transformation is gradient descent at the same rate:
        # a transformation that passed its input through (or lost its momentum) follows
        # that path exactly
        plain = helpers.descend(_in_a_chain(optax.identity(), lr), PARAMS, steps, gradient)
        gap = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(jax.tree.leaves(run.history), jax.tree.leaves(plain.history))
        )
        assert gap > 0.05, gap


_DTYPES = st.sampled_from([jnp.float32, jnp.bfloat16])
# a few shapes, so that the eager operations are compiled once and reused across examples
_SHAPES = st.sampled_from([(), (1,), (3,), (2, 3), (1, 4, 2)])
_TREES = st.dictionaries(
    st.text("abcdef", min_size=1, max_size=3), st.tuples(_SHAPES, _DTYPES), min_size=1, max_size=4
)


@pytest.mark.parametrize("row", ROWS, ids=repr)
@hypothesis.given(spec=_TREES, seed=st.integers(0, 2**16))
def test_any_pytree_keeps_its_shapes_dtypes_and_structure(row, spec, seed):
    rng = np.random.default_rng(seed)
    params = {
        k: jnp.asarray(rng.standard_normal(shape), dtype) for k, (shape, dtype) in spec.items()
    }
    opt = row.make()
    state0 = opt.init(params)
    state = state0
    for _ in range(3):
        grads = {k: jnp.asarray(rng.standard_normal(v.shape), v.dtype) for k, v in params.items()}
        updates, state = opt.update(grads, state, params)
        chex.assert_trees_all_equal_shapes(updates, params)
        chex.assert_trees_all_equal_dtypes(updates, params)
        chex.assert_tree_all_finite(updates)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, state0)
    new_params = optax.apply_updates(params, updates)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_params, params)
