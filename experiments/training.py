"""The compiled training loop: a whole run is one jitted function (epochs and steps in lax.scan)."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from experiments import data as data_lib
from experiments import models


class RunResult(NamedTuple):
    """What one training run returns (arrays, still on the device)."""

    params: Any
    epoch_loss: jax.Array  # (epochs,) mean training loss over each epoch's steps
    test_accuracy: jax.Array  # scalar


def classifier_loss(graphdef: nnx.GraphDef, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of the model ``(graphdef, params)`` on a batch."""
    logits = nnx.merge(graphdef, params)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def accuracy(graphdef: nnx.GraphDef, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(nnx.merge(graphdef, params)(x), axis=-1) == y)


def init_mlp(split: data_lib.Split, key: jax.Array, hidden: int = 64) -> tuple[nnx.GraphDef, Any]:
    """A fresh MLP for ``split``, as (graphdef, params)."""
    model = models.MLP(split.x_train.shape[1], hidden, split.num_classes,
                       rngs=nnx.Rngs(params=key))
    return nnx.split(model)


def make_train(opt: optax.GradientTransformation, graphdef: nnx.GraphDef, *, epochs: int,
               batch_size: int) -> Callable[..., RunResult]:
    """Returns ``train(params, split, key) -> RunResult``, compiled as one function.

    Each epoch visits a fresh permutation of the training set in batches of
    ``batch_size`` (a trailing partial batch is dropped); ``batch_size=1`` is
    online training, the full set is full-batch training.
    """
    loss_fn = lambda params, x, y: classifier_loss(graphdef, params, x, y)

    def train(params, split: data_lib.Split, key: jax.Array) -> RunResult:
        x, y = split.x_train, split.y_train
        n_batches = x.shape[0] // batch_size

        def step(carry, idx):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        def epoch(carry, epoch_key):
            order = jax.random.permutation(epoch_key, x.shape[0])[: n_batches * batch_size]
            carry, losses = jax.lax.scan(step, carry, order.reshape(n_batches, batch_size))
            return carry, losses.mean()

        (params, _), epoch_loss = jax.lax.scan(epoch, (params, opt.init(params)),
                                               jax.random.split(key, epochs))
        return RunResult(params, epoch_loss,
                         accuracy(graphdef, params, split.x_test, split.y_test))

    return jax.jit(train)
