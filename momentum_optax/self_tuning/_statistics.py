"""The passes over the gradient tree that YellowFin's statistics need, and one step of the
scalar statistics themselves (its CurvatureRange, Variance, Distance and SingleStep)."""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from momentum_optax import _tree
from momentum_optax.self_tuning import _state as layout
from momentum_optax.self_tuning._single_step import single_step


def norm_parts(tree: optax.Updates) -> tuple[jax.Array, jax.Array]:
    """``(peak, root)`` with ``||tree|| = peak * root``, float32, without overflow (past
    1.8e19 the square of a norm does in float32) or underflow (below 1e-19). The sum of
    squares as it is where it lies safely inside float32's range (``peak`` = 1); else, under
    ``lax.cond`` (so only then), ``peak`` the largest magnitude and ``root`` the norm of
    ``tree / peak``. ``None``, empty and integer leaves do not count."""
    leaves = [x for x in jax.tree.leaves(tree) if _tree.is_trainable(x) and jnp.size(x) > 0]
    if not leaves:
        return jnp.zeros([], jnp.float32), jnp.zeros([], jnp.float32)
    magnitude = lambda x: jnp.abs(jnp.asarray(x, _tree.compute_dtype(x)))
    squares = sum(jnp.sum(jnp.square(magnitude(x))).astype(jnp.float32) for x in leaves)

    def scaled(leaves: list[jax.Array]) -> tuple[jax.Array, jax.Array]:
        peak = jnp.max(jnp.stack([jnp.max(magnitude(x)).astype(jnp.float32) for x in leaves]))
        safe = jnp.where(peak > 0, peak, 1.0)
        total = sum(
            jnp.sum(jnp.square(magnitude(x) / safe.astype(magnitude(x).dtype))).astype(jnp.float32)
            for x in leaves
        )
        return peak, jnp.sqrt(total)

    # finite: no square overflowed; above 1e-20: those that underflowed (each < 1.2e-38)
    # add less than 1e-8 of it for up to 1e10 entries
    safe = jnp.isfinite(squares) & (squares > 1e-20)
    plain = lambda _: (jnp.ones([], jnp.float32), jnp.sqrt(squares))
    if not isinstance(safe, jax.core.Tracer):  # eager: a Python branch (a cond would compile)
        return plain(leaves) if bool(safe) else scaled(leaves)
    return jax.lax.cond(safe, plain, scaled, leaves)


def log_plus_eps(log_x: jax.Array, eps: Any) -> jax.Array:
    """``log(x + eps)`` from ``log x``, without forming ``x`` (which may overflow)."""
    return jnp.logaddexp(log_x, jnp.log(jnp.asarray(eps, jnp.float32)))


def new_average(
    updates: optax.Updates, average: optax.Params, b: Any, factor: jax.Array, *, density: bool
) -> tuple[optax.Params, jax.Array, jax.Array]:
    """The new average ``b m + (1 - b) factor g`` (stored in ``m``'s dtype), its squared norm
    from the unrounded values and (with ``density``, else 1) the fraction of nonzero entries
    of ``g``, both float32. A ``None`` or integer update keeps its average."""
    _tree.check_tree_match(updates, average, what="YellowFinState.grad_avg")
    treedef = _tree.structure(updates)
    leaves, total = [], jnp.zeros([], jnp.float32)
    nonzero, size = jnp.zeros([], jnp.float32), 0
    for g, m in zip(treedef.flatten_up_to(updates), treedef.flatten_up_to(average)):
        if g is None or not _tree.is_trainable(g):
            leaves.append(m)
            continue
        dtype = _tree.compute_dtype(g, m)
        scaled = factor.astype(dtype) * jnp.asarray(g, dtype)
        # b as given: a Python float stays weakly typed, so 1 - b is the one the averages use
        new = b * jnp.asarray(m, dtype) + (1 - b) * scaled
        total = total + jnp.sum(jnp.square(jnp.abs(new))).astype(jnp.float32)
        if density:
            nonzero = nonzero + jnp.sum(g != 0).astype(jnp.float32)
        size += g.size
        leaves.append(new.astype(m.dtype))
    fraction = nonzero / max(size, 1) if density else jnp.ones([], jnp.float32)
    return treedef.unflatten(leaves), total, fraction


class Options(NamedTuple):
    """The switches of :func:`scale_by_yellowfin` the statistics read (Python values) and
    its numeric hyper-parameters (numbers or arrays, traced under inject_hyperparams)."""

    log_curvature: bool
    smooth_tuned: bool
    slow_start: bool
    sparsity_debias: bool
    non_increasing_step: bool
    beta: Any
    eps: Any


def curvature(value: jax.Array, options: Options) -> jax.Array:
    """A debiased curvature-range average as a curvature (its exp in log space)."""
    return jnp.exp(value) if options.log_curvature else value


def tune(
    averages: jax.Array,
    window: jax.Array,
    count: jax.Array,
    norm: jax.Array,
    average_squared: jax.Array,
    density: jax.Array,
    options: Options,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One step of the statistics from the step's ``||g||`` (``norm``, after the scaling and
    the protection), ``||mean g||^2`` and density, its log already in ``window``:
    ``(averages, learning_rate, momentum)``, the tuned values (smoothed or not, the rate
    then ramped by the slow start) before the non-increasing step and ``max_move``."""
    b, eps = options.beta, options.eps
    w = window.shape[0]
    seen = jnp.arange(w) >= w - (jnp.minimum(count, w - 1) + 1)  # the last min(t + 1, w)
    h_min_t = jnp.min(jnp.where(seen, window, jnp.inf))
    h_max_t = jnp.max(jnp.where(seen, window, -jnp.inf))
    if not options.log_curvature:
        h_min_t, h_max_t = jnp.exp(h_min_t), jnp.exp(h_max_t)

    blend = lambda index, value: b * averages[index] + (1 - b) * value
    correction = blend(layout.CORRECTION, 1.0)
    norm_squared_avg = blend(layout.NORM_SQUARED, norm * norm)
    norm_avg = blend(layout.NORM, norm)
    h_min_avg, h_max_avg = blend(layout.H_MIN, h_min_t), blend(layout.H_MAX, h_max_t)
    density_avg = blend(layout.DENSITY, density if options.sparsity_debias else 1.0)
    mean_norm_squared = norm_squared_avg / correction
    # one gradient has no variance: exactly 0 at the first step, not a rounding residue
    variance = jnp.where(count == 0, 0.0, mean_norm_squared - average_squared / correction**2)
    distance_avg = blend(
        layout.DISTANCE, (norm_avg / correction) / jnp.maximum(mean_norm_squared, eps)
    )
    h_min = curvature(h_min_avg / correction, options)
    h_max = curvature(h_max_avg / correction, options)
    distance = distance_avg / correction
    if options.sparsity_debias:
        sparsity = density_avg / correction
        h_min, h_max, variance = h_min * sparsity, h_max * sparsity, variance * sparsity
        distance = distance / (jnp.sqrt(sparsity) + eps)
    lr_t, mu_t = single_step(variance, distance, h_min, h_max, eps)
    lr_avg, mu_avg = blend(layout.LEARNING_RATE, lr_t), blend(layout.MOMENTUM, mu_t)
    if options.smooth_tuned:
        lr_t, mu_t = lr_avg / correction, mu_avg / correction
    if options.slow_start:
        ramp = (jnp.minimum(count, 10 * w).astype(jnp.float32) + 1) / (10 * w)
        lr_t = lr_t * jnp.minimum(ramp, 1.0)
    new = jnp.stack(
        [
            correction,
            norm_squared_avg,
            norm_avg,
            h_min_avg,
            h_max_avg,
            distance_avg,
            lr_avg,
            mu_avg,
            density_avg,
        ]
    ).astype(jnp.float32)
    return jnp.concatenate([new, averages[layout.DENSITY + 1 :]]), lr_t, mu_t


def non_increasing(
    averages: jax.Array,
    count: jax.Array,
    window_size: int,
    norm: jax.Array,
    lr: jax.Array,
    options: Options,
) -> tuple[jax.Array, jax.Array]:
    """The PyTorch port's ``force_non_inc_step``, from step ``w + 1`` on: the rate capped at
    twice the least smoothed step length ``alpha ||g||`` seen so far over the smoothed
    ``||g||``, both smoothed in log space (and here debiased from the step they start at)."""
    b, eps = options.beta, options.eps
    blend = lambda index, value: b * averages[index] + (1 - b) * value
    correction = blend(layout.STEP_CORRECTION, 1.0)
    log_norm_squared = blend(layout.LOG_NORM_SQUARED, log_plus_eps(2 * jnp.log(norm), eps))
    log_step = blend(layout.LOG_STEP, log_plus_eps(jnp.log(lr) + jnp.log(norm), eps))
    step = jnp.exp(log_step / correction)
    started = averages[layout.STEP_CORRECTION] > 0
    least = jnp.where(started, jnp.minimum(averages[layout.LEAST_STEP], step), step)
    capped = jnp.minimum(lr, 2 * least / (jnp.exp(log_norm_squared / correction / 2) + eps))
    new = jnp.stack([correction, log_norm_squared, log_step, least]).astype(jnp.float32)
    active = count > window_size
    averages = jnp.where(active, averages.at[layout.STEP_CORRECTION :].set(new), averages)
    return averages, jnp.where(active, capped, lr)
