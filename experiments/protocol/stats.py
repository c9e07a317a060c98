"""Means over seeds with 95% Student-t intervals, and paired comparisons across seeds.

Every stochastic number of the report is a mean over seeds (the last axis of the arrays
below) with a 95% interval that covers: ``mean +- t_{0.975, n-1} s / sqrt(n)``, Student's
t over the ``n`` seeds (``tests/test_coverage.py`` simulates its coverage at the seed counts
the experiments use). A percentile bootstrap over 3 to 5 seeds is nearly ``[min, max]`` and
covers the mean only 74-84% of the time, which is why it is not used for means.

Two methods are compared on the *same* seeds (same initialisation and batch order), so
their difference is taken per seed (a paired t-interval). A ratio (steps to a target,
final losses) is the geometric mean of the per-seed ratios: the t-interval of the mean
``log(a / b)``, exponentiated. A statistic that is not a mean (a crossing of a mean curve)
gets a BCa bootstrap interval (``bca``).

Censored values. A run that never reaches a target is censored at the horizon: the value
passed in is a bound, not a measurement. ``Interval.bound`` records which way the truth
lies: ``"lower"`` (the true value is at least this: the numerator was censored),
``"upper"`` (at most this: the denominator was), ``"both"``. A verdict resting on the
unbounded side of a bound is inconclusive (``verdicts.Condition.status``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable

import numpy as np
from scipy import stats as scipy_stats

LEVEL = 0.95
RESAMPLES = 2_000  # BCa resamples (only for statistics that are not means)
BOUNDS = ("", "lower", "upper", "both")
_BOOTSTRAP_PARAMETERS = inspect.signature(scipy_stats.bootstrap).parameters


@dataclasses.dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval over ``n`` seeds; ``bound`` says whether censored
    runs make it a lower or an upper bound of the truth (``""``: a measurement)."""

    mean: float
    low: float
    high: float
    n: int
    bound: str = ""

    def __post_init__(self):
        if self.bound not in BOUNDS:
            raise ValueError(f"Interval.bound must be one of {BOUNDS}; got {self.bound!r}.")

    def __str__(self) -> str:
        text = f"{_num(self.mean)} [{_num(self.low)}, {_num(self.high)}]"
        mark = {"lower": ">= ", "upper": "<= ", "both": "censored both ways: "}
        return mark.get(self.bound, "") + text

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


def t_quantile(n: int) -> float:
    """Student's two-sided 95% quantile with ``n - 1`` degrees of freedom."""
    return float(scipy_stats.t.ppf((1 + LEVEL) / 2, n - 1))


def _t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and t-interval of finite ``values`` (one per seed)."""
    m = float(values.mean())
    if values.size < 2:
        return m, m, m
    half = t_quantile(values.size) * float(values.std(ddof=1)) / math.sqrt(values.size)
    return m, m - half, m + half


def mean(values: np.ndarray, *, bound: str = "") -> Interval:
    """The mean over seeds with its t-interval (``values``: one entry per seed).

    Non-finite entries (a diverged run, a run that never arrived) make the mean infinite
    on their side; the interval's other end is computed with them replaced by the most
    extreme finite value, so it stays a conservative bound. NaN leaves it undetermined.
    """
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise ValueError("a mean over seeds needs at least one value per seed; got none.")
    if np.isnan(v).any():
        return Interval(math.nan, -math.inf, math.inf, int(v.size), bound)
    up, down, finite = np.isposinf(v), np.isneginf(v), np.isfinite(v)
    if up.any() and down.any():
        return Interval(math.nan, -math.inf, math.inf, int(v.size), bound)
    if not finite.any():
        return Interval(float(v[0]), float(v[0]), float(v[0]), int(v.size), bound)
    if up.any():
        _, low, _ = _t_interval(np.where(up, v[finite].max(), v))
        return Interval(math.inf, low, math.inf, int(v.size), bound)
    if down.any():
        _, _, high = _t_interval(np.where(down, v[finite].min(), v))
        return Interval(-math.inf, -math.inf, high, int(v.size), bound)
    m, low, high = _t_interval(v)
    return Interval(m, low, high, int(v.size), bound)


def paired_difference(a: np.ndarray, b: np.ndarray) -> Interval:
    """``mean(a - b)`` over seeds with its paired t-interval (``a[i]``, ``b[i]`` share
    seed ``i``)."""
    a, b = _paired(a, b)
    with np.errstate(invalid="ignore"):
        return mean(a - b)


def paired_ratio(
    a: np.ndarray,
    b: np.ndarray,
    *,
    censored_a: np.ndarray | None = None,
    censored_b: np.ndarray | None = None,
) -> Interval:
    """The geometric mean over seeds of ``a / b`` with the t-interval of ``mean log(a / b)``
    exponentiated (paired: ``a[i]``, ``b[i]`` share seed ``i``).

    For steps to a target, below 1 means ``a`` arrives sooner. ``censored_a`` /
    ``censored_b`` (booleans per seed) mark values that are the horizon of a run that never
    arrived: the ratio is then a lower bound (``a`` censored), an upper bound (``b``) or both.
    Infinite values (a never-arrived run passed raw) give an infinite ratio on their side.
    """
    a, b = _paired(a, b)
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError("a ratio over seeds needs positive values in both arms.")
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(a) - np.log(b)
    ca = bool(np.any(censored_a)) if censored_a is not None else False
    cb = bool(np.any(censored_b)) if censored_b is not None else False
    bound = {(True, True): "both", (True, False): "lower", (False, True): "upper"}.get((ca, cb), "")
    log = mean(logs)
    return Interval(
        float(np.exp(log.mean)), float(np.exp(log.low)), float(np.exp(log.high)), log.n, bound
    )


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(
            f"paired values need one entry per seed in both; got {a.size} and {b.size}."
        )
    return a, b


def bca(values: np.ndarray, statistic: Callable[[np.ndarray], float]) -> Interval:
    """A statistic of the seeds that is not a mean, with its BCa bootstrap interval
    (``scipy.stats.bootstrap``, fixed generator). ``statistic`` maps the 1-D array of the
    seeds (or of their indices) to a number."""
    v = np.asarray(values, np.float64).ravel()
    point = float(statistic(v))
    if v.size < 3:
        return Interval(point, point, point, int(v.size))
    if not math.isfinite(point):
        return Interval(point, -math.inf, math.inf, int(v.size))
    # the generator's keyword: ``rng`` since SciPy 1.15, ``random_state`` before
    seed = {"rng" if "rng" in _BOOTSTRAP_PARAMETERS else "random_state": np.random.default_rng(0)}
    res = scipy_stats.bootstrap(
        (v,),
        statistic,
        vectorized=False,
        n_resamples=RESAMPLES,
        confidence_level=LEVEL,
        method="BCa",
        **seed,
    )
    low, high = res.confidence_interval
    draws = res.bootstrap_distribution
    low = float(low) if math.isfinite(low) else min(point, float(np.nanmin(draws)))
    high = float(high) if math.isfinite(high) else max(point, float(np.nanmax(draws)))
    return Interval(point, low, high, int(v.size))


def band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and pointwise 95% t-band of ``curves`` with shape ``(seeds, time)`` (what the
    plots draw: the same interval as the tables'); NaN entries are left out per point."""
    curves = np.asarray(curves, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.isfinite(curves).sum(0)
        m = np.nanmean(np.where(np.isfinite(curves), curves, np.nan), 0)
        sd = np.nanstd(np.where(np.isfinite(curves), curves, np.nan), 0, ddof=1)
        t = scipy_stats.t.ppf((1 + LEVEL) / 2, np.maximum(n - 1, 1))
        half = np.where(n > 1, t * sd / np.sqrt(np.maximum(n, 1)), 0.0)
    return m, m - half, m + half
