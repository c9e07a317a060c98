"""The invariant battery catches planted bugs, passes correct transformations, says what broke.

Each planted bug is a small transformation written here; each test checks that the
invariant that should catch it fails with its name (and the step and leaf), and
:func:`check_transformation` lists it. A bug only a formula can reveal (momentum dropped)
is caught by :func:`assert_trajectories_close` against optax. Then correct transformations
pass (integer leaves too), extra arguments and gradient sequences reach ``update``, and a
missing ``extra_args`` is reported once. The arguments' checks are in ``test_testing_api``.
"""

import random
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import io_callback

import momentum_optax as mo
from momentum_optax import testing
from momentum_optax.testing import invariants

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)}
BF16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), PARAMS)


class Buffer(NamedTuple):
    """The state of the planted transformations."""

    trace: optax.Params


def _heavy_ball(update_leaf, init=None):
    """A transformation whose state is ``Buffer(trace)`` and whose leaf rule is
    ``update_leaf(g, m, count) -> (u, new_m)``; ``init`` makes the buffer."""
    init = init or (lambda params: Buffer(optax.tree.zeros_like(params)))

    def update_fn(updates, state, params=None):
        del params
        pairs = jax.tree.map(lambda g, m: update_leaf(g, m), updates, state.trace)
        outer = jax.tree.structure(updates)
        u, m = jax.tree.transpose(outer, jax.tree.structure((0, 0)), pairs)
        return u, Buffer(m)

    return optax.GradientTransformation(init, update_fn)


def _raises(name, check, *args, **kwargs):
    """The message of the ``AssertionError`` ``check`` raises, which must start with ``name``."""
    with pytest.raises(AssertionError) as info:
        check(*args, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    return message


def _battery_message(tx, params, **kwargs):
    with pytest.raises(AssertionError) as info:
        testing.check_transformation(tx, params, **kwargs)
    return str(info.value)


# --- planted bugs, each caught by the invariant made for it ---


@pytest.mark.slow
def test_a_state_whose_dtype_drifts_breaks_state_is_stable_and_compiles_once():
    # the bfloat16 buffer comes back float32 (computed in float32, never cast back)
    def leaf(g, m):
        new = g.astype(jnp.float32) + 0.9 * m.astype(jnp.float32)
        return new.astype(g.dtype), new

    tx = _heavy_ball(leaf)
    message = _raises("state_is_stable", invariants.state_is_stable, tx, BF16)
    assert "step 0, state.trace['b'] is float32[3], but tx.init(params) is bfloat16[3]" in message
    message = _raises("compiles_once", invariants.compiles_once, tx, BF16)
    assert "traced 2 times over 6 steps, again at step 1" in message
    battery = _battery_message(tx, BF16)
    assert "- state_is_stable: step 0" in battery and "- compiles_once: " in battery
    # scan needs a carry of fixed dtypes
    assert "- scan_equals_loop: raised TypeError: scan body function carry" in battery


def test_a_state_whose_structure_changes_after_a_step_breaks_state_is_stable():
    class Counted(NamedTuple):
        trace: optax.Params
        count: jax.Array | None

    def init_fn(params):
        return Counted(optax.tree.zeros_like(params), None)

    def update_fn(updates, state, params=None):
        trace = jax.tree.map(lambda g, m: g + 0.9 * m, updates, state.trace)
        return trace, Counted(trace, jnp.zeros([], jnp.int32))  # a count appears

    tx = optax.GradientTransformation(init_fn, update_fn)
    message = _raises("state_is_stable", invariants.state_is_stable, tx, PARAMS)
    assert "step 0, state: the structure differs from tx.init(params) (unexpected .count)" in (
        message
    )
    assert "state_is_stable" in _battery_message(tx, PARAMS)


def test_a_python_side_effect_breaks_jit_equals_eager():
    calls = [0]  # a counter in a closure: once under jit, at every eager step

    def update_fn(updates, state, params=None):
        calls[0] += 1
        return jax.tree.map(lambda g: g * calls[0], updates), state

    tx = optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)
    message = _raises("jit_equals_eager", invariants.jit_equals_eager, tx, PARAMS)
    # traced at the first call (factor 1 forever); eager steps then multiply by 2, 3, ...
    assert re.search(r"step 0, updates\['b'\]: jit and eager differ by", message), message
    # the scanned body and the chain are traced on their own, with the counter further on
    message = _raises("scan_equals_loop", invariants.scan_equals_loop, tx, PARAMS)
    assert "step 0, updates['b']: scan and loop differ by" in message
    message = _raises("works_in_chain", invariants.works_in_chain, tx, PARAMS)
    assert "step 0, updates['b']: in optax.chain(optax.clip(100.0), tx, " in message
    invariants.state_is_stable(tx, PARAMS)  # nothing else is wrong with it
    invariants.compiles_once(tx, PARAMS)


def test_python_randomness_breaks_jit_equals_eager():
    rng = random.Random(0)  # drawn when update runs in Python: once under jit, each eager step

    def update_fn(updates, state, params=None):
        return jax.tree.map(lambda g: g * rng.random(), updates), state

    tx = optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)
    message = _raises("jit_equals_eager", invariants.jit_equals_eager, tx, PARAMS)
    assert re.search(r"step 0, updates\['b'\]: jit and eager differ by", message), message


def test_a_leaf_that_loses_its_weak_type_breaks_compiles_once_alone():
    # the scale starts weakly typed (a Python float) and comes back strongly typed: the same
    # dtype and shape, so state_is_stable holds, but the jitted step is traced again
    class Scale(NamedTuple):
        scale: jax.Array

    def update_fn(updates, state, params=None):
        scale = jnp.asarray(0.5 * state.scale, jnp.float32)
        return jax.tree.map(lambda g: g * scale, updates), Scale(scale)

    tx = optax.GradientTransformation(lambda p: Scale(jnp.asarray(1.0)), update_fn)
    assert tx.init(PARAMS).scale.weak_type
    message = _raises("compiles_once", invariants.compiles_once, tx, PARAMS)
    assert "traced 2 times over 6 steps, again at step 1" in message
    battery = _battery_message(tx, PARAMS)
    assert battery.startswith("check_transformation: 1 of 10 invariants broke:"), battery


def test_a_callback_that_reduces_over_the_batch_breaks_vmap_equals_loop():
    # updates divided by 1 + their largest entry in NumPy (finite at zero); the callback's
    # vmap_method hands it the whole batch, so under vmap the maximum is taken across members
    def normalise(g):
        return (g / (1 + np.max(np.abs(g)))).astype(g.dtype)

    def update_fn(updates, state, params=None):
        def leaf(g):
            shape = jax.ShapeDtypeStruct(g.shape, g.dtype)
            return jax.pure_callback(normalise, shape, g, vmap_method="expand_dims")

        return jax.tree.map(leaf, updates), state

    tx = optax.GradientTransformation(lambda p: optax.EmptyState(), update_fn)
    message = _raises("vmap_equals_loop", invariants.vmap_equals_loop, tx, PARAMS)
    assert re.search(r"batch member \d, step 0, updates\['b'\]: vmap and alone differ", message)
    names = invariants.NAMES[: invariants.NAMES.index("vmap_equals_loop")]
    testing.check_transformation(tx, PARAMS, only=names)  # the invariants before it hold


def test_nan_updates_break_finite_in_finite_out_at_their_step():
    class Count(NamedTuple):
        count: jax.Array

    def update_fn(updates, state, params=None):
        bad = state.count >= 3  # from the fourth step on
        u = jax.tree.map(lambda g: jnp.where(bad, jnp.nan, g), updates)
        return u, Count(optax.safe_increment(state.count))

    tx = optax.GradientTransformation(lambda p: Count(jnp.zeros([], jnp.int32)), update_fn)
    message = _raises("finite_in_finite_out", invariants.finite_in_finite_out, tx, PARAMS)
    assert "step 3 (finite gradients), updates['b'] is not finite: 3 of 3 entries" in message


def _leafwise(rule):
    """A stateless transformation whose updates are ``rule(g)``, leaf by leaf."""
    return optax.GradientTransformation(
        lambda params: optax.EmptyState(), lambda u, s, p=None: (jax.tree.map(rule, u), s)
    )


def _norm(g):
    return jnp.sqrt(jnp.sum(g * g))  # no rescaling: g * g under- and overflows


# each bug at the one scale that reveals it, with what the updates become there
SCALE_BUGS = {
    # x / ||x||: 0/0 on a zero gradient
    "normalised": (lambda g: g / _norm(g), "zero gradients (every entry 0)", "nan"),
    # guarded against exact zeros only: ||1e-30 z|| underflows to 0, and 1e-30 / 0 = inf
    "normalised_unless_zero": (
        lambda g: jnp.where(jnp.all(g == 0), 0.0, g / _norm(g)),
        "tiny gradients (standard normal times 1e-30 for float32)",
        "inf",
    ),
    # a smooth sign g |g| / (g^2 + eps): inf / inf at 1e30
    "smooth_sign": (
        lambda g: g * jnp.abs(g) / (g * g + 1e-12),
        "huge gradients (standard normal times 1e+30 for float32)",
        "nan",
    ),
}


@pytest.mark.parametrize("bug", SCALE_BUGS)
def test_a_rule_that_breaks_at_some_scale_breaks_handles_scale_alone(bug):
    rule, sequence, value = SCALE_BUGS[bug]
    tx = _leafwise(rule)
    message = _raises("handles_scale", invariants.handles_scale, tx, PARAMS)
    assert message.startswith(f"handles_scale: {sequence}, step 0, updates['b'] is not finite: ")
    assert f"the first {value} at index (0,)" in message
    # the standard normal gradients reveal nothing: every other invariant holds
    battery = _battery_message(tx, PARAMS)
    assert battery.startswith("check_transformation: 1 of 10 invariants broke:\n- handles_scale")


def test_updates_of_another_shape_or_structure_break_updates_match_gradients():
    flat = optax.GradientTransformation(
        lambda p: optax.EmptyState(), lambda u, s, p=None: (jax.tree.map(jnp.ravel, u), s)
    )
    message = _raises("updates_match_gradients", invariants.updates_match_gradients, flat, PARAMS)
    assert "step 0, updates['w'] is float32[6], but the gradient is float32[2, 3]" in message
    as_list = optax.GradientTransformation(
        lambda p: optax.EmptyState(), lambda u, s, p=None: (jax.tree.leaves(u), s)
    )
    message = _raises(
        "updates_match_gradients", invariants.updates_match_gradients, as_list, PARAMS
    )
    assert "step 0, updates: the structure differs from the gradient (missing ['b'], ['w']" in (
        message
    )


def test_float32_updates_for_bfloat16_parameters_break_strict_promotion():
    # a float32 buffer and float32 updates, whatever the parameters' dtype: fine under
    # standard promotion (apply_updates casts back), refused under strict promotion
    def init_fn(params):
        return Buffer(optax.tree.zeros_like(params, dtype=jnp.float32))

    tx = _heavy_ball(lambda g, m: (g.astype(jnp.float32) + 0.9 * m,) * 2, init=init_fn)
    message = _raises("strict_promotion", invariants.strict_promotion, tx, PARAMS)
    assert (
        "with bfloat16 parameters, step 0, optax.apply_updates(params, updates) raised "
        "TypePromotionError: updates['b'] is float32, but params['b'] is bfloat16."
    ) in message
    assert testing.check_transformation(tx, BF16) == invariants.DEFAULT  # opt-in: not checked
    battery = _battery_message(tx, BF16, only=invariants.NAMES)
    assert battery.startswith("check_transformation: 1 of 11 invariants broke:"), battery


def test_a_float32_constant_times_one_bfloat16_leaf_breaks_strict_promotion_naming_it():
    # only the bfloat16 leaf fails: the message names the first leaf whose dtype alone fails
    def update_fn(updates, state, params=None):
        return {"b": updates["b"] * jnp.float32(2.0), "w": 2 * updates["w"]}, state

    tx = optax.GradientTransformation(lambda p: optax.EmptyState(), update_fn)
    message = _raises("strict_promotion", invariants.strict_promotion, tx, PARAMS)
    assert "with bfloat16 parameters, step 0, tx.update raised TypePromotionError: " in message
    assert f"(raised at {__file__}:" in message
    assert message.endswith("the first leaf whose bfloat16 alone fails: params['b']."), message


@pytest.mark.slow
def test_a_weakly_typed_state_breaks_checkpoint_continues():
    # a scale made from a Python float is weakly typed: bfloat16 * scale stays bfloat16; the
    # restored checkpoint holds a strong float32, which promotes the updates to float32
    class Scale(NamedTuple):
        scale: jax.Array

    def update_fn(updates, state, params=None):
        return jax.tree.map(lambda g: g * state.scale, updates), Scale(state.scale * 1.0)

    tx = optax.GradientTransformation(lambda p: Scale(jnp.asarray(1.0)), update_fn)
    message = _raises("checkpoint_continues", invariants.checkpoint_continues, tx, BF16)
    assert "step 3 (resumed after step 2), updates['b'] is float32[3], but the uninterrupted" in (
        message
    )
    assert "weakly typed in the saved state, not once restored: ['.scale']" in message
    battery = _battery_message(tx, BF16)
    assert battery.startswith("check_transformation: 1 of 10 invariants broke:"), battery


def test_state_kept_on_the_host_breaks_checkpoint_continues():
    # a step counter kept in Python (read through a callback), not in the state: a restored
    # checkpoint cannot bring it back, so the resumed run scales by other counts
    host = {"count": 0}

    def tick():
        host["count"] += 1
        return np.float32(host["count"])

    def update_fn(updates, state, params=None):
        count = io_callback(tick, jax.ShapeDtypeStruct((), jnp.float32), ordered=True)
        return jax.tree.map(lambda g: g / count, updates), state

    tx = optax.GradientTransformation(lambda p: optax.EmptyState(), update_fn)
    message = _raises("checkpoint_continues", invariants.checkpoint_continues, tx, PARAMS)
    assert "step 3 (resumed after step 2), updates['b'] is not bit-identical: resumed" in message
    invariants.state_is_stable(tx, PARAMS)  # the state itself is fine


# --- bugs that no property reveals: a formula's oracle does ---


def test_momentum_dropped_passes_the_battery_but_not_the_comparison_with_optax_trace():
    # "heavy ball" that keeps its buffer but never reads it: u_t = g_t, every property holds
    def update_fn(updates, state, params=None):
        trace = jax.tree.map(lambda g, m: g + 0.0 * m, updates, state.trace)
        return updates, optax.TraceState(trace=trace)

    tx = optax.GradientTransformation(
        lambda p: optax.TraceState(trace=optax.tree.zeros_like(p)), update_fn
    )
    assert testing.check_transformation(tx, PARAMS) == invariants.DEFAULT
    with pytest.raises(AssertionError) as info:
        testing.assert_trajectories_close(tx, optax.trace(0.9), PARAMS)
    # step 0 is g_0 for any momentum; step 1 differs by 0.9 g_0
    assert str(info.value).startswith(
        "assert_trajectories_close: step 1, updates['b']: tx_a and tx_b differ by "
    ), info.value


# --- correct transformations pass ---


@pytest.mark.parametrize(
    "make",
    [
        lambda: optax.trace(0.9),
        lambda: mo.trace(0.9, nesterov=True),
        lambda: mo.sgd(0.1, 0.9),
        lambda: mo.ema(optax.linear_schedule(0.5, 0.9, 4), debias=True),
    ],
    ids=["optax.trace", "mo.trace_nesterov", "mo.sgd", "mo.ema_scheduled"],
)
@pytest.mark.slow
@pytest.mark.parametrize("params", [PARAMS, BF16], ids=["float32", "bfloat16"])
def test_correct_transformations_pass_every_invariant(make, params):
    names = testing.check_transformation(make(), params, only=invariants.NAMES)
    assert names == invariants.NAMES


# an integer leaf beside a float one: its gradients are zeros, and optax.scale (the chain's
# learning rate) promotes its updates to float32
WITH_INT = {"w": PARAMS["w"], "i": jnp.arange(3, dtype=jnp.int32)}


@pytest.mark.slow
@pytest.mark.parametrize(
    "make",
    [optax.identity, lambda: mo.trace(0.9), lambda: mo.sgd(0.1, 0.9)],
    ids=["optax.identity", "mo.trace", "mo.sgd"],
)
def test_integer_leaves_pass_every_invariant(make):
    names = testing.check_transformation(make(), WITH_INT, only=invariants.NAMES)
    assert names == invariants.NAMES


@pytest.mark.slow
def test_optax_trace_passes_works_in_chain_with_an_integer_leaf_but_drifts_its_buffer():
    # works_in_chain holds; what breaks is real: optax.trace computes g + 0.9 m for the
    # int32 buffer in float32 and keeps it, so the state changes dtype after step 0
    invariants.works_in_chain(optax.trace(0.9), WITH_INT)
    battery = _battery_message(optax.trace(0.9), WITH_INT)
    assert "- state_is_stable: step 0, state.trace['i'] is float32[3], but tx.init(params) " in (
        battery
    )
    assert "works_in_chain" not in battery
