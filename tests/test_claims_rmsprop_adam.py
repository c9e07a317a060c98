"""C10: the judge on hand-made numbers (every status), and a tiny end-to-end run."""

import dataclasses

import jax
import numpy as np
import pytest

from experiments import loop
from experiments.claims import adaptive_methods as c10
from experiments.protocol import verdicts

CFG = c10.QUICK


def _judge(rms_with, rms_without, adam_with, adam_without):
    steps_with = {"RMSprop": np.asarray(rms_with, float), "Adam": np.asarray(adam_with, float)}
    steps_without = {
        "RMSprop": np.asarray(rms_without, float),
        "Adam": np.asarray(adam_without, float),
    }
    acc = {"RMSprop": np.full(3, 0.6), "Adam": np.full(3, 0.6)}
    return c10.judge(steps_with, steps_without, acc, acc, CFG)


@pytest.mark.parametrize(
    "numbers, status",
    [
        (
            ([300, 350, 400], [900, 1000, 950], [400, 400, 450], [900, 950, 1000]),
            verdicts.SUPPORTED,
        ),
        (
            ([900, 1000, 950], [900, 950, 1000], [1000, 950, 900], [900, 1000, 950]),
            verdicts.NOT_SUPPORTED,
        ),
        (([300, 350, 400], [900, 1000, 950], [1000, 950, 900], [900, 1000, 950]), verdicts.DEPENDS),
        (
            ([500, 900, 700], [900, 1000, 800], [700, 900, 750], [900, 950, 850]),
            verdicts.INCONCLUSIVE,
        ),
    ],
)
def test_judge_gives_every_status(numbers, status):
    verdict = _judge(*numbers)
    assert verdict.status == status
    assert len(verdict.primary) == 2 and len(verdict.secondary) == 2


def test_runs_that_never_reach_the_target_count_past_the_end():
    never = np.full(3, np.inf)
    verdict = _judge(never, [500, 500, 500], [100, 100, 100], [500, 500, 500])
    rms = verdict.primary[0].estimate
    expected = (CFG.schedule.steps + CFG.schedule.eval_every) / 500
    assert rms.mean == pytest.approx(expected) and verdict.status == verdicts.DEPENDS


@pytest.mark.slow
def test_tiny_run_tunes_each_arm_and_writes_its_plot(tmp_path):
    cfg = dataclasses.replace(
        c10.QUICK,
        trials=2,
        seeds=3,
        schedule=loop.Schedule(steps=100, batch_size=16, eval_every=50),
    )
    (finding,) = c10.run(cfg, jax.random.key(0), tmp_path)
    assert finding.id == "C10" and finding.verdict.status in verdicts.EMPIRICAL
    assert (tmp_path / finding.plots[0]).stat().st_size > 10_000
    assert {row["arm"] for row in finding.table} == {
        "RMSprop, momentum 0.9",
        "RMSprop, no momentum",
        "Adam, momentum 0.9",
        "Adam, no momentum",
    }
    for row in finding.table:
        assert cfg.lr[0] <= row["lr"] <= cfg.lr[1] and cfg.eps[0] <= row["eps"] <= cfg.eps[1]
        assert 0.1 < row["test accuracy"].mean < 1.0  # learned something in 100 steps
    targets = [finding.metrics[f]["target"] for f in ("RMSprop", "Adam")]
    assert all(0.0 < t < np.log(10) for t in targets)  # below the loss of a uniform guess
