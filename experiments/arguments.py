"""Argument types shared by ``python -m experiments`` and its ``compare`` command."""

from __future__ import annotations

import argparse
import pathlib
import sys


def program() -> str:
    """How this program was started, as its messages and records name it: ``momentum-optax``
    (the installed console script), else ``python -m`` this package (``experiments`` in a
    checkout, ``momentum_optax.experiments`` where it is installed)."""
    if pathlib.Path(sys.argv[0]).stem == "momentum-optax":
        return "momentum-optax"
    return f"python -m {__package__}"


SEED_MAX = 2**32 - 1  # jax.random.key keeps 32 bits here: 2**32 would give key(0) again


def seed(text: str) -> int:
    """``--seed``: an integer in 0..2**32 - 1, the range in which every seed gives its own
    ``jax.random.key`` (beyond it a seed repeats a smaller one's key, or overflows)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(
            f"expected an integer in 0..{SEED_MAX} (2**32 - 1, the seeds jax.random.key "
            f"tells apart); got {text!r}"
        )
    return value


def positive(text: str) -> int:
    """A positive integer option (``--trials``, ``--seeds``, ...)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return int(text)
