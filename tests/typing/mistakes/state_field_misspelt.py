"""Mistake: a misspelt field of a state NamedTuple (``mo.ScheduledTraceState.count``)."""

import jax.numpy as jnp

import momentum_optax as mo

state = mo.trace(mo.schedules.anneal(0.5, 0.9, steps=100)).init(jnp.zeros(3))
if isinstance(state, mo.ScheduledTraceState):
    print(state.counts)  # planted
