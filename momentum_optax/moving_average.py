"""Simple moving average of the updates (seed 002), kept in a ring buffer."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from momentum_optax import _tree
from momentum_optax import _types


class SmaState(NamedTuple):
    """Ring buffer of :func:`sma`: the last ``window`` updates, stacked on a leading axis."""

    window: optax.Params  # leaves of shape (window, *param.shape)
    index: jax.Array  # int32 slot the next update is written to, in [0, window)
    filled: jax.Array  # int32 number of updates held, in [0, window]


def sma(window: int) -> optax.GradientTransformation:
    r"""Simple moving average of the last ``window`` updates (seed 002).

    .. math::  u_t = \frac{1}{n_t} \sum_{i=t-n_t+1}^{t} g_i, \qquad n_t = \min(t + 1, w)

    Every update in the window weighs the same, and one older than ``w`` steps
    weighs nothing — unlike :func:`ema`, whose weights decay geometrically
    and never vanish. Memory: ``w`` copies of the parameters; the sum is
    recomputed from the buffer each step, so no rounding error accumulates.

    Args:
        window: :math:`w`, the number of updates averaged (>= 1).

    Returns:
        An ``optax.GradientTransformation`` with state :class:`SmaState`.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.sma(2)
        >>> state = opt.init(jnp.zeros(()))
        >>> outs = []
        >>> for g in (1.0, 3.0, 5.0):
        ...     u, state = opt.update(jnp.float32(g), state)
        ...     outs.append(float(u))
        >>> outs
        [1.0, 2.0, 4.0]

    References:
        "Momentum" (seed 002), section 2.
    """
    window = _types.check_positive_int("window", window)

    def init_fn(params):
        stacked = jax.tree.map(
            lambda p: jnp.zeros((window, *jnp.shape(p)), jnp.result_type(p)), params
        )
        return SmaState(
            window=stacked, index=jnp.zeros([], jnp.int32), filled=jnp.zeros([], jnp.int32)
        )

    def update_fn(updates, state, params=None):
        del params
        _tree.check_state(state, SmaState, "sma")
        slot_shapes = jax.tree.map(
            lambda b: jax.ShapeDtypeStruct(b.shape[1:], b.dtype), state.window
        )
        _tree.check_tree_match(updates, slot_shapes, what="a slot of the window SmaState.window")
        filled = jnp.minimum(state.filled + 1, window)

        def leaf(g, buffer):
            buffer = buffer.at[state.index].set(jnp.asarray(g, buffer.dtype))
            dtype = _tree.compute_dtype(g, buffer)
            mean = jnp.sum(buffer.astype(dtype), axis=0) / filled.astype(dtype)
            return mean.astype(jnp.result_type(g, buffer)), buffer

        updates, stacked = _tree.map_split(leaf, updates, state.window)
        index = jnp.where(state.index + 1 >= window, 0, state.index + 1).astype(jnp.int32)
        return updates, SmaState(window=stacked, index=index, filled=filled)

    return optax.GradientTransformation(init_fn, update_fn)
