"""Shared test helpers: the table of every transformation, NumPy oracles, loops."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from momentum_optax.testing import oracles


def ramp(start: float, end: float, steps: int) -> optax.Schedule:
    """A scheduled coefficient for tests (linear, then constant)."""
    return optax.linear_schedule(start, end, steps)


def schedule_values(schedule: Any, n: int) -> np.ndarray:
    """Coefficient values at counts 0..n-1 (a constant repeated), in float64."""
    if callable(schedule):
        return np.array([float(schedule(jnp.int32(t))) for t in range(n)], np.float64)
    return np.full(n, float(schedule), np.float64)


# --- NumPy oracles: the formulas of the docstrings, written out independently (in the kit) ---

np_trace = oracles.trace  # m_t = g_t + b_t m_{t-1}; out = m_t or g_t + b_{t+1} m_t
np_ema = oracles.ema  # m_t = b_t m_{t-1} + (1-b_t) g_t, debiased by 1 - prod_{i<=t} b_i
np_delta_momentum = oracles.delta_momentum  # out_t = d_t + mu_t d_{t-1}, d_{-1} = 0


# --- the parameters, gradients and loops every test shares ---

#: a small model's parameters: a nested dict, a matrix, a vector and a scalar leaf
PARAMS = {"dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)}, "scale": jnp.float32(2.0)}


def grads(seed: int, like: Any = PARAMS, dtype: Any = None) -> Any:
    """Standard normal gradients shaped like ``like``, in its dtypes (or ``dtype``)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.standard_normal(jnp.shape(p)), dtype or jnp.result_type(p)), like
    )


def random_steps(seed: int, steps: int, shape: tuple[int, ...] = (5,)) -> np.ndarray:
    """Gaussian gradients, float32, reproducible from ``seed``: one row per step."""
    return np.random.default_rng(seed).standard_normal((steps, *shape)).astype(np.float32)


def stack(trees: Any) -> Any:
    """A list of trees as one tree of stacked leaves (leading axis: the list's)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def take(tree: Any, i: int) -> Any:
    """Entry ``i`` along the leading axis of every leaf (one step of a history)."""
    return jax.tree.map(lambda x: x[i], tree)


def run_updates(
    opt: optax.GradientTransformation, grads: Any, params: Any, jit: bool = False
) -> tuple[list[Any], Any]:
    """Feeds ``grads`` (a list of trees) through ``opt``: all the updates and the final state."""
    update = jax.jit(opt.update) if jit else opt.update
    state = opt.init(params)
    outs = []
    for g in grads:
        u, state = update(g, state, params)
        outs.append(u)
    return outs, state


class Run(NamedTuple):
    """What :func:`descend` returns."""

    history: Any  # the parameters after each step, stacked on a leading axis
    params: Any  # the final parameters
    state: Any  # the final state


def gradient_of(loss: Callable[[Any], jax.Array]) -> Callable[[Any, jax.Array], Any]:
    """The ``grad_fn`` of :func:`descend` for a loss of the parameters alone."""
    return lambda params, t: jax.grad(loss)(params)


def given(sequence: list[Any]) -> Callable[[Any, jax.Array], Any]:
    """The ``grad_fn`` of :func:`descend` that feeds ``sequence[t]`` at step ``t``."""
    stacked = stack(sequence)
    return lambda params, t: take(stacked, t)


def descend(
    opt: optax.GradientTransformation,
    params: Any,
    steps: int,
    grad_fn: Callable[[Any, jax.Array], Any],
    *,
    value_fn: Callable[[Any, jax.Array], jax.Array] | None = None,
    state: Any = None,
    compile_step: Callable[[Callable], Callable] = jax.jit,
    scan: bool = False,
) -> Run:
    """``steps`` steps of ``opt`` from ``params``: ``init``, then ``update`` and
    ``optax.apply_updates`` at each step.

    ``grad_fn(params, t)`` is the gradient at step ``t`` (an int32 scalar); with
    ``value_fn``, ``value=value_fn(params, t)`` is passed to ``update`` as well (the
    restarts that read the loss). ``state`` continues from a given state instead of
    ``opt.init(params)``. The step runs as ``compile_step(step)`` in a Python loop
    (``jax.jit`` by default; ``lambda f: f`` runs it eagerly), or with ``scan`` in one
    ``jax.lax.scan`` (which may itself be jitted or vmapped).
    """

    def step(params, state, t):
        extra = {} if value_fn is None else {"value": value_fn(params, t)}
        updates, state = opt.update(grad_fn(params, t), state, params, **extra)
        return optax.apply_updates(params, updates), state

    state = opt.init(params) if state is None else state
    if scan:

        def body(carry, t):
            params, state = step(*carry, t)
            return (params, state), params

        (params, state), history = jax.lax.scan(
            body, (params, state), jnp.arange(steps, dtype=jnp.int32)
        )
        return Run(history, params, state)
    step = compile_step(step)
    history = []
    for t in range(steps):
        params, state = step(params, state, jnp.int32(t))
        history.append(params)
    return Run(stack(history), params, state)


# --- the table of every public transformation (one row per configuration) ---


@dataclasses.dataclass(frozen=True)
class Row:
    """One configuration of a public transformation; ``make(**kw)`` builds it.

    Rows with ``buffer=True`` accept ``accumulator_dtype=`` in ``make``.
    """

    name: str
    make: Callable[..., optax.GradientTransformation]
    scheduled: bool = False
    optimizer: bool = False  # a full optimizer (learning rate included)
    buffer: bool = False  # make(accumulator_dtype=...) sets the momentum buffer's dtype
    # inside an optax wrapper (masked, MultiSteps): the updates the library's transformation
    # sees, and so the checks it makes of them, are the wrapper's (masked, accumulated)
    wrapped: bool = False
    # optax.masked's mask: the leaves outside it pass through unchanged
    mask: Callable[[Any], Any] | None = None
    # the wrapper rounds what it hands on (MultiSteps casts its float32 mean of the
    # gradients to their dtype), so the whole is not float32 arithmetic rounded once
    rounds_its_input: bool = False
    # how many times the updates are rounded to their dtype on the way out (None: one per
    # stage, momentum then learning rate); a wrapper of the inner's output rounds once more
    roundings: int | None = None

    def __repr__(self) -> str:
        return self.name


def _all_but_scalars(tree: Any) -> Any:
    """An ``optax.masked`` mask: train every leaf with at least one axis."""
    return jax.tree.map(lambda x: jnp.ndim(x) > 0, tree)


ALL_TRANSFORMS = [
    Row("trace", lambda **kw: mo.trace(0.9, **kw), buffer=True),
    Row("trace_nesterov", lambda **kw: mo.trace(0.9, nesterov=True, **kw), buffer=True),
    Row(
        "trace_scheduled",
        lambda **kw: mo.trace(ramp(0.5, 0.99, 20), **kw),
        scheduled=True,
        buffer=True,
    ),
    Row(
        "trace_scheduled_nesterov",
        lambda **kw: mo.trace(ramp(0.5, 0.99, 20), nesterov=True, **kw),
        scheduled=True,
        buffer=True,
    ),
    Row("ema", lambda **kw: mo.ema(0.9, **kw), buffer=True),
    Row("ema_debias", lambda **kw: mo.ema(0.999, debias=True, **kw), buffer=True),
    Row(
        "ema_scheduled_debias_nesterov",
        lambda **kw: mo.ema(ramp(0.5, 0.95, 20), debias=True, nesterov=True, **kw),
        scheduled=True,
        buffer=True,
    ),
    Row("delta_momentum", lambda: mo.delta_momentum(0.5)),
    Row("delta_momentum_scheduled", lambda: mo.delta_momentum(ramp(0.0, 0.9, 20)), scheduled=True),
    Row(
        "periodic_reset_trace",
        lambda **kw: mo.periodic_reset(mo.trace(0.9, **kw), every=3),
        buffer=True,
    ),
    Row(
        "periodic_reset_scheduled_ema",
        lambda: mo.periodic_reset(mo.ema(mo.schedules.anneal(0.5, 0.9, steps=10), debias=True), 4),
        scheduled=True,
    ),
    Row("sgd", lambda: mo.sgd(0.1), optimizer=True),
    Row("sgd_momentum", lambda: mo.sgd(0.1, 0.9), optimizer=True),
    Row(
        "sgd_nesterov_linear_to_one",
        lambda: mo.sgd(
            optax.cosine_decay_schedule(0.1, 50), mo.schedules.linear_to_one(0.5, 30), nesterov=True
        ),
        scheduled=True,
        optimizer=True,
    ),
    Row("sgd_ema_reset", lambda: mo.sgd(0.1, 0.9, ema=True, reset_every=5), optimizer=True),
    Row(
        "adaptive_restart_nesterov",
        lambda **kw: mo.adaptive_restart(mo.trace(0.95, nesterov=True, **kw)),
        buffer=True,
    ),
    Row("adaptive_restart_sgd", lambda: mo.adaptive_restart(mo.sgd(0.1, 0.99)), optimizer=True),
    Row("qhm", lambda: mo.qhm(0.7, 0.999)),
    Row(
        "qhm_scheduled",
        lambda: mo.qhm(ramp(0.0, 1.0, 10), mo.schedules.demon(0.9, 30)),
        scheduled=True,
    ),
    Row("qhadam", lambda: mo.qhadam(0.05), optimizer=True),
    Row("scale_by_qhadam", lambda: mo.scale_by_qhadam()),
    Row(
        "scale_by_learning_rate_scheduled",
        lambda: mo.scale_by_learning_rate(optax.cosine_decay_schedule(0.1, 50)),
        scheduled=True,
        optimizer=True,
    ),
    Row("aggmo", lambda: mo.aggmo((0.0, 0.9, 0.99))),
    Row(
        "aggmo_scheduled",
        lambda: mo.aggmo((0.5, mo.schedules.sutskever(0.99, period=5))),
        scheduled=True,
    ),
    Row("sma", lambda: mo.sma(4)),
    Row("scale_by_yellowfin", lambda **kw: mo.scale_by_yellowfin(**kw), buffer=True),
    Row(
        "srsgd_reset_growing",
        lambda **kw: mo.srsgd(0.1, restart_every=lambda k: 3 + 2 * k, **kw),
        scheduled=True,
        optimizer=True,
        buffer=True,
    ),
    Row(
        "cautious_trace",
        lambda **kw: mo.cautious(mo.trace(0.9, **kw)),
        buffer=True,
        roundings=2,
    ),
    Row(
        "cautious_sgd_nesterov",
        lambda: mo.cautious(mo.sgd(0.1, 0.9, nesterov=True), flip_sign=True),
        optimizer=True,
        roundings=3,
    ),
    Row(
        "cautious_qhadam_inferred",
        lambda: mo.cautious(mo.qhadam(0.05)),
        optimizer=True,
        roundings=2,
    ),
    Row("torch_sgd_dampened", lambda: mo.torch_sgd(0.1, 0.9, dampening=0.3), optimizer=True),
    Row(
        "torch_sgd_nesterov_cycle",
        lambda: mo.torch_sgd(
            optax.cosine_onecycle_schedule(40, 0.1), mo.schedules.inverse_cycle(40), nesterov=True
        ),
        scheduled=True,
        optimizer=True,
    ),
    Row(
        "masked_trace",
        lambda **kw: optax.masked(mo.trace(0.9, **kw), _all_but_scalars),
        buffer=True,
        wrapped=True,
        mask=_all_but_scalars,
    ),
    Row(
        "multi_steps_sgd_nesterov",
        lambda: optax.MultiSteps(
            mo.sgd(0.1, 0.9, nesterov=True), every_k_schedule=2
        ).gradient_transformation(),
        optimizer=True,
        wrapped=True,
        rounds_its_input=True,
    ),
    Row("yellowfin", lambda: mo.yellowfin(), optimizer=True),
    Row(
        "apply_if_finite_sgd_momentum",
        lambda: optax.apply_if_finite(mo.sgd(0.1, 0.9), max_consecutive_errors=3),
        optimizer=True,
        wrapped=True,
    ),
    Row(
        "inject_hyperparams_sgd_nesterov",
        lambda: optax.inject_hyperparams(mo.sgd, hyperparam_dtype=jnp.float32)(
            learning_rate=0.1, momentum=0.9, nesterov=True
        ),
        optimizer=True,
        wrapped=True,
    ),
]


#: the rows that the fast run (``-m "not slow"``) keeps in the per-row tests: a scheduled
#: Nesterov buffer, an optimizer whose EMA restarts, an optax wrapper with a mask
FAST_ROWS = ("trace_scheduled_nesterov", "sgd_ema_reset", "masked_trace")


def fast_or_slow(row: Row, *values: Any) -> Any:
    """``pytest.param(row, *values)``, marked slow unless ``row`` is one of ``FAST_ROWS``."""
    return pytest.param(row, *values, marks=() if row.name in FAST_ROWS else pytest.mark.slow)


def build(row: Row, accumulator_dtype: Any = None) -> optax.GradientTransformation:
    """``row``'s transformation, with its buffer in ``accumulator_dtype`` when given."""
    return (
        row.make() if accumulator_dtype is None else row.make(accumulator_dtype=accumulator_dtype)
    )


def is_drawn_trial(lr: float, beta: float, effective, one_minus_beta, trials: int) -> bool:
    """Whether ``(lr, beta)`` is one of the ``trials`` points of the experiments' grid of
    log effective step ``lr / (1 - beta)`` in ``effective`` x log(1 - beta) in
    ``one_minus_beta``: a reported setting must be a trial that ran, with its momentum (not
    1 - momentum) reported."""
    from experiments.protocol import tuning

    space = tuning.Space(effective=effective, one_minus_beta=one_minus_beta)
    table = tuning.trials(space, trials)
    return bool(
        np.any(
            np.isclose(table["lr"], lr, rtol=1e-5) & np.isclose(table["momentum"], beta, rtol=1e-5)
        )
    )


@contextlib.contextmanager
def enable_x64():
    """``jax_enable_x64`` inside the block only (JAX 0.6.1's spelling, or the newer one)."""
    if hasattr(jax, "enable_x64"):
        with jax.enable_x64(True):
            yield
    else:
        with jax.experimental.enable_x64():
            yield
