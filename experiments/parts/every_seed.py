"""Judging and reporting a textbook check: each statement is a theorem or an identity, so
every condition must hold on every seed; it is judged on the range over seeds (mean, min,
max), not on a bootstrap interval, and reported as a check (``verdicts.judge_check``).
"""

from __future__ import annotations

import numpy as np

from .. import report
from ..protocol import stats
from ..protocol import verdicts

NOTES = (
    "A textbook check: conditions are judged on the range over seeds (every seed must "
    "meet them), not on a bootstrap interval."
)


def spread(values: np.ndarray) -> stats.Interval:
    """The mean and the range (min, max) over every seed and setting: a check must hold on
    each of them, so its condition is judged on the range, not on a bootstrap interval."""
    v = np.asarray(values, np.float64).ravel()
    return stats.Interval(float(v.mean()), float(v.min()), float(v.max()), int(v.size))


def check(text: str, values, threshold: float, side: str) -> verdicts.Condition:
    return verdicts.Condition(text + " [min, max over seeds]", spread(values), threshold, side)


def finding(
    claim: str,
    reading: str,
    primary: str,
    setup: str,
    headline: str,
    table: list[dict],
    plot: str,
    verdict: verdicts.Verdict,
    metrics: dict,
) -> report.Finding:
    """The Finding of textbook check ``claim`` (no budget; the notes say how it is judged)."""
    return report.Finding(
        id=claim,
        reading=reading,
        primary=primary,
        setup=setup,
        budget="",
        headline=headline,
        table=table,
        plots=[plot],
        verdict=verdict,
        metrics=metrics,
        notes=NOTES,
    )
