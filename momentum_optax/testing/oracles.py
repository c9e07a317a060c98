"""NumPy oracles of the library's formulas: plain float64 loops, independent of the JAX code.

Each oracle takes a sequence of gradients (or incoming updates) as one array whose leading
axis is the step, and the coefficient as a float, an ``optax`` schedule or an array of
per-step values (:func:`coefficient_values`), and returns the outputs stacked the same way,
in float64. For a pytree, map an oracle over the stacked leaves::

    jax.tree.map(lambda *g: oracles.trace(np.stack(g), 0.9), *grads)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import numpy as np


def coefficient_values(coefficient: Any, n: int) -> np.ndarray:
    r"""A coefficient's values at step counts ``0, ..., n - 1``, in float64.

    .. math::

        \beta_t = \beta \;\text{(a constant)}, \quad \beta(t) \;\text{(a schedule)}, \quad
        \text{or } \beta[t] \;\text{(an array)}

    Args:
        coefficient: a float, a schedule (a callable of the int32 step count, such as an
            ``optax`` schedule), or an array of at least ``n`` per-step values.
        n: how many values.

    Returns:
        A float64 array of shape ``(n,)``.

    Example:
        >>> import optax
        >>> from momentum_optax.testing import oracles
        >>> oracles.coefficient_values(optax.linear_schedule(0.0, 1.0, 2), 4)
        array([0. , 0.5, 1. , 1. ])
    """
    if callable(coefficient):
        return np.array([float(coefficient(np.int32(t))) for t in range(n)], np.float64)
    values = np.asarray(coefficient, np.float64)
    if values.ndim == 0:
        return np.full(n, float(values))
    if values.ndim != 1 or len(values) < n:
        raise ValueError(
            f"coefficient must be a float, a schedule or a 1-D array of at least {n} values; "
            f"got an array of shape {values.shape}."
        )
    return values[:n]


def _steps(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values, np.float64)
    if array.ndim < 1 or len(array) == 0:
        raise ValueError(
            f"{name} must be an array with a leading step axis of length >= 1; "
            f"got shape {array.shape}."
        )
    return array


def trace(grads: Any, decays: Any, nesterov: bool = False) -> np.ndarray:
    r"""Heavy-ball momentum (``mo.trace``), written out in float64.

    .. math::

        m_t = g_t + \beta_t m_{t-1}, \quad m_{-1} = 0, \qquad
        u_t = m_t \;\text{or, with nesterov,}\; u_t = g_t + \beta_{t+1} m_t

    Args:
        grads: the gradients, an array of shape ``(steps, ...)``.
        decays: :math:`\beta`: a float, a schedule, or per-step values (``steps + 1`` of
            them with ``nesterov``, which reads :math:`\beta_{t+1}`).
        nesterov: use Nesterov's output.

    Returns:
        The updates :math:`u_t`, a float64 array shaped like ``grads``.

    Example:
        >>> from momentum_optax.testing import oracles
        >>> oracles.trace([1.0, 1.0], 0.9)
        array([1. , 1.9])
    """
    grads = _steps("grads", grads)
    betas = coefficient_values(decays, len(grads) + (1 if nesterov else 0))
    m, outs = np.zeros_like(grads[0]), []
    for t, g in enumerate(grads):
        m = g + betas[t] * m
        outs.append(g + betas[t + 1] * m if nesterov else m)
    return np.stack(outs)


def ema(grads: Any, decays: Any, debias: bool = False, nesterov: bool = False) -> np.ndarray:
    r"""Momentum as an exponential moving average (``mo.ema``), with exact debiasing.

    .. math::

        m_t = \beta_t m_{t-1} + (1 - \beta_t) g_t, \qquad P_t = \prod_{i \le t} \beta_i

    The output is :math:`m_t`, or :math:`m_t / (1 - P_t)` with ``debias``; with
    ``nesterov`` it is :math:`\beta_{t+1} m_t + (1 - \beta_t) g_t`, and with both
    :math:`\beta_{t+1} m_t / (1 - P_{t+1}) + (1 - \beta_t) g_t / (1 - P_t)`.

    Args:
        grads: the gradients, an array of shape ``(steps, ...)``.
        decays: :math:`\beta`: a float, a schedule, or per-step values (``steps + 1`` of
            them with ``nesterov``).
        debias: divide by :math:`1 - P_t` (exact for a scheduled decay, unlike
            :math:`1 - \beta^t`).
        nesterov: use the look-ahead output.

    Returns:
        The updates, a float64 array shaped like ``grads``.

    Example:
        >>> from momentum_optax.testing import oracles
        >>> oracles.ema([4.0, 4.0], 0.5, debias=True)  # a constant input comes out exactly
        array([4., 4.])
    """
    grads = _steps("grads", grads)
    betas = coefficient_values(decays, len(grads) + (1 if nesterov else 0))
    m, product, outs = np.zeros_like(grads[0]), 1.0, []
    for t, g in enumerate(grads):
        m = betas[t] * m + (1 - betas[t]) * g
        product *= betas[t]
        if nesterov:
            next_product = product * betas[t + 1]
            if debias:
                out = betas[t + 1] * m / (1 - next_product) + (1 - betas[t]) * g / (1 - product)
            else:
                out = betas[t + 1] * m + (1 - betas[t]) * g
        else:
            out = m / (1 - product) if debias else m
        outs.append(out)
    return np.stack(outs)


def delta_momentum(deltas: Any, momenta: Any) -> np.ndarray:
    r"""McCaffrey's momentum on the previous delta (``mo.delta_momentum``).

    .. math::

        u_t = d_t + \mu_t d_{t-1}, \qquad d_{-1} = 0

    Args:
        deltas: the incoming updates :math:`d_t` (already scaled by the learning rate), an
            array of shape ``(steps, ...)``.
        momenta: :math:`\mu`: a float, a schedule or per-step values.

    Returns:
        The updates, a float64 array shaped like ``deltas``.

    Example:
        >>> from momentum_optax.testing import oracles
        >>> oracles.delta_momentum([0.044, 0.027], 0.5)  # McCaffrey's 0.027 + 0.5 * 0.044
        array([0.044, 0.049])
    """
    deltas = _steps("deltas", deltas)
    mus = coefficient_values(momenta, len(deltas))
    prev, outs = np.zeros_like(deltas[0]), []
    for t, d in enumerate(deltas):
        outs.append(d + mus[t] * prev)
        prev = d
    return np.stack(outs)


class LookAhead(NamedTuple):
    """What :func:`nesterov_lookahead` returns, one row per step."""

    params: np.ndarray  # theta_{t+1}, the parameters after step t
    velocity: np.ndarray  # v_t
    lookahead: np.ndarray  # theta_{t+1} - gamma_{t+1} v_t, where the next gradient is taken


def nesterov_lookahead(
    grad_fn: Callable[[np.ndarray], Any],
    theta0: Any,
    gammas: Any,
    learning_rate: Any,
    steps: int,
) -> LookAhead:
    r"""Nesterov's accelerated gradient in its look-ahead form (Sutskever et al., 2013).

    .. math::

        v_t = \gamma_t v_{t-1} + \eta_t \nabla J(\theta_t - \gamma_t v_{t-1}), \quad
        v_{-1} = 0, \qquad \theta_{t+1} = \theta_t - v_t

    ``chain(mo.trace(gamma, nesterov=True), scale_by_learning_rate(eta))`` descends along
    the look-ahead points :math:`\theta_{t+1} - \gamma_{t+1} v_t` (its parameters are
    where this form takes its next gradient).

    Args:
        grad_fn: :math:`\nabla J`, a function of a float64 array.
        theta0: the initial parameters :math:`\theta_0` (an array).
        gammas: :math:`\gamma`: a float, a schedule, or ``steps + 1`` per-step values.
        learning_rate: :math:`\eta`: a float, a schedule, or ``steps`` per-step values.
        steps: how many steps, at least 1.

    Returns:
        A :class:`LookAhead` of float64 arrays of shape ``(steps, *theta0.shape)``.

    Example:
        >>> import numpy as np
        >>> from momentum_optax.testing import oracles
        >>> run = oracles.nesterov_lookahead(lambda x: x, np.array([1.0]), 0.5, 0.1, 2)
        >>> run.velocity[:, 0]  # 0.1 * 1, then 0.5 * 0.1 + 0.1 * (0.9 - 0.05)
        array([0.1  , 0.135])
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}.")
    gamma = coefficient_values(gammas, steps + 1)
    eta = coefficient_values(learning_rate, steps)
    theta = np.array(theta0, np.float64)
    v = np.zeros_like(theta)
    params, velocity, lookahead = [], [], []
    for t in range(steps):
        v = gamma[t] * v + eta[t] * np.asarray(grad_fn(theta - gamma[t] * v), np.float64)
        theta = theta - v
        params.append(theta)
        velocity.append(v)
        lookahead.append(theta - gamma[t + 1] * v)
    return LookAhead(np.stack(params), np.stack(velocity), np.stack(lookahead))
