"""The tuning budget as a measurement (C15): each seed's accuracy at the trial chosen on the
other seeds, and Dodge et al.'s expected best of k trials with bands from a bootstrap that
redraws trials and seeds together."""

from __future__ import annotations

import numpy as np

from experiments import comparison
from experiments.protocol import race
from experiments.protocol import tuning


def crossfit_accuracy(trials: comparison.Trials) -> np.ndarray:
    """Per seed, the final validation accuracy of the trial chosen on the other seeds
    (highest mean final validation accuracy)."""
    acc = np.asarray(trials.curves.val_accuracy[..., -1], np.float64)
    score = np.where(np.isfinite(acc), -acc, np.inf)
    chosen = race.crossfit(score, np.zeros(score.shape, bool), score)
    return acc[chosen, np.arange(acc.shape[1])]


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
        return np.mean([tuning.expected_best(col, k, lower_is_better=False) for col in v.T], 0)

    draws = np.stack(
        [curve(values[rng.integers(0, t, t)][:, rng.integers(0, s, s)]) for _ in range(resamples)]
    )
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return curve(values), low, high


def per_seed_expected(values: np.ndarray, k: int) -> np.ndarray:
    """Per seed, the expected best of ``k`` trials drawn from that seed's ``values``."""
    return np.array(
        [tuning.expected_best(col, np.array([k]), lower_is_better=False)[0] for col in values.T]
    )
