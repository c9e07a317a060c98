"""Ready-made optimizers: chains of an accumulator and the learning rate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax
from jax.typing import DTypeLike
from optax import ScalarOrSchedule

from momentum_optax import _tree
from momentum_optax import accumulators
from momentum_optax import restarts
from momentum_optax import scaling
from momentum_optax import schedules
from momentum_optax._coefficients import check_accumulator_dtype
from momentum_optax._coefficients import check_bool
from momentum_optax._coefficients import check_coefficient
from momentum_optax._coefficients import check_nonnegative
from momentum_optax._coefficients import positive_int


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule | None = None,
    *,
    nesterov: bool = False,
    accumulator_dtype: DTypeLike | None = None,
    ema: bool = False,
    reset_every: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Stochastic gradient descent with heavy-ball, Nesterov or EMA momentum.

    .. math::

        m_t = g_t + \mu_t m_{t-1} \ (\text{or } \mu_t m_{t-1} + (1-\mu_t) g_t
        \text{ with ema}), \qquad u_t = -\eta_t m_t

    (with nesterov, :math:`m_t` in :math:`u_t` is replaced by the Nesterov
    output of :func:`trace` / :func:`ema`). The learning rate sits outside the
    velocity, as in ``optax.sgd`` and PyTorch:
    ``chain(trace(momentum), scale_by_learning_rate(learning_rate))``.

    A drop-in for ``optax.sgd`` (whose arguments it takes, the flags by
    keyword): with a constant momentum the state is optax's, tree structure included
    (``(optax.TraceState(trace), optax.EmptyState())``, or
    ``optax.ScaleByScheduleState`` for a scheduled learning rate), so an
    ``optax.sgd`` state or checkpoint continues under ``mo.sgd`` and back, and in
    float32 the updates are ``optax.sgd``'s bit for bit. As in optax,
    ``momentum=None`` keeps no buffer, and any number (0 included) keeps one. A
    scheduled momentum keeps a :class:`ScheduledTraceState`. With
    ``reset_every=k`` only the momentum is wrapped in :func:`periodic_reset` (a
    learning-rate schedule is not restarted).

    Args:
        learning_rate: :math:`\eta`, a finite float >= 0 or a schedule.
        momentum: :math:`\mu`, a float in [0, 1] or a schedule; ``None`` (the
            default, as in optax) for plain gradient descent without a buffer.
        nesterov: use Nesterov's accelerated output.
        accumulator_dtype: dtype of the momentum buffer; ``None`` keeps the
            parameters' dtype.
        ema: keep the velocity as an exponential moving average, as in
            *Momentum* (the article on exponential moving averages);
            equivalent to heavy ball with the learning rate scaled by ``1 - momentum``.
        reset_every: if given, restart the momentum every that many steps, as
            *Understanding Momentum in Neural Network Optimization* suggests.

    Returns:
        An ``optax.GradientTransformationExtraArgs``.

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> import momentum_optax as mo
        >>> loss = lambda w: jnp.sum(w ** 2)
        >>> opt = mo.sgd(0.1, momentum=0.9, nesterov=True)
        >>> w = jnp.array([1.0, -1.0]); state = opt.init(w)
        >>> for _ in range(50):
        ...     updates, state = opt.update(jax.grad(loss)(w), state)
        ...     w = optax.apply_updates(w, updates)
        >>> bool(loss(w) < 1e-3)
        True

    References:
        Polyak, 1964; Nesterov, 1983; Sutskever et al., 2013.
        *Understanding Momentum in Neural Network Optimization* and *Momentum*
        (authors not named).
    """
    check_nonnegative("learning_rate", learning_rate)
    if momentum is not None:
        check_coefficient("momentum", momentum)
    check_bool("nesterov", nesterov)
    check_bool("ema", ema)
    accumulator_dtype = check_accumulator_dtype("accumulator_dtype", accumulator_dtype)
    if reset_every is not None:
        reset_every = positive_int("reset_every", reset_every)
    if momentum is None and (
        nesterov or ema or reset_every is not None or accumulator_dtype is not None
    ):
        raise ValueError(
            "momentum is None (plain gradient descent, no buffer), so nesterov, ema, "
            "reset_every and accumulator_dtype have nothing to act on; got "
            f"nesterov={nesterov!r}, ema={ema!r}, reset_every={reset_every!r}, "
            f"accumulator_dtype={accumulator_dtype!r}. Pass a momentum."
        )

    velocity: optax.GradientTransformation
    if momentum is None:
        velocity = optax.identity()
    elif ema:
        velocity = accumulators.ema(
            momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype
        )
    else:
        velocity = accumulators.trace(
            momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype
        )
    if reset_every is not None:
        velocity = restarts.periodic_reset(velocity, reset_every)
    return _tree.chain(velocity, scaling.scale_by_learning_rate(learning_rate), owner="sgd")


#: SRSGD's default restart schedule: the period F_k grows linearly from 40 to 80 steps over
#: the first 40 restarts, then stays at 80 (the paper's ImageNet runs raise it from 40 to
#: 80 by learning-rate stage; here it grows with the restart count)
SRSGD_PERIOD = optax.linear_schedule(init_value=40.0, end_value=80.0, transition_steps=40)


def srsgd(
    learning_rate: ScalarOrSchedule,
    *,
    restart_every: int | Callable[[jax.Array], Any] | None = None,
    accumulator_dtype: DTypeLike | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Scheduled restart SGD (SRSGD, Wang et al. 2020): Nesterov momentum ``k / (k + 3)``,
    restarted every :math:`F_j` steps with :math:`F_j` growing.

    .. math::

        v_{k+1} = w_k - s\, g_k, \qquad
        w_{k+1} = v_{k+1} + \frac{\kappa}{\kappa + 3}\, (v_{k+1} - v_k), \qquad
        \kappa = k - (F_0 + \dots + F_{j-1})

    where :math:`\kappa` counts the steps since the last restart (the paper's
    :math:`k \bmod F` for a constant period) and :math:`g_k` is the stochastic gradient
    at :math:`w_k`, the parameters. It is built from the library's parts:
    ``chain(periodic_reset(trace(schedules.nesterov_sequence(), nesterov=True),
    restart_every), scale_by_learning_rate(learning_rate))``; a restart re-initialises the
    buffer and the sequence's count. Only the learning rate is a hyper-parameter to tune
    (the momentum is the sequence). The paper's weight decay is
    ``optax.add_decayed_weights`` chained in front.

    Args:
        learning_rate: :math:`s`, a finite float >= 0 or a schedule.
        restart_every: the restart period: an integer >= 1 (the paper's constant
            :math:`F`), or a schedule of the restart index :math:`j` giving
            :math:`F_j` (rounded to an integer); ``None`` (the default) is
            :data:`SRSGD_PERIOD`, 40 steps growing linearly to 80 over 40 restarts (the
            paper's ImageNet runs use periods 40 to 80, raised per learning-rate stage).
        accumulator_dtype: dtype of the momentum buffer; ``None`` keeps the
            parameters'.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose first state is a
        :class:`ScheduledResetState` (or a :class:`PeriodicResetState` for a constant
        period).

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> import momentum_optax as mo
        >>> loss = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 0.01]) * w**2)
        >>> opt = mo.srsgd(1.0, restart_every=50)
        >>> w = jnp.array([1.0, 1.0]); state = opt.init(w)
        >>> for _ in range(200):
        ...     updates, state = opt.update(jax.grad(loss)(w), state)
        ...     w = optax.apply_updates(w, updates)
        >>> bool(loss(w) < 1e-8)  # gradient descent at the same step: 9.0e-05
        True

    References:
        Wang, Nguyen, Bertozzi, Baraniuk & Osher, *Scheduled restart momentum for
        accelerated stochastic gradient descent*, 2020 (arXiv:2002.10583).
    """
    check_nonnegative("learning_rate", learning_rate)
    accumulator_dtype = check_accumulator_dtype("accumulator_dtype", accumulator_dtype)
    if restart_every is not None and not callable(restart_every):
        restart_every = positive_int(
            "restart_every",
            restart_every,
            what="None, an integer >= 1 or a schedule of the restart index",
        )
    velocity = restarts.periodic_reset(
        accumulators.trace(
            schedules.nesterov_sequence(), nesterov=True, accumulator_dtype=accumulator_dtype
        ),
        SRSGD_PERIOD if restart_every is None else restart_every,
    )
    return _tree.chain(velocity, scaling.scale_by_learning_rate(learning_rate), owner="srsgd")
