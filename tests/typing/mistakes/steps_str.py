"""Mistake: ``steps`` of ``mo.schedules.anneal`` given as a string (it is an int)."""

import momentum_optax as mo

schedule = mo.schedules.anneal(0.5, 0.9, steps="1000")  # planted
