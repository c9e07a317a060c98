"""Test functions: ravines (ill-conditioned quadratics), Rosenbrock's valley, a bumpy bowl.

Each is a pure function of the position ``x`` (and of traced problem
parameters where a sweep varies them), so it can be differentiated, scanned
and vmapped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# The ravine: f(w) = (kappa w1^2 + w2^2) / 2, steep across (w1), shallow along (w2).
RAVINE_START = np.array([1.0, 1.0], np.float32)

# Rosenbrock's banana valley, from the classic start; minimum f(1, 1) = 0.
ROSENBROCK_START = np.array([-1.2, 1.0], np.float32)

# The bumpy bowl: a wide parabola with ripples; global minimum at 0, whose basin
# (between the two nearest maxima) is |x| < DIPS_BASIN.
DIPS_BOWL, DIPS_RIPPLE = 0.1, 0.05
DIPS_BASIN = 0.5
DIPS_RANGE = 5.0  # random starts are drawn uniformly in [-DIPS_RANGE, DIPS_RANGE]


def ravine_curvatures(kappa: jax.Array) -> jax.Array:
    """Hessian eigenvalues ``(kappa, 1)``: L = kappa, mu = 1, condition number kappa."""
    kappa = jnp.asarray(kappa, jnp.float32)
    return jnp.stack([kappa, jnp.ones_like(kappa)])


def quadratic(curvatures: jax.Array):
    """``f(x) = sum_i c_i x_i^2 / 2`` (minimum 0 at the origin) for the given curvatures."""

    def loss(x: jax.Array) -> jax.Array:
        return 0.5 * jnp.sum(curvatures * x**2)

    return loss


def rosenbrock(x: jax.Array) -> jax.Array:
    """``(1 - x)^2 + 100 (y - x^2)^2``: a curved, narrow valley (Rosenbrock, 1960)."""
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


def dips(x: jax.Array) -> jax.Array:
    """``0.05 x^2 + 0.05 (1 - cos 2 pi x)``: small dips near +-1, +-2, +-3 around the minimum 0.

    ``x`` has shape ``(1,)``. The slope of the bowl (0.1 |x|) is smaller than the
    ripples' (0.1 pi) out to |x| ~ 3.1, so the integers there are local minima.
    """
    x = x[0]
    return 0.5 * DIPS_BOWL * x**2 + DIPS_RIPPLE * (1.0 - jnp.cos(2.0 * jnp.pi * x))
