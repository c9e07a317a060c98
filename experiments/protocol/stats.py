"""Means over seeds with 95% bootstrap intervals, and paired comparisons across seeds.

Every stochastic number of the report is a mean over seeds (the last axis of the
arrays below) with a percentile bootstrap interval: the seeds are resampled with
replacement ``RESAMPLES`` times from a fixed generator, so an interval is
reproducible. Two methods are compared on the *same* seeds (same initialisation and
batch order), so their difference is resampled per seed (a paired bootstrap), not
as two independent means. With 3 to 5 seeds a percentile interval is narrow for its
nominal level; the verdicts use it with a practical-significance threshold, never
alone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

LEVEL = 0.95
RESAMPLES = 10_000


@dataclasses.dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval over ``n`` seeds."""

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{_num(self.mean)} [{_num(self.low)}, {_num(self.high)}]"

    def above(self, threshold: float) -> bool:
        """The whole interval lies above ``threshold``."""
        return self.low > threshold

    def below(self, threshold: float) -> bool:
        """The whole interval lies below ``threshold``."""
        return self.high < threshold


def _num(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if math.isnan(value):
        return "n/a"
    return f"{value:.3g}"


def _resample_indices(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(RESAMPLES, n))


def bootstrap(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Interval:
    """The mean of ``values`` (1-D, one entry per seed) and its 95% percentile interval.

    ``statistic`` maps a ``(resamples, n)`` array to ``(resamples,)`` (default: the mean).
    """
    values = np.asarray(values, np.float64).ravel()
    if values.size == 0:
        raise ValueError("bootstrap needs at least one value per seed; got none.")
    statistic = statistic or (lambda a: a.mean(-1))
    point = float(statistic(values[None])[0])
    if values.size == 1:
        return Interval(point, point, point, 1)
    draws = statistic(values[_resample_indices(values.size)])
    low, high = _percentiles(draws)
    return Interval(point, float(low), float(high), int(values.size))


def mean(values: np.ndarray) -> Interval:
    """The mean over seeds with its interval (``values``: one entry per seed)."""
    return bootstrap(values)


def paired_difference(a: np.ndarray, b: np.ndarray) -> Interval:
    """``mean(a - b)`` over seeds with its paired interval (``a[i]``, ``b[i]`` share seed ``i``)."""
    a, b = _paired(a, b)
    return bootstrap(a - b)


def paired_ratio(a: np.ndarray, b: np.ndarray) -> Interval:
    """``mean(a) / mean(b)`` with the seeds resampled together (paired).

    For steps to a target, a ratio below 1 means ``a`` arrives sooner. Infinite entries
    (a run that never arrived, counted as ``inf``) make the ratio infinite or zero.
    """
    a, b = _paired(a, b)
    stacked = np.stack([a, b], -1)  # (n, 2)
    idx = _resample_indices(a.size)

    def ratio(draw_a: np.ndarray, draw_b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return draw_a.mean(-1) / draw_b.mean(-1)

    point = float(ratio(a[None], b[None])[0])
    if a.size == 1:
        return Interval(point, point, point, 1)
    draws = ratio(stacked[idx, 0], stacked[idx, 1])
    draws = np.where(np.isnan(draws), 1.0, draws)  # inf / inf: both never arrived
    low, high = _percentiles(draws)
    return Interval(point, float(low), float(high), int(a.size))


def _percentiles(draws: np.ndarray, axis=None):
    """The interval's ends: empirical quantiles without interpolation, so resamples that
    are infinite (runs that never arrived) give infinite ends rather than NaN."""
    draws = np.where(np.isnan(draws), np.inf, draws)
    q = [(1 - LEVEL) / 2, (1 + LEVEL) / 2]
    return np.quantile(draws, q, axis=axis, method="inverted_cdf")


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(
            f"paired values need one entry per seed in both; got {a.size} and {b.size}."
        )
    return a, b


def band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and pointwise 95% bootstrap band of ``curves`` with shape ``(seeds, time)``:
    what the plots draw."""
    curves = np.asarray(curves, np.float64)
    draws = curves[_resample_indices(curves.shape[0])].mean(1)  # (resamples, time)
    with np.errstate(invalid="ignore"):
        low, high = np.nanpercentile(draws, [50 * (1 - LEVEL), 50 * (1 + LEVEL)], axis=0)
        return np.nanmean(curves, 0), low, high
