"""The learning-rate scaling of the library's optimizers: ``-lr_t * u``, in float32."""

from __future__ import annotations

import jax.numpy as jnp
import optax
from optax import ScalarOrSchedule

from momentum_optax import _tree
from momentum_optax._coefficients import check_bool
from momentum_optax._coefficients import check_nonnegative
from momentum_optax._coefficients import is_schedule
from momentum_optax._coefficients import value_at


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
) -> optax.GradientTransformation:
    r"""Scales the updates by the learning rate, in float32 arithmetic rounded once.

    .. math::  u_t \mapsto -\eta_t\, u_t \quad (\eta_t\, u_t \text{ without flip\_sign})

    A drop-in for ``optax.scale_by_learning_rate``, with the same arguments and
    the same state (``optax.EmptyState``, or ``optax.ScaleByScheduleState`` for a
    schedule). The difference is the arithmetic: optax multiplies in the
    updates' own dtype, so with bfloat16 updates the learning rate is first
    rounded to bfloat16 and the product rounded again; here the product is
    computed in at least float32 and rounded once to the updates' dtype. In
    float32 the results are optax's bit for bit; in bfloat16 they may differ by
    one rounding. :func:`sgd`, :func:`torch_sgd` and :func:`qhadam` end with it.

    Args:
        learning_rate: :math:`\eta`, a finite float >= 0 or a schedule (a
            callable of the int32 step count).
        flip_sign: multiply by :math:`-\eta` (descent), as optax does by default.

    Returns:
        An ``optax.GradientTransformation``.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> import momentum_optax as mo
        >>> g = jnp.array([3.0], jnp.bfloat16)
        >>> mo.scale_by_learning_rate(0.3).update(g, optax.EmptyState())[0]  # 0.9, rounded once
        Array([-0.898438], dtype=bfloat16)
        >>> optax.scale_by_learning_rate(0.3).update(g, optax.EmptyState())[0]  # 0.3 rounded first
        Array([-0.902344], dtype=bfloat16)

    References:
        Optax, ``optax.scale_by_learning_rate``.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_bool("flip_sign", flip_sign)
    sign = -1 if flip_sign else 1
    scheduled = is_schedule(learning_rate)

    def init_fn(params: optax.Params) -> optax.OptState:
        del params
        if scheduled:
            return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    def update_fn(
        updates: optax.Updates, state: optax.OptState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.OptState]:
        del params
        _tree.check_not_updates(state, "scale_by_learning_rate")  # before the count checks
        if scheduled and not isinstance(state, optax.ScaleByScheduleState):
            raise TypeError(
                f"state has no step count: it is {_tree.a(type(state).__name__)}, made with a "
                "constant learning rate; this scale_by_learning_rate has a schedule, which reads "
                "the step count: continue with "
                "optax.ScaleByScheduleState(count=jnp.asarray(steps_taken, jnp.int32))."
            )
        if not scheduled and isinstance(state, optax.ScaleByScheduleState):
            raise TypeError(
                "state has a step count: it is an optax.ScaleByScheduleState, made with a "
                "scheduled learning rate; this scale_by_learning_rate has a constant one, whose "
                "state is optax.EmptyState(): continue with optax.EmptyState()."
            )
        if not scheduled:
            _tree.check_state(state, optax.EmptyState, "scale_by_learning_rate")
        if scheduled:
            step = sign * value_at(learning_rate, state.count)
            state = optax.ScaleByScheduleState(count=optax.safe_increment(state.count))
        else:
            step = sign * value_at(learning_rate, None)
        return _tree.leafwise(lambda u: (step * u,), updates), state

    return optax.GradientTransformation(init_fn, update_fn)
