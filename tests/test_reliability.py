"""No silent failure: dtypes, counters, non-finite gradients, checkpoints, JAX transforms.

Table-driven over ``helpers.ALL_TRANSFORMS``: a new transformation is covered by a new row.
"""

import itertools
import json
import os
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import serialization

import momentum_optax as mo
from experiments import reliability
from momentum_optax.restarts import PeriodicResetState
from tests import helpers

ROWS = helpers.ALL_TRANSFORMS
INT32_MAX = np.iinfo(np.int32).max
PARAMS = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}


def _grads(seed, like=PARAMS, dtype=None):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), dtype or p.dtype), like)


# --- low precision -------------------------------------------------------------------------

LOW = [jnp.float32, jnp.bfloat16, jnp.float16]
MATRIX = [
    (row, params, buffer, grads)
    for row in ROWS
    for params, buffer, grads in itertools.product(LOW, [None, jnp.float32], ["same", "f32"])
    if buffer is None or row.buffer
]


@pytest.mark.parametrize(
    "row,param_dtype,buffer_dtype,grad_dtype", MATRIX, ids=lambda x: getattr(x, "__name__", str(x))
)
def test_dtypes_are_stable_and_documented(row, param_dtype, buffer_dtype, grad_dtype):
    """State dtypes never change; updates are promote(gradient, buffer); params keep theirs."""
    opt = helpers.build(row, buffer_dtype)
    params = jax.tree.map(lambda p: p.astype(param_dtype), PARAMS)
    g_dtype = param_dtype if grad_dtype == "same" else jnp.float32
    state0 = opt.init(params)
    state, update = state0, jax.jit(opt.update)
    # the documented rule: updates come out in promote(gradient dtype, buffer dtype)
    buffer = buffer_dtype or param_dtype
    expected = jnp.promote_types(g_dtype, buffer) if jax.tree.leaves(state0) else g_dtype
    for seed in range(4):
        updates, state = update(_grads(seed, params, g_dtype), state, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(state, state0)
        assert {u.dtype for u in jax.tree.leaves(updates)} == {jnp.dtype(expected)}
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
    np_dtype = ml_dtypes.bfloat16 if dtype == jnp.bfloat16 else np.float16
    ulp = float(ml_dtypes.finfo(np_dtype).eps)
    state = opt.init(jnp.zeros(64, dtype))
    rng = np.random.default_rng(0)
    for _ in range(20):
        previous = np.asarray(jax.tree.leaves(state)[0]).astype(np.float32)
        g = rng.standard_normal(64).astype(np_dtype)
        updates, state = jax.jit(opt.update)(jnp.asarray(g), state)
        want = formula(g.astype(np.float32), previous, 0.999).astype(np_dtype)
        got = np.asarray(jax.tree.leaves(state)[0])
        np.testing.assert_allclose(
            got.astype(np.float32), want.astype(np.float32), rtol=ulp, atol=0
        )
        np.testing.assert_array_equal(np.asarray(updates), got)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("row", ROWS, ids=repr)
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
        grads = _grads(seed, params, dtype)
        want_updates, want_state = update(high(grads), high(state), high(params))
        updates, state = update(grads, state, params)
        # an optimizer's updates pass two stages (momentum, then learning rate), each
        # rounding once to the updates' dtype (and adaptive_restart keeps such an update)
        stages = 2 if row.optimizer else 1
        _assert_rounded_once(state, want_state, dtype, stages)
        _assert_rounded_once(updates, want_updates, dtype, stages)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize(
    "make",
    [
        lambda lr: mo.sgd(lr),
        lambda lr: mo.torch_sgd(lr),
        lambda lr: mo.sgd(optax.constant_schedule(lr)),
    ],
    ids=["sgd", "torch_sgd", "sgd_scheduled_lr"],
)
def test_learning_rate_is_applied_in_float32_and_rounded_once(make, dtype):
    # optax.scale_by_learning_rate multiplies in the updates' dtype (0.3 rounded to bfloat16
    # is 0.30078125, then the product is rounded again); the library's optimizers do not
    opt = make(0.3)
    grads = {"w": jnp.linspace(-3.0, 3.0, 512).astype(dtype)}
    updates, _ = opt.update(grads, opt.init(grads), grads)
    want = jax.tree.map(lambda g: -0.3 * g.astype(jnp.float32), grads)
    _assert_rounded_once(updates, want, dtype)
    theirs, _ = optax.sgd(0.3).update(grads, optax.sgd(0.3).init(grads))
    with pytest.raises(AssertionError):
        _assert_rounded_once(theirs, want, dtype)


def _assert_rounded_once(got, want_float32, dtype, stages=1):
    """``got`` is ``want_float32`` rounded once to ``dtype``: at most one unit in the last
    place anywhere (the two programs may contract a multiply-add differently), and on
    almost every element exactly. Arithmetic done in ``dtype`` itself rounds several times
    and misses on a large share of the elements (a rounded 0.9 is 0.898 in bfloat16)."""
    eps = float(ml_dtypes.finfo(dtype).eps)
    got = np.concatenate(
        [np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(got)] + [np.zeros(0)]
    )
    want = np.concatenate(
        [
            np.asarray(jnp.asarray(x).astype(dtype), np.float64).ravel()
            for x in jax.tree.leaves(want_float32)
        ]
        + [np.zeros(0)]
    )
    tiny = float(ml_dtypes.finfo(dtype).tiny)
    diff = np.abs(got - want)
    assert np.all(diff <= stages * eps * np.maximum(np.abs(want), tiny)), np.max(diff)
    if stages == 1 and diff.size:
        assert np.mean(diff > 0) <= 0.02, np.mean(diff > 0)


def test_bfloat16_params_with_float32_buffer_match_float64():
    errors = reliability.precision_errors(n=256, ema_steps=5000, trace_steps=1000)
    ours_ema = errors["momentum_optax ema(0.999) x5000, float32 buffer"]
    ours_trace = errors["momentum_optax trace(0.99) x1000, float32 buffer"]
    assert ours_ema < 1e-4 and ours_trace < 1e-5, errors
    # optax rounds (1 - b) * g to bfloat16 before adding to a float32 buffer
    assert errors["optax ema(0.999) x5000, float32 buffer"] > 10 * ours_ema, errors
    # with bfloat16 buffers, a float32 coefficient still beats 0.99 rounded to bfloat16
    assert (
        errors["momentum_optax trace(0.99) x1000, bfloat16 buffer"]
        < 0.2 * errors["optax trace(0.99) x1000, bfloat16 buffer"]
    ), errors


# --- counters ------------------------------------------------------------------------------

# a scheduled transformation and its twin with the schedule's final value as a constant
SATURATING = [
    (
        lambda: mo.trace(helpers.ramp(0.5, 0.9, 20), nesterov=True),
        lambda: mo.trace(0.9, nesterov=True),
    ),
    (lambda: mo.ema(helpers.ramp(0.5, 0.9, 20), debias=True), lambda: mo.ema(0.9, debias=True)),
    (
        lambda: mo.delta_momentum(mo.schedules.linear_to_one(0.2, 20)),
        lambda: mo.delta_momentum(1.0),
    ),
    (
        lambda: mo.sgd(optax.linear_schedule(0.5, 0.1, 20), mo.schedules.anneal(0.5, 0.9, steps=20)),
        lambda: mo.sgd(0.1, 0.9),
    ),
]


@pytest.mark.parametrize("scheduled,constant", SATURATING, ids=["trace", "ema", "delta", "sgd"])
def test_counts_saturate_and_schedules_stay_at_their_final_value(scheduled, constant):
    opt, twin = scheduled(), constant()
    state = optax.tree.set(opt.init(PARAMS), count=jnp.int32(INT32_MAX - 2))
    twin_state = twin.init(PARAMS)
    update, twin_update = jax.jit(opt.update), jax.jit(twin.update)
    for seed in range(10):
        grads = _grads(seed)
        updates, state = update(grads, state, PARAMS)
        twin_updates, twin_state = twin_update(grads, twin_state, PARAMS)
        chex.assert_trees_all_close(updates, twin_updates, rtol=1e-6, atol=1e-6)
    counts = optax.tree.get_all_with_path(state, "count")
    assert counts and all(int(c) == INT32_MAX for _, c in counts)


def test_reset_period_keeps_working_past_the_int32_range():
    # the phase wraps at `every` and never overflows; a saturated inner count is reset
    opt = mo.periodic_reset(mo.trace(helpers.ramp(0.0, 0.9, 5)), every=3)
    state = opt.init(PARAMS)
    state = PeriodicResetState(
        state.inner_state._replace(count=jnp.int32(INT32_MAX - 1)), phase=jnp.int32(1)
    )
    phases, counts = [], []
    for seed in range(10):
        _, state = jax.jit(opt.update)(_grads(seed), state)
        phases.append(int(state.phase))
        counts.append(int(state.inner_state.count))
    assert phases == [2, 0, 1] * 3 + [2]
    # saturated at the maximum, then reset before each step that starts a period
    assert counts == [INT32_MAX, INT32_MAX, 1, 2, 3, 1, 2, 3, 1, 2]


# --- non-finite gradients ------------------------------------------------------------------


def _with_nan_at(step, n=8):
    grads = [_grads(seed) for seed in range(n)]
    grads[step] = jax.tree.map(lambda g: g.at[0].set(jnp.nan), grads[step])
    return grads


def test_one_nan_gradient_poisons_unprotected_momentum_for_good():
    updates, state = helpers.run_updates(mo.sgd(0.1, 0.9), _with_nan_at(2), PARAMS, jit=True)
    assert all(not np.all(np.isfinite(u["w"])) for u in updates[2:])


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_apply_if_finite_skips_the_bad_step_and_momentum_recovers(row):
    grads = _with_nan_at(2)
    guarded = optax.apply_if_finite(row.make(), max_consecutive_errors=3)
    updates, state = helpers.run_updates(guarded, grads, PARAMS, jit=True)
    clean, _ = helpers.run_updates(row.make(), grads[:2] + grads[3:], PARAMS, jit=True)
    chex.assert_trees_all_equal(updates[2], jax.tree.map(jnp.zeros_like, updates[2]))
    chex.assert_trees_all_close(updates[:2] + updates[3:], clean, rtol=1e-6, atol=1e-7)
    assert int(state.total_notfinite) == 1


# --- checkpoints ---------------------------------------------------------------------------


def _train(opt, state, params, seeds):
    step = jax.jit(lambda p, s, g: opt.update(g, s, p))
    for seed in seeds:
        updates, state = step(params, state, _grads(seed))
        params = optax.apply_updates(params, updates)
    return params, state


def _flax_roundtrip(state, target, _):
    return serialization.from_bytes(target, serialization.to_bytes(state))


def _orbax_roundtrip(state, target, directory):
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory / "state", state)
        checkpointer.wait_until_finished()
        return checkpointer.restore(directory / "state", target)


@pytest.mark.parametrize("roundtrip", [_flax_roundtrip, _orbax_roundtrip], ids=["flax", "orbax"])
@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_checkpoint_resume_is_bit_identical(row, roundtrip, tmp_path):
    opt = row.make()
    params, state = _train(opt, opt.init(PARAMS), PARAMS, range(7))
    restored = mo.check_restored(roundtrip(state, opt.init(PARAMS), tmp_path), opt.init(PARAMS))
    resumed = _train(opt, restored, params, range(7, 17))
    uninterrupted = _train(opt, state, params, range(7, 17))
    chex.assert_trees_all_equal(resumed, uninterrupted)


def test_restoring_into_another_transformation_or_shape_raises(tmp_path):
    opt = mo.sgd(0.1, 0.9, nesterov=True)
    state = opt.init(PARAMS)
    other_kind = mo.sgd(0.1, 0.9, ema=True, reset_every=3).init(PARAMS)
    other_shape = opt.init({"w": jnp.ones((5, 3)), "b": jnp.zeros(3)})
    with pytest.raises(ValueError, match="field names"):
        _flax_roundtrip(state, other_kind, tmp_path)
    with pytest.raises(ValueError, match="tree structures do not match"):
        _orbax_roundtrip(state, other_kind, tmp_path / "kind")
    with pytest.raises(ValueError, match=r"not compatible with the stored shape"):
        _orbax_roundtrip(state, other_shape, tmp_path / "shape")
    # flax restores any shape into the target's slots: check_restored catches it
    silently_restored = _flax_roundtrip(state, other_shape, tmp_path)
    with pytest.raises(ValueError, match=r"restored state.*\['w'\] has shape \(4, 3\).*\(5, 3\)"):
        mo.check_restored(silently_restored, other_shape)
    with pytest.raises(ValueError, match=r"dtype bfloat16.*dtype float32"):
        mo.check_restored(
            jax.tree.map(lambda x: x.astype(jnp.bfloat16) if x.dtype == jnp.float32 else x, state),
            state,
        )


# --- transforms of JAX ---------------------------------------------------------------------


def _loss(params):
    return sum(jnp.sum((p - 0.5) ** 2) for p in jax.tree.leaves(params))


def _run_steps(opt, params, steps=15):
    def body(carry, _):
        params, state = carry
        updates, state = opt.update(jax.grad(_loss)(params), state, params)
        return (optax.apply_updates(params, updates), state), None

    return jax.lax.scan(body, (params, opt.init(params)), length=steps)[0][0]


def test_vmap_over_momentum_values_equals_separate_runs():
    momenta = jnp.array([0.0, 0.5, 0.9, 0.99])
    for make in (
        lambda b: mo.sgd(0.05, b, nesterov=True),
        lambda b: optax.chain(mo.ema(b, debias=True), optax.scale_by_learning_rate(0.05)),
        lambda b: optax.chain(optax.scale_by_learning_rate(0.05), mo.delta_momentum(b)),
        lambda b: mo.sgd(0.05, b, reset_every=4),
    ):
        batched = jax.jit(jax.vmap(lambda b: _run_steps(make(b), PARAMS)))(momenta)
        for i, b in enumerate(momenta.tolist()):
            chex.assert_trees_all_close(
                jax.tree.map(lambda x: x[i], batched),
                _run_steps(make(b), PARAMS),
                rtol=1e-6,
                atol=1e-6,
            )


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_vmap_over_parameter_batches_equals_separate_runs(row):
    opt = row.make()
    if not row.optimizer:
        opt = optax.chain(opt, optax.scale_by_learning_rate(0.05))
    batch = jax.tree.map(lambda p: jnp.stack([p + i for i in range(3)]), PARAMS)
    batched = jax.jit(jax.vmap(lambda p: _run_steps(opt, p)))(batch)
    for i in range(3):
        single = _run_steps(opt, jax.tree.map(lambda p: p[i], batch))
        chex.assert_trees_all_close(
            jax.tree.map(lambda x: x[i], batched), single, rtol=1e-6, atol=1e-6
        )


def test_pmap_on_the_local_devices_equals_vmap():
    n = jax.local_device_count()
    opt = mo.sgd(0.05, 0.9, nesterov=True, reset_every=4)
    batch = jax.tree.map(lambda p: jnp.stack([p * (i + 1) for i in range(n)]), PARAMS)
    mapped = jax.pmap(lambda p: _run_steps(opt, p))(batch)
    vectorised = jax.vmap(lambda p: _run_steps(opt, p))(batch)
    chex.assert_trees_all_close(mapped, vectorised, rtol=1e-6, atol=1e-6)


def test_sharded_over_8_devices_agrees_with_one_device():
    # fake CPU devices need their own process: XLA reads the flag once, at start-up
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    root = pathlib.Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-m", "experiments.reliability", "sharding"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    report = json.loads(out.stdout)
    assert report["devices"] == 8
    for name, result in report["optimizers"].items():
        assert result["max_abs_difference"] < 1e-6, (name, result)
        assert result["state_follows_params"] and result["params_stay_sharded"], (name, result)
        assert result["loss_ratio"] < 0.9, (name, result)  # the runs made real progress
    assert report["pmap_vs_vmap_max_abs_difference"] < 1e-6
