"""``update(grads, params)``, the parameters where the state goes, refused in those words.

Table-driven over ``helpers.ALL_TRANSFORMS``: a new transformation is covered by a new row.
The rows inside an optax wrapper (``optax.masked``, ``optax.MultiSteps``, ...) are left
out of the refusal: the wrapper reads its own state's fields before the library's
transformation is called, so the error there is optax's.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers

UNWRAPPED = [row for row in helpers.ALL_TRANSFORMS if not row.wrapped]
COMPILE = {"eager": lambda f: f, "jit": jax.jit}

#: what the message says: what the second argument is, what it got, the call to make
SAYS = (
    "the second argument of update is the optimizer state made by",
    "init(params)",
    "dict",
    "shaped like the parameters/gradients",
    "Call update(updates, state, params)",
)


@pytest.mark.parametrize("mode", COMPILE)
@pytest.mark.parametrize("row", UNWRAPPED, ids=repr)
def test_update_with_the_params_as_state_is_refused(row, mode):
    update = COMPILE[mode](row.make().update)
    with pytest.raises(TypeError) as error:
        update(helpers.grads(0), helpers.PARAMS)
    message = str(error.value)
    for words in SAYS:
        assert words in message, message


@pytest.mark.parametrize("mode", COMPILE)
def test_an_array_as_state_is_named_with_its_shape(mode):
    w = jnp.ones(3)
    update = COMPILE[mode](mo.trace(0.9).update)
    with pytest.raises(TypeError, match=re.escape("got a jax.Array of shape (3,), a tree shaped")):
        update(jnp.ones(3), w)


@pytest.mark.parametrize("mode", COMPILE)
@pytest.mark.parametrize(
    "row", [helpers.fast_or_slow(row) for row in helpers.ALL_TRANSFORMS], ids=repr
)
def test_update_with_the_state_still_works(row, mode):
    opt = row.make()
    update = COMPILE[mode](opt.update)
    state = opt.init(helpers.PARAMS)
    for seed in range(2):
        updates, state = update(helpers.grads(seed), state, helpers.PARAMS)
    assert jax.tree.structure(updates) == jax.tree.structure(helpers.PARAMS)


def test_states_that_are_not_named_tuples_are_still_accepted():
    params = {"w": jnp.ones(3), "b": jnp.zeros(2)}
    grads = {"w": jnp.full(3, 2.0), "b": jnp.ones(2)}

    # a transformation whose state is a plain tree of arrays, shaped like the parameters
    def init_fn(params):
        return jax.tree.map(jnp.zeros_like, params)

    def update_fn(updates, state, params=None):
        del params
        return updates, jax.tree.map(jnp.add, state, updates)

    plain = optax.GradientTransformation(init_fn, update_fn)
    opt = optax.chain(plain, mo.trace(0.5), mo.scale_by_learning_rate(1.0))
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    np.testing.assert_allclose(updates["w"], -2.0)
    # a chain's state restored as a list, and optax's EmptyState
    updates, _ = opt.update(grads, list(state), params)
    np.testing.assert_allclose(updates["w"], -3.0)
    assert mo.scale_by_learning_rate(0.5).update(grads, optax.EmptyState())[0]["b"][0] == -0.5
    # a None update (a frozen leaf) passes through
    trace = mo.trace(0.9)
    frozen, _ = trace.update({"w": None, "b": jnp.ones(2)}, trace.init(params))
    assert frozen["w"] is None


CHAINS = [row for row in UNWRAPPED if row.optimizer]


@pytest.mark.parametrize(
    "params",
    [{"a": jnp.ones(2), "b": jnp.ones(2), "c": jnp.ones(1)}, jnp.ones(3)],
    ids=["three-entries", "one-array"],
)
@pytest.mark.parametrize("row", CHAINS, ids=repr)
def test_a_ready_made_optimizer_refuses_params_of_any_shape_as_its_state(row, params):
    """Params with as many top-level entries as the chain has parts reach the parts (the
    test above); any other count would meet optax.chain's "number of updates and states"."""
    opt = row.make()
    opt.init(params)
    with pytest.raises(TypeError, match="the second argument of update is the optimizer state"):
        opt.update(params, params)
