"""Numbers read off finished runs (NumPy, on the host): the vocabulary of the verdicts.

Every function takes series whose last axis is time and reduces that axis, so
it applies to one run or to a whole sweep at once.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

NEVER = np.inf  # steps to tolerance of a run that never got there


def steps_to(values: np.ndarray, threshold: float) -> np.ndarray:
    """The first step at which ``values <= threshold`` (``NEVER`` if none); last axis = time,
    one value per step: the race's crossing (``protocol.race.crossing``) rounded up to the
    step at which it is reached."""
    from .protocol import race

    values = np.asarray(values, np.float64)
    steps = np.arange(values.shape[-1])
    return np.ceil(race.crossing(values, threshold, steps, higher_is_better=False))


def distance(x: np.ndarray, minimum: np.ndarray) -> np.ndarray:
    """``||x_t - x*||`` for iterates ``x`` of shape (..., steps, dim)."""
    return np.linalg.norm(np.asarray(x, np.float64) - minimum, axis=-1)


def diverged(values: np.ndarray) -> np.ndarray:
    """A run diverged if its last value is not finite or exceeds its first."""
    values = np.asarray(values, np.float64)
    last = values[..., -1]
    return ~np.isfinite(last) | (last > values[..., 0])


def sign_changes(values: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """How often a series changes sign (an oscillation count); last axis = time.

    Values with ``|v| <= floor`` count as zero, and zeros are skipped: ``+, 0, -``
    is one change, so oscillations below ``floor`` are not counted.
    """
    values = np.asarray(values, np.float64)
    signs = np.sign(values) * (np.abs(values) > floor)
    last = np.maximum.accumulate(np.where(signs != 0, np.arange(signs.shape[-1]), 0), axis=-1)
    filled = np.take_along_axis(signs, last, axis=-1)  # the latest nonzero sign
    return np.sum(filled[..., 1:] * filled[..., :-1] < 0, axis=-1)


def increases(values: np.ndarray) -> np.ndarray:
    """How many steps make the series (a loss) go up: overshoot events."""
    with np.errstate(invalid="ignore"):  # inf - inf in a diverged run: not counted
        return np.sum(np.diff(np.asarray(values, np.float64), axis=-1) > 0, axis=-1)


def fitted_rate(errors: np.ndarray, *, start: float = 1e-2, stop: float = 1e-13) -> np.ndarray:
    """Per-step contraction factor: ``exp(slope)`` of a least-squares line through
    ``log error`` while the error falls from ``start`` to ``stop`` times its first value.

    Returns NaN where fewer than 3 steps lie in that window.
    """
    errors = np.asarray(errors, np.float64)
    flat = errors.reshape(-1, errors.shape[-1])
    rates = np.full(flat.shape[0], np.nan)
    for i, e in enumerate(flat):  # one least-squares fit per run (not per step)
        t = np.flatnonzero((e <= start * e[0]) & (e >= stop * e[0]) & np.isfinite(e))
        if t.size >= 3:
            rates[i] = np.exp(np.polyfit(t, np.log(e[t]), 1)[0])
    return rates.reshape(errors.shape[:-1])


def momentum_filter(values: np.ndarray, decay: float) -> np.ndarray:
    """``m_t = v_t + decay * m_{t-1}`` along the last axis (heavy ball's velocity of ``v``)."""
    return signal.lfilter([1.0], [1.0, -decay], np.asarray(values, np.float64), axis=-1)


def coherence(values: np.ndarray, decay: float) -> np.ndarray:
    """``|sum_k decay^k v_{t-k}| / sum_k decay^k |v_{t-k}|``: 1 when recent values add
    up, 0 when they cancel (the Momentum article's picture of the components of the steps)."""
    magnitude = momentum_filter(np.abs(values), decay)
    return np.abs(momentum_filter(values, decay)) / np.maximum(magnitude, 1e-30)
