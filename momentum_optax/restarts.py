"""Restarts: wrappers that re-initialise any inner transformation's state."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from momentum_optax import _tree
from momentum_optax import _types


class PeriodicResetState(NamedTuple):
    """State of :func:`periodic_reset`: the inner state and the position in the period."""

    inner_state: Any
    phase: jax.Array  # int32 scalar in [0, every): updates since the last reset


def periodic_reset(inner: optax.GradientTransformation,
                   every: int) -> optax.GradientTransformationExtraArgs:
    r"""Momentum restart every ``every`` steps (seed 001): re-initialise ``inner``.

    .. math::

        s_t = \mathrm{init}(\theta) \ \text{ if } t \bmod k = 0, \qquad
        (u_t, s_{t+1}) = \mathrm{inner.update}(g_t, s_t)

    so the inner state is fresh before steps ``0, k, 2k, ...``; with
    ``inner = trace(b)`` this is seed 001's ``v_t = 0 every k steps``. The whole
    inner state is re-initialised, including the step count of a scheduled
    coefficient, so a momentum schedule restarts with each period. The only
    state added is an int32 phase that wraps at ``every`` (it never overflows).
    Extra arguments (such as ``value=loss``) are forwarded to ``inner``.

    The reset happens at the end of the step that completes a period: the
    stored state is then already ``inner.init(params)`` (or ``inner.init(updates)``
    when ``params`` is not passed), cast to the dtypes of the current state, so
    the state's dtypes never change; selecting it is an elementwise ``where``
    that XLA fuses into the inner update.

    Args:
        inner: the transformation whose state is reset, e.g. ``trace(0.9)``.
        every: the period ``k``, an integer >= 1.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with state
        :class:`PeriodicResetState`.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.periodic_reset(mo.trace(0.5), every=2)
        >>> state = opt.init(jnp.zeros(1))
        >>> outs = []
        >>> for _ in range(4):
        ...     u, state = opt.update(jnp.ones(1), state)
        ...     outs.append(float(u[0]))
        >>> outs  # the trace restarts before step 2
        [1.0, 1.5, 1.0, 1.5]

    References:
        O'Donoghue & Candès, *Adaptive restart for accelerated gradient
        schemes*, 2015 (fixed-period restarts as the baseline).
    """
    if not isinstance(inner, optax.GradientTransformation):
        raise TypeError(f"inner must be an optax.GradientTransformation; got {inner!r} "
                        f"of type {type(inner).__name__}.")
    every = _types.check_positive_int("every", every)
    inner = optax.with_extra_args_support(inner)

    def init_fn(params):
        return PeriodicResetState(inner_state=inner.init(params), phase=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None, **extra_args):
        # The inner update runs first, so a mismatched gradient tree is reported by
        # the inner transformation in its own terms; the reset then prepares the
        # state for the next step (init already provides the fresh state of step 0).
        _tree.check_state(state, PeriodicResetState, "periodic_reset")
        new_updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        fresh = inner.init(params if params is not None else updates)
        _tree.check_tree_match(fresh, inner_state,
                               what="the inner state PeriodicResetState.inner_state")
        phase = jnp.where(state.phase + 1 >= every, 0, state.phase + 1).astype(jnp.int32)
        inner_state = optax.tree.where(phase == 0, _tree.cast_like(fresh, inner_state), inner_state)
        return new_updates, PeriodicResetState(inner_state=inner_state, phase=phase)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
