"""Mistake: the testing kit's ``steps`` given as a float (it is an int)."""

import jax.numpy as jnp

import momentum_optax as mo
from momentum_optax import testing

testing.check_transformation(mo.trace(0.9), jnp.ones(3), steps=2.5)  # planted
