"""The invariant battery catches planted bugs, passes correct transformations, says what broke.

Each planted bug is a small transformation written here; each test checks that the
invariant that should catch it fails with its name (and the step and leaf), and
:func:`check_transformation` lists it. Then correct transformations pass (integer leaves
too), extra arguments reach ``update``, and bad arguments are refused by name.
"""

import re
from typing import NamedTuple

import chex
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


def test_a_callback_that_reduces_over_the_batch_breaks_vmap_equals_loop():
    # updates normalised by their largest entry in NumPy; the callback's vmap_method hands it
    # the whole batch, so under vmap the maximum is taken across the batch members
    def normalise(g):
        return (g / np.max(np.abs(g))).astype(g.dtype)

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
    assert "with bfloat16 parameters, step 0 raised TypePromotionError" in message
    testing.check_transformation(tx, BF16, skip=("strict_promotion",))  # nothing else


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


def test_an_exception_inside_update_fails_the_invariant_with_its_type():
    tx = mo.adaptive_restart(mo.trace(0.9), scheme="function")  # needs value=
    message = _raises("jit_equals_eager", invariants.jit_equals_eager, tx, PARAMS)
    assert "raised TypeError: adaptive_restart(scheme='function') needs the loss" in message


# --- correct transformations pass, extra arguments reach update ---


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
    assert testing.check_transformation(make(), params) == invariants.NAMES


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
    assert testing.check_transformation(make(), WITH_INT) == invariants.NAMES


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


def _loss(params):
    return sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(params))


@pytest.mark.slow
def test_extra_args_reach_update_as_a_callable_of_the_params_and_step_or_as_a_mapping():
    tx = mo.adaptive_restart(mo.trace(0.9), scheme="function")
    testing.check_transformation(
        tx, PARAMS, extra_args=lambda params, step: {"value": _loss(params)}
    )

    def update_fn(updates, state, params=None, *, value):
        return jax.tree.map(lambda g: g * value, updates), state

    scaled = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update_fn)
    # a mapping is passed as is at every step: value=2 makes it optax.scale(2), 3 does not
    testing.assert_trajectories_close(
        scaled, optax.scale(2.0), PARAMS, steps=3, extra_args={"value": 2.0}
    )
    with pytest.raises(AssertionError, match=r"step 0, updates.*tx_a and tx_b differ"):
        testing.assert_trajectories_close(
            scaled, optax.scale(2.0), PARAMS, steps=3, extra_args={"value": 3.0}
        )
    # a transformation whose update takes no extra arguments is given none (as in optax.chain)
    testing.check_transformation(optax.trace(0.9), PARAMS, extra_args={"value": 1.0})


def test_the_callable_sees_the_current_params_and_the_step():
    seen = []

    def extra(params, step):
        if not isinstance(step, jax.core.Tracer):  # the eager run's calls
            seen.append((int(step), params))
        return {}

    invariants.jit_equals_eager(optax.sgd(0.1), PARAMS, steps=3, extra_args=extra)
    assert [t for t, _ in seen] == [0, 1, 2]
    grads = testing.gradient_sequence(PARAMS, 3, seed=0)
    chex.assert_trees_all_equal(seen[0][1], PARAMS)
    # the parameters after one step of sgd: theta - 0.1 g_0
    want = jax.tree.map(lambda p, g: p - 0.1 * g, PARAMS, grads[0])
    chex.assert_trees_all_close(seen[1][1], want, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tx": "trace"}, TypeError, "tx must be an optax.GradientTransformation; got 'trace'"),
        ({"steps": 1}, ValueError, "steps must be an integer >= 2; got 1"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0; got -1"),
        ({"rtol": -1e-3}, ValueError, "rtol must be None or a float >= 0; got -0.001"),
        ({"extra_args": 3}, TypeError, "extra_args must be None, a mapping .* got 3 of type int"),
        ({"only": ("jit",)}, ValueError, r"only names unknown invariants \['jit'\]"),
        ({"skip": "nope"}, ValueError, r"skip names unknown invariants \['nope'\]"),
        ({"params": {}}, ValueError, "params must be a pytree with at least one array leaf"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, error, match):
    arguments = {"tx": optax.trace(0.9), "params": PARAMS, **kwargs}
    with pytest.raises(error, match=match):
        testing.check_transformation(arguments.pop("tx"), arguments.pop("params"), **arguments)


def test_only_and_skip_select_invariants_and_a_battery_shares_its_run():
    assert testing.check_transformation(optax.trace(0.9), PARAMS, only="scan_equals_loop") == (
        "scan_equals_loop",
    )
    names = testing.check_transformation(optax.trace(0.9), PARAMS, skip=invariants.NAMES[1:])
    assert names == invariants.NAMES[:1]
    calls = [0]

    def update_fn(updates, state, params=None):
        calls[0] += 1  # counts traces of the jitted run (and eager steps)
        return updates, state

    battery = testing.Battery(optax.GradientTransformation(lambda p: (), update_fn), PARAMS)
    for name in ("updates_match_gradients", "state_is_stable", "compiles_once"):
        battery.check(name)
    assert calls[0] == 1  # one jitted run, traced once, for the three
    with pytest.raises(ValueError, match="name names unknown invariants"):
        battery.check("nope")
