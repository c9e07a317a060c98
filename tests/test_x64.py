"""Under ``jax_enable_x64`` the library's schedules, and the transformations reading them,
keep float64 parameters in float64 (as optax's own schedules do); without it, float32.

x64 is switched on by a context manager, for one test at a time (``x64`` below), so it
never leaks into the other tests of the same process.
"""

from __future__ import annotations

import contextlib
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers


@pytest.fixture
def x64():
    with helpers.enable_x64():
        yield


def optax_reference(count):
    """What optax's schedules return at ``count``: weakly typed, JAX's default float."""
    schedules = optax.cosine_decay_schedule(0.1, 50), optax.constant_schedule(0.5)
    return [jnp.asarray(schedule(count)) for schedule in schedules]


# --- the formulas of the docstrings, in float64 NumPy (t: the step counts) ---


def np_linear(start, end, steps, t):
    return start + (end - start) * np.minimum(t, steps) / steps


def np_nesterov(r, t):
    k = np.maximum(t - 1, 0)
    return k / (k + r)


def np_sutskever(cap, period, t):
    return np.minimum(1 - 2.0 ** (-1 - np.log2(np.floor(t / period) + 1)), cap)


def np_demon(start, total, t):
    remaining = 1 - np.minimum(t, total) / total
    return start * remaining / ((1 - start) + start * remaining)


def np_inverse_cycle(total, base, top, pct_start, strategy, t):
    # PyTorch's OneCycleLR(cycle_momentum=True): phases end at pct_start * T - 1 and T - 1
    warmup_end, cycle_end = pct_start * total - 1, total - 1
    t = np.minimum(t, cycle_end)

    def interpolate(start, end, pct):
        if strategy == "cos":
            return end + (start - end) / 2 * (np.cos(np.pi * pct) + 1)
        return start + (end - start) * pct

    falling = interpolate(top, base, t / warmup_end)
    rising = interpolate(base, top, (t - warmup_end) / (cycle_end - warmup_end))
    return np.where(t <= warmup_end, falling, rising)


#: every public schedule of ``mo.schedules``: (factory, float64 formula of t), with values
#: float32 cannot hold exactly (2/5, 5/6, 0.5 + 0.4 * 3/7, ...)
SCHEDULES = {
    "linear_to_one": (
        lambda: mo.schedules.linear_to_one(0.3, 7),
        lambda t: np_linear(0.3, 1.0, 7, t),
    ),
    "anneal": (
        lambda: mo.schedules.anneal(0.5, 0.9, steps=7),
        lambda t: np_linear(0.5, 0.9, 7, t),
    ),
    "nesterov_sequence": (
        lambda: mo.schedules.nesterov_sequence(),
        lambda t: np_nesterov(3.0, t),
    ),
    "sutskever": (
        lambda: mo.schedules.sutskever(0.999, period=3),
        lambda t: np_sutskever(0.999, 3, t),
    ),
    "demon": (lambda: mo.schedules.demon(0.9, 11), lambda t: np_demon(0.9, 11, t)),
    "inverse_cycle": (
        lambda: mo.schedules.inverse_cycle(23, pct_start=0.4),
        lambda t: np_inverse_cycle(23, 0.85, 0.95, 0.4, "cos", t),
    ),
    "inverse_cycle_linear": (
        lambda: mo.schedules.inverse_cycle(23, pct_start=0.4, anneal_strategy="linear"),
        lambda t: np_inverse_cycle(23, 0.85, 0.95, 0.4, "linear", t),
    ),
}

COUNTS = np.arange(60)


def test_the_table_holds_every_schedule_of_the_module():
    public = {
        name
        for name, value in vars(mo.schedules).items()
        if inspect.isfunction(value)
        and value.__module__ == mo.schedules.__name__
        and not name.startswith("_")
    }
    assert public == {name.removesuffix("_linear") for name in SCHEDULES}


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_is_float64_under_x64_as_optaxs_and_follows_its_formula(name, x64):
    make, formula = SCHEDULES[name]
    schedule = make()
    for update in (lambda f: f, jax.jit):  # eager, and compiled as in a training step
        for count in (jnp.int32(3), 3):
            value = update(schedule)(count)
            for reference in optax_reference(count):
                assert value.dtype == reference.dtype == jnp.float64
                assert value.weak_type == reference.weak_type  # does not promote float32
    got = np.asarray(schedule(jnp.asarray(COUNTS, jnp.int32)))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, formula(COUNTS.astype(np.float64)), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_stays_float32_without_x64(name):
    make, formula = SCHEDULES[name]
    schedule = make()
    value = schedule(jnp.int32(3))
    for reference in optax_reference(jnp.int32(3)):
        assert value.dtype == reference.dtype == jnp.float32
        assert value.weak_type == reference.weak_type
    got = np.asarray(schedule(jnp.asarray(COUNTS, jnp.int32)))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, formula(COUNTS.astype(np.float64)), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("enabled", [False, True], ids=["float32", "x64"])
@pytest.mark.parametrize(
    "ours, optaxs",
    [
        (
            lambda: mo.schedules.anneal(0.5, 0.9, steps=7),
            lambda: optax.linear_schedule(0.5, 0.9, 7),
        ),
        (lambda: mo.schedules.linear_to_one(0.3, 7), lambda: optax.linear_schedule(0.3, 1.0, 7)),
    ],
    ids=["anneal", "linear_to_one"],
)
def test_linear_schedules_equal_optaxs_linear_schedule(ours, optaxs, enabled):
    # bit for bit: at the int32 count in float32; under x64 at the count in float64 (at an
    # int32 count optax's linear schedule divides in float32, even under x64)
    with helpers.enable_x64() if enabled else contextlib.nullcontext():
        counts = jnp.asarray(COUNTS, jnp.int32)
        want = optaxs()(counts.astype(jnp.float64) if enabled else counts)
        np.testing.assert_array_equal(np.asarray(ours()(counts)), np.asarray(want))


# --- the transformations: float64 parameters stay float64, against float64 NumPy ---

CURVATURE = np.array([1.0, 0.3, 0.01, 2.5])  # loss 0.5 * sum(h * w**2), gradient h * w
W0 = np.random.default_rng(0).standard_normal(4)
STEPS = 12


def np_srsgd(lr, every, r=3.0):
    """SRSGD on the quadratic: Nesterov with b_c = max(c - 1, 0) / (max(c - 1, 0) + r) at
    the c-th step since the last restart, the buffer zeroed every ``every`` steps."""

    def b(c):
        k = max(c - 1, 0)
        return k / (k + r)

    w, m, path = W0.copy(), np.zeros(4), []
    for t in range(STEPS):
        c = t % every
        if c == 0:
            m = np.zeros(4)
        g = CURVATURE * w
        m = g + b(c) * m
        w = w - lr * (g + b(c + 1) * m)
        path.append(w)
    return np.stack(path)


def np_sgd_anneal(lr, start, end, steps, nesterov):
    """Heavy ball (or Nesterov) with the annealed momentum start -> end over ``steps``."""
    beta = lambda t: start + (end - start) * min(t, steps) / steps
    w, m, path = W0.copy(), np.zeros(4), []
    for t in range(STEPS):
        g = CURVATURE * w
        m = g + beta(t) * m
        w = w - lr * (g + beta(t + 1) * m if nesterov else m)
        path.append(w)
    return np.stack(path)


OPTIMIZERS = {
    "srsgd": (lambda: mo.srsgd(0.3, restart_every=5), lambda: np_srsgd(0.3, 5)),
    "sgd_anneal": (
        lambda: mo.sgd(0.3, mo.schedules.anneal(0.5, 0.9, steps=7)),
        lambda: np_sgd_anneal(0.3, 0.5, 0.9, 7, nesterov=False),
    ),
    "sgd_anneal_nesterov": (
        lambda: mo.sgd(0.3, mo.schedules.anneal(0.5, 0.9, steps=7), nesterov=True),
        lambda: np_sgd_anneal(0.3, 0.5, 0.9, 7, nesterov=True),
    ),
}


def descend(opt, dtype, compile_step):
    curvature = jnp.asarray(CURVATURE, dtype)
    loss = lambda w: 0.5 * jnp.sum(curvature * w**2)
    return helpers.descend(
        opt, jnp.asarray(W0, dtype), STEPS, helpers.gradient_of(loss), compile_step=compile_step
    )


def float_dtypes(tree):
    return {leaf.dtype for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.inexact)}


@pytest.mark.parametrize("compile_step", [jax.jit, lambda f: f], ids=["jit", "eager"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_scheduled_optimizer_matches_float64_numpy_under_x64(name, compile_step, x64):
    make, oracle = OPTIMIZERS[name]
    run = descend(make(), jnp.float64, compile_step)
    assert run.history.dtype == jnp.float64
    assert float_dtypes(run.state) == {jnp.dtype(jnp.float64)}
    np.testing.assert_allclose(np.asarray(run.history), oracle(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_scheduled_optimizer_keeps_float64_under_strict_promotion(name, x64):
    # the schedule's value is weakly typed: nothing to promote, float64 with float64 buffers
    make, oracle = OPTIMIZERS[name]
    with jax.numpy_dtype_promotion("strict"):
        run = descend(make(), jnp.float64, jax.jit)
    assert float_dtypes(run.state) == {jnp.dtype(jnp.float64)}
    np.testing.assert_allclose(np.asarray(run.history), oracle(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("enabled", [False, True], ids=["float32", "x64"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_scheduled_optimizer_keeps_float32_parameters_float32(name, enabled):
    # without x64, and with x64 on float32 parameters (strict promotion: nothing promoted)
    make, oracle = OPTIMIZERS[name]
    with helpers.enable_x64() if enabled else contextlib.nullcontext():
        with jax.numpy_dtype_promotion("strict"):
            run = descend(make(), jnp.float32, jax.jit)
    assert run.history.dtype == jnp.float32
    assert float_dtypes(run.state) == {jnp.dtype(jnp.float32)}
    np.testing.assert_allclose(np.asarray(run.history), oracle(), rtol=1e-5, atol=1e-6)
