"""The learning-rate scaling of the library's optimizers: ``-lr_t * u``, in float32.

``optax.scale_by_learning_rate`` multiplies in the updates' own dtype, so with bfloat16
updates the learning rate itself is rounded to bfloat16 and the product rounded again.
This one computes in at least float32 and rounds once; its state is optax's
(``EmptyState``, or ``ScaleByScheduleState`` for a schedule), and for float32 updates its
results are optax's bit for bit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from momentum_optax import _tree
from momentum_optax import _types
from momentum_optax._types import ScalarOrSchedule


def scale_by_learning_rate(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    """``u -> -learning_rate_t * u``, applied in at least float32, rounded once."""
    scheduled = _types.is_schedule(learning_rate)

    def init_fn(params):
        del params
        if scheduled:
            return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        if scheduled:
            step = -jnp.asarray(learning_rate(state.count))
            state = optax.ScaleByScheduleState(count=optax.safe_increment(state.count))
        else:
            step = -learning_rate

        def leaf(u):
            dtype = _tree.compute_dtype(u)
            return (jnp.asarray(step, dtype) * jnp.asarray(u, dtype)).astype(jnp.result_type(u))

        return jax.tree.map(leaf, updates), state

    return optax.GradientTransformation(init_fn, update_fn)
