"""Momentum schedules: ``optax.Schedule`` objects mapping the step count to a coefficient.

Pass one wherever a transformation takes a ``decay`` or ``momentum``:
``mo.trace(mo.schedules.anneal(0.5, 0.9, 1000))``. The transformation then
keeps a saturating int32 step count and reads the schedule once per step.
"""

from __future__ import annotations

import optax

from momentum_optax import _types


def linear_to_one(start: float, total_steps: int) -> optax.Schedule:
    r"""Seed 001's momentum schedule, rising linearly from ``start`` to 1.

    .. math::  \gamma_t = \gamma_0 + (1 - \gamma_0)\, \min(t, T) / T

    It reaches exactly 1 at ``t = T`` and stays there: a momentum of 1 no
    longer forgets anything, which is what the schedules experiment shows
    (cap it with ``optax.linear_schedule(start, cap, T)`` when that is unwanted).

    Args:
        start: :math:`\gamma_0`, a float in [0, 1].
        total_steps: :math:`T`, the step at which the momentum reaches 1 (>= 1).

    Returns:
        A schedule ``count -> gamma_count`` (float32).

    Example:
        >>> import momentum_optax as mo
        >>> schedule = mo.schedules.linear_to_one(0.5, total_steps=100)
        >>> [round(float(schedule(t)), 4) for t in (0, 50, 100, 200)]
        [0.5, 0.75, 1.0, 1.0]

    References:
        "Understanding Momentum in Neural Network Optimization" (seed 001).
    """
    _types.check_coefficient("start", start)
    total_steps = _types.check_positive_int("total_steps", total_steps)
    return optax.linear_schedule(init_value=start, end_value=1.0, transition_steps=total_steps)


def anneal(start: float = 0.5, end: float = 0.9, steps: int | None = None) -> optax.Schedule:
    r"""Seed 002's practice: momentum starts near 0.5 and is annealed to 0.9.

    .. math::  \beta_t = \beta_0 + (\beta_1 - \beta_0)\, \min(t, S) / S

    Args:
        start: :math:`\beta_0`, a float in [0, 1] (default 0.5).
        end: :math:`\beta_1`, a float in [0, 1] (default 0.9).
        steps: :math:`S`, the number of steps over which to anneal (required, >= 1).

    Returns:
        A schedule ``count -> beta_count`` (float32), constant ``end`` after ``S``.

    Example:
        >>> import momentum_optax as mo
        >>> schedule = mo.schedules.anneal(0.5, 0.9, steps=4)
        >>> [round(float(schedule(t)), 4) for t in range(6)]
        [0.5, 0.6, 0.7, 0.8, 0.9, 0.9]

    References:
        "Momentum" (seed 002); Sutskever et al., *On the importance of
        initialization and momentum in deep learning*, 2013.
    """
    _types.check_coefficient("start", start)
    _types.check_coefficient("end", end)
    if steps is None:
        raise TypeError("steps must be an integer >= 1 (the length of the anneal); got None.")
    steps = _types.check_positive_int("steps", steps)
    return optax.linear_schedule(init_value=start, end_value=end, transition_steps=steps)
