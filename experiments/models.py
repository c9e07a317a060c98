"""Flax (nnx) models used by the experiments."""

from __future__ import annotations

import jax
from flax import nnx


class MLP(nnx.Module):
    """A ReLU multi-layer perceptron: ``in -> hidden -> hidden -> out`` (64-64-10 on digits)."""

    def __init__(self, in_features: int, hidden: int, out_features: int, *, rngs: nnx.Rngs):
        self.hidden1 = nnx.Linear(in_features, hidden, rngs=rngs)
        self.hidden2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, out_features, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.hidden1(x))
        x = jax.nn.relu(self.hidden2(x))
        return self.out(x)
