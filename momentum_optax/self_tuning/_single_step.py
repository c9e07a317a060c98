"""YellowFin's SingleStep: the tuned learning rate and momentum from the four estimates."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

#: p of the SingleStep cubic is clipped to this range, where its root is finite in float32
P_RANGE = (1e-30, 1e30)


def cubic_root(p: jax.Array) -> jax.Array:
    r"""The root :math:`x \in [0, 1]` of SingleStep's cubic :math:`p\, x = (1 - x)^3`.

    :math:`x = \sqrt{\mu}` minimises :math:`\mu D^2 + \alpha^2 C` with
    :math:`\alpha = (1 - \sqrt\mu)^2 / h_{min}` and :math:`p = D^2 h_{min}^2 / (2 C)`.
    With :math:`s = 1 - x`, the depressed cubic :math:`s^3 + p s - p = 0` has one real root,
    written without cancellation or overflow (Cardano's form
    :math:`w - p / (3 w)` subtracts two numbers of size :math:`\sqrt p`) as

    .. math::  s = 2 \sqrt{p / 3}\, \sinh\Bigl(\tfrac13 \operatorname{arsinh}
               \bigl(\tfrac32 \sqrt{3 / p}\bigr)\Bigr)

    followed, for :math:`p > 1`, by one Newton step on :math:`f(x) = p x - (1 - x)^3`
    (:math:`f' \ge p`), which makes the small roots of a large :math:`p`
    (:math:`x \approx 1 / p`) accurate to a relative error of float32's precision. ``p``
    is clipped to :data:`P_RANGE`.
    """
    p = jnp.clip(jnp.asarray(p, jnp.float32), *P_RANGE)
    s = 2 * jnp.sqrt(p / 3) * jnp.sinh(jnp.arcsinh(1.5 * jnp.sqrt(3 / p)) / 3)
    x = jnp.clip(1 - s, 0.0, 1.0)
    polished = x - (p * x - (1 - x) ** 3) / (p + 3 * (1 - x) ** 2)
    # below p = 1 the root is above 0.31 and 1 - s is accurate as it stands; there, close
    # to x = 1, f is flat (f' = p) and a Newton step would overshoot
    return jnp.where(p > 1, jnp.clip(polished, 0.0, 1.0), x)


def single_step(
    variance: jax.Array, distance: jax.Array, h_min: jax.Array, h_max: jax.Array, eps: Any
) -> tuple[jax.Array, jax.Array]:
    r"""YellowFin's SingleStep: the tuned ``(learning_rate, momentum)`` from the estimates.

    .. math::

        \mu = \max\Bigl(x^2,\ \Bigl(\frac{\sqrt{h_{max}/h_{min}} - 1}
              {\sqrt{h_{max}/h_{min}} + 1}\Bigr)^2\Bigr), \qquad
        \alpha = \frac{(1 - \sqrt\mu)^2}{h_{min}}

    with :math:`x` the :func:`cubic_root` of :math:`p = D^2 h_{min}^2 / (2 C)`: the
    momentum that minimises the expected squared distance after one step,
    :math:`\mu D^2 + \alpha^2 C`, floored by the one that keeps every curvature in
    :math:`[h_{min}, h_{max}]` in the robust region. :math:`C` and :math:`h_{min}` are
    floored at ``eps``, :math:`h_{max}` at :math:`h_{min}`.
    """
    h_min = jnp.maximum(h_min, eps)
    h_max = jnp.maximum(h_max, h_min)
    reach = distance * h_min
    x = cubic_root(reach * reach / (2 * jnp.maximum(variance, eps)))
    spread = jnp.sqrt(h_max / h_min)
    momentum = jnp.maximum(x * x, ((spread - 1) / (spread + 1)) ** 2)
    learning_rate = (1 - jnp.sqrt(momentum)) ** 2 / h_min
    return learning_rate, momentum
