"""The compiled loop for the test functions: every step of a run inside one ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import problems
from . import sweeps


class Path(NamedTuple):
    """A run's trajectory (leading axis: steps)."""

    x: jax.Array  # (steps + 1, dim) iterates, x[0] the start
    loss: jax.Array  # (steps + 1,)
    grad: jax.Array  # (steps, dim) gradient at x[t]
    update: jax.Array  # (steps, dim) x[t + 1] - x[t]
    state: Any = None  # the optimizer's state after the last step (e.g. its restart count)


def descend(
    loss: Callable[[jax.Array], jax.Array],
    opt: optax.GradientTransformation,
    x0: jax.Array,
    steps: int,
) -> Path:
    """Runs ``opt`` on ``loss`` from ``x0`` for ``steps`` steps (pure: jit and vmap it).

    The loss at the current point is passed to ``opt.update`` as ``value=`` (what
    ``mo.adaptive_restart(..., scheme="function")`` reads; other transformations ignore it).
    """
    x0 = jnp.asarray(x0, jnp.float32)
    opt = optax.with_extra_args_support(opt)

    def step(carry, _):
        x, state = carry
        value, grad = jax.value_and_grad(loss)(x)
        update, state = opt.update(grad, state, x, value=value)
        return (x + update, state), (x, value, grad, update)

    (last, state), (xs, losses, grads, updates) = jax.lax.scan(
        step, (x0, opt.init(x0)), length=steps
    )
    return Path(
        x=jnp.concatenate([xs, last[None]]),
        loss=jnp.concatenate([losses, loss(last)[None]]),
        grad=grads,
        update=updates,
        state=state,
    )


def sweep_paths(
    loss_of: Callable[[dict], Callable],
    make_opt: Callable[[dict], optax.GradientTransformation],
    table: dict,
    x0: jax.Array,
    steps: int,
) -> Path:
    """One ``descend`` per row of ``table`` (``loss_of(row)``, ``make_opt(row)``), all in one
    compiled vmap; returns the paths as NumPy arrays with a leading row axis."""
    return sweeps.sweep(lambda row, x0: descend(loss_of(row), make_opt(row), x0, steps), table, x0)


def ravine_loss(row: dict) -> Callable:
    """The quadratic ravine with condition number ``row["kappa"]`` (traced)."""
    return problems.quadratic(problems.ravine_curvatures(row["kappa"]))
