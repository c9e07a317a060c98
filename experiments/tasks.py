"""Supervised tasks: a dataset, a Flax model and its pure initialisation.

A ``Task`` is what the compiled loop (``experiments.loop``) trains: ``init(key)``
draws fresh parameters (traceable, so seeds can be ``vmap``ped), ``apply(params, x)``
returns logits. ``TASKS`` names the problems a user's comparison can pick
(``python -m experiments compare --problem ...``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from . import data as data_lib
from . import models


class Task(NamedTuple):
    """A dataset and a model: ``init(key) -> params``, ``apply(params, x) -> logits``."""

    name: str
    data: data_lib.Dataset
    init: Callable[[jax.Array], Any]
    apply: Callable[[Any, jax.Array], jax.Array]


def from_model(
    name: str, dataset: data_lib.Dataset, build: Callable[[nnx.Rngs], nnx.Module]
) -> Task:
    """A task whose model is ``build(rngs)``: parameters split off the module, graph kept."""
    graphdef, _ = nnx.split(build(nnx.Rngs(params=0)))

    def init(key: jax.Array) -> Any:
        return nnx.split(build(nnx.Rngs(params=key)))[1]

    def apply(params: Any, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, params)(x)

    return Task(name, dataset, init, apply)


def loss(task: Task, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of ``task``'s model on ``(x, y)``."""
    return optax.softmax_cross_entropy_with_integer_labels(task.apply(params, x), y).mean()


def loss_and_accuracy(
    task: Task, params: Any, x: jax.Array, y: jax.Array
) -> tuple[jax.Array, jax.Array]:
    logits = task.apply(params, x)
    return (
        optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(),
        jnp.mean(jnp.argmax(logits, -1) == y),
    )


@functools.lru_cache(maxsize=8)
def mnist1d_mlp(hidden: int = 100, num_samples: int = data_lib.MNIST1D_SAMPLES) -> Task:
    """MNIST-1D (8,000 / 2,000 / 2,000) with a 40-100-100-10 ReLU MLP."""
    ds = data_lib.mnist1d(num_samples=num_samples)
    return from_model(
        "mnist1d-mlp",
        ds,
        lambda rngs: models.MLP(ds.x_train.shape[1], hidden, ds.num_classes, rngs=rngs),
    )


@functools.lru_cache(maxsize=8)
def mnist1d_cnn(channels: int = 16, num_samples: int = data_lib.MNIST1D_SAMPLES) -> Task:
    """MNIST-1D with a three-layer 1-D CNN (``channels`` filters of width 5, stride 2)."""
    ds = data_lib.mnist1d(num_samples=num_samples)
    return from_model(
        "mnist1d-cnn",
        ds,
        lambda rngs: models.CNN1D(
            ds.x_train.shape[1], ds.num_classes, channels=channels, rngs=rngs
        ),
    )


@functools.lru_cache(maxsize=8)
def digits_mlp(hidden: int = 64) -> Task:
    """scikit-learn's digits (1,078 / 359 / 360) with a 64-64-64-10 ReLU MLP."""
    ds = data_lib.digits()
    return from_model(
        "digits-mlp",
        ds,
        lambda rngs: models.MLP(ds.x_train.shape[1], hidden, ds.num_classes, rngs=rngs),
    )


TASKS: dict[str, Callable[[], Task]] = {
    "mnist1d-mlp": mnist1d_mlp,
    "mnist1d-cnn": mnist1d_cnn,
    "digits-mlp": digits_mlp,
}
