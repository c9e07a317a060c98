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


class CNN1D(nnx.Module):
    """A small 1-D convolutional network for sequences ``(batch, length)``: three ReLU
    convolutions (kernel 5, stride 2, ``channels`` each) and a linear read-out, the
    shape of Greydanus (2020)'s MNIST-1D CNN."""

    def __init__(self, length: int, out_features: int, *, channels: int = 16, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, channels, kernel_size=5, strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(channels, channels, kernel_size=5, strides=2, rngs=rngs)
        self.conv3 = nnx.Conv(channels, channels, kernel_size=5, strides=2, rngs=rngs)
        reduced = length
        for _ in range(3):
            reduced = -(-reduced // 2)  # "SAME" padding with stride 2
        self.out = nnx.Linear(reduced * channels, out_features, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x[..., None]
        x = jax.nn.relu(self.conv1(x))
        x = jax.nn.relu(self.conv2(x))
        x = jax.nn.relu(self.conv3(x))
        return self.out(x.reshape(*x.shape[:-2], -1))
