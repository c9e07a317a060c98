"""The optimizers that ``python -m experiments compare`` knows by name, and those it imports.

``OPTIMIZERS`` maps each name to a ``Choice``: its factory of the trial's row (traced
``lr``, ``momentum``, ``eps``), its default search space (a log learning-rate range;
``ONE_MINUS_BETA`` when ``--tune-momentum`` tunes its momentum; ``EPS`` when eps is
tuned) and a line describing it. ``choice`` resolves a name or an import path
``package.module:factory`` (``imported``) to a ``Choice``, raising ``OptionError`` with
a message naming the option and value when the path cannot be used.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from collections.abc import Callable

import jax.numpy as jnp
import optax

import momentum_optax as mo

from . import comparison

ONE_MINUS_BETA = (1e-3, 0.5)  # --tune-momentum: beta from 0.5 to 0.999
EPS = (1e-8, 1e-2)


@dataclasses.dataclass(frozen=True)
class Choice:
    """An optimizer: ``make(row)`` (traced ``lr``, ``momentum``, ``eps``), its default
    learning-rate range, its momentum (None: it reads none), whether ``--tune-momentum``
    tunes that momentum and whether eps is tuned."""

    make: Callable[[dict], optax.GradientTransformation]
    lr: tuple[float, float]
    momentum: float | None
    about: str
    eps: bool = False
    tunable: bool = True


OPTIMIZERS = {
    "sgd": Choice(
        comparison.heavy_ball, (1e-3, 3.0), 0.0, "mo.sgd(lr), no momentum", tunable=False
    ),
    "heavy-ball": Choice(comparison.heavy_ball, (1e-4, 1.0), 0.9, "mo.sgd(lr, beta)"),
    "nesterov": Choice(comparison.nesterov, (1e-4, 1.0), 0.9, "mo.sgd(lr, beta, nesterov=True)"),
    "ema": Choice(
        lambda r: mo.sgd(r["lr"], r["momentum"], ema=True),
        (1e-3, 3.0),
        0.9,
        "mo.sgd(lr, beta, ema=True): the velocity an average of gradients",
    ),
    "qhm": Choice(
        lambda r: optax.chain(mo.qhm(0.7, r["momentum"]), optax.scale_by_learning_rate(r["lr"])),
        (1e-3, 3.0),
        0.999,
        "mo.qhm(nu=0.7, beta) and the learning rate",
    ),
    "aggmo": Choice(
        lambda r: optax.chain(mo.aggmo((0.0, 0.9, 0.99)), optax.scale_by_learning_rate(r["lr"])),
        (1e-5, 0.3),
        None,
        "mo.aggmo((0, 0.9, 0.99)) and the learning rate",
    ),
    "yellowfin": Choice(
        lambda r: mo.yellowfin(r["lr"]),
        (0.1, 10.0),
        None,
        "mo.yellowfin(lr): rate and momentum tuned online, lr a factor on that rate (1: untuned)",
    ),
    "srsgd": Choice(
        lambda r: mo.srsgd(r["lr"]),
        (1e-4, 1.0),
        None,
        "mo.srsgd(lr): Nesterov momentum k / (k + 3), restarted every 40 to 80 steps",
    ),
    "cautious-heavy-ball": Choice(
        comparison.cautious_heavy_ball,
        (1e-4, 1.0),
        0.9,
        "mo.cautious(mo.trace(beta)) and the learning rate: heavy ball, masked where the "
        "velocity's sign disagrees with the gradient's",
    ),
    "adam": Choice(
        lambda r: optax.adam(r["lr"], b1=r["momentum"], b2=0.999, eps=r["eps"]),
        (1e-5, 0.3),
        0.9,
        "optax.adam(lr, b1=beta, b2=0.999, eps)",
        eps=True,
    ),
    "rmsprop": Choice(
        lambda r: optax.chain(
            optax.scale_by_rms(0.9, eps=r["eps"]),
            optax.scale_by_learning_rate(r["lr"]),
            mo.trace(r["momentum"]),
        ),
        (1e-5, 0.3),
        0.0,
        "RMSprop (decay 0.9, eps), heavy-ball momentum beta on the scaled step (0 unless tuned)",
        eps=True,
    ),
}


class OptionError(ValueError):
    """A command-line value that cannot be used: the message names the option and value."""


@functools.cache
def choice(name: str) -> Choice:
    """The optimizer ``name``: one of ``OPTIMIZERS`` or an import path (``imported``)."""
    return OPTIMIZERS[name] if name in OPTIMIZERS else imported(name)


def imported(path: str) -> Choice:
    """``package.module:factory`` as a ``Choice``: a factory whose first parameter is
    ``row`` gets the row (traced ``lr``, ``momentum`` (0.9 unless tuned), ``eps`` 1e-8);
    one with a ``learning_rate`` parameter gets ``learning_rate=row["lr"]`` only."""
    module, _, name = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise OptionError(
            f"--optimizer {path!r}: cannot import {name!r} from module "
            f"{module!r} ({type(error).__name__}: {error})"
        ) from None
    names = list(inspect.signature(factory).parameters) if callable(factory) else []
    if names[:1] == ["row"]:
        return Choice(lambda r: factory({"eps": jnp.float32(1e-8), **r}), (1e-4, 1.0), 0.9, path)
    if "learning_rate" in names:
        return Choice(lambda r: factory(learning_rate=r["lr"]), (1e-4, 1.0), None, path)
    raise OptionError(
        f"--optimizer {path!r}: expected a callable whose first parameter is "
        f"`row` or that has a `learning_rate` parameter; got parameters {names}"
    )
