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

ROWS = helpers.ALL_TRANSFORMS
PARAMS = {"dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)}, "scale": jnp.float32(2.0)}


def _grads(seed):
    keys = jax.random.split(jax.random.key(seed), 3)
    return {
        "dense": {
            "kernel": jax.random.normal(keys[0], (3, 4)),
            "bias": jax.random.normal(keys[1], (4,)),
        },
        "scale": jax.random.normal(keys[2], ()),
    }


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_state_structure_shapes_and_dtypes_are_stable(row):
    opt = row.make()
    state0 = opt.init(PARAMS)
    state = state0
    update = jax.jit(opt.update)
    for seed in range(5):
        updates, state = update(_grads(seed), state, PARAMS)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, PARAMS)
        chex.assert_tree_all_finite(updates)
    chex.assert_trees_all_equal_structs(state, state0)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, state0)


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_jit_equals_eager(row):
    opt = row.make()
    eager, _ = helpers.run_updates(opt, [_grads(s) for s in range(8)], PARAMS)
    jitted, _ = helpers.run_updates(opt, [_grads(s) for s in range(8)], PARAMS, jit=True)
    chex.assert_trees_all_close(jitted, eager, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_jitted_step_compiles_once_over_100_steps(row):
    chex.clear_trace_counter()
    opt = row.make()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params, state = PARAMS, opt.init(PARAMS)
    grads = _grads(0)
    for _ in range(100):
        params, state = step(params, state, grads)
    chex.assert_tree_all_finite(params)


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_scan_equals_python_loop(row):
    opt = row.make()
    grads = [_grads(s) for s in range(12)]
    looped, final = helpers.run_updates(opt, grads, PARAMS, jit=True)

    def body(state, g):
        updates, state = opt.update(g, state, PARAMS)
        return state, updates

    scanned_final, scanned = jax.lax.scan(
        body, opt.init(PARAMS), jax.tree.map(lambda *x: jnp.stack(x), *grads)
    )
    chex.assert_trees_all_close(
        scanned, jax.tree.map(lambda *x: jnp.stack(x), *looped), rtol=1e-6, atol=1e-6
    )
    chex.assert_trees_all_close(scanned_final, final, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_minimises_a_quadratic_inside_a_chain(row):
    opt = row.make()
    if not row.optimizer:
        opt = optax.chain(optax.clip(10.0), opt, optax.scale_by_learning_rate(0.05))
    loss = lambda p: sum(jnp.sum((x - 1.0) ** 2) for x in jax.tree.leaves(p))

    @jax.jit
    def step(params, state):
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    params, state = PARAMS, opt.init(PARAMS)
    for _ in range(60):
        params, state = step(params, state)
    assert float(loss(params)) < 0.25 * float(loss(PARAMS))


_DTYPES = st.sampled_from([jnp.float32, jnp.bfloat16])
_SHAPES = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
_TREES = st.dictionaries(
    st.text("abcdef", min_size=1, max_size=3), st.tuples(_SHAPES, _DTYPES), min_size=1, max_size=4
)


@hypothesis.given(spec=_TREES, row=st.sampled_from(ROWS), seed=st.integers(0, 2**16))
def test_any_pytree_keeps_its_shapes_dtypes_and_structure(spec, row, seed):
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
