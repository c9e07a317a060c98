"""Quickstart: a Flax MLP on scikit-learn's digits with five momentum methods.

    python -m experiments.quickstart [--epochs 30] [--seed 0]

Each optimizer's whole training run is one compiled function; the table shows
the final training loss, the held-out test accuracy and the wall time
(compilation included).
"""

from __future__ import annotations

import argparse
import time

import jax

import momentum_optax as mo
from experiments import data as data_lib
from experiments import training

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


def run(*, epochs: int = 30, batch_size: int = 32, seed: int = 0) -> list[dict]:
    """Trains one MLP per optimizer from the same initialisation; returns a row per optimizer."""
    split = data_lib.load("digits", seed=seed)
    init_key, data_key = jax.random.split(jax.random.key(seed))
    graphdef, params = training.init_mlp(split, init_key)
    rows = []
    for name, opt in optimizers().items():
        train = training.make_train(opt, graphdef, epochs=epochs, batch_size=batch_size)
        start = time.perf_counter()
        result = jax.block_until_ready(train(params, split, data_key))
        rows.append({"optimizer": name,
                     "final train loss": float(result.epoch_loss[-1]),
                     "test accuracy": float(result.test_accuracy),
                     "seconds": time.perf_counter() - start})
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
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    rows = run(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    print_table(rows, f"digits MLP 64-64-10, {args.epochs} epochs, batch {args.batch_size}, "
                      f"lr {LEARNING_RATE}")


if __name__ == "__main__":
    main()
