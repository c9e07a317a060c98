"""Stock optax passes the default battery: no false alarms on optax's own transformations.

Each was a false alarm once: a typed PRNG key in the state (``optax.add_noise``) that NumPy
could not compare nor flax serialize; ``optax.lookahead``, whose parameters are an
``optax.LookaheadParams`` and whose gradients are its fast half's; strict promotion, which
``optax.adam``, ``optax.adamw`` and ``optax.MultiSteps`` fail themselves (now opt-in, and
its error says so). ``optax.lion`` and ``optax.contrib.schedule_free_sgd`` keep the new
``handles_scale`` invariant honest.
"""

import jax
import jax.numpy as jnp
import optax
import pytest

from momentum_optax import testing
from momentum_optax.testing import invariants

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)}
SYNCED = optax.LookaheadParams.init_synced(PARAMS)  # lookahead's parameters, as documented

STOCK = {
    "adam": (lambda: optax.adam(1e-3), PARAMS),
    "adamw": (lambda: optax.adamw(1e-3, weight_decay=1e-2), PARAMS),
    "lion": (lambda: optax.lion(1e-3), PARAMS),
    "add_noise": (lambda: optax.add_noise(0.1, 0.55, key=jax.random.key(0)), PARAMS),
    "lookahead": (
        lambda: optax.lookahead(optax.sgd(0.1), sync_period=3, slow_step_size=0.5),
        SYNCED,
    ),
    "schedule_free_sgd": (lambda: optax.contrib.schedule_free_sgd(0.1), PARAMS),
    "multi_steps": (
        lambda: optax.MultiSteps(optax.sgd(0.1, 0.9), every_k_schedule=2).gradient_transformation(),
        PARAMS,
    ),
}


@pytest.mark.parametrize("name", STOCK)
def test_stock_optax_passes_the_default_battery(name):
    make, params = STOCK[name]
    assert testing.check_transformation(make(), params) == invariants.DEFAULT


def test_a_typed_prng_key_in_the_state_is_compared_and_checkpointed_through_its_key_data():
    tx = optax.add_noise(0.1, 0.55, key=jax.random.key(0))
    assert jax.dtypes.issubdtype(tx.init(PARAMS).rng_key.dtype, jax.dtypes.prng_key)
    invariants.checkpoint_continues(tx, PARAMS)  # flax cannot serialize the key itself
    # a key drawn from a Python counter: once under jit, anew at each eager step, so the
    # eager state's key differs from the jitted one (and the updates do not show it)
    drawn = [0]

    def update_fn(updates, state, params=None):
        drawn[0] += 1
        return updates, state._replace(rng_key=jax.random.key(drawn[0]))

    keyed = optax.GradientTransformation(tx.init, update_fn)
    with pytest.raises(AssertionError) as info:
        invariants.jit_equals_eager(keyed, PARAMS)
    assert str(info.value).startswith(
        "jit_equals_eager: step 0, state.rng_key: jit [0 1] differs from eager [0 2]."
    ), info.value


def test_lookahead_given_plain_params_is_told_once_to_pass_lookahead_params():
    tx = optax.lookahead(optax.sgd(0.1), sync_period=3, slow_step_size=0.5)
    with pytest.raises(AssertionError) as info:
        testing.check_transformation(tx, PARAMS)
    message = str(info.value)
    assert message.startswith(
        "check_transformation: no invariant could be checked: the jitted run every invariant "
        "shares failed: tx.update raised AttributeError at step 0 (under jax.jit): "
    ), message
    assert message.endswith(
        "(optax.lookahead takes params = optax.LookaheadParams.init_synced(params))"
    ), message


def test_lookahead_gradients_are_shaped_like_the_fast_params_and_its_updates_like_both():
    grads = testing.gradient_sequence(SYNCED, 2, seed=0)
    assert jax.tree.structure(grads[0]) == jax.tree.structure(PARAMS)
    tx = optax.lookahead(optax.sgd(0.1), sync_period=3, slow_step_size=0.5)
    invariants.updates_match_gradients(tx, SYNCED)
    # updates of the fast half alone do not fit the parameters: they are reported
    fast_only = optax.GradientTransformation(
        tx.init, lambda u, s, p=None: (tx.update(u, s, p)[0].fast, tx.update(u, s, p)[1])
    )
    with pytest.raises(AssertionError, match=r"step 0, updates: the structure differs from params"):
        invariants.updates_match_gradients(fast_only, SYNCED)


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("adam", "optax/tree_utils/_tree_math.py"),
        ("adamw", "optax/tree_utils/_tree_math.py"),
        ("multi_steps", "optax/transforms/_accumulation.py"),
    ],
)
def test_strict_promotion_is_opt_in_and_says_optax_itself_fails_it(name, where):
    assert "strict_promotion" not in invariants.DEFAULT
    make, params = STOCK[name]
    with pytest.raises(AssertionError) as info:
        invariants.strict_promotion(make(), params)
    message = str(info.value)
    assert message.startswith(
        "strict_promotion: under jax.numpy_dtype_promotion('strict'), with the given "
        "parameters, step 0, tx.update raised TypePromotionError: "
    ), message
    assert f"(raised inside optax, at {where}:" in message
    assert "optax itself fails here under strict promotion" in message
    assert message.endswith("it fails with every parameter dtype tried, not for one leaf's dtype.")
