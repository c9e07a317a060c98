"""Aggregated momentum (AggMo): several velocities with different decays, averaged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import optax
from optax import ScalarOrSchedule

from momentum_optax import _heavy_ball
from momentum_optax import _tree
from momentum_optax._coefficients import any_schedule
from momentum_optax._coefficients import check_coefficient
from momentum_optax._coefficients import init_count
from momentum_optax._coefficients import next_count
from momentum_optax._coefficients import value_at


class AggMoState(NamedTuple):
    """One velocity per decay of :func:`aggmo`."""

    velocities: tuple  # one tree like the params per decay
    count: jax.Array | None  # type: ignore[assignment]  # int32 scalar; None when no decay is scheduled


def aggmo(decays: Sequence[ScalarOrSchedule] = (0.0, 0.9, 0.99)) -> optax.GradientTransformation:
    r"""Aggregated momentum (Lucas et al., 2019): the mean of K heavy-ball velocities.

    .. math::

        v^{(i)}_t = g_t + \beta^{(i)}_t v^{(i)}_{t-1}, \qquad
        u_t = \frac{1}{K} \sum_{i=1}^{K} v^{(i)}_t

    A large decay gives speed along low-curvature directions while the small
    ones damp the oscillations a single large decay would cause. With one decay
    it is :func:`trace`. Memory: K buffers.

    Args:
        decays: the K decays, each a float in [0, 1] or a schedule (default
            ``(0.0, 0.9, 0.99)``, the paper's).

    Returns:
        An ``optax.GradientTransformation`` with state :class:`AggMoState`.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.aggmo((0.0, 0.5))
        >>> state = opt.init(jnp.zeros(1))
        >>> for _ in range(2):
        ...     u, state = opt.update(jnp.ones(1), state)
        >>> u  # (1 + (1 + 0.5)) / 2
        Array([1.25], dtype=float32)

    References:
        Lucas, Sun, Zemel, Grosse, *Aggregated momentum: Stability through
        passive damping*, ICLR 2019.
    """
    if isinstance(decays, (str, bytes)) or not isinstance(decays, Sequence) or not decays:
        raise TypeError(
            f"decays must be a non-empty sequence of floats in [0, 1] or schedules; got {decays!r}."
        )
    decays = tuple(decays)
    for i, decay in enumerate(decays):
        check_coefficient(f"decays[{i}]", decay)

    def init_fn(params: optax.Params) -> AggMoState:
        return AggMoState(
            velocities=tuple(optax.tree.zeros_like(params) for _ in decays),
            count=init_count(*decays),
        )

    def update_fn(
        updates: optax.Updates, state: AggMoState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, AggMoState]:
        del params
        _tree.check_state(state, AggMoState, "aggmo")
        _tree.check_made_alike(state, "aggmo", "len(decays)", len(state.velocities), len(decays))
        _tree.check_inputs(
            updates,
            state,
            AggMoState,
            "aggmo",
            "velocities[0]",
            reference=state.velocities[0],
            scheduled=any_schedule(*decays),
            coefficient="decay",
        )
        betas = [value_at(decay, state.count) for decay in decays]

        def leaf(g: jax.Array, *velocities: jax.Array) -> tuple:
            new = [_heavy_ball.velocity(g, v, b) for b, v in zip(betas, velocities)]
            return sum(new) / len(new), *new

        updates, *velocities = _tree.leafwise(leaf, updates, *state.velocities)
        return updates, AggMoState(velocities=tuple(velocities), count=next_count(state.count))

    return optax.GradientTransformation(init_fn, update_fn)
