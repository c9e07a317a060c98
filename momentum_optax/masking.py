"""Cautious momentum: keep only the components of an update that agree with the gradient."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from momentum_optax import _coefficients
from momentum_optax import _tree

_CHAIN = (
    "optax.chain(mo.cautious(optax.scale_by_adam(b1, b2)), "
    "optax.add_decayed_weights(weight_decay), optax.scale_by_learning_rate(learning_rate))"
)


def cautious(
    inner: optax.GradientTransformation,
    *,
    flip_sign: bool | None = None,
    mask_decay: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Cautious optimizer (Liang et al. 2024): mask the components of ``inner``'s update
    whose sign disagrees with the current gradient, and rescale what is kept.

    .. math::

        \phi_t = \mathbb{1}[\operatorname{sign}(u_t) = \sigma \operatorname{sign}(g_t) \neq 0],
        \qquad
        \tilde u_t = \frac{d}{\operatorname{nnz}(\phi_t) + 1}\, \phi_t \odot u_t

    per parameter tensor of :math:`d` elements, :math:`u_t` the inner update,
    :math:`g_t` the incoming gradient; :math:`\sigma = 1` when ``inner`` points along
    the gradient (a momentum direction before the learning rate: ``trace``, ``ema``,
    ``qhm``, ``optax.scale_by_adam``) and :math:`\sigma = -1` when it points against it
    (a whole optimizer, whose updates are descent steps: ``mo.sgd``, ``optax.adam``).
    The mask is the paper's :math:`\mathbb{1}[\sigma u_t g_t > 0]` read from the signs,
    so it cannot underflow (a product :math:`u g` below float32's smallest normal would
    flush to 0 and drop a component whose signs agree). The :math:`+1` keeps an all-zero
    mask finite: the update is then exactly 0. The rescaling restores the update's size
    to roughly that of the unmasked one (:math:`1 /` the fraction kept).

    **The direction.** With ``flip_sign=None`` (the default) it is read from ``inner``
    itself: at trace time (once per compilation; eagerly once per tree of shapes) ``inner``
    takes one step from zero parameters and a gradient of ones, and :math:`\sigma` is the
    sign its update mostly has. So ``cautious(mo.sgd(0.1, 0.9))`` and
    ``cautious(optax.adam(1e-3))`` read as the paper's "one line of code". A given
    ``flip_sign`` is checked against the same step: one that contradicts it raises a
    ``ValueError`` (an inverted mask keeps exactly the components that disagree). When
    that step cannot tell (its update is 0, e.g. a learning rate warming up from 0, or
    it depends on traced values) a given ``flip_sign`` is used as given, and without one
    ``cautious`` raises, asking for it. The probe costs one step of ``inner`` on arrays
    shaped like the parameters, at trace time.

    **Non-finite values** are not masked: a component whose gradient or inner update is
    NaN or infinite comes out non-finite (NaN or inf), as it does from ``inner`` alone,
    so a NaN is seen at the step it happens (a mask would set it to 0 and keep it hidden
    in the momentum buffer for good).

    **Weight decay.** The paper's C-AdamW applies the decay unmasked. A mask around an
    ``inner`` whose update depends on the parameters (``optax.adamw``, an
    ``add_decayed_weights`` inside) would mask the decay too, so ``cautious`` refuses
    it (the same probe, with parameters of ones), naming the chain that is C-AdamW:
    ``optax.chain(mo.cautious(optax.scale_by_adam(b1, b2)),
    optax.add_decayed_weights(weight_decay), optax.scale_by_learning_rate(lr))``.
    ``mask_decay=True`` masks it anyway.

    The state is ``inner``'s own, unchanged: a cautious and a plain optimizer share one
    state structure and one checkpoint format (the mask acts on the output only; the
    momentum buffer keeps every component). Extra arguments (``value=loss``) are
    forwarded to ``inner``. Integer leaves pass through as ``inner`` returns them.

    Args:
        inner: the transformation whose updates are masked, e.g. ``trace(0.9)`` or a
            whole optimizer such as ``mo.sgd(0.1, 0.9)``.
        flip_sign: ``None`` (read the direction from ``inner``), ``False`` (``inner``
            points along the gradient) or ``True`` (it points against it, as a descent
            step does); a given value is checked against ``inner``.
        mask_decay: whether an ``inner`` whose update depends on the parameters (weight
            decay) is masked anyway; ``False`` refuses it.

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
    if flip_sign is not None:
        _coefficients.check_bool("flip_sign", flip_sign)
    _coefficients.check_bool("mask_decay", mask_decay)
    inner = optax.with_extra_args_support(inner)
    signs: dict[Any, float] = {}  # the probe's answer, per tree of shapes and dtypes

    def sign_for(updates: Any, params: Any, extra_args: dict) -> float:
        key = (
            _tree.structure(updates),
            tuple((jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(updates)),
            params is None,
            tuple(sorted(extra_args)),
        )
        if key not in signs:
            signs[key] = _probe(inner, updates, params, extra_args, flip_sign, mask_decay)
        return signs[key]

    def update_fn(
        updates: optax.Updates,
        state: Any,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, Any]:
        sign = sign_for(updates, params, extra_args)
        carried, new_state = inner.update(updates, state, params, **extra_args)

        def leaf(u: jax.Array, g: jax.Array) -> tuple:
            agree = jnp.sign(u) * jnp.sign(g) * sign > 0  # signs: no product to underflow
            finite = jnp.isfinite(u) & jnp.isfinite(g)
            scale = u.size / (jnp.sum(agree, dtype=jnp.int32).astype(u.dtype) + 1)
            masked = jnp.where(agree, u * scale, jnp.zeros_like(u))
            # NaN or inf in either comes out (0 * inf = NaN): never masked to a quiet 0
            return jnp.where(finite, masked, u + 0 * g), g

        masked, _ = _tree.leafwise(leaf, carried, updates)
        return masked, new_state

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


def _probe(
    inner: optax.GradientTransformationExtraArgs,
    updates: Any,
    params: Any,
    extra_args: dict,
    flip_sign: bool | None,
    mask_decay: bool,
) -> float:
    """``sigma``: ``-1.0`` when ``inner``'s first step from zero parameters along a gradient
    of ones points against it, ``1.0`` when along; checks ``flip_sign`` and the decay."""
    with jax.ensure_compile_time_eval():

        def like(fill: float) -> Any:
            return jax.tree.map(lambda g: jnp.full(jnp.shape(g), fill, _float(g)), updates)

        zeros = like(0.0)
        extra = jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), jnp.result_type(x)), extra_args)

        def step(at: Any) -> Any:
            return inner.update(like(1.0), inner.init(zeros), at, **extra)[0]

        try:
            first = jax.tree.leaves(step(None if params is None else zeros))
            first_ran = True
            along = sum(int(np.sum(np.asarray(u) > 0)) for u in first)
            against = sum(int(np.sum(np.asarray(u) < 0)) for u in first)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
            # inner reads traced values (hyperparameters injected under jit)
            along = against = 0
            first, first_ran = [], False
        if params is not None and not mask_decay and first:
            moved = jax.tree.leaves(step(like(1.0)))
            if any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, moved)):
                raise ValueError(
                    "cautious(inner): inner's update depends on the parameters (weight decay, "
                    "as in optax.adamw), which the mask would mask too; the cautious paper's "
                    f"C-AdamW applies the decay unmasked: {_CHAIN}. Pass mask_decay=True to "
                    "mask it anyway."
                )
    empty = not any(int(np.size(u)) for u in first) and first_ran
    if along == against:
        if flip_sign is None and not empty:  # with no component there is nothing to mask
            raise ValueError(
                "cautious(inner): cannot tell whether inner's updates point along the "
                "gradient or against it (its first step from zero parameters is 0 or "
                "depends on traced values): pass flip_sign=False for a momentum direction "
                "(trace, ema) or flip_sign=True for a descent step (mo.sgd, optax.adam)."
            )
        return -1.0 if flip_sign else 1.0
    inferred = against > along
    if flip_sign is not None and flip_sign != inferred:
        raise ValueError(
            f"cautious(inner, flip_sign={flip_sign}): inner's first step from zero "
            f"parameters points {'against' if inferred else 'along'} the gradient "
            f"({against} components against, {along} along), so flip_sign={flip_sign} would "
            f"invert the mask (keep exactly the components that disagree). Use "
            f"flip_sign={inferred}, or leave it out to read it from inner."
        )
    return -1.0 if inferred else 1.0


def _float(g: Any) -> Any:
    """``g``'s dtype, or float32 for an integer leaf."""
    dtype = jnp.result_type(g)
    return dtype if jnp.issubdtype(dtype, jnp.inexact) else jnp.float32
