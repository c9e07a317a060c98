"""No silent failure: counters, non-finite gradients, checkpoints, JAX transforms.

Table-driven over ``helpers.ALL_TRANSFORMS``: a new transformation is covered by a new row.
"""

import functools
import json
import os
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import serialization

import momentum_optax as mo
from momentum_optax.restarts import PeriodicResetState
from tests import helpers
from tests.helpers import PARAMS

ROWS = helpers.ALL_TRANSFORMS
INT32_MAX = np.iinfo(np.int32).max


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
        lambda: mo.sgd(
            optax.linear_schedule(0.5, 0.1, 20), mo.schedules.anneal(0.5, 0.9, steps=20)
        ),
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
        grads = helpers.grads(seed)
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
        _, state = jax.jit(opt.update)(helpers.grads(seed), state)
        phases.append(int(state.phase))
        counts.append(int(state.inner_state.count))
    assert phases == [2, 0, 1] * 3 + [2]
    # saturated at the maximum, then reset before each step that starts a period
    assert counts == [INT32_MAX, INT32_MAX, 1, 2, 3, 1, 2, 3, 1, 2]


# --- non-finite gradients ------------------------------------------------------------------


def _with_nan_at(step, n=8):
    """Gradients with one NaN, in the kernel at ``step``."""
    grads = [helpers.grads(seed) for seed in range(n)]
    kernel = grads[step]["dense"]["kernel"]
    grads[step] = optax.tree.set(grads[step], kernel=kernel.at[0, 0].set(jnp.nan))
    return grads


def test_one_nan_gradient_poisons_unprotected_momentum_for_good():
    updates, _ = helpers.run_updates(mo.sgd(0.1, 0.9), _with_nan_at(2), PARAMS, jit=True)
    assert np.all(np.isfinite(updates[1]["dense"]["kernel"]))
    assert all(not np.all(np.isfinite(u["dense"]["kernel"])) for u in updates[2:])


@pytest.mark.parametrize("row", [helpers.fast_or_slow(row) for row in ROWS], ids=repr)
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
    grads = helpers.given([helpers.grads(seed) for seed in seeds])
    run = helpers.descend(opt, params, len(seeds), grads, state=state)
    return run.params, run.state


def _flax_roundtrip(state, target, _):
    return serialization.from_bytes(target, serialization.to_bytes(state))


def _orbax_roundtrip(state, target, directory):
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory / "state", state)
        checkpointer.wait_until_finished()
        return checkpointer.restore(directory / "state", target)


@pytest.mark.parametrize("roundtrip", [_flax_roundtrip, _orbax_roundtrip], ids=["flax", "orbax"])
@pytest.mark.parametrize("row", [helpers.fast_or_slow(row) for row in ROWS], ids=repr)
def test_checkpoint_resume_is_bit_identical(row, roundtrip, tmp_path):
    opt, (params, state), uninterrupted = _interrupted_and_uninterrupted(row)
    restored = mo.check_restored(roundtrip(state, opt.init(PARAMS), tmp_path), opt.init(PARAMS))
    resumed = _train(opt, restored, params, range(7, 17))
    chex.assert_trees_all_equal(resumed, uninterrupted)


@functools.cache
def _interrupted_and_uninterrupted(row):
    """``row``'s optimizer, its run after 7 steps, and the run's 10 steps after that: once
    per row, for both checkpoint formats."""
    opt = row.make()
    params, state = _train(opt, opt.init(PARAMS), PARAMS, range(7))
    return opt, (params, state), _train(opt, state, params, range(7, 17))


def test_restoring_into_another_transformation_or_shape_raises(tmp_path):
    opt = mo.sgd(0.1, 0.9, nesterov=True)
    state = opt.init(PARAMS)
    other_kind = mo.sgd(0.1, 0.9, ema=True, reset_every=3).init(PARAMS)
    other_shape = opt.init(optax.tree.set(PARAMS, kernel=jnp.ones((5, 4))))
    with pytest.raises(ValueError, match="field names"):
        _flax_roundtrip(state, other_kind, tmp_path)
    with pytest.raises(ValueError, match="tree structures do not match"):
        _orbax_roundtrip(state, other_kind, tmp_path / "kind")
    with pytest.raises(ValueError, match=r"not compatible with the stored shape"):
        _orbax_roundtrip(state, other_shape, tmp_path / "shape")
    # flax restores any shape into the target's slots: check_restored catches it
    silently_restored = _flax_roundtrip(state, other_shape, tmp_path)
    with pytest.raises(
        ValueError, match=r"restored state.*\['dense'\]\['kernel'\] has shape \(3, 4\).*\(5, 4\)"
    ):
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
    return helpers.descend(opt, params, steps, helpers.gradient_of(_loss), scan=True).params


@pytest.mark.slow
def test_vmap_over_momentum_values_equals_separate_runs():
    momenta = jnp.array([0.0, 0.5, 0.9, 0.99])
    for make in (
        lambda b: mo.sgd(0.05, b, nesterov=True),
        lambda b: optax.chain(mo.ema(b, debias=True), optax.scale_by_learning_rate(0.05)),
        lambda b: optax.chain(optax.scale_by_learning_rate(0.05), mo.delta_momentum(b)),
        lambda b: mo.sgd(0.05, b, reset_every=4),
    ):
        batched = jax.jit(jax.vmap(lambda b, make=make: _run_steps(make(b), PARAMS)))(momenta)
        for i, b in enumerate(momenta.tolist()):
            chex.assert_trees_all_close(
                helpers.take(batched, i), _run_steps(make(b), PARAMS), rtol=1e-6, atol=1e-6
            )


@pytest.mark.parametrize("row", [helpers.fast_or_slow(row) for row in ROWS], ids=repr)
def test_vmap_over_parameter_batches_equals_separate_runs(row):
    opt = row.make()
    if not row.optimizer:
        opt = optax.chain(opt, optax.scale_by_learning_rate(0.05))
    batch = jax.tree.map(lambda p: jnp.stack([p + i for i in range(3)]), PARAMS)
    batched = jax.jit(jax.vmap(lambda p: _run_steps(opt, p)))(batch)
    run = jax.jit(lambda p: _run_steps(opt, p))  # one program for the three separate runs
    for i in range(3):
        single = run(helpers.take(batch, i))
        chex.assert_trees_all_close(helpers.take(batched, i), single, rtol=1e-6, atol=1e-6)


def test_pmap_on_the_local_devices_equals_vmap():
    n = jax.local_device_count()
    opt = mo.sgd(0.05, 0.9, nesterov=True, reset_every=4)
    batch = jax.tree.map(lambda p: jnp.stack([p * (i + 1) for i in range(n)]), PARAMS)
    mapped = jax.pmap(lambda p: _run_steps(opt, p))(batch)
    vectorised = jax.vmap(lambda p: _run_steps(opt, p))(batch)
    chex.assert_trees_all_close(mapped, vectorised, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
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
