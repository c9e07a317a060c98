"""Optimal momentum parameters for quadratics with Hessian eigenvalues in [mu, L]."""

from __future__ import annotations

import math
from typing import Any
from typing import NamedTuple

from momentum_optax import _coefficients


class Tuning(NamedTuple):
    """Step size, momentum and the linear rate they guarantee on such quadratics."""

    learning_rate: float
    momentum: float
    rate: float  # per-step contraction factor of the error, asymptotically


def _check_curvature(L: Any, mu: Any) -> tuple[float, float]:
    values = []
    for name, value in (("L", L), ("mu", mu)):
        if _coefficients.is_schedule(value):
            raise TypeError(f"{name} must be a finite float > 0; got the callable {value!r}.")
        number = _coefficients.known_constant(
            name, _coefficients.readable(value), "a finite float > 0"
        )
        if number is None or not math.isfinite(number):
            raise ValueError(f"{name} must be a finite float > 0; got {value!r}.")
        values.append(number)
    L, mu = values
    if not 0 < mu <= L:
        raise ValueError(f"mu must be in (0, L] with L={L!r}; got mu={mu!r}.")
    return L, mu


def gradient_descent(L: float, mu: float) -> Tuning:
    r"""The best constant step of plain gradient descent, the baseline momentum is measured against.

    .. math::

        \eta = \frac{2}{L + \mu}, \qquad \beta = 0, \qquad
        \rho = \frac{\kappa - 1}{\kappa + 1}, \quad \kappa = L / \mu

    (the step that balances the slowest and the stiffest eigen-directions).

    Args:
        L: the largest Hessian eigenvalue (smoothness).
        mu: the smallest (strong convexity), ``0 < mu <= L``.

    Returns:
        :class:`Tuning` ``(learning_rate, 0.0, rate)``.

    Example:
        >>> import momentum_optax as mo
        >>> mo.tuning.gradient_descent(L=100.0, mu=1.0)
        Tuning(learning_rate=0.019801980198019802, momentum=0.0, rate=0.9801980198019802)

    References:
        Polyak, *Introduction to optimization*, 1987, section 1.4.
    """
    L, mu = _check_curvature(L, mu)
    return Tuning(2 / (L + mu), 0.0, (L - mu) / (L + mu))


def heavy_ball(L: float, mu: float) -> Tuning:
    r"""Polyak's optimal heavy-ball parameters for a quadratic with curvature in [mu, L].

    .. math::

        \eta = \frac{4}{(\sqrt{L} + \sqrt{\mu})^2}, \qquad
        \beta = \Bigl(\frac{\sqrt{L} - \sqrt{\mu}}{\sqrt{L} + \sqrt{\mu}}\Bigr)^2, \qquad
        \rho = \frac{\sqrt{\kappa} - 1}{\sqrt{\kappa} + 1}, \quad \kappa = L / \mu

    for ``mo.sgd(eta, beta)``; every eigen-direction then contracts by
    :math:`\rho = \sqrt{\beta}` per step (gradient descent at its best step
    :math:`2/(L+\mu)`: :math:`(\kappa-1)/(\kappa+1)`).

    Args:
        L: the largest Hessian eigenvalue (smoothness).
        mu: the smallest (strong convexity), ``0 < mu <= L``.

    Returns:
        :class:`Tuning` ``(learning_rate, momentum, rate)``.

    Example:
        >>> import momentum_optax as mo
        >>> mo.tuning.heavy_ball(L=100.0, mu=1.0)  # doctest: +NORMALIZE_WHITESPACE
        Tuning(learning_rate=0.03305785123966942, momentum=0.6694214876033059,
               rate=0.8181818181818182)

    References:
        Polyak, *Some methods of speeding up the convergence of iteration
        methods*, 1964.
    """
    L, mu = _check_curvature(L, mu)
    root_l, root_mu = math.sqrt(L), math.sqrt(mu)
    rate = (root_l - root_mu) / (root_l + root_mu)
    return Tuning(4 / (root_l + root_mu) ** 2, rate**2, rate)


def nesterov(L: float, mu: float) -> Tuning:
    r"""Nesterov's parameters for a strongly convex quadratic with curvature in [mu, L].

    .. math::

        \eta = \frac{1}{L}, \qquad \beta = \frac{\sqrt{\kappa} - 1}{\sqrt{\kappa} + 1}, \qquad
        \rho = 1 - \frac{1}{\sqrt{\kappa}}

    for ``mo.sgd(eta, beta, nesterov=True)``. At :math:`\lambda = \mu` the
    iteration has a double root :math:`1 - 1/\sqrt{\kappa}`, the slowest of all
    eigen-directions, so the error contracts by :math:`\rho` per step
    (asymptotically, up to a factor linear in the step count).

    Args:
        L: the largest Hessian eigenvalue (smoothness).
        mu: the smallest (strong convexity), ``0 < mu <= L``.

    Returns:
        :class:`Tuning` ``(learning_rate, momentum, rate)``.

    Example:
        >>> import momentum_optax as mo
        >>> mo.tuning.nesterov(L=100.0, mu=1.0)
        Tuning(learning_rate=0.01, momentum=0.8181818181818182, rate=0.9)

    References:
        Nesterov, *Introductory lectures on convex optimization*, 2004, (2.2.19).
        Lessard, Recht, Packard, *Analysis and design of optimization algorithms
        via integral quadratic constraints*, 2016.
    """
    L, mu = _check_curvature(L, mu)
    root_kappa = math.sqrt(L / mu)
    return Tuning(1 / L, (root_kappa - 1) / (root_kappa + 1), 1 - 1 / root_kappa)
