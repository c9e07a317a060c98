"""The practice arm: a method as it is used in practice, with a warm-up + cosine learning-rate
schedule and weight decay around it.

``wrap(make, steps)`` turns ``make(row) -> optimizer`` into ``chain(add_decayed_weights(wd),
make(row), scale_by_schedule(s))`` with ``s`` optax's ``warmup_cosine_decay_schedule`` from 0
(the first update) up to 1 over the first ``WARMUP`` of the run and down towards 0 at its
end: the tuned learning rate is the schedule's peak, and the weight decay is coupled (added
to the gradient before the momentum, as in SGD's ``weight_decay``). With
``decoupled=True`` the decay is added after the method instead, scaled by the row's
learning rate (``u - lr wd w``, as AdamW and the cautious paper's C-AdamW apply it): a
masked direction (``mo.cautious``) then never masks the decay. The arm's methods carry
``SUFFIX`` in their names, so a race holds both arms side by side. ``measure`` runs a
claim's methods and, when its config asks, the same methods under the practice arm (a
second compile), and selects a trial of each (C8, C9); ``parts.speedup`` races them.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import NamedTuple

import jax
import optax

from .. import comparison
from .. import tasks as tasks_lib

WARMUP = 0.05  # share of the run spent warming up
WEIGHT_DECAY = 5e-4
SUFFIX = " (warm-up + cosine, wd)"

MakeOpt = Callable[[dict], optax.GradientTransformation]


def schedule(steps: int) -> optax.Schedule:
    """The learning-rate multiplier: linear warm-up to 1, then cosine decay to 0 at ``steps``."""
    warmup = max(1, round(WARMUP * steps))
    return optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, steps, end_value=0.0)


def wrap(make: MakeOpt, steps: int, *, decoupled: bool = False) -> MakeOpt:
    """``make`` under the practice arm: weight decay in front (``decoupled``: behind, scaled
    by ``-row["lr"]``), the schedule behind."""

    def practiced(row: dict) -> optax.GradientTransformation:
        if decoupled:  # make(row)'s updates are -lr u: add -lr wd w to them
            parts = [make(row), optax.add_decayed_weights(-row["lr"] * WEIGHT_DECAY)]
        else:
            parts = [optax.add_decayed_weights(WEIGHT_DECAY), make(row)]
        return optax.chain(*parts, optax.scale_by_schedule(schedule(steps)))

    return practiced


def main(names, suffix: str = SUFFIX) -> list[str]:
    """The names that belong to the main arm (without ``suffix``)."""
    return [n for n in names if not n.endswith(suffix)]


def arm(
    methods: Sequence[comparison.Method], steps: int, *, decoupled: bool = False
) -> list[comparison.Method]:
    """``methods`` under the practice arm of a ``steps``-step run, named with ``SUFFIX``."""
    return [
        comparison.Method(m.name + SUFFIX, wrap(m.make, steps, decoupled=decoupled), m.space)
        for m in methods
    ]


class Arms(NamedTuple):
    """Every method's trials and its selected trial, the main arm's first, then the
    practice arm's (names ending ``SUFFIX``)."""

    trials: list[comparison.Trials]
    selected: list[comparison.Selected]

    def main(self) -> dict[str, comparison.Selected]:
        """The main arm's selected trials by name."""
        return {s.method: s for s in self.selected if not s.method.endswith(SUFFIX)}


def measure(
    methods: Sequence[comparison.Method],
    task: tasks_lib.Task,
    cfg,
    key: jax.Array,
    select: Callable[[comparison.Trials], comparison.Selected],
    *,
    label: str,
    status=lambda _: None,
) -> Arms:
    """``methods`` (one compile, ``cfg.trials`` trials on ``cfg.seeds`` seeds each) and, with
    ``cfg.practice``, the same under the practice arm (another); ``select`` picks each one's
    trial."""
    groups = [list(methods)] + ([arm(methods, cfg.schedule.steps)] if cfg.practice else [])
    runs: list[comparison.Trials] = []
    for group in groups:
        status(
            f"{label}: {len(group)} arms ({group[0].name}, ...) x {cfg.trials} trials x "
            f"{cfg.seeds} seeds"
        )
        runs += comparison.run(
            group, task, trials=cfg.trials, seeds=cfg.seeds, key=key, schedule=cfg.schedule
        )
    return Arms(runs, [select(r) for r in runs])


def sentence(*, decoupled: bool = False, raced: bool = True) -> str:
    """The arm in words, for a report's setup (``raced``: the claim races to a target)."""
    decay = (
        f"method -> add_decayed_weights(-lr x {WEIGHT_DECAY:g}) (decoupled: after the method, "
        "so a mask never drops it)"
        if decoupled
        else f"add_decayed_weights({WEIGHT_DECAY:g}) -> method (coupled: before the momentum)"
    )
    return (
        f"Practice arm (names ending '{SUFFIX}', a second compile): the same methods and "
        f"trials, each chained as {decay} -> scale_by_schedule(warm-up from 0 over the first "
        f"{WARMUP:.0%} of the run, cosine decay towards 0 at its end): the tuned learning rate "
        "is the peak" + ("; its target is set by its own tuned reference." if raced else ".")
    )
