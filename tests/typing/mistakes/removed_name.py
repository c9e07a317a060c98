"""Mistake: a field removed in 0.1: ``mo.TraceState`` is ``optax.TraceState`` (no ``count``).

A scheduled decay keeps its step count in ``mo.ScheduledTraceState(trace, count)``. Here
``state.count`` is the NamedTuple's inherited ``tuple.count`` method, not an array.
"""

import jax
import jax.numpy as jnp

import momentum_optax as mo

state = mo.trace(0.9).init(jnp.zeros(3))
if isinstance(state, mo.TraceState):
    steps_taken: jax.Array = state.count  # planted
