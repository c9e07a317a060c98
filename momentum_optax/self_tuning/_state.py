"""YellowFin's state, the layout of its running averages, and the upgrade of a legacy state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

# the order of the scalar running averages in YellowFinState.averages (none debiased): the
# first eight are those of the legacy layout, in its order
(
    CORRECTION,  # 1 - beta^t, the debiasing divisor
    NORM_SQUARED,  # ||g||^2
    NORM,  # ||g||
    H_MIN,  # the window's minimum (of log ||g||^2 with log_curvature, else of ||g||^2)
    H_MAX,  # the window's maximum (likewise)
    DISTANCE,  # mean ||g|| / mean ||g||^2
    LEARNING_RATE,  # the tuned alpha_t (after the slow start)
    MOMENTUM,  # the tuned mu_t
    DENSITY,  # the fraction of nonzero gradient entries (sparsity_debias)
    STEP_CORRECTION,  # 1 - beta^k over the k steps of non_increasing_step
    LOG_NORM_SQUARED,  # log(||g||^2 + eps), from the step non_increasing_step starts at
    LOG_STEP,  # log(alpha ||g|| + eps), likewise
    LEAST_STEP,  # the least debiased exp(LOG_STEP) so far
) = range(13)
AVERAGES = 13
LEGACY_AVERAGES = 8
LEGACY_FIELDS = (
    "count",
    "velocity",
    "grad_avg",
    "window",
    "averages",
    "learning_rate",
    "momentum",
)


class YellowFinState(NamedTuple):
    """State of :func:`scale_by_yellowfin`; ``learning_rate`` and ``momentum`` are the
    tuned values the last step used (float32 scalars, for logging)."""

    count: jax.Array  # type: ignore[assignment]  # int32 scalar t, steps taken (saturating)
    velocity: optax.Params  # v_t = mu_t v_{t-1} + alpha_t g_t, like the params
    grad_avg: optax.Params  # the running average of g / s (not yet debiased), like the params
    window: jax.Array  # float32 (w,): log(||g / s||^2 + eps) of the last w steps, oldest first
    averages: jax.Array  # float32 (13,): 1 - beta^t and the running averages (not debiased)
    scale: jax.Array  # float32 s: the first nonzero ||g|| (scale_invariant; 0 before), else 1
    learning_rate: jax.Array  # float32 alpha_t, the rate on g (before clipping)
    momentum: jax.Array  # float32 mu_t

    @classmethod
    def from_legacy(
        cls, state: Any, *, log_curvature: bool = True, eps: float = 1e-12
    ) -> YellowFinState:
        r"""The state of a run saved in the legacy layout, continued by this one.

        The legacy ``YellowFinState`` (fields ``count, velocity, grad_avg, window,
        averages, learning_rate, momentum``: the paper's Algorithm 1 without safeguards)
        held the window as a ring buffer of :math:`\|g\|^2` written at slot
        :math:`t \bmod w`, eight running averages, and no ``scale``. This gives the
        window in order, oldest first, as :math:`\log(\|g\|^2 + \epsilon)`; the averages
        with the five new slots (the density 1, the non-increasing step not started);
        ``scale`` = 1, so the run continues in the units its statistics were kept in
        (it is not made scale invariant: that takes a fresh ``init``). With
        ``log_curvature`` the linear averages of the curvature range become log-space
        ones holding the log of their current debiased values (the weights of their
        history are not recoverable); without it they are kept, and a transformation
        built with every safeguard off continues the legacy run exactly.

        Args:
            state: the legacy state: a ``NamedTuple`` with those fields, or a mapping of
                the field names to arrays, e.g. ``flax.serialization.msgpack_restore``'s
                output for it.
            log_curvature: the ``log_curvature`` of the transformation that continues it.
            eps: the ``eps`` of that transformation (the window's floor).

        Returns:
            A :class:`YellowFinState` for ``scale_by_yellowfin`` with the legacy state's
            ``curvature_window`` (its window's length).

        Raises:
            ValueError: a field is missing or ``averages`` is not of length 8.

        Example:
            >>> import flax.serialization, jax.numpy as jnp
            >>> import momentum_optax as mo
            >>> legacy = {"count": 3, "velocity": jnp.zeros(2), "grad_avg": jnp.zeros(2),
            ...           "window": jnp.ones(20), "averages": jnp.full(8, 0.5),
            ...           "learning_rate": 0.1, "momentum": 0.2}
            >>> state = mo.YellowFinState.from_legacy(legacy)
            >>> state.averages.shape, float(state.scale)
            ((13,), 1.0)
        """
        fields = state if isinstance(state, Mapping) else getattr(state, "_asdict", dict)()
        missing = [name for name in LEGACY_FIELDS if name not in fields]
        if missing:
            raise ValueError(
                f"a legacy YellowFinState has the fields {', '.join(LEGACY_FIELDS)}; "
                f"missing: {', '.join(missing)} (got {type(state).__name__})."
            )
        old = jnp.asarray(fields["averages"], jnp.float32)
        if old.shape != (LEGACY_AVERAGES,):
            raise ValueError(
                f"a legacy YellowFinState has {LEGACY_AVERAGES} averages; got averages of "
                f"shape {old.shape}."
            )
        count = jnp.asarray(fields["count"], jnp.int32)
        ring = jnp.asarray(fields["window"], jnp.float32)
        # the ring's next slot, count mod w, holds the oldest value (before w steps: the
        # first unwritten one): rolled to the front, the values are in order, and the
        # valid ones (the last min(count, w)) where the shift register keeps them
        window = jnp.log(jnp.roll(ring, -(count % ring.shape[0])) + eps)
        correction = old[CORRECTION]
        safe = jnp.where(correction > 0, correction, 1.0)
        curvature = old[H_MIN : H_MAX + 1]
        if log_curvature:  # the log of the debiased estimate, re-biased
            curvature = correction * jnp.log(curvature / safe + eps)
        averages = jnp.concatenate(
            [
                old[:H_MIN],
                curvature,
                old[H_MAX + 1 :],
                jnp.stack([correction, 0.0, 0.0, 0.0, 0.0]),  # density 1 once debiased
            ]
        )
        return cls(
            count=count,
            velocity=fields["velocity"],
            grad_avg=fields["grad_avg"],
            window=window,
            averages=averages,
            scale=jnp.ones([], jnp.float32),
            learning_rate=jnp.asarray(fields["learning_rate"], jnp.float32),
            momentum=jnp.asarray(fields["momentum"], jnp.float32),
        )
