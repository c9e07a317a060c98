"""The compiled training loop: a whole run is one jitted function (epochs and steps in lax.scan).

``train_fn`` builds the pure ``train(params, split, key)``; ``make_train`` jits
it for one optimizer; ``sweep_train`` runs it for every row of a
hyper-parameter table inside one ``jit(vmap(...))`` (see ``experiments.sweeps``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from experiments import data as data_lib
from experiments import models
from experiments import sweeps

# probe(params, grads, updates, split, step) -> a pytree recorded at every step; `step`
# (the int32 step number) is the same for every row of a sweep, so a ``lax.cond`` on it
# stays a branch under vmap (a probe can skip expensive work on most steps).
Probe = Callable[[Any, Any, Any, data_lib.Split, jax.Array], Any]


class RunResult(NamedTuple):
    """What one training run returns (arrays, still on the device)."""

    params: Any
    epoch_loss: jax.Array  # (epochs,) mean training loss over each epoch's steps
    test_accuracy: jax.Array  # scalar
    probes: Any = None  # the probe's records, leading axes (epochs, steps per epoch)


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


class Setup(NamedTuple):
    """An MLP experiment's starting point: data, model, initial parameters, batch-order key."""

    split: data_lib.Split
    graphdef: nnx.GraphDef
    params: Any
    key: jax.Array


def setup(dataset: str, key: jax.Array, hidden: int = 64) -> Setup:
    """Loads ``dataset`` (its train/test split drawn from ``key``) and a fresh MLP."""
    split_key, init_key, data_key = jax.random.split(key, 3)
    split = data_lib.load(dataset, seed=int(jax.random.randint(split_key, (), 0, 2 ** 31 - 1)))
    graphdef, params = init_mlp(split, init_key, hidden)
    return Setup(split, graphdef, params, data_key)


def train_fn(opt: optax.GradientTransformation, loss_fn: Callable[..., jax.Array],
             accuracy_fn: Callable[..., jax.Array], *, epochs: int, batch_size: int,
             probe: Probe | None = None, shuffle: bool = True) -> Callable[..., RunResult]:
    """The pure ``train(params, split, key) -> RunResult`` (jit it, vmap it).

    Each epoch visits a fresh permutation of the training set in batches of
    ``batch_size`` (a trailing partial batch is dropped); ``batch_size=1`` is
    online training, the full set is full-batch training.

    Args:
        opt: the optimizer.
        loss_fn: ``loss_fn(params, x, y)``, the training loss of a batch.
        accuracy_fn: ``accuracy_fn(params, x, y)``, evaluated on the test split at the end.
        epochs: passes over the training set.
        batch_size: examples per step.
        probe: optional ``probe(params, grads, updates, split, step)`` recorded at every step.
        shuffle: draw a fresh order every epoch (``False``: the stored order, every epoch;
            the bench uses it to compare with loops that do not shuffle).
    """

    def train(params, split: data_lib.Split, key: jax.Array) -> RunResult:
        x, y = split.x_train, split.y_train
        n_batches = x.shape[0] // batch_size

        def step(carry, batch):
            params, state = carry
            x_batch, y_batch, number = batch
            loss, grads = jax.value_and_grad(loss_fn)(params, x_batch, y_batch)
            updates, state = opt.update(grads, state, params)
            record = None if probe is None else probe(params, grads, updates, split, number)
            return (optax.apply_updates(params, updates), state), (loss, record)

        def epoch(carry, epoch_in):
            epoch_key, index = epoch_in
            numbers = index * n_batches + jnp.arange(n_batches, dtype=jnp.int32)
            # the epoch's batches gathered once, in order: the steps then read contiguous
            # slices instead of gathering rows of the whole set at every step
            if shuffle:
                order = jax.random.permutation(epoch_key, x.shape[0])[: n_batches * batch_size]
                xs, ys = x[order], y[order]
            else:
                xs, ys = x[: n_batches * batch_size], y[: n_batches * batch_size]
            batches = (xs.reshape(n_batches, batch_size, *x.shape[1:]),
                       ys.reshape(n_batches, batch_size, *y.shape[1:]), numbers)
            carry, (losses, records) = jax.lax.scan(step, carry, batches)
            return carry, (losses.mean(), records)

        (params, _), (epoch_loss, records) = jax.lax.scan(
            epoch, (params, opt.init(params)),
            (jax.random.split(key, epochs), jnp.arange(epochs, dtype=jnp.int32)))
        return RunResult(params, epoch_loss, accuracy_fn(params, split.x_test, split.y_test),
                         records)

    return train


def make_train(opt: optax.GradientTransformation, graphdef: nnx.GraphDef, *, epochs: int,
               batch_size: int, probe: Probe | None = None,
               shuffle: bool = True) -> Callable[..., RunResult]:
    """Returns ``train(params, split, key) -> RunResult`` for the MLP, compiled as one function."""
    return jax.jit(mlp_train_fn(opt, graphdef, epochs=epochs, batch_size=batch_size, probe=probe,
                                shuffle=shuffle))


def mlp_train_fn(opt: optax.GradientTransformation, graphdef: nnx.GraphDef,
                 **kwargs: Any) -> Callable[..., RunResult]:
    """``train_fn`` for the MLP ``graphdef``: cross-entropy loss, test accuracy."""
    return train_fn(opt, lambda p, x, y: classifier_loss(graphdef, p, x, y),
                    lambda p, x, y: accuracy(graphdef, p, x, y), **kwargs)


def sweep_train(make_opt: Callable[[dict], optax.GradientTransformation], start: Setup,
                table: dict, *, epochs: int, batch_size: int,
                probe: Probe | None = None) -> RunResult:
    """Trains the MLP once per row of ``table`` (``make_opt(row)`` builds that row's
    optimizer from traced values) inside one compiled ``vmap``; all rows start from
    ``start.params`` and see the same batches. Returns NumPy arrays, one entry per row."""

    def one(row, params, split, key):
        train = mlp_train_fn(make_opt(row), start.graphdef, epochs=epochs,
                             batch_size=batch_size, probe=probe)
        return train(params, split, key)

    return sweeps.sweep(one, table, start.params, start.split, start.key)


def sweep_train_seeds(make_opt: Callable[[dict], optax.GradientTransformation], start: Setup,
                      table: dict, seeds: int, *, epochs: int, batch_size: int,
                      probe: Probe | None = None) -> RunResult:
    """``sweep_train`` repeated over ``seeds`` initialisations and batch orders, all in one
    compiled function (a ``vmap`` over the seeds inside the sweep's ``vmap`` over rows).

    Seed 0 is ``start`` itself (its weights and batch-order key), so it reproduces
    ``sweep_train``; seed ``i > 0`` draws both from ``fold_in(start.key, i)``. The data
    split is shared. Returns NumPy arrays with leading axes (row, seed).
    """
    hidden = nnx.merge(start.graphdef, start.params).hidden1.out_features
    params, keys = [start.params], [start.key]
    for i in range(1, seeds):
        init_key, data_key = jax.random.split(jax.random.fold_in(start.key, i))
        params.append(init_mlp(start.split, init_key, hidden)[1])
        keys.append(data_key)
    params = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)

    def one(row, params, split, keys):
        train = mlp_train_fn(make_opt(row), start.graphdef, epochs=epochs,
                             batch_size=batch_size, probe=probe)
        return jax.vmap(train, in_axes=(0, None, 0))(params, split, keys)

    return sweeps.sweep(one, table, params, start.split, jnp.stack(keys))
