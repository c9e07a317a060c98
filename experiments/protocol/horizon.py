"""Whether a run was long enough: has the validation loss stopped improving by its end?

A claim about the final result is judged after the run has converged, not in the first
epochs, where anything that delays the effective step loses. The rule, early stopping's
with a patience of a quarter of the run: the mean validation loss over seeds **stopped
improving** when its lowest value over the last ``patience`` share of the evaluations is
no more than ``tolerance`` (relative) below its lowest value before them. ``check``
applies it to a reference's scored curves and states the horizon in epochs; ``sentence``
writes it for a report's setup.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

PATIENCE = 0.25  # the last quarter of the run
TOLERANCE = 0.005  # improvement below 0.5% in it: stopped


class Horizon(NamedTuple):
    """A run's length and where its mean validation loss was lowest."""

    steps: int
    epochs: float
    best_step: int
    best_epoch: float
    late_gain: float  # relative improvement of the validation loss in the last quarter
    stopped: bool  # late_gain <= TOLERANCE (never where the mean is not finite)

    @property
    def diverged(self) -> bool:
        """Some seed's validation loss stopped being finite: no gain can be read."""
        return not np.isfinite(self.late_gain)


def check(
    val_loss: np.ndarray,
    eval_steps: np.ndarray,
    *,
    batch_size: int,
    train_size: int,
    patience: float = PATIENCE,
    tolerance: float = TOLERANCE,
) -> Horizon:
    """The horizon of runs whose validation loss is ``val_loss`` ``(seeds, evaluations)``
    (or one curve), evaluated at ``eval_steps``, with ``batch_size`` examples per step out of
    ``train_size``."""
    if not 0 < patience < 1:
        raise ValueError(f"patience must be in (0, 1); got {patience!r}.")
    curve = np.asarray(val_loss, np.float64)
    mean = curve.reshape(-1, curve.shape[-1]).mean(0)
    steps = np.asarray(eval_steps)
    if mean.shape != steps.shape:
        raise ValueError(
            f"val_loss has {mean.size} evaluations per run but eval_steps has {steps.size}."
        )
    cut = int(np.searchsorted(steps, steps[-1] * (1 - patience), side="right"))
    cut = min(max(cut, 1), mean.size - 1)
    before, late = np.min(mean[:cut]), np.min(mean[cut:])
    finite = bool(np.isfinite(mean).all()) and before > 0
    gain = float((before - late) / before) if finite else np.nan
    best = int(steps[int(np.argmin(np.where(np.isfinite(mean), mean, np.inf)))])
    per_epoch = train_size / batch_size
    return Horizon(
        int(steps[-1]),
        steps[-1] / per_epoch,
        best,
        best / per_epoch,
        gain,
        bool(finite and gain <= tolerance),
    )


def sentence(horizon: Horizon, who: str) -> str:
    """The horizon in words: epochs, where ``who``'s validation loss was lowest, and whether
    it had stopped improving."""
    head = (
        f"{horizon.steps} steps = {horizon.epochs:.1f} epochs; {who}'s mean "
        f"validation loss was lowest at step {horizon.best_step} (epoch "
        f"{horizon.best_epoch:.1f})"
    )
    if horizon.diverged:
        return (
            f"{horizon.steps} steps = {horizon.epochs:.1f} epochs; some seed of {who} "
            "diverged (its validation loss is not finite), so whether validation stopped "
            "improving cannot be read."
        )
    if horizon.stopped:
        return head + (
            f" and improved by {max(horizon.late_gain, 0):.1%} over the last quarter of the "
            "run: validation had stopped improving."
        )
    return head + (
        f" and still improved by {horizon.late_gain:.1%} over the last quarter of the run: "
        "validation was still improving, so a longer run may change what depends on the "
        "final result."
    )


def describe(val_loss: np.ndarray, schedule, train_size: int, who: str) -> str:
    """``sentence(check(...))`` for runs of ``schedule`` (its ``eval_steps`` and
    ``batch_size``) on ``train_size`` training examples."""
    found = check(
        val_loss, schedule.eval_steps, batch_size=schedule.batch_size, train_size=train_size
    )
    return sentence(found, who)
