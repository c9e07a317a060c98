r"""The noisy quadratic model (NQM) of Zhang et al. (2019), with the batch size traced.

G. Zhang, L. Li, Z. Nado, J. Martens, S. Sachdeva, G. Dahl, C. Shallue and R. Grosse,
*Which algorithmic choices matter at which batch sizes? Insights from a noisy quadratic
model*, NeurIPS 2019. The model is a quadratic in the eigenbasis of its Hessian,

.. math::

    L(x) = \tfrac12 \sum_{i=1}^d h_i x_i^2, \qquad h_i = 1 / i,

whose mini-batch gradient of batch size :math:`B` is the true gradient plus noise with
covariance proportional to the Hessian (the paper's :math:`C = H`, scaled by ``noise``):

.. math::

    g = h \odot x + \sqrt{c\, h / B} \odot \xi, \qquad \xi \sim N(0, I).

Small batches are *noise-limited* (the step size is bounded by the noise floor it
leaves, about :math:`\eta c \sum_i h_i^2 / (4B)` for SGD), large ones *curvature-limited*
(bounded by stability, :math:`\eta < 2 / h_1`, so the flattest directions need about
:math:`1 / (\eta h_d)` steps): the paper's explanation of why momentum and
preconditioning help only at large batch. ``sample`` runs any optax transformation on
sampled gradients; ``expected_loss`` integrates the noise out exactly for heavy ball
(the second moments obey a linear recursion). Both are pure ``lax.scan`` loops with the
batch size, learning rate and momentum traced: ``vmap`` them over a sweep table.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


def curvatures(dim: int) -> jax.Array:
    """The paper's spectrum ``h_i = 1 / i``, ``i = 1 .. dim`` (L = 1, condition number dim)."""
    return 1.0 / jnp.arange(1, dim + 1, dtype=jnp.float32)


def loss(h: jax.Array, x: jax.Array) -> jax.Array:
    r""":math:`\tfrac12 \sum_i h_i x_i^2`."""
    return 0.5 * jnp.sum(h * x**2)


def gradient(
    h: jax.Array, x: jax.Array, batch_size: jax.Array, key: jax.Array, noise: float = 1.0
) -> jax.Array:
    r"""A mini-batch gradient :math:`h \odot x + \sqrt{c h / B}\, \xi` (``c = noise``)."""
    xi = jax.random.normal(key, x.shape, x.dtype)
    return h * x + jnp.sqrt(noise * h / batch_size) * xi


def start(key: jax.Array, dim: int) -> jax.Array:
    """A random start ``x0 ~ N(0, I)`` (expected initial loss ``sum(h) / 2``)."""
    return jax.random.normal(key, (dim,), jnp.float32)


def sample(
    opt: optax.GradientTransformation,
    h: jax.Array,
    x0: jax.Array,
    key: jax.Array,
    batch_size: jax.Array,
    steps: int,
    *,
    noise: float = 1.0,
    every: int = 1,
) -> jax.Array:
    """Runs ``opt`` on sampled NQM gradients from ``x0``; returns the loss at steps
    ``0, every, 2 every, ..., steps`` (the actual, not the expected, loss of the run)."""
    if steps % every:
        raise ValueError(f"steps ({steps}) must be a multiple of every ({every}).")

    def step(carry, t):
        x, state = carry
        g = gradient(h, x, batch_size, jax.random.fold_in(key, t), noise)
        updates, state = opt.update(g, state, x)
        return (optax.apply_updates(x, updates), state), None

    def chunk(carry, first):
        carry, _ = jax.lax.scan(step, carry, first + jnp.arange(every))
        return carry, loss(h, carry[0])

    _, losses = jax.lax.scan(chunk, (x0, opt.init(x0)), jnp.arange(0, steps, every))
    return jnp.concatenate([loss(h, x0)[None], losses])


def expected_loss(
    lr: jax.Array,
    momentum: jax.Array,
    h: jax.Array,
    x0: jax.Array,
    batch_size: jax.Array,
    steps: int,
    *,
    noise: float = 1.0,
    every: int = 1,
) -> jax.Array:
    r"""The exact expected loss of heavy ball (``mo.sgd(lr, momentum)``; momentum 0: SGD)
    on the NQM from ``x0``, at steps ``0, every, ..., steps``.

    Per coordinate, :math:`v' = \beta v + g`, :math:`x' = x - \eta v'` is the linear
    system :math:`z' = A z + b\, n` in :math:`z = (x, v)` with
    :math:`A = \begin{pmatrix} 1 - \eta h & -\eta\beta \\ h & \beta \end{pmatrix}`,
    :math:`b = (-\eta, 1)` and noise :math:`n` of variance :math:`c h / B`, so the second
    moments :math:`S = E[z z^\top]` obey :math:`S' = A S A^\top + b b^\top c h / B`, and
    :math:`E[L] = \tfrac12 \sum_i h_i S_{xx,i}`.
    """
    if steps % every:
        raise ValueError(f"steps ({steps}) must be a multiple of every ({every}).")
    a11, a12, a21, a22 = 1 - lr * h, -lr * momentum, h, momentum + 0 * h
    var = noise * h / batch_size

    def step(s, _):
        xx, xv, vv = s
        new_xx = a11**2 * xx + 2 * a11 * a12 * xv + a12**2 * vv + lr**2 * var
        new_xv = a11 * a21 * xx + (a11 * a22 + a12 * a21) * xv + a12 * a22 * vv - lr * var
        new_vv = a21**2 * xx + 2 * a21 * a22 * xv + a22**2 * vv + var
        return (new_xx, new_xv, new_vv), None

    def chunk(s, _):
        s, _ = jax.lax.scan(step, s, None, length=every)
        return s, 0.5 * jnp.sum(h * s[0])

    zeros = jnp.zeros_like(x0)
    _, losses = jax.lax.scan(chunk, (x0**2, zeros, zeros), None, length=steps // every)
    return jnp.concatenate([loss(h, x0)[None], losses])


class Problem(NamedTuple):
    """The NQM as a task of ``comparison.run`` (with ``train=noisy_quadratic.train``): its
    ``data`` are the curvatures ``h``."""

    name: str
    data: jax.Array


def problem(dim: int) -> Problem:
    """The NQM of ``dim`` dimensions, ``h_i = 1 / i``."""
    return Problem("noisy-quadratic", curvatures(dim))


def train(opt, task: Problem, key: jax.Array, schedule, data=None):
    """``loop.train``'s contract on the NQM: ``key`` draws the start (``fold_in(key, 0)``)
    and the gradient noise (``fold_in(key, 1)``); the sampled loss is both the "training"
    and the "validation" curve, the accuracies are NaN."""
    from . import loop  # the loop's module graph stays free of the NQM

    h = task.data if data is None else data
    losses = sample(
        opt,
        h,
        start(jax.random.fold_in(key, 0), h.shape[0]),
        jax.random.fold_in(key, 1),
        schedule.batch_size,
        schedule.steps,
        every=schedule.eval_every,
    )
    return loop.Curves(losses, losses, losses * jnp.nan, losses[-1], losses[-1] * jnp.nan)
