"""Quickstart: a Flax MLP on scikit-learn's digits with five momentum methods.

    python -m experiments.quickstart [--steps 1000] [--batch-size 32] [--seed 0]

Each optimizer's whole training run is one compiled function (``experiments.loop``);
every run starts from the same initialisation and sees the same batches. The table
shows the final loss on the training subset, the validation and test accuracy and
the wall time (compilation included). One learning rate for all, so this shows the
library at work, not which method is best: ``python -m experiments compare`` tunes each.
"""

from __future__ import annotations

import argparse
import time

import jax

import momentum_optax as mo

from . import loop
from . import tasks

LEARNING_RATE, MOMENTUM = 0.01, 0.9


def optimizers() -> dict:
    """The compared optimizers; EMA momentum gets lr / (1 - b), which makes it equal heavy ball."""
    return {
        "plain SGD": mo.sgd(LEARNING_RATE),
        "heavy ball 0.9": mo.sgd(LEARNING_RATE, MOMENTUM),
        "Nesterov 0.9": mo.sgd(LEARNING_RATE, MOMENTUM, nesterov=True),
        "EMA 0.9, lr / (1 - b)": mo.sgd(LEARNING_RATE / (1 - MOMENTUM), MOMENTUM, ema=True),
        "heavy ball 0.9, reset every 100": mo.sgd(LEARNING_RATE, MOMENTUM, reset_every=100),
    }


def run(
    *, steps: int = 1000, batch_size: int = 32, seed: int = 0, names: tuple[str, ...] | None = None
) -> list[dict]:
    """Trains the digits MLP once per optimizer (those in ``names``, default all) with
    ``jax.random.key(seed)`` (the same initialisation and batches for all); returns a row
    per optimizer."""
    task = tasks.digits_mlp()
    schedule = loop.Schedule(steps=steps, batch_size=batch_size, eval_every=steps)
    key = jax.random.key(seed)
    rows = []
    for name, opt in optimizers().items():
        if names is not None and name not in names:
            continue
        train = jax.jit(lambda key, opt=opt: loop.train(opt, task, key, schedule))
        start = time.perf_counter()
        curves = jax.block_until_ready(train(key))
        rows.append(
            {
                "optimizer": name,
                "final train loss": float(curves.train_loss[-1]),
                "validation accuracy": float(curves.val_accuracy[-1]),
                "test accuracy": float(curves.test_accuracy),
                "seconds": time.perf_counter() - start,
            }
        )
    return rows


def print_table(rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps per run")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per step")
    parser.add_argument(
        "--seed", type=int, default=0, help="the key of the initialisation and the batch order"
    )
    args = parser.parse_args(argv)
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    rows = run(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    print_table(
        rows,
        f"digits MLP 64-64-64-10, {args.steps} steps of batch "
        f"{args.batch_size}, lr {LEARNING_RATE}",
    )


if __name__ == "__main__":
    main()
