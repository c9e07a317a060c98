"""The horizon rule (``experiments.protocol.horizon``): validation stopped improving when its
last quarter gains less than 0.5% over the best before it; epochs from steps and batch size."""

import numpy as np
import pytest

from experiments.protocol import horizon

STEPS = np.arange(0, 2001, 100)  # 21 evaluations; the last quarter is steps 1600..2000


def _check(curve):
    return horizon.check(curve, STEPS, batch_size=32, train_size=8000)


def test_a_curve_that_bottoms_out_and_rises_has_stopped_at_its_minimum():
    curve = 1 + (STEPS / 1000.0 - 1) ** 2  # lowest at step 1000, rising after
    found = _check(np.stack([curve, curve + 0.01]))  # two seeds: their mean
    assert found.stopped
    assert found.best_step == 1000 and found.best_epoch == pytest.approx(4.0)
    assert found.steps == 2000 and found.epochs == pytest.approx(8.0)
    assert found.late_gain < 0  # the last quarter is worse than the best before it


def test_a_curve_still_falling_has_not_stopped():
    curve = np.exp(-STEPS / 1000.0) + 0.2  # falls by ~5% over the last quarter
    found = _check(curve)
    before, late = curve[STEPS <= 1500].min(), curve[STEPS > 1500].min()
    assert found.late_gain == pytest.approx((before - late) / before)
    assert found.late_gain > horizon.TOLERANCE and not found.stopped
    assert found.best_step == 2000


def test_the_tolerance_is_the_boundary():
    curve = np.where(STEPS <= 1500, 1.0 - STEPS * 1e-6, 0.0)
    curve = np.where(STEPS > 1500, curve[STEPS <= 1500].min() * (1 - 0.004), curve)
    assert _check(curve).stopped  # 0.4% late gain: within the 0.5% tolerance
    curve[-1] = curve[STEPS <= 1500].min() * (1 - 0.006)
    assert not _check(curve).stopped  # 0.6%: still improving


@pytest.mark.parametrize("where", [slice(None), slice(-3, None), slice(2, 5)])
def test_a_diverged_seed_does_not_hide_in_the_mean(where):
    bad = 1 + (STEPS / 1000.0 - 1) ** 2
    bad[where] = np.nan if where.start == 2 else np.inf
    found = _check(np.stack([1 + (STEPS / 1000.0 - 1) ** 2, bad]))
    assert found.diverged and not found.stopped  # no evidence of convergence
    text = horizon.sentence(found, "ref")
    assert "diverged" in text and "nan" not in text and "inf" not in text


def test_sentences_say_which_case_and_the_epochs():
    stopped = _check(1 + (STEPS / 1000.0 - 1) ** 2)
    going = _check(np.exp(-STEPS / 1000.0) + 0.2)
    assert "8.0 epochs" in horizon.sentence(stopped, "ref") and "had stopped" in (
        horizon.sentence(stopped, "ref")
    )
    assert "still improving" in horizon.sentence(going, "ref")


@pytest.mark.parametrize("patience", [0.0, 1.0, -0.5])
def test_bad_patience_is_refused_by_name(patience):
    with pytest.raises(ValueError, match="patience"):
        horizon.check(
            np.ones(STEPS.shape), STEPS, batch_size=32, train_size=8000, patience=patience
        )


def test_mismatched_evaluations_are_refused():
    with pytest.raises(ValueError, match="eval_steps"):
        _check(np.ones(5))
