"""Mistake: ``update`` called without the state (it is ``update(updates, state, params=None)``)."""

import jax.numpy as jnp

import momentum_optax as mo

opt = mo.sgd(0.1, momentum=0.9)
grads = jnp.ones(3)
updates, state = opt.update(grads)  # planted
