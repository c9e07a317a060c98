"""Ready-made optimizers: chains of an accumulator and the learning rate."""

from __future__ import annotations

import optax

from momentum_optax import _scaling
from momentum_optax import _types
from momentum_optax import accumulators
from momentum_optax import restarts
from momentum_optax._types import ScalarOrSchedule


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule = 0.0,
    *,
    nesterov: bool = False,
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
    ``chain(trace(momentum), scale_by_learning_rate(learning_rate))``; with a
    constant momentum the updates are bit-for-bit ``optax.sgd``'s. A momentum
    given as the number 0 keeps no buffer at all (a ``jax.Array`` or traced
    momentum, as under ``optax.inject_hyperparams``, always keeps one, so the
    state's structure does not depend on its value). With ``reset_every=k`` only the
    momentum is wrapped in :func:`periodic_reset` (a learning-rate schedule is
    not restarted).

    Args:
        learning_rate: :math:`\eta`, a finite float >= 0 or a schedule.
        momentum: :math:`\mu`, a float in [0, 1] or a schedule.
        nesterov: use Nesterov's accelerated output.
        ema: keep the velocity as an exponential moving average (seed 002);
            equivalent to heavy ball with the learning rate scaled by ``1 - momentum``.
        reset_every: if given, restart the momentum every that many steps (seed 001).

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
    """
    _types.check_learning_rate("learning_rate", learning_rate)
    _types.check_coefficient("momentum", momentum)
    _types.check_bool("nesterov", nesterov)
    _types.check_bool("ema", ema)
    if reset_every is not None:
        reset_every = _types.check_positive_int("reset_every", reset_every)

    if _types.is_constant_zero(momentum):
        velocity = optax.identity()
    elif ema:
        velocity = accumulators.ema(momentum, nesterov=nesterov)
    else:
        velocity = accumulators.trace(momentum, nesterov=nesterov)
    if reset_every is not None:
        velocity = restarts.periodic_reset(velocity, reset_every)
    return optax.chain(velocity, _scaling.scale_by_learning_rate(learning_rate))
