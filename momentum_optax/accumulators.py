"""Momentum accumulators: learning-rate free transformations that keep a velocity.

Each accumulator is an ``optax.GradientTransformation``. Where the learning
rate sits is expressed by chain order (``chain(trace(b), scale_by_learning_rate(lr))``
keeps it outside the velocity, ``chain(scale_by_learning_rate(lr), trace(b))``
inside), never by a flag.

Arithmetic runs in at least float32 (coefficients such as 0.999 are never
rounded to a low-precision dtype); the momentum buffer keeps the dtype it was
initialised with (``accumulator_dtype``, else the parameters' dtype), and the
updates come out in the gradient's dtype.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import DTypeLike
from optax import ScalarOrSchedule
from optax import TraceState

from momentum_optax import _heavy_ball
from momentum_optax import _tree
from momentum_optax._coefficients import check_accumulator_dtype
from momentum_optax._coefficients import check_bool
from momentum_optax._coefficients import check_coefficient
from momentum_optax._coefficients import init_count
from momentum_optax._coefficients import is_schedule
from momentum_optax._coefficients import next_count
from momentum_optax._coefficients import value_at

# The state of trace with a constant decay is optax's own optax.TraceState(trace), so a state
# (or a checkpoint) moves between optax.trace/optax.sgd and mo.trace/mo.sgd unchanged.


class ScheduledTraceState(NamedTuple):
    """Momentum buffer of :func:`trace` with a scheduled decay, and the step count it reads."""

    trace: optax.Params
    count: jax.Array  # type: ignore[assignment]  # int32 scalar: the number of updates made


# a state of trace's other configuration (constant vs scheduled decay), and what to do
_OTHER = {True: TraceState, False: ScheduledTraceState}
_WRONG_CONFIGURATION = {
    True: (
        "state has no step count: it is an optax.TraceState, made with a constant decay (by "
        "mo.trace, mo.sgd, optax.trace or optax.sgd); this trace has a scheduled decay, which "
        "reads the step count from a mo.ScheduledTraceState: continue with "
        "mo.ScheduledTraceState(trace=state.trace, count=jnp.asarray(steps_taken, jnp.int32))."
    ),
    False: (
        "state has a step count: it is a mo.ScheduledTraceState, made with a scheduled decay; "
        "this trace has a constant decay, whose state is optax.TraceState: continue with "
        "optax.TraceState(trace=state.trace)."
    ),
}


def trace(
    decay: ScalarOrSchedule, *, nesterov: bool = False, accumulator_dtype: DTypeLike | None = None
) -> optax.GradientTransformation:
    r"""Heavy-ball momentum (Polyak, 1964): a decaying sum of past updates.

    .. math::

        m_t = g_t + \beta_t m_{t-1}, \qquad
        u_t = m_t \quad\text{or, with nesterov,}\quad u_t = g_t + \beta_{t+1} m_t

    with :math:`m_{-1} = 0` and :math:`\beta_t` the decay at step count ``t``
    (``t = 0`` on the first update). Followed by
    ``mo.scale_by_learning_rate(lr)`` this is the rule
    ``v_t = gamma v_{t-1} + eta grad`` of *Understanding Momentum in Neural
    Network Optimization*, with ``v = lr * m``. The Nesterov output uses the
    *next* coefficient :math:`\beta_{t+1}`: that is what makes it equal, step
    for step and also for a scheduled decay, to the look-ahead form
    ``v_t = gamma_t v_{t-1} + eta grad(theta_t - gamma_t v_{t-1})``
    (Sutskever et al., 2013). For a constant decay and float32 arrays, updates and state
    leaves are those of ``optax.trace`` bit for bit.

    Args:
        decay: the momentum coefficient :math:`\beta`, a float in [0, 1] or a
            schedule (a callable of the int32 step count).
        nesterov: use Nesterov's accelerated output.
        accumulator_dtype: dtype of the momentum buffer; ``None`` keeps the
            parameters' dtype.

    Returns:
        An ``optax.GradientTransformation`` whose state is ``optax.TraceState``
        (:data:`TraceState`) for a constant decay, :class:`ScheduledTraceState` for a
        schedule.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> import momentum_optax as mo
        >>> opt = optax.chain(mo.trace(0.9), mo.scale_by_learning_rate(0.1))
        >>> params = jnp.array([1.0, -2.0])
        >>> state = opt.init(params)
        >>> for _ in range(2):
        ...     updates, state = opt.update(jnp.array([1.0, 1.0]), state)
        >>> updates  # -0.1 * (1 + 0.9 * 1)
        Array([-0.19, -0.19], dtype=float32)

    References:
        Polyak, *Some methods of speeding up the convergence of iteration
        methods*, 1964. *Understanding Momentum in Neural Network Optimization*
        (author not named). Sutskever, Martens, Dahl, Hinton, *On the importance of
        initialization and momentum in deep learning*, 2013.
    """
    check_coefficient("decay", decay)
    check_bool("nesterov", nesterov)
    accumulator_dtype = check_accumulator_dtype("accumulator_dtype", accumulator_dtype)

    scheduled = is_schedule(decay)
    state_type = ScheduledTraceState if scheduled else TraceState

    def init_fn(params: optax.Params) -> TraceState | ScheduledTraceState:
        trace = optax.tree.zeros_like(params, dtype=accumulator_dtype)
        if scheduled:
            return ScheduledTraceState(trace=trace, count=jnp.zeros([], jnp.int32))
        return TraceState(trace=trace)

    def update_fn(
        updates: optax.Updates,
        state: TraceState | ScheduledTraceState,
        params: optax.Params | None = None,
    ) -> tuple[optax.Updates, TraceState | ScheduledTraceState]:
        del params
        if isinstance(state, _OTHER[scheduled]):
            raise TypeError(_WRONG_CONFIGURATION[scheduled])
        _tree.check_inputs(updates, state, state_type, "trace", "trace")
        count = state.count if scheduled else None
        beta = value_at(decay, count)
        beta_next: Any = value_at(decay, next_count(count)) if nesterov else None

        def leaf(g: jax.Array, m: jax.Array) -> tuple:
            new_m = _heavy_ball.velocity(g, m, beta)
            return _heavy_ball.output(g, new_m, beta_next, nesterov), new_m

        updates, new_trace = _tree.leafwise(leaf, updates, state.trace)
        if scheduled:
            return updates, ScheduledTraceState(
                trace=new_trace, count=optax.safe_increment(state.count)
            )
        return updates, TraceState(trace=new_trace)

    return optax.GradientTransformation(init_fn, update_fn)


class EmaState(NamedTuple):
    """Exponential moving average of :func:`ema`, with what debiasing needs."""

    ema: optax.Params
    count: jax.Array | None  # type: ignore[assignment]  # int32 scalar; None when the decay is a constant
    bias_correction: jax.Array | None  # float32 1 - prod_{i<=t} b_i; None without debias


def ema(
    decay: ScalarOrSchedule,
    *,
    debias: bool = False,
    nesterov: bool = False,
    accumulator_dtype: DTypeLike | None = None,
) -> optax.GradientTransformation:
    r"""Momentum as an exponential moving average of the updates.

    .. math::

        m_t = \beta_t m_{t-1} + (1 - \beta_t) g_t, \qquad
        u_t = m_t \quad\text{or, with nesterov,}\quad
        u_t = \beta_{t+1} m_t + (1 - \beta_t) g_t

    With ``debias=True`` each term is divided by :math:`1 - P_t`, where
    :math:`P_t = \prod_{i \le t} \beta_i`. The state keeps :math:`c_t = 1 - P_t`
    itself, updated as the moving average of a constant one,
    :math:`c_t = \beta_t c_{t-1} + (1 - \beta_t)`, so the correction stays exact
    for a scheduled decay (``1 - beta**t`` is not) and keeps full relative
    precision when :math:`P_t` is close to 1:
    :math:`u_t = m_t / (1 - P_t)`, or with nesterov
    :math:`u_t = \beta_{t+1} m_t / (1 - P_{t+1}) + (1 - \beta_t) g_t / (1 - P_t)`,
    Dozat's Nadam numerator. For a constant decay the trajectory equals
    :func:`trace`'s with the learning rate scaled by :math:`1 - \beta`, as
    *Momentum* (the article on exponential moving averages) shows.

    ``debias`` defaults to ``False``, unlike ``optax.ema`` (whose default is
    ``True``): as momentum, the average is the velocity itself, and the
    equivalence with :func:`trace` above holds only without the correction.

    Args:
        decay: the smoothing constant :math:`\beta`, a float in [0, 1] ([0, 1)
            with ``debias``) or a schedule.
        debias: divide by :math:`1 - \prod_{i \le t} \beta_i` (Adam's bias correction).
        nesterov: use the look-ahead output above.
        accumulator_dtype: dtype of the average; ``None`` keeps the parameters'.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`EmaState`.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.ema(0.5, debias=True)
        >>> state = opt.init(jnp.zeros(1))
        >>> u, state = opt.update(jnp.array([4.0]), state)
        >>> u, state.ema  # 0.5 * 4 = 2, debiased by 1 - 0.5
        (Array([4.], dtype=float32), Array([2.], dtype=float32))

    References:
        *Momentum*, on exponential moving averages (author not named).
        Kingma & Ba, *Adam: A method for stochastic optimization*, 2015 (bias
        correction). Dozat, *Incorporating Nesterov momentum into Adam*, 2016.
    """
    check_bool("debias", debias)
    check_bool("nesterov", nesterov)
    check_coefficient("decay", decay, allow_one=not debias)
    accumulator_dtype = check_accumulator_dtype("accumulator_dtype", accumulator_dtype)

    def init_fn(params: optax.Params) -> EmaState:
        return EmaState(
            ema=optax.tree.zeros_like(params, dtype=accumulator_dtype),
            count=init_count(decay),
            bias_correction=jnp.zeros([], jnp.float32) if debias else None,
        )

    def update_fn(
        updates: optax.Updates, state: EmaState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, EmaState]:
        del params
        _tree.check_inputs(
            updates,
            state,
            EmaState,
            "ema",
            "ema",
            scheduled=is_schedule(decay),
            coefficient="decay",
        )
        _tree.check_made_alike(state, "ema", "debias", state.bias_correction is not None, debias)
        beta = value_at(decay, state.count)
        beta_next: Any = value_at(decay, next_count(state.count)) if nesterov else None
        # c_t = 1 - prod b_i, itself a moving average of ones (exact for a schedule)
        correction: Any = (1 - beta) + beta * state.bias_correction if debias else 1.0
        correction_next: Any = (
            (1 - beta_next) + beta_next * correction if debias and nesterov else 1.0
        )

        def leaf(g: jax.Array, m: jax.Array) -> tuple:
            new_m = (1 - beta) * g + beta * m
            if not nesterov:
                return new_m / correction if debias else new_m, new_m
            if debias:
                return beta_next * new_m / correction_next + (1 - beta) * g / correction, new_m
            return beta_next * new_m + (1 - beta) * g, new_m

        updates, new_ema = _tree.leafwise(leaf, updates, state.ema)
        return updates, EmaState(
            ema=new_ema,
            count=next_count(state.count),
            bias_correction=correction if debias else None,
        )

    return optax.GradientTransformation(init_fn, update_fn)


class DeltaMomentumState(NamedTuple):
    """The previous incoming update (delta) of :func:`delta_momentum`."""

    previous_delta: optax.Params
    count: jax.Array | None  # type: ignore[assignment]  # int32 scalar; None when the momentum is a constant


def delta_momentum(momentum: ScalarOrSchedule) -> optax.GradientTransformation:
    r"""McCaffrey's momentum: add a fraction of the previous delta to the current one.

    .. math::

        u_t = d_t + \mu_t d_{t-1}, \qquad d_{-1} = 0

    where :math:`d_t` is the incoming update (already scaled by the learning
    rate, so place it *after* the scaling:
    ``chain(scale_by_learning_rate(lr), delta_momentum(mu))``). The stored
    delta is :math:`d_t` itself, without the momentum term, exactly as in
    J. McCaffrey's code (``ih_prev_weights_delta = delta``). Unlike heavy ball, the
    past therefore enters through one step only: a two-tap filter, not a
    decaying sum. McCaffrey's worked example: weight 3.56, learning rate 0.01,
    gradient 2.70, momentum 0.5, previous delta 0.044 gives
    3.56 + 0.027 + 0.022 = 3.609.

    Args:
        momentum: the factor :math:`\mu` on the previous delta, a float in
            [0, 1] or a schedule.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`DeltaMomentumState`.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.delta_momentum(0.5)
        >>> state = mo.DeltaMomentumState(previous_delta=jnp.array([0.044]), count=None)
        >>> u, state = opt.update(jnp.array([0.027]), state)
        >>> print(f"{3.56 + float(u[0]):.3f}")
        3.609

    References:
        J. McCaffrey, *Neural Network Momentum*. Rumelhart, Hinton,
        Williams, *Learning representations by back-propagating errors*, 1986.
    """
    check_coefficient("momentum", momentum)

    def init_fn(params: optax.Params) -> DeltaMomentumState:
        return DeltaMomentumState(
            previous_delta=optax.tree.zeros_like(params), count=init_count(momentum)
        )

    def update_fn(
        updates: optax.Updates, state: DeltaMomentumState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, DeltaMomentumState]:
        del params
        _tree.check_inputs(
            updates,
            state,
            DeltaMomentumState,
            "delta_momentum",
            "previous_delta",
            scheduled=is_schedule(momentum),
            coefficient="momentum",
        )
        mu = value_at(momentum, state.count)
        # the stored delta is d_t itself, without the momentum term
        updates, new_delta = _tree.leafwise(
            lambda d, prev: (d + mu * prev, d), updates, state.previous_delta
        )
        return updates, DeltaMomentumState(previous_delta=new_delta, count=next_count(state.count))

    return optax.GradientTransformation(init_fn, update_fn)
