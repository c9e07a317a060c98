"""The tuning budget as a measurement (C15): each seed's accuracy at the trial chosen on the
other seeds, and Dodge et al.'s expected best of k trials with bands from a bootstrap that
redraws trials and seeds together; and what a method is worth in trials of another (E3's
k*: where the expected-best curve reaches its value, with a BCa interval over seeds)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import comparison
from ..protocol import race
from ..protocol import stats
from ..protocol import tuning


def crossfit_accuracy(trials: comparison.Trials) -> np.ndarray:
    """Per seed, the final validation accuracy of the trial chosen on the other seeds
    (highest mean final validation accuracy)."""
    acc = np.asarray(trials.curves.val_accuracy[..., -1], np.float64)
    score = np.where(np.isfinite(acc), -acc, np.inf)
    chosen = race.crossfit(score, np.zeros(score.shape, bool), score)
    return acc[chosen, np.arange(acc.shape[1])]


def per_seed(values: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """Per seed, Dodge et al.'s expected best of ``budgets`` trials drawn from the trials'
    final values ``(trials, seeds)`` (higher is better): an array ``(seeds, budgets)``."""
    return np.stack(
        [
            tuning.expected_best(seed, np.asarray(budgets), lower_is_better=False)
            for seed in np.asarray(values, np.float64).T
        ]
    )


def expected_band(
    values: np.ndarray, k: np.ndarray, resamples: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dodge et al.'s expected best of ``k`` trials drawn from ``values`` ``(trials,
    seeds)`` (higher is better), averaged over seeds, with a 95% percentile band from a
    bootstrap that redraws the trials and the seeds together."""
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    t, s = values.shape

    def curve(v: np.ndarray) -> np.ndarray:
        return per_seed(v, k).mean(0)

    draws = np.stack(
        [curve(values[rng.integers(0, t, t)][:, rng.integers(0, s, s)]) for _ in range(resamples)]
    )
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return curve(values), low, high


def per_seed_expected(values: np.ndarray, k: int) -> np.ndarray:
    """Per seed, the expected best of ``k`` trials drawn from that seed's ``values``."""
    return per_seed(values, np.array([k]))[:, 0]


def crossing(curve: np.ndarray, budgets: np.ndarray, value: float) -> float:
    """The smallest budget whose expected best ``curve`` reaches ``value``: the first budget
    (1: worth one random trial or fewer) when even it does, ``inf`` when none does;
    interpolated between budgets (``protocol.race.crossing``)."""
    return float(race.crossing(np.asarray(curve), value, budgets, higher_is_better=True))


def worth(curves: np.ndarray, value: np.ndarray, budgets: np.ndarray) -> stats.Interval:
    """k*: the budget at which the mean over seeds of the expected-best ``curves``
    ``(seeds, budgets)`` reaches the mean of ``value`` (one per seed), with a BCa bootstrap
    interval over seeds (the seeds of both resampled together). A curve that never reaches
    the value is censored at the last budget: k* is then a lower bound (``bound="lower"``,
    printed ">= ..."), and a resample that never reaches it counts as the last budget."""
    curves, value = np.asarray(curves, np.float64), np.asarray(value, np.float64)
    limit = float(np.asarray(budgets)[-1])

    def statistic(draw: np.ndarray) -> float:  # one resample of seed indices
        idx = draw.astype(int)
        return min(float(crossing(curves[idx].mean(0), budgets, value[idx].mean())), limit)

    k = stats.bca(np.arange(value.size, dtype=np.float64), statistic)
    reached = np.isfinite(crossing(curves.mean(0), budgets, value.mean()))
    return k if reached else dataclasses.replace(k, mean=limit, high=limit, bound="lower")
