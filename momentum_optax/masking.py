"""Cautious momentum: keep only the components of an update that agree with the gradient."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from momentum_optax import _coefficients
from momentum_optax import _tree


def cautious(
    inner: optax.GradientTransformation, *, flip_sign: bool = False
) -> optax.GradientTransformationExtraArgs:
    r"""Cautious optimizer (Liang et al. 2024): mask the components of ``inner``'s update
    whose sign disagrees with the current gradient, and rescale what is kept.

    .. math::

        \phi_t = \mathbb{1}[\sigma\, u_t \odot g_t > 0], \qquad
        \tilde u_t = \frac{d}{\operatorname{nnz}(\phi_t) + 1}\, \phi_t \odot u_t

    per parameter tensor of :math:`d` elements, :math:`u_t` the inner update,
    :math:`g_t` the incoming gradient and :math:`\sigma = 1` (the paper's reference
    code; the :math:`+1` keeps an all-zero mask finite: the update is then exactly 0).
    The rescaling restores the update's size to roughly that of the unmasked one
    (:math:`1 /` the fraction kept).

    ``inner`` must point along the gradient, as a momentum transformation before the
    learning rate does (``trace``, ``ema``, ``qhm``, ``optax.scale_by_adam``): use
    ``chain(cautious(trace(b)), scale_by_learning_rate(lr))``. A whole optimizer, whose
    updates are descent steps (:math:`-\eta\, m_t`: ``mo.sgd``, ``optax.adam``), needs
    ``flip_sign=True`` (:math:`\sigma = -1`); without it the mask is inverted (it keeps
    exactly the components that disagree). Weight decay inside ``inner`` is masked too; the paper's
    C-AdamW applies it unmasked, so chain ``optax.add_decayed_weights`` after the
    cautious direction. The state is ``inner``'s own, unchanged: a cautious and a plain
    optimizer share one state structure and one checkpoint format (the mask acts on the
    output only; the momentum buffer keeps every component). Extra arguments
    (``value=loss``) are forwarded to ``inner``.

    Args:
        inner: the transformation whose updates are masked, e.g. ``trace(0.9)``.
        flip_sign: whether ``inner``'s updates point against the gradient (a whole
            optimizer, learning rate included); ``True`` or ``False``.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with ``inner``'s state.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.cautious(mo.trace(0.9))
        >>> state = opt.init(jnp.zeros(3))
        >>> u, state = opt.update(jnp.array([1.0, 1.0, 1.0]), state)
        >>> u  # all three agree: 3 / (3 + 1) * g
        Array([0.75, 0.75, 0.75], dtype=float32)
        >>> u, state = opt.update(jnp.array([1.0, -0.5, 1.0]), state)  # m = 1.9, 0.4, 1.9
        >>> u  # the middle one disagrees: dropped, the others times 3 / (2 + 1)
        Array([1.9, 0. , 1.9], dtype=float32)

    References:
        Liang, Chen, Liu & Liu, *Cautious optimizers: improving training with one line
        of code*, 2024 (arXiv:2411.16085).
    """
    if not isinstance(inner, optax.GradientTransformation):
        raise TypeError(
            f"inner must be an optax.GradientTransformation; got {inner!r} "
            f"of type {type(inner).__name__}."
        )
    _coefficients.check_bool("flip_sign", flip_sign)
    inner = optax.with_extra_args_support(inner)
    sign = -1.0 if flip_sign else 1.0

    def update_fn(
        updates: optax.Updates,
        state: Any,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, Any]:
        carried, new_state = inner.update(updates, state, params, **extra_args)

        def leaf(u: jax.Array, g: jax.Array) -> tuple:
            keep = sign * u * g > 0
            scale = u.size / (jnp.sum(keep, dtype=jnp.int32).astype(u.dtype) + 1)
            return jnp.where(keep, u * scale, jnp.zeros_like(u)), g

        masked, _ = _tree.leafwise(leaf, carried, updates)
        return masked, new_state

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)
