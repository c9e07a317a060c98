"""Quickstart: a Flax MLP on MNIST-1D with five momentum methods, over five seeds.

    python -m experiments.quickstart [--steps 500] [--batch-size 32] [--seeds 5] [--seed 0]

Each optimizer's runs on every seed are one compiled function (``experiments.loop``,
``vmap``ped over the seeds); seed ``s`` fixes the initialisation and the batch order,
the same for every optimizer. The table shows, per optimizer, the final loss on the
training subset and the test accuracy (means with 95% t-intervals over the seeds), the
final training loss minus heavy ball's taken seed by seed (a paired difference), and
the wall time (compilation included). MNIST-1D is used because scikit-learn's digits
saturates: every method ends near the same loss there. The budget (500 steps of batch
32) stops before the loss flattens, so the methods still differ at the end. One
learning rate for all, so this shows the library at work, not which method is best:
``python -m experiments compare`` tunes each.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import momentum_optax as mo

from . import arguments
from . import loop
from . import report
from . import sweeps
from . import tasks
from .protocol import stats

LEARNING_RATE, MOMENTUM = 0.03, 0.9
BASELINE = "heavy ball 0.9"  # the paired differences are against it
SAME_AS_BASELINE = "EMA 0.9, lr / (1 - b)"  # heavy ball rewritten: equal by construction
DIFFERENCE = f"paired difference to {BASELINE}"  # final train loss, seed by seed


def optimizers() -> dict:
    """The compared optimizers; EMA momentum gets lr / (1 - b), which makes it equal heavy ball."""
    return {
        "plain SGD": mo.sgd(LEARNING_RATE),
        BASELINE: mo.sgd(LEARNING_RATE, MOMENTUM),
        "Nesterov 0.9": mo.sgd(LEARNING_RATE, MOMENTUM, nesterov=True),
        SAME_AS_BASELINE: mo.sgd(LEARNING_RATE / (1 - MOMENTUM), MOMENTUM, ema=True),
        "heavy ball 0.9, reset every 50": mo.sgd(LEARNING_RATE, MOMENTUM, reset_every=50),
    }


def run(
    *,
    steps: int = 500,
    batch_size: int = 32,
    seeds: int = 5,
    seed: int = 0,
    names: tuple[str, ...] | None = None,
) -> list[dict]:
    """Trains the MNIST-1D MLP with each optimizer (those in ``names``, default all) on
    ``seeds`` seeds of the root key ``jax.random.key(seed)`` (seed ``s``: the same
    initialisation and batches for every optimizer); returns a row per optimizer, with
    ``stats.Interval`` means over the seeds and, where heavy ball ran too, the paired
    difference of the final training loss against it."""
    if seeds < 2:
        raise ValueError(f"seeds must be at least 2 (an interval over seeds); got {seeds!r}.")
    task = tasks.mnist1d_mlp()
    schedule = loop.Schedule(steps=steps, batch_size=batch_size, eval_every=steps)
    key = jax.random.key(seed)
    rows, losses = [], {}
    for name, opt in optimizers().items():
        if names is not None and name not in names:
            continue
        train = jax.jit(
            jax.vmap(lambda s, opt=opt: loop.train(opt, task, sweeps.seed_key(key, s), schedule))
        )
        start = time.perf_counter()
        curves = jax.block_until_ready(train(jnp.arange(seeds, dtype=jnp.int32)))
        seconds = time.perf_counter() - start
        losses[name] = np.asarray(curves.train_loss[:, -1], np.float64)
        rows.append(
            {
                "optimizer": name,
                "final train loss": stats.mean(losses[name]),
                DIFFERENCE: "-",
                "test accuracy": stats.mean(np.asarray(curves.test_accuracy, np.float64)),
                "seconds": round(seconds, 1),
            }
        )
    for row in rows:
        if BASELINE in losses and row["optimizer"] != BASELINE:
            row[DIFFERENCE] = stats.paired_difference(losses[row["optimizer"]], losses[BASELINE])
    return rows


def notes(rows: list[dict]) -> list[str]:
    """What the table can and cannot tell: the identity behind the EMA row, and each
    optimizer whose paired interval against heavy ball contains 0."""
    out = []
    for row in rows:
        difference = row[DIFFERENCE]
        if row["optimizer"] == SAME_AS_BASELINE:
            out.append(
                f"{SAME_AS_BASELINE} equals {BASELINE} by construction: EMA momentum "
                "averages the gradients, (1 - b) times heavy ball's sum, and the learning "
                "rate lr / (1 - b) undoes the factor (the same updates up to rounding)."
            )
        elif isinstance(difference, stats.Interval) and difference.low <= 0 <= difference.high:
            out.append(
                f"{row['optimizer']}: its paired interval against {BASELINE} contains 0, "
                f"so {difference.n} seeds do not tell them apart at "
                "this budget (--seeds, --steps)."
            )
    return out


def print_table(rows: list[dict], title: str) -> None:
    """``rows`` as a Markdown table under ``title``, then the notes."""
    print(f"{title}\n\n{report.markdown_table(rows)}")
    for note in notes(rows):
        print(f"\nNote: {note}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=arguments.positive, default=500, help="optimizer steps per run"
    )
    parser.add_argument(
        "--batch-size", type=arguments.positive, default=32, help="examples per step"
    )
    parser.add_argument(
        "--seeds", type=arguments.positive, default=5, help="runs per optimizer, at least 2"
    )
    parser.add_argument(
        "--seed",
        type=arguments.seed,
        default=0,
        help="the root key of the initialisations and batch orders",
    )
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error(f"argument --seeds: an interval needs at least 2 seeds; got {args.seeds}")
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    rows = run(steps=args.steps, batch_size=args.batch_size, seeds=args.seeds, seed=args.seed)
    print_table(
        rows,
        f"MNIST-1D MLP 40-100-100-10, {args.steps} steps of batch {args.batch_size}, "
        f"lr {LEARNING_RATE}; mean [95% interval] over {args.seeds} seeds",
    )


if __name__ == "__main__":
    main()
