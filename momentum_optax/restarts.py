"""Restarts: wrappers that re-initialise any inner transformation's state."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from momentum_optax import _coefficients
from momentum_optax import _tree


class PeriodicResetState(NamedTuple):
    """State of :func:`periodic_reset`: the inner state and the position in the period."""

    inner_state: Any
    phase: jax.Array  # int32 scalar in [0, every): updates since the last reset


class ScheduledResetState(NamedTuple):
    """State of :func:`periodic_reset` with a scheduled period: the inner state, the
    position in the current period and the number of restarts so far."""

    inner_state: Any
    phase: jax.Array  # int32 scalar in [0, F_k): updates since the last reset
    restarts: jax.Array  # int32 scalar k (saturating): which period this is


def period_at(every: Callable[[jax.Array], Any], restarts: jax.Array) -> jax.Array:
    """``F_k = every(k)`` rounded to the nearest integer and clipped to [1, int32 max]
    (int32): a schedule of the restart index read as a period length. A value below 1 or
    NaN counts as 1 (a restart before every step: no momentum)."""
    with jax.numpy_dtype_promotion("standard"):
        value = jnp.round(jnp.asarray(every(restarts), jnp.float32))
    value = jnp.where(jnp.isnan(value), 1.0, value)
    return jnp.clip(value, 1, float(2**31 - 128)).astype(jnp.int32)


def periodic_reset(
    inner: optax.GradientTransformation, every: int | Callable[[jax.Array], Any]
) -> optax.GradientTransformationExtraArgs:
    r"""Momentum restart every ``every`` steps: re-initialise ``inner``.

    .. math::

        s_t = \mathrm{init}(\theta) \ \text{ if } t \bmod k = 0, \qquad
        (u_t, s_{t+1}) = \mathrm{inner.update}(g_t, s_t)

    so the inner state is fresh before steps ``0, k, 2k, ...``; with
    ``inner = trace(b)`` this is the ``v_t = 0`` every k steps of
    *Understanding Momentum in Neural Network Optimization*. The whole
    inner state is re-initialised, including the step count of a scheduled
    coefficient, so a momentum schedule restarts with each period. The only
    state added is an int32 phase that wraps at ``every`` (it never overflows).
    Extra arguments (such as ``value=loss``) are forwarded to ``inner``.

    The period may grow: with ``every`` a schedule of the restart index
    :math:`k` (``every(k)`` is :math:`F_k`, rounded to an integer >= 1; e.g.
    ``optax.linear_schedule(40, 80, 40)``; below 1 or NaN counts as 1), the resets come
    before steps
    :math:`0, F_0, F_0 + F_1, \dots`, as in Wang et al.'s scheduled restart SGD
    (:func:`srsgd`); the state then also counts the restarts
    (:class:`ScheduledResetState`).

    Restarting is not always safe: with a momentum close to 1, a short period can
    make some directions grow over each period (e.g. every 30 steps at momentum
    0.9999 and learning rate 1/L on a quadratic diverges, every 100 converges: see
    the experiments' E1); measure the period on the problem, or let
    :func:`adaptive_restart` decide.

    The fresh state is ``inner.init(params)`` (or ``inner.init(updates)`` when
    ``params`` is not passed), cast to the dtypes of the current state, so the
    state's dtypes never change; selecting it is an elementwise ``where`` that
    XLA fuses into the inner update (no extra pass over memory).

    Args:
        inner: the transformation whose state is reset, e.g. ``trace(0.9)``.
        every: the period ``k``, an integer >= 1; or a schedule of the restart
            index (a callable of an int32 count) giving each period's length.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with state
        :class:`PeriodicResetState` (:class:`ScheduledResetState` for a
        scheduled period).

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
        *Understanding Momentum in Neural Network Optimization* (author not
        named). O'Donoghue & Candès, *Adaptive restart for accelerated gradient
        schemes*, 2015 (fixed-period restarts as the baseline). Wang, Nguyen,
        Bertozzi, Baraniuk & Osher, *Scheduled restart momentum for accelerated
        stochastic gradient descent*, 2020 (growing periods).
    """
    if not isinstance(inner, optax.GradientTransformation):
        raise TypeError(
            f"inner must be an optax.GradientTransformation; got {inner!r} "
            f"of type {type(inner).__name__}."
        )
    scheduled = _coefficients.is_schedule(every)
    if not scheduled:
        every = _coefficients.positive_int(
            "every", every, what="an integer >= 1 or a schedule of the restart index"
        )
    inner = optax.with_extra_args_support(inner)
    zero = lambda: jnp.zeros([], jnp.int32)

    def init_fn(params: optax.Params) -> PeriodicResetState | ScheduledResetState:
        if scheduled:
            return ScheduledResetState(inner.init(params), zero(), zero())
        return PeriodicResetState(inner_state=inner.init(params), phase=zero())

    def update_fn(
        updates: optax.Updates,
        state: Any,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, Any]:
        _tree.check_state(
            state, ScheduledResetState if scheduled else PeriodicResetState, "periodic_reset"
        )
        # shapes only, at trace time: a mismatched gradient tree is reported by the
        # inner transformation in its own terms before the reset touches the state
        jax.eval_shape(
            functools.partial(inner.update, **extra_args), updates, state.inner_state, params
        )
        fresh = optax.tree.cast_like(
            inner.init(params if params is not None else updates), state.inner_state
        )
        inner_state = optax.tree.where(state.phase == 0, fresh, state.inner_state)
        updates, inner_state = inner.update(updates, inner_state, params, **extra_args)
        period = period_at(every, state.restarts) if callable(every) else every
        ends = state.phase + 1 >= period
        phase = jnp.where(ends, 0, state.phase + 1).astype(jnp.int32)
        if scheduled:
            restarts = jnp.where(ends, optax.safe_increment(state.restarts), state.restarts)
            return updates, ScheduledResetState(inner_state, phase, restarts)
        return updates, PeriodicResetState(inner_state=inner_state, phase=phase)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AdaptiveRestartState(NamedTuple):
    """State of :func:`adaptive_restart`."""

    inner_state: Any
    previous: Any  # "gradient": the previous update (a tree); "function": the previous loss
    restarts: jax.Array  # int32 scalar, restarts so far (saturating)


_SCHEMES = ("gradient", "function")


def adaptive_restart(
    inner: optax.GradientTransformation, scheme: str = "gradient"
) -> optax.GradientTransformationExtraArgs:
    r"""Adaptive momentum restart (O'Donoghue & Candès, 2015): reset ``inner`` when it goes uphill.

    At each step the inner update is computed twice — from the carried state,
    :math:`u_t`, and from a fresh one, :math:`\tilde u_t` (for ``trace`` that is
    just :math:`g_t`) — and the fresh one is taken when the restart test fires:

    - ``"gradient"``: :math:`\langle u_{t-1}, \tilde u_t \rangle < 0`, the step
      the momentum carries over points against the step a fresh optimizer would
      take now. For ``inner = trace(b)`` followed by the learning rate this is
      :math:`\langle g_t, m_{t-1} \rangle < 0`, i.e.
      :math:`\nabla f(x_t)^\top (x_t - x_{t-1}) > 0` since
      :math:`x_t - x_{t-1} = -\eta\, m_{t-1}`: the last step went uphill (the
      paper evaluates the gradient at the extrapolated point :math:`y_{k-1}` of its
      accelerated scheme; with the gradient taken at the parameters, as here, this
      is the same test for heavy ball and its variant for Nesterov's iterates). Comparing
      with the fresh update rather than the raw gradient makes the test
      independent of where the learning rate sits in ``inner``. Keeps the
      previous update: one extra copy of the parameters.
    - ``"function"``: :math:`f(x_t) > f(x_{t-1})`, the loss went up. Pass the loss
      as ``update(grads, state, params, value=loss)`` (``nnx.Optimizer.update(model,
      grads, value=loss)`` forwards it). Keeps one scalar.

    With a constant, large momentum the test fires about every other step (right
    after a restart the momentum is back at full strength), which makes the method
    close to gradient descent; it shines with a momentum that starts small after
    each restart, such as Nesterov's ``t / (t + 3)`` sequence (the experiments' E1).

    On restart the whole inner state is re-initialised *before* the current
    gradient is applied — step counts included, so a momentum schedule starts
    over (O'Donoghue & Candès' accelerated scheme restarts its momentum sequence
    this way). Wrap only the momentum when a learning-rate schedule must not
    restart: ``chain(adaptive_restart(trace(b)), scale_by_learning_rate(lr))``;
    the restart test does not depend on where the learning rate sits. Other
    extra arguments are forwarded to ``inner``.

    Args:
        inner: the transformation to restart, e.g. ``trace(0.99, nesterov=True)``
            (or a whole chain, whose schedules then restart too).
        scheme: ``"gradient"`` or ``"function"``.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with state
        :class:`AdaptiveRestartState` (``restarts`` counts the restarts).

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.adaptive_restart(mo.trace(0.9))
        >>> state = opt.init(jnp.zeros(1))
        >>> u, state = opt.update(jnp.array([1.0]), state)
        >>> u, state = opt.update(jnp.array([-1.0]), state)  # against the momentum: restart
        >>> u, int(state.restarts)
        (Array([-1.], dtype=float32), 1)

    References:
        O'Donoghue & Candès, *Adaptive restart for accelerated gradient
        schemes*, Foundations of Computational Mathematics, 2015.
    """
    if not isinstance(inner, optax.GradientTransformation):
        raise TypeError(
            f"inner must be an optax.GradientTransformation; got {inner!r} "
            f"of type {type(inner).__name__}."
        )
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme must be one of {_SCHEMES}; got {scheme!r}.")
    inner = optax.with_extra_args_support(inner)

    def init_fn(params: optax.Params) -> AdaptiveRestartState:
        if scheme == "gradient":
            previous = optax.tree.zeros_like(params)
        else:
            previous = jnp.full([], jnp.inf, jnp.float32)
        return AdaptiveRestartState(
            inner_state=inner.init(params), previous=previous, restarts=jnp.zeros([], jnp.int32)
        )

    def update_fn(
        updates: optax.Updates,
        state: AdaptiveRestartState,
        params: optax.Params | None = None,
        *,
        value: Any = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, AdaptiveRestartState]:
        _tree.check_state(state, AdaptiveRestartState, "adaptive_restart")
        if value is not None:
            extra_args["value"] = value
        carried, carried_state = inner.update(updates, state.inner_state, params, **extra_args)
        fresh_state = optax.tree.cast_like(
            inner.init(params if params is not None else updates), state.inner_state
        )
        fresh, fresh_next = inner.update(updates, fresh_state, params, **extra_args)
        if scheme == "gradient":
            _tree.check_tree_match(fresh, state.previous, what="AdaptiveRestartState.previous")
            restart = _tree.vdot(state.previous, fresh) < 0
        else:
            if value is None:
                raise TypeError(
                    "adaptive_restart(scheme='function') needs the loss: call "
                    "update(updates, state, params, value=loss)."
                )
            if jnp.shape(value) != ():
                raise ValueError(
                    f"value must be the scalar loss; got shape {jnp.shape(value)} "
                    "(average per-example losses first)."
                )
            restart = jnp.asarray(value, jnp.float32) > state.previous
        new_updates = optax.tree.where(restart, fresh, carried)
        inner_state = optax.tree.where(restart, fresh_next, carried_state)
        if scheme == "gradient":
            previous = optax.tree.cast_like(
                _tree.keep_where_none(new_updates, state.previous), state.previous
            )
        else:
            previous = jnp.asarray(value, jnp.float32)
        restarts = jnp.where(restart, optax.safe_increment(state.restarts), state.restarts)
        return new_updates, AdaptiveRestartState(inner_state, previous, restarts)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
