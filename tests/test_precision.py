"""Low precision: dtypes that never change, and arithmetic in float32 rounded once.

Table-driven over ``helpers.ALL_TRANSFORMS``: a new transformation is covered by a new row.
"""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from experiments import reliability
from tests import helpers
from tests.helpers import PARAMS

ROWS = helpers.ALL_TRANSFORMS
LOW = [jnp.float32, jnp.bfloat16, jnp.float16]
MATRIX = [
    helpers.fast_or_slow(row, params, buffer, grads)
    for row in ROWS
    for params, buffer, grads in itertools.product(LOW, [None, jnp.float32], ["same", "f32"])
    if buffer is None or row.buffer
]


@pytest.mark.parametrize(
    "row,param_dtype,buffer_dtype,grad_dtype", MATRIX, ids=lambda x: getattr(x, "__name__", str(x))
)
def test_dtypes_are_stable_and_documented(row, param_dtype, buffer_dtype, grad_dtype):
    """State dtypes never change; updates keep the gradients' dtype; params keep theirs."""
    opt = helpers.build(row, buffer_dtype)
    params = jax.tree.map(lambda p: p.astype(param_dtype), PARAMS)
    g_dtype = param_dtype if grad_dtype == "same" else jnp.float32
    state0 = opt.init(params)
    state, update = state0, opt.update
    # the documented rule: updates come out in the gradients' dtype, whatever the buffer's
    expected = jax.tree.map(lambda _: jnp.dtype(g_dtype), params)
    for seed in range(4):
        updates, state = update(helpers.grads(seed, params, g_dtype), state, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(state, state0)
        assert jax.tree.map(lambda u: u.dtype, updates) == expected
        chex.assert_tree_all_finite(updates)
        new_params = optax.apply_updates(params, updates)
        chex.assert_trees_all_equal_shapes_and_dtypes(new_params, params)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize(
    "make,formula",
    [
        (lambda: mo.trace(0.999), lambda g, m, b: g + b * m),
        (lambda: mo.ema(0.999), lambda g, m, b: (1 - b) * g + b * m),
    ],
    ids=["trace", "ema"],
)
def test_coefficients_are_applied_in_float32_and_rounded_once(dtype, make, formula):
    # each step: upcast to float32, apply 0.999 in float32, round once to the buffer dtype
    # (in bfloat16, 0.999 itself would round to 1.0 and the buffer would never decay)
    opt = make()
    ulp = float(jnp.finfo(dtype).eps)
    state = opt.init(jnp.zeros(64, dtype))
    rng = np.random.default_rng(0)
    for _ in range(20):
        previous = np.asarray(jax.tree.leaves(state)[0]).astype(np.float32)
        g = rng.standard_normal(64).astype(dtype)
        updates, state = jax.jit(opt.update)(jnp.asarray(g), state)
        want = formula(g.astype(np.float32), previous, 0.999).astype(dtype)
        got = np.asarray(jax.tree.leaves(state)[0])
        np.testing.assert_allclose(
            got.astype(np.float32), want.astype(np.float32), rtol=ulp, atol=0
        )
        np.testing.assert_array_equal(np.asarray(updates), got)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize(
    "row", [helpers.fast_or_slow(row) for row in ROWS if not row.rounds_its_input], ids=repr
)
def test_every_step_is_float32_arithmetic_rounded_once(row, dtype):
    # one step on low-precision values == the same step in float32 from the same (exactly
    # representable) values, rounded once: a coefficient such as 0.999 is never applied in
    # bfloat16, and no intermediate result is rounded on the way
    opt = row.make()
    low = lambda tree: jax.tree.map(
        lambda x: x.astype(dtype) if x.dtype == jnp.float32 else x, tree
    )
    high = lambda tree: jax.tree.map(
        lambda x: x.astype(jnp.float32) if x.dtype == dtype else x, tree
    )
    params = low({"w": jnp.linspace(-2.0, 2.0, 256).reshape(16, 16), "b": jnp.ones(5)})
    state = opt.init(params)
    update = jax.jit(opt.update)
    for seed in range(6):
        grads = helpers.grads(seed, params, dtype)
        want_updates, want_state = update(high(grads), high(state), high(params))
        updates, state = update(grads, state, params)
        # an optimizer's updates pass two stages (momentum, then learning rate), each
        # rounding once to the updates' dtype (and adaptive_restart keeps such an update)
        stages = row.roundings or (2 if row.optimizer else 1)
        _assert_rounded_once(state, want_state, dtype, stages)
        _assert_rounded_once(updates, want_updates, dtype, stages)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize(
    "make",
    [
        lambda lr: mo.scale_by_learning_rate(lr),
        lambda lr: mo.sgd(lr),
        lambda lr: mo.torch_sgd(lr),
        lambda lr: mo.sgd(optax.constant_schedule(lr)),
    ],
    ids=["scale_by_learning_rate", "sgd", "torch_sgd", "sgd_scheduled_lr"],
)
def test_learning_rate_is_applied_in_float32_and_rounded_once(make, dtype):
    # -lr * g: the float32 product of float32(0.3) and g, rounded once to g's dtype
    opt = make(0.3)
    grads = {"w": jnp.linspace(-3.0, 3.0, 512).astype(dtype)}
    updates, _ = opt.update(grads, opt.init(grads), grads)
    want = (np.float32(-0.3) * np.asarray(grads["w"], np.float32)).astype(dtype)
    np.testing.assert_array_equal(np.asarray(updates["w"]), want)


def test_learning_rate_scaling_is_optaxs_bit_for_bit_in_float32():
    grads = {"w": jnp.linspace(-3.0, 3.0, 512), "b": jnp.asarray(helpers.random_steps(0, 1)[0])}
    for lr in (0.3, optax.linear_schedule(0.3, 0.01, 3)):
        ours, theirs = mo.scale_by_learning_rate(lr), optax.scale_by_learning_rate(lr)
        got, our_state = helpers.run_updates(ours, [grads] * 4, grads)
        want, their_state = helpers.run_updates(theirs, [grads] * 4, grads)
        chex.assert_trees_all_equal(got, want)
        chex.assert_trees_all_equal(our_state, their_state)  # the same state, too
    ascent, _ = mo.scale_by_learning_rate(0.3, flip_sign=False).update(grads, optax.EmptyState())
    chex.assert_trees_all_equal(ascent, jax.tree.map(lambda g: np.float32(0.3) * g, grads))


def _assert_rounded_once(got, want_float32, dtype, stages=1):
    """``got`` is ``want_float32`` rounded once to ``dtype`` per stage: at most one unit
    in the last place per stage anywhere (the two programs may contract a multiply-add
    differently), and with one stage exactly on almost every element. Arithmetic done in
    ``dtype`` itself rounds several times and misses on a large share of the elements
    (a rounded 0.9 is 0.898 in bfloat16)."""
    eps = float(jnp.finfo(dtype).eps)
    pairs = list(zip(jax.tree.leaves(got), jax.tree.leaves(want_float32)))
    # statistics a transformation keeps in float32 (YellowFin's norms, QHAdam's corrections)
    # are float32 arithmetic in both programs: equal up to the order of a reduction (and a
    # logarithm near 0, as YellowFin's window holds, is off by that order absolutely)
    for g, w in pairs:
        if jnp.result_type(g) == jnp.float32:
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-6)
    pairs = [(g, w) for g, w in pairs if jnp.result_type(g) != jnp.float32]
    got = np.concatenate([np.asarray(x, np.float64).ravel() for x, _ in pairs] + [np.zeros(0)])
    want = np.concatenate(
        [np.asarray(jnp.asarray(x).astype(dtype), np.float64).ravel() for _, x in pairs]
        + [np.zeros(0)]
    )
    tiny = float(jnp.finfo(dtype).tiny)
    diff = np.abs(got - want)
    assert np.all(diff <= stages * eps * np.maximum(np.abs(want), tiny)), np.max(diff)
    if stages == 1 and diff.size:
        assert np.mean(diff > 0) <= 0.02, np.mean(diff > 0)


def test_bfloat16_params_with_float32_buffer_match_float64():
    errors = reliability.precision_errors(n=256, ema_steps=5000, trace_steps=1000)
    ours_ema = errors["momentum_optax ema(0.999) x5000, float32 buffer"]
    ours_trace = errors["momentum_optax trace(0.99) x1000, float32 buffer"]
    assert ours_ema < 1e-4 and ours_trace < 1e-5, errors
    # a bfloat16 buffer rounds once a step, and its error stays far below what 0.99
    # rounded to bfloat16 would cost: the steady state g / (1 - b) off by this factor
    rounded = float(jnp.asarray(0.99, jnp.bfloat16))
    coefficient_error = abs((1 - 0.99) / (1 - rounded) - 1)
    assert coefficient_error > 0.1
    ours_bfloat16 = errors["momentum_optax trace(0.99) x1000, bfloat16 buffer"]
    assert ours_bfloat16 < 0.2 * coefficient_error, errors
