"""Time-to-result over tuned arms, the one instrument every comparison uses (AlgoPerf's rule).

A **race** sets a target from a tuned reference and measures, for every method, how many
steps its tuned trial needs to reach it:

- **target** (``target_at``): the mean over seeds of the reference's tuned trial at a
  fraction (50-60%) of its run, never its final value (a target at the end censors half of
  the reference's own seeds);
- **crossing** (``crossing``): the step at which a curve evaluated every few steps reaches
  the target, linearly interpolated between the two evaluations around it, so the ratio
  of two methods' steps is continuous, not a ratio of evaluation steps;
- **censoring** (``Arrival``): a run that never arrives is censored at the horizon (the
  last evaluated step), counted and reported; a ratio with censored runs is a bound
  (``stats.paired_ratio``) and a verdict resting on its open side is inconclusive;
- **selection** (``crossfit``): each seed is scored by the trial chosen on the *other*
  seeds (two folds, even and odd seeds): the fewest censored runs, then the fewest mean
  steps, then the best final value. Selection and scoring never share a seed.

``race(trials, reference, ...)`` runs the whole rule over ``comparison.Trials``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import numpy as np

from ..protocol import stats


class Arrival(NamedTuple):
    """Per seed, the interpolated step at which a run reached the target; censored runs
    hold the ``horizon`` and are flagged in ``censored``."""

    steps: np.ndarray
    censored: np.ndarray
    horizon: float

    @property
    def count(self) -> int:
        """The number of censored seeds."""
        return int(np.sum(self.censored))

    def mean(self) -> stats.Interval:
        """The mean steps with its interval; a lower bound where a seed was censored."""
        return stats.mean(self.steps, bound="lower" if self.count else "")

    def cell(self) -> str:
        """A table cell: the mean and how many seeds were censored."""
        text = str(self.mean())
        return f"{text} ({self.count}/{self.steps.size} censored)" if self.count else text


def crossing(
    curve: np.ndarray, target: float, eval_steps: np.ndarray, *, higher_is_better: bool
) -> np.ndarray:
    """The step at which ``curve`` (last axis: evaluations at ``eval_steps``) first reaches
    ``target``, interpolated linearly between the evaluation before and the one at which
    it arrives (``inf`` where it never does; NaN and inf count as not arrived)."""
    c = np.asarray(curve, np.float64)
    t = np.asarray(eval_steps, np.float64)
    sign = -1.0 if higher_is_better else 1.0  # reach: sign * c <= sign * target
    c = np.where(np.isfinite(c), sign * c, np.inf)
    goal = sign * target
    reached = c <= goal
    first = reached.argmax(-1)
    prev = np.maximum(first - 1, 0)
    c1 = np.take_along_axis(c, first[..., None], -1)[..., 0]
    c0 = np.take_along_axis(c, prev[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where((first > 0) & np.isfinite(c0) & (c0 > c1), (c0 - goal) / (c0 - c1), 1.0)
    frac = np.clip(frac, 0.0, 1.0)
    step = t[prev] + frac * (t[first] - t[prev])
    return np.where(reached.any(-1), np.where(first == 0, t[0], step), np.inf)


def arrival(
    curve: np.ndarray, target: float, eval_steps: np.ndarray, *, higher_is_better: bool
) -> Arrival:
    """``crossing`` with the runs that never arrive censored at the last evaluated step."""
    steps = crossing(curve, target, eval_steps, higher_is_better=higher_is_better)
    horizon = float(np.asarray(eval_steps)[-1])
    never = ~np.isfinite(steps)
    return Arrival(np.where(never, horizon, steps), never, horizon)


def target_at(curves: np.ndarray, eval_steps: np.ndarray, fraction: float) -> float:
    """The mean over seeds of ``curves`` (``(seeds, evaluations)``) at ``fraction`` of the
    run, interpolated between evaluations: the target a race sets from its reference."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1) (a share of the run); got {fraction!r}.")
    t = np.asarray(eval_steps, np.float64)
    mean = np.asarray(curves, np.float64).mean(0)
    return float(np.interp(fraction * t[-1], t, mean))


def ratio(a: Arrival, b: Arrival) -> stats.Interval:
    """The paired ratio of steps ``a / b`` (geometric mean over seeds, t-interval of the
    logs); a bound where either side has censored seeds. A run at the target from its
    first evaluation counts as one step (a ratio needs positive steps)."""
    return stats.paired_ratio(
        np.maximum(a.steps, 1.0),
        np.maximum(b.steps, 1.0),
        censored_a=a.censored,
        censored_b=b.censored,
    )


def folds(seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """The two folds of the cross-fit: even and odd seed indices."""
    idx = np.arange(seeds)
    return idx[idx % 2 == 0], idx[idx % 2 == 1]


def best(steps: np.ndarray, censored: np.ndarray, tie: np.ndarray) -> int:
    """Over columns (seeds) of ``(trials, seeds)`` arrays: fewest censored, then fewest mean
    steps, then the lowest mean ``tie``."""
    tie = np.where(np.isfinite(tie), tie, np.inf)
    order = np.lexsort((tie.mean(-1), steps.mean(-1), censored.sum(-1)))
    return int(order[0])


def crossfit(steps: np.ndarray, censored: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Per seed, the trial (row of the ``(trials, seeds)`` arrays) chosen on the other fold's
    seeds; with one seed, the trial chosen on it."""
    seeds = steps.shape[1]
    if seeds == 1:
        return np.zeros(1, int) + best(steps, censored, tie)
    chosen = np.empty(seeds, int)
    a, b = folds(seeds)
    for score, other in ((a, b), (b, a)):
        chosen[score] = best(steps[:, other], censored[:, other], tie[:, other])
    return chosen


def lower_is_better_final(curve: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """The last evaluation as a lower-is-better score (NaN and inf: the worst)."""
    last = np.asarray(curve, np.float64)[..., -1]
    last = -last if higher_is_better else last
    return np.where(np.isfinite(last), last, np.inf)


class Entry(NamedTuple):
    """A method's place in a race: its target, its per-seed arrival (each seed scored by the
    trial chosen on the other fold), those trials, their curves (leading axis: seeds), the
    trial the same rule picks on all seeds (the setting shown in tables) and its diverged
    runs over every trial and seed."""

    method: str
    target: float
    arrival: Arrival
    chosen: np.ndarray
    curves: object  # loop.Curves with leading axis seeds
    overall: int
    diverged: int


def diverged_runs(curve: np.ndarray) -> np.ndarray:
    """Per run (every leading index), whether its loss diverged: the last evaluation is
    non-finite or above the first. The one definition the reports and the edge flags use."""
    c = np.asarray(curve, np.float64)
    return ~np.isfinite(c[..., -1]) | (c[..., -1] > c[..., 0])


def diverged(curve: np.ndarray) -> int:
    """How many runs (every trial and seed) diverged (``diverged_runs``)."""
    return int(diverged_runs(curve).sum())


class Fastest(NamedTuple):
    """The race's selection over an array of trials: per seed the trial chosen on the other
    fold and its arrival, and the trial the same rule picks on all seeds."""

    chosen: np.ndarray
    arrival: Arrival
    overall: int


def fastest(
    curve: np.ndarray, target: float, eval_steps: np.ndarray, *, higher_is_better: bool
) -> Fastest:
    """The race over ``curve`` ``(trials, seeds, evaluations)``: every run's arrival at
    ``target``, each seed scored by the trial chosen on the other fold (``crossfit``)."""
    curve = np.asarray(curve, np.float64)
    every = arrival(curve, target, eval_steps, higher_is_better=higher_is_better)
    tie = lower_is_better_final(curve, higher_is_better)
    chosen = crossfit(every.steps, every.censored, tie)
    seeds = np.arange(curve.shape[1])
    mine = Arrival(every.steps[chosen, seeds], every.censored[chosen, seeds], every.horizon)
    return Fastest(chosen, mine, best(every.steps, every.censored, tie))


def enter(
    trials, target: float, *, metric: str = "train_loss", higher_is_better: bool = False
) -> Entry:
    """One method's ``Entry`` in a race to ``target`` in ``metric`` (``comparison.Trials``)."""
    curve = np.asarray(getattr(trials.curves, metric), np.float64)
    pick = fastest(curve, target, trials.schedule.eval_steps, higher_is_better=higher_is_better)
    seeds = np.arange(curve.shape[1])
    curves = jax.tree.map(lambda a: np.asarray(a)[pick.chosen, seeds], trials.curves)
    loss = np.asarray(trials.curves.train_loss, np.float64)
    return Entry(
        trials.method, target, pick.arrival, pick.chosen, curves, pick.overall, diverged(loss)
    )


def tuned_target(
    trials, fraction: float, *, metric: str = "train_loss", higher_is_better: bool = False
) -> float:
    """The target a reference sets: its trial with the best mean final ``metric``, at
    ``fraction`` of its run (``target_at``)."""
    curve = np.asarray(getattr(trials.curves, metric), np.float64)
    best = int(np.argmin(lower_is_better_final(curve, higher_is_better).mean(-1)))
    return target_at(curve[best], trials.schedule.eval_steps, fraction)


def race(
    trials: Mapping[str, object],
    reference: str | Mapping[str, str],
    *,
    fraction: float,
    metric: str = "train_loss",
    higher_is_better: bool = False,
) -> dict[str, Entry]:
    """Every method's ``Entry`` in the race to the target its reference sets (``reference``
    names one method for all, or maps each method to its own)."""
    of = {n: reference for n in trials} if isinstance(reference, str) else dict(reference)
    kw = {"metric": metric, "higher_is_better": higher_is_better}
    targets = {r: tuned_target(trials[r], fraction, **kw) for r in set(of.values())}
    return {name: enter(t, targets[of[name]], **kw) for name, t in trials.items()}


def rule(fraction: float, metric: str = "training-subset loss") -> str:
    """The race's rule in one sentence, for a report's setup."""
    return (
        f"Time-to-result: the target is the tuned reference's mean {metric} at "
        f"{fraction:.0%} of its run; steps to it are interpolated between evaluations; "
        "each seed is scored by the trial chosen on the other seeds (even / odd folds: "
        "fewest censored runs, then fewest steps); a run that never arrives is censored "
        "at the horizon, counted in the table, and makes the ratio a bound."
    )


def grid(trials: int, effective: tuple[float, float], one_minus_beta: tuple[float, float]) -> str:
    """A 2-D grid of effective step x beta in words, for a report's budget."""
    per = round(trials**0.5)
    return (
        f"a {per} x {per} log grid of effective step lr / (1 - beta) in "
        f"[{effective[0]:g}, {effective[1]:g}] x 1 - beta in "
        f"[{one_minus_beta[0]:g}, {one_minus_beta[1]:g}] (lr = step x (1 - beta))"
    )
