"""Simple moving average of the updates, kept in a ring buffer."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from momentum_optax import _deprecation
from momentum_optax import _tree
from momentum_optax._coefficients import structural_int
from momentum_optax._coefficients import traced_shape_error


class SmaState(NamedTuple):
    """Ring buffer of :func:`sma`: the last ``window`` updates, stacked on a leading axis."""

    buffer: optax.Params  # leaves of shape (window, *param.shape)
    index: jax.Array  # type: ignore[assignment]  # int32 slot the next update is written to, in [0, window)
    filled: jax.Array  # int32 number of updates held, in [0, window]

    @property
    def window(self) -> optax.Params:
        """Deprecated name of :attr:`buffer` (0.1's); warns, and goes in 0.3."""
        _deprecation.warn("SmaState.window is now SmaState.buffer")
        return self.buffer


def sma(window: int) -> optax.GradientTransformation:
    r"""Simple moving average of the last ``window`` updates.

    .. math::  u_t = \frac{1}{n_t} \sum_{i=t-n_t+1}^{t} g_i, \qquad n_t = \min(t + 1, w)

    Every update in the window weighs the same, and one older than ``w`` steps
    weighs nothing — unlike :func:`ema`, whose weights decay geometrically
    and never vanish. Memory: ``w`` copies of the parameters; the sum is
    recomputed from the buffer each step, so no rounding error accumulates.

    Args:
        window: :math:`w`, the number of updates averaged (>= 1). It sets the
            buffer's shape: under ``optax.inject_hyperparams`` (which hands it on as an
            array) it is read when the state is made and from the buffer after that,
            so a new value in ``state.hyperparams["window"]`` changes nothing.

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
        *Momentum* (the article on exponential moving averages), section 2 (author not named).
    """
    known = structural_int("window", window)  # None: traced, under inject_hyperparams

    def init_fn(params: optax.Params) -> SmaState:
        if known is None:
            raise traced_shape_error("window", "sma")
        window = known
        # zeros_like keeps each parameter's sharding; the window axis is replicated
        stacked = jax.tree.map(
            lambda p: jnp.broadcast_to(jnp.zeros_like(p)[None], (window, *jnp.shape(p))), params
        )
        return SmaState(
            buffer=stacked, index=jnp.zeros([], jnp.int32), filled=jnp.zeros([], jnp.int32)
        )

    def update_fn(
        updates: optax.Updates, state: SmaState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, SmaState]:
        del params
        _tree.check_state(state, SmaState, "sma")
        slots_held = [slot.shape[0] for slot in jax.tree.leaves(state.buffer)[:1]]
        # under optax.inject_hyperparams the window arrives traced: the buffer holds it
        window = known if known is not None else (slots_held[0] if slots_held else 1)
        for held in slots_held:  # every leaf holds `window` slots
            _tree.check_made_alike(state, "sma", "window", held, window)
        slots = jax.tree.map(lambda b: jax.ShapeDtypeStruct(b.shape[1:], b.dtype), state.buffer)
        _tree.check_inputs(
            updates, state, SmaState, "sma", "buffer", reference=slots, detail=" (one slot)"
        )
        filled = jnp.minimum(state.filled + 1, window)

        def leaf(g: jax.Array, buffer: jax.Array) -> tuple:
            buffer = buffer.at[state.index].set(g)
            return jnp.sum(buffer, axis=0) / filled.astype(buffer.dtype), buffer

        updates, buffer = _tree.leafwise(leaf, updates, state.buffer)
        index = jnp.where(state.index + 1 >= window, 0, state.index + 1).astype(jnp.int32)
        return updates, SmaState(buffer=buffer, index=index, filled=filled)

    return optax.GradientTransformation(init_fn, update_fn)
