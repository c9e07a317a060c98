"""Invariants every transformation keeps, driven by the table ``helpers.ALL_TRANSFORMS``.

The invariants are the testing kit's (``momentum_optax.testing.invariants``), one test per
row and invariant; a new transformation is covered by adding a row to that table. What the
kit does not check generically stays here: descent on a quadratic inside a chain, and
arbitrary pytrees drawn from the kit's strategies.
"""

import functools

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from momentum_optax.testing import Battery
from momentum_optax.testing import invariants
from momentum_optax.testing import strategies
from tests import helpers
from tests.helpers import PARAMS

ROWS = helpers.ALL_TRANSFORMS
STEPS = 8

# limitations of optax itself, not of the row's own transformation (strict xfails: they
# fail the suite once optax fixes them, so the entry is removed then)
UPSTREAM = {
    ("multi_steps_sgd_nesterov", "strict_promotion"): (
        "optax.MultiSteps divides its float gradients by its int32 mini-step count, which "
        "strict dtype promotion refuses (optax 0.2.8)"
    ),
}


def _loss(params):
    """A loss of the parameters alone, strict-promotion safe (float32 arithmetic)."""
    return sum(
        (jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(params)),
        jnp.zeros([], jnp.float32),
    )


def _value(params, step):
    """``update``'s extra arguments at each step: the loss, for the rows that read it
    (``value=``); the kit hands it only to transformations whose ``update`` accepts it."""
    del step
    return {"value": _loss(params)}


@functools.cache
def _battery(row):
    """One battery per row, shared by its invariants' tests: its jitted run compiles once."""
    return Battery(row.make(), PARAMS, steps=STEPS, extra_args=_value)


def _cases():
    for row in ROWS:
        for invariant in invariants.NAMES:
            reason = UPSTREAM.get((row.name, invariant))
            marks = [pytest.mark.xfail(reason=reason, raises=AssertionError, strict=True)]
            if row.name not in helpers.FAST_ROWS:  # -m "not slow" keeps a few rows
                marks.append(pytest.mark.slow)
            yield pytest.param(
                row, invariant, id=f"{row.name}-{invariant}", marks=marks if reason else marks[1:]
            )


@pytest.mark.parametrize(("row", "invariant"), list(_cases()))
def test_invariant_holds(row, invariant):
    _battery(row).check(invariant)


def test_every_upstream_exception_names_a_row_and_an_invariant():
    names = {row.name for row in ROWS}
    assert {row for row, _ in UPSTREAM} <= names
    assert {invariant for _, invariant in UPSTREAM} <= set(invariants.NAMES)


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


@pytest.mark.parametrize("row", [helpers.fast_or_slow(row) for row in ROWS], ids=repr)
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


@pytest.mark.slow  # the heaviest part of the file: 10 eager examples per row
@pytest.mark.parametrize("row", ROWS, ids=repr)
@hypothesis.given(data=st.data())
def test_any_pytree_keeps_its_shapes_dtypes_and_structure(row, data):
    # nested dicts, lists, tuples and NamedTuples of leaves of rank 0-3 (zero-size ones
    # too) in float32, bfloat16 and float16, with gradients of their shapes and dtypes
    params = data.draw(strategies.params(max_leaves=4), label="params")
    grads = data.draw(strategies.gradient_sequences(params, steps=3), label="grads")
    opt = row.make()
    state0 = opt.init(params)
    state = state0
    for g in grads:
        updates, state = opt.update(g, state, params)
        chex.assert_trees_all_equal_structs(updates, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        chex.assert_tree_all_finite(updates)
    chex.assert_trees_all_equal_structs(state, state0)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, state0)
    new_params = optax.apply_updates(params, updates)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_params, params)


BFLOAT16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), PARAMS)


# one row of each family: the battery again, in bfloat16
BFLOAT16_ROWS = [
    row
    for row in ROWS
    if row.name
    in {
        "trace_scheduled_nesterov",
        "ema_scheduled_debias_nesterov",
        "delta_momentum",
        "sgd_ema_reset",
        "adaptive_restart_sgd",
        "qhm_scheduled",
        "qhadam",
        "aggmo_scheduled",
        "sma",
        "torch_sgd_nesterov_cycle",
        "masked_trace",
    }
]


@pytest.mark.slow
@pytest.mark.parametrize("row", BFLOAT16_ROWS, ids=repr)
def test_every_invariant_holds_for_bfloat16_parameters(row):
    upstream = {invariant for name, invariant in UPSTREAM if name == row.name}
    only = tuple(n for n in invariants.NAMES if n not in upstream)  # opt-in ones included
    Battery(row.make(), BFLOAT16, steps=STEPS, extra_args=_value).check_all(only=only)


@pytest.mark.parametrize("row", [helpers.fast_or_slow(row) for row in ROWS if row.buffer], ids=repr)
def test_a_float32_buffer_for_bfloat16_parameters_keeps_the_invariants(row):
    # the recommended setting for long averages in low precision: the updates still come
    # out in the parameters' dtype, so it works under strict promotion too
    battery = Battery(helpers.build(row, jnp.float32), BFLOAT16, steps=STEPS, extra_args=_value)
    battery.check_all(
        only=(
            "updates_match_gradients",
            "state_is_stable",
            "strict_promotion",
            "checkpoint_continues",
        )
    )
    state = helpers.build(row, jnp.float32).init(BFLOAT16)
    floating = [x.dtype for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert jnp.dtype(jnp.float32) in floating, floating  # the momentum buffer is float32
