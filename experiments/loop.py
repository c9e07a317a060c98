"""The compiled training loop with periodic evaluation: one run is one pure function.

``train(opt, task, key, schedule)`` runs ``schedule.steps`` optimizer steps in a
``lax.scan`` and, every ``schedule.eval_every`` steps (and at step 0), evaluates the
loss on a fixed subset of the training set (its first ``schedule.train_subset``
examples; 0: all of it) and the loss and accuracy on the validation set; the
test split is evaluated once, at the end. ``key`` fixes the initialisation and the
batch order, so two optimizers run with the same key see the same start and the same
batches (what paired comparisons across seeds need). Batches are drawn uniformly with
replacement, ``batch_size`` examples per step. Jit and vmap it (``experiments.sweeps``).

For speed, the batches of several consecutive steps (a block of at most 2 MiB of
examples per run, i.e. per row of a vmapped sweep) are drawn and gathered at once, then
scanned over: on CPU a draw and a gather inside every step held the loop to 0.55-0.75
of a bare scan over ready batches at batch sizes 1 and 32 (``python -m experiments
bench``). The numbers are those of one draw and one gather per step, bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import tasks as tasks_lib


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long a run is and how often it is evaluated."""

    steps: int = 1000
    batch_size: int = 32
    eval_every: int = 100
    train_subset: int = 2000  # the training examples the training loss is evaluated on (0: all)

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Schedule.{name} must be a positive integer; got {value!r}.")
        if not isinstance(self.train_subset, int) or self.train_subset < 0:
            raise ValueError(
                "Schedule.train_subset must be a non-negative integer (0: the whole training "
                f"set); got {self.train_subset!r}."
            )
        if self.steps % self.eval_every:
            raise ValueError(
                f"Schedule.steps ({self.steps}) must be a multiple of eval_every "
                f"({self.eval_every})."
            )

    @property
    def eval_steps(self) -> np.ndarray:
        """The step numbers at which the curves are evaluated (0 included)."""
        return np.arange(0, self.steps + 1, self.eval_every)


_BLOCK_BYTES = 2**21  # the examples of the steps drawn and gathered at once, per run


def _block_steps(schedule: Schedule, example_bytes: int) -> int:
    """How many consecutive steps draw and gather their batches at once: the largest
    divisor of ``schedule.eval_every`` whose batches fit in ``_BLOCK_BYTES`` (at least 1)."""
    fit = max(1, _BLOCK_BYTES // (schedule.batch_size * example_bytes))
    return max(
        k for k in range(1, min(fit, schedule.eval_every) + 1) if schedule.eval_every % k == 0
    )


class Curves(NamedTuple):
    """A run's evaluations (leading axis: ``Schedule.eval_steps``) and its final test numbers."""

    train_loss: jax.Array
    val_loss: jax.Array
    val_accuracy: jax.Array
    test_loss: jax.Array
    test_accuracy: jax.Array


def train(
    opt: optax.GradientTransformation,
    task: tasks_lib.Task,
    key: jax.Array,
    schedule: Schedule,
    data=None,
) -> Curves:
    """Trains ``task``'s model with ``opt`` from ``init(key)``; returns its ``Curves``.

    ``data`` (default ``task.data``) lets a caller pass the dataset as an argument of a
    compiled function instead of a constant baked into it. The loss of each step is
    passed to ``opt.update`` as ``value=`` (what function-value restarts read).
    """
    ds = task.data if data is None else data
    opt = optax.with_extra_args_support(opt)
    init_key, batch_key = jax.random.split(key)
    params = task.init(init_key)
    n = ds.x_train.shape[0]

    sub = slice(0, schedule.train_subset or None)
    x_eval, y_eval = ds.x_train[sub], ds.y_train[sub]

    def evaluate(params):
        train_loss = tasks_lib.loss(task, params, x_eval, y_eval)
        val_loss, val_acc = tasks_lib.loss_and_accuracy(task, params, ds.x_val, ds.y_val)
        return train_loss, val_loss, val_acc

    def draw(t):  # the batch of step t
        return jax.random.randint(jax.random.fold_in(batch_key, t), (schedule.batch_size,), 0, n)

    def step(carry, batch):
        params, state = carry
        x, y = batch
        value, grads = jax.value_and_grad(lambda p: tasks_lib.loss(task, p, x, y))(params)
        updates, state = opt.update(grads, state, params, value=value)
        return (optax.apply_updates(params, updates), state), None

    k = _block_steps(
        schedule,
        sum(int(np.prod(a.shape[1:])) * a.dtype.itemsize for a in (ds.x_train, ds.y_train)),
    )

    def block(carry, first):  # k steps: their batches drawn and gathered at once
        idx = jax.vmap(draw)(first + jnp.arange(k))
        carry, _ = jax.lax.scan(step, carry, (ds.x_train[idx], ds.y_train[idx]))
        return carry, None

    def chunk(carry, first):
        carry, _ = jax.lax.scan(block, carry, first + jnp.arange(0, schedule.eval_every, k))
        return carry, evaluate(carry[0])

    chunks = jnp.arange(0, schedule.steps, schedule.eval_every, dtype=jnp.int32)
    start = evaluate(params)
    (params, _), evals = jax.lax.scan(chunk, (params, opt.init(params)), chunks)
    train_loss, val_loss, val_acc = (jnp.concatenate([s[None], e]) for s, e in zip(start, evals))
    test_loss, test_acc = tasks_lib.loss_and_accuracy(task, params, ds.x_test, ds.y_test)
    return Curves(train_loss, val_loss, val_acc, test_loss, test_acc)
