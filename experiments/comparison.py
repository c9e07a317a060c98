"""A method's trials on every seed in one compiled function, and the selection among them.

``Method`` pairs a name with ``make(row) -> optax transformation`` (``row`` holds the
traced ``lr``, ``momentum`` and ``eps`` of a trial) and the ``Space`` it is tuned over.
``run(method, task, ...)`` draws ``trials`` points from the space
(``protocol.tuning.trials``), crosses them with ``seeds`` seeds and trains every
(trial, seed) pair inside one ``jit(vmap(...))`` sharded over the devices
(``experiments.sweeps``): trials and seeds form one flat axis, so models whose batching
rule cannot nest (``nnx.Conv``) run too. Seed ``s`` fixes the initialisation and the
batch order, identically for every method and trial, so methods are compared pairwise
per seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np
import optax

import momentum_optax as mo

from . import loop
from . import sweeps
from . import tasks as tasks_lib
from .protocol import race
from .protocol import tuning

MakeOpt = Callable[[dict], optax.GradientTransformation]


@dataclasses.dataclass(frozen=True)
class Method:
    """A named optimizer family: ``make(row)`` with traced ``row["lr"]``, ``row["momentum"]``
    (and ``row["eps"]``), tuned over ``space``."""

    name: str
    make: MakeOpt
    space: tuning.Space


class Trials(NamedTuple):
    """Every trial of a method on every seed: ``table`` (columns of length ``trials``) and the
    curves with leading axes ``(trials, seeds)``."""

    method: str
    space: tuning.Space
    table: dict[str, np.ndarray]
    curves: loop.Curves
    schedule: loop.Schedule

    @property
    def seeds(self) -> int:
        return self.curves.test_accuracy.shape[1]

    @property
    def effective(self) -> np.ndarray:
        """Per trial, the effective step ``lr / (1 - momentum)``."""
        return self.table["lr"] / (1 - self.table["momentum"])

    def final_mean(self, metric: str) -> np.ndarray:
        """Per trial, the mean over seeds of the last evaluation of ``metric`` (a diverged
        seed makes it inf)."""
        return final(getattr(self.curves, metric)).mean(-1)

    @property
    def finite(self) -> np.ndarray:
        """Per trial: no seed diverged (``protocol.race.diverged_runs`` of its training loss)."""
        return ~race.diverged_runs(self.curves.train_loss).any(-1)

    def pick(self, index: int) -> Selected:
        """Trial ``index``'s curves over the seeds, with its settings and edge flags."""
        return Selected(
            self.method,
            index,
            {k: float(v[index]) for k, v in self.table.items()},
            jax.tree.map(lambda a: a[index], self.curves),
            tuning.on_edge(self.space, self.table, index, self.finite),
            np.full(self.seeds, index),
        )


class Selected(NamedTuple):
    """The chosen trial of a method: its settings and its curves (leading axis: seeds)."""

    method: str
    index: int
    setting: dict[str, float]
    curves: loop.Curves
    edge: list[str]  # tuned dimensions in which the choice is on the edge of the space
    chosen: np.ndarray | None = None  # per seed, the trial its curves come from (cross-fit)


def run(
    methods: Method | Sequence[Method],
    task: tasks_lib.Task,
    *,
    trials: int,
    seeds: int,
    key: jax.Array,
    schedule: loop.Schedule,
    table: dict[str, np.ndarray] | None = None,
    train: Callable = loop.train,
) -> Trials | list[Trials]:
    """Runs ``trials`` settings of each method on ``seeds`` seeds, all in one compiled function.

    Several methods run in the same compile when their states share one structure (heavy
    ball, Nesterov and plain SGD as ``mo.sgd``; schedules of one optimizer): a traced
    index picks each row's method (``sweeps.select``). Each method gets the same number of
    trials, drawn from its own space. ``table`` overrides the draw (a claim that needs a
    fixed grid, e.g. learning rate x momentum); its length is then the number of trials.
    ``train`` runs one optimizer on ``task`` (``loop.train``'s signature; the noisy
    quadratic's is ``noisy_quadratic.train`` with ``noisy_quadratic.problem(dim)``).

    Returns one ``Trials`` for one method, a list (in order) for several.
    """
    single = isinstance(methods, Method)
    methods = [methods] if single else list(methods)
    tables = [
        tuning.trials(m.space, trials)
        if table is None
        else {k: np.asarray(v, np.float32) for k, v in table.items()}
        for m in methods
    ]
    columns = sorted(set().union(*tables))
    missing = [(m.name, c) for m, t in zip(methods, tables) for c in columns if c not in t]
    if missing:
        raise ValueError(
            f"every method's trials need the same columns {columns}; missing "
            f"(method, column): {missing}."
        )
    n = sweeps.rows(tables[0])
    combined = {c: np.concatenate([t[c] for t in tables]) for c in columns}
    combined["method"] = np.repeat(np.arange(len(methods), dtype=np.int32), n)
    makers = [m.make for m in methods]

    def one(row, row_key, data):
        opt = (
            makers[0](row)
            if len(makers) == 1
            else sweeps.select([make(row) for make in makers], row["method"])
        )
        return train(opt, task, row_key, schedule, data)

    curves = sweeps.sweep(one, sweeps.with_seeds(combined, seeds), task.data, key=key)
    curves = jax.tree.map(lambda a: a.reshape(len(methods), n, seeds, *a.shape[1:]), curves)
    out = [
        Trials(
            m.name, m.space, t, loop.Curves(*jax.tree.map(lambda a, i=i: a[i], curves)), schedule
        )
        for i, (m, t) in enumerate(zip(methods, tables))
    ]
    return out[0] if single else out


def final(values: np.ndarray) -> np.ndarray:
    """The last evaluation of a curve array (last axis: evaluations); NaN counts as inf."""
    last = np.asarray(values, np.float64)[..., -1]
    return np.where(np.isfinite(last), last, np.inf)


def crossfit(trials: Trials, objective: np.ndarray) -> Selected:
    """The trial with the lowest mean ``objective`` ``(trials, seeds)`` on all seeds (its
    settings and edge flags), with the curves of each seed taken from the trial chosen on
    the *other* seeds (``protocol.race.crossfit``: selection and scoring never share a
    seed). Non-finite values (diverged runs) count as the worst."""
    score = np.where(np.isfinite(objective), objective, np.inf)
    chosen = race.crossfit(score, np.zeros(score.shape, bool), score)
    seeds = np.arange(score.shape[1])
    curves = jax.tree.map(lambda a: np.asarray(a)[chosen, seeds], trials.curves)
    picked = trials.pick(tuning.select(score))
    return picked._replace(curves=loop.Curves(*curves), chosen=chosen)


def select_by_validation_loss(trials: Trials) -> Selected:
    """The trial with the lowest mean final validation loss, cross-fitted (``crossfit``)."""
    return crossfit(trials, final(trials.curves.val_loss))


def select_by_train_loss(trials: Trials) -> Selected:
    """The trial with the lowest mean final training loss, cross-fitted (for claims about
    training speed)."""
    return crossfit(trials, final(trials.curves.train_loss))


# ----------------------------------------------------------------- the usual optimizer rows


def heavy_ball(row: dict) -> optax.GradientTransformation:
    """``mo.sgd(lr, momentum)`` with both traced (momentum 0: plain SGD)."""
    return mo.sgd(row["lr"], row["momentum"])


def nesterov(row: dict) -> optax.GradientTransformation:
    """``mo.sgd(lr, momentum, nesterov=True)`` with both traced."""
    return mo.sgd(row["lr"], row["momentum"], nesterov=True)


def cautious_heavy_ball(row: dict) -> optax.GradientTransformation:
    """``chain(mo.cautious(mo.trace(momentum)), scale_by_learning_rate(lr))`` with both traced:
    heavy ball with the components of the velocity whose sign disagrees with the gradient
    masked (Liang et al. 2024). The direction is given (``flip_sign=False``: the trace
    points along the gradient), since a traced momentum cannot be read when it is built."""
    return optax.chain(
        mo.cautious(mo.trace(row["momentum"]), flip_sign=False),
        mo.scale_by_learning_rate(row["lr"]),
    )
