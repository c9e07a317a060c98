"""``mo.train_step`` over every row of ``helpers.ALL_TRANSFORMS``, donating or not, and the
states' buffers: no ``init`` stores one buffer in two places (a donated step cannot donate a
buffer twice), nor a parameter itself.

Table-driven: a new transformation is covered by a new row.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers
from tests.helpers import PARAMS

ROWS = helpers.ALL_TRANSFORMS
STEPS = 4


def _loss(params, x, y):
    """Least squares of an affine map scaled by ``params["scale"]``: every leaf has a gradient."""
    d = params["dense"]
    return jnp.mean(((x @ d["kernel"] + d["bias"][None, :]) * params["scale"] - y) ** 2)


def _batch(t):
    rng = np.random.default_rng(t)
    x = jnp.asarray(rng.standard_normal((8, 3)), jnp.float32)
    return x, jnp.asarray(rng.standard_normal((8, 4)), jnp.float32)


def _fresh():
    return jax.tree.map(jnp.copy, PARAMS)


def _optimizer(row):
    """``row``'s optimizer: a momentum direction is followed by a descent step."""
    opt = row.make()
    return opt if row.optimizer else optax.chain(opt, optax.scale(-0.05))


@functools.cache
def _by_hand(row, steps=STEPS):
    """The steps written out for ``row``: value_and_grad, update (with value=loss),
    apply_updates; once per row and number of steps, shared by the tests."""
    opt = optax.with_extra_args_support(_optimizer(row))
    params, state, losses = _fresh(), opt.init(_fresh()), []
    for t in range(steps):
        value, grads = jax.value_and_grad(_loss)(params, *_batch(t))
        updates, state = opt.update(grads, state, params, value=value)
        params = optax.apply_updates(params, updates)
        losses.append(value)
    return params, state, np.asarray(losses)


def _buffers(tree):
    """``(path, leaf)`` of the concrete arrays of ``tree``."""
    return [
        (jax.tree_util.keystr(path), leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
        if isinstance(leaf, jax.Array)
    ]


@pytest.mark.parametrize("donate", [True, False], ids=["donate", "keep"])
@pytest.mark.parametrize("row", [helpers.fast_or_slow(r) for r in ROWS], ids=repr)
def test_train_step_takes_the_steps_written_out(row, donate):
    opt = _optimizer(row)
    step = mo.train_step(_loss, opt, donate=donate)
    params = _fresh()
    state = opt.init(params)
    losses = []
    for t in range(STEPS):
        inputs = jax.tree.leaves((params, state))
        params, state, value = step(params, state, *_batch(t))
        losses.append(value)
        # donated: the buffer of every array with an axis is consumed (XLA may keep a
        # scalar's it did not alias: a flag, a tuned rate); kept: every input is readable
        arrays = [x for x in inputs if isinstance(x, jax.Array)]
        if donate:
            assert all(x.is_deleted() for x in arrays if x.ndim > 0)
        else:
            assert not any(x.is_deleted() for x in arrays)
    ref_params, ref_state, ref_losses = _by_hand(row)
    np.testing.assert_allclose(np.asarray(losses), ref_losses, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(params, ref_params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(state, ref_state, rtol=1e-5, atol=1e-6)
    # the steps moved every parameter (YellowFin's slow start moves them little at first)
    moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), params, PARAMS)
    assert all(jax.tree.leaves(moved)), moved


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_no_state_holds_one_buffer_twice_or_a_parameter(row):
    params = _fresh()
    state = row.make().init(params)
    seen = {}
    for where, leaf in _buffers({"params": params, "opt_state": state}):
        for key in (("id", id(leaf)), ("buffer", leaf.unsafe_buffer_pointer())):
            assert key not in seen, f"{where} shares its buffer with {seen[key]}"
            seen[key] = where


@pytest.mark.parametrize("donate", [True, False], ids=["donate", "keep"])
@pytest.mark.parametrize("row", [helpers.fast_or_slow(r) for r in ROWS], ids=repr)
def test_train_step_lowers_ahead_of_time_to_the_program_it_runs(row, donate):
    """``step.lower`` from shapes alone; the compiled program takes the step's first step,
    and a donating step aliases every donated array with an axis (a kept one, none)."""
    opt = _optimizer(row)
    step = mo.train_step(_loss, opt, donate=donate)
    params = _fresh()
    state = opt.init(params)
    shapes = jax.eval_shape(lambda: (params, state, *_batch(0)))
    lowered = step.lower(*shapes)
    aliased = lowered.as_text().count("tf.aliasing_output")
    donated = [x for x in jax.tree.leaves((params, state)) if isinstance(x, jax.Array)]
    if donate:
        assert aliased >= sum(x.ndim > 0 for x in donated) > 0
    else:
        assert aliased == 0
    ref_params, ref_state, ref_losses = _by_hand(row, steps=1)
    new_params, new_state, loss = lowered.compile()(params, state, _batch(0), {})
    np.testing.assert_allclose(loss, ref_losses[0], rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(new_params, ref_params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(new_state, ref_state, rtol=1e-5, atol=1e-6)
