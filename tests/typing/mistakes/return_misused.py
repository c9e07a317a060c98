"""Mistake: a schedule used as the number it returns (it is a callable of the step count)."""

import momentum_optax as mo

momentum: float = mo.schedules.anneal(0.5, 0.9, steps=1000)  # planted
