"""Timing helpers: medians and ranges over repeats, ratios measured side by side."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes (``fn`` must block until its results are ready)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(values: list[float]) -> dict[str, float]:
    """Median, min and max of ``values``."""
    return {
        "median": float(np.median(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def interleaved(candidates: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Times every candidate ``repeats`` times, round-robin, so slow drifts of a shared
    machine hit all of them alike. Each candidate is called once first (compilation,
    first-touch page faults) and that call is not counted."""
    for fn in candidates.values():
        fn()
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            times[name].append(timed(fn))
    return times


def ratio(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    """Summary of the per-repeat ratios of two interleaved series (paired, not of medians)."""
    return summary([a / b for a, b in zip(numerator, denominator)])
