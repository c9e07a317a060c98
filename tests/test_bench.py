"""The benchmark's bookkeeping (its timings are measured by `python -m experiments bench`,
never asserted here): state memory per parameter byte, the tables it writes, and that the
bare scan it times the training loop against computes what the loop computes."""

import jax
import numpy as np
import pytest

from experiments import loop
from experiments import tasks
from experiments.bench import memory
from experiments.bench import tables
from experiments.bench import timing
from experiments.bench import torch_peers
from experiments.bench import training_speed
from experiments.bench import update_step


def test_state_memory_per_parameter_byte():
    rows = {r["transformation"]: r for r in memory.state_bytes(size=10_000)}
    expected = {
        "trace": 1.0,
        "trace, scheduled": 1.0,
        "ema": 1.0,
        "delta_momentum": 1.0,
        "periodic_reset(trace)": 1.0,
        "adaptive_restart(trace)": 2.0,
        "qhm": 1.0,
        "aggmo (3 decays)": 3.0,
        "sma (window 4)": 4.0,
        "sgd, momentum 0": 0.0,
        "sgd, momentum 0.9": 1.0,
        "fused_sgd": 1.0,
        "optax.sgd, momentum 0.9 (reference)": 1.0,
    }
    for name, ratio in expected.items():
        assert rows[name]["state_per_param_byte"] == pytest.approx(ratio, abs=1e-3), name
    # constants keep no count; a schedule adds one int32, periodic_reset one phase
    assert rows["trace"]["scalar_bytes"] == 0
    assert rows["trace, scheduled"]["scalar_bytes"] == 4
    assert rows["periodic_reset(trace)"]["scalar_bytes"] == 4


@pytest.mark.slow
def test_update_step_rows_and_markdown():
    messages = []
    rows = update_step.run([10_000], repeats=2, progress=messages.append)
    names = {r["optimizer"] for r in rows}
    assert set(update_step.variants()) <= names
    assert len(messages) == len(rows)
    for row in rows:
        assert row["seconds"]["min"] <= row["seconds"]["median"] <= row["seconds"]["max"]
    results = {
        "machine": {"cpu": "test", "cores": 2, "jax": "x", "backend": "cpu"},
        "quick": True,
        "update_step": rows,
        "training_loop": [],
        "momentum_sweep": [
            {
                "method": "one vmap compile, all values at once",
                "compile_seconds": 1.0,
                "run_seconds": 1.0,
                "total_seconds": 2.0,
            }
        ],
        "state_memory": memory.state_bytes(size=1000),
    }
    text = tables.markdown(results)
    assert text.count("| 1e+04 |") == len(rows)
    assert "| one vmap compile, all values at once | 1.00 | 1.00 | 2.00 | 1.0x |" in text


def test_interleaved_warms_up_once_and_times_each_repeat():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn():
            calls[name] += 1

        return fn

    times = timing.interleaved({"a": make("a"), "b": make("b")}, repeats=4)
    assert calls == {"a": 5, "b": 5}  # one untimed warm-up call each
    assert [len(v) for v in times.values()] == [4, 4]
    assert timing.ratio([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == {"median": 2.0, "min": 2.0, "max": 3.0}


def test_row_arithmetic_on_stub_times():
    times = {"limit": [3.0, 3.0, 6.0], "optax.sgd": [6.0, 6.0, 6.0], "mo.sgd": [5.0, 6.0, 10.0]}
    r = update_step.row(1000, "array", "mo.sgd", times)
    # a momentum step moves 5 passes of 4 bytes; the limit a += s*b moves 3
    assert r["GB_per_s"] == pytest.approx(5 * 4 * 1000 / 6.0 / 1e9)
    # paired per repeat: 5/3 * (3/5, 3/6, 6/10) = (1, 0.83, 1), median 1 (the ratio of the
    # medians would be 5/3 * 3/6 = 0.83)
    assert r["fraction_of_limit"] == {
        "median": pytest.approx(1.0),
        "min": pytest.approx(5 / 6),
        "max": pytest.approx(1.0),
    }
    assert r["vs_optax_sgd"] == {"median": 1.0, "min": 5 / 6, "max": 10 / 6}
    rows = [
        r,
        update_step.row(
            1000, "array", torch_peers.FUSED, {**times, torch_peers.FUSED: [4.0, 4.0, 4.0]}
        ),
    ]
    update_step._add_torch_ratios(rows)
    # through optax.sgd, timed alongside both: (6/6) / (4/6)
    assert rows[0]["vs_torch_fused"] == pytest.approx(1.5)


@pytest.mark.slow
def test_the_floor_computes_the_library_loops_curves():
    # the same batches (drawn as loop.train draws them), the same optimizer (optax.sgd is
    # bit for bit mo.sgd), the same evaluations: the timed ratio compares equal work. At
    # batch 2048 loop.train gathers 3 steps' batches at once, so each evaluation interval
    # of 6 steps holds two blocks: every level of its loop is exercised.
    schedule = loop.Schedule(12, 2048, 6, train_subset=0)
    task = tasks.digits_mlp(hidden=16)
    key = jax.random.key(0)
    params = task.init(jax.random.split(key)[0])
    batches = training_speed.chunked(
        task, training_speed.batch_indices(task, key, schedule), schedule
    )
    floor = training_speed.bare_scan(task, schedule)(params, *batches)
    library = training_speed.library(task, schedule)(key)
    assert floor.train_loss.shape == (len(schedule.eval_steps),)
    assert float(floor.train_loss[-1]) < float(floor.train_loss[0])
    for name, a, b in zip(loop.Curves._fields, floor, library):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_training_loop_rows_in_markdown_and_summary():
    row = lambda loop_name, batch, median: {
        "batch_size": batch,
        "steps": 1000,
        "evaluation": "every 100 steps",
        "loop": loop_name,
        "seconds": {"median": 0.1, "min": 0.09, "max": 0.2},
        "samples_per_s": 320_000.0,
        "vs_floor": {"median": median, "min": median - 0.05, "max": 1.0},
    }
    rows = [
        row(training_speed.LIBRARY, 32, 0.93),
        row(training_speed.FLOOR, 32, 1.0),
        row(training_speed.LIBRARY, 256, 0.97),
        row(training_speed.PYTHON, 256, 0.5),
    ]
    assert tables.loop_summary(rows) == (
        "The library's loop runs at 0.93-0.97 of the bare scan's speed over 2 settings "
        "(median of paired ratios; target: at least 0.90)."
    )
    results = {
        "machine": {"cpu": "test", "cores": 2, "jax": "x", "backend": "cpu"},
        "quick": True,
        "update_step": [],
        "training_loop": rows,
        "momentum_sweep": [
            {
                "method": "one vmap compile, all values at once",
                "compile_seconds": 1.0,
                "run_seconds": 1.0,
                "total_seconds": 2.0,
            }
        ],
        "state_memory": [],
    }
    text = tables.markdown(results)
    assert (
        f"| 32 | every 100 steps | {training_speed.LIBRARY} | 100.0 (90.0-200.0) | "
        "320,000 | 0.93 (0.88-1.00) |"
    ) in text
    assert "MNIST-1D MLP 40-100-100-10, 1000 steps" in text
    assert tables.loop_summary(rows) in text


@pytest.mark.parametrize("kind", ["array", "tree"])
def test_passes_over_memory_read_from_the_compiled_step(kind):
    # XLA's two fusions read p, m, g and m' (six arrays moved); Nesterov's output adds one;
    # fused_sgd's kernel reads p, m, g and writes p, m once, Nesterov or not
    expected = {
        "optax.sgd": 6,
        "optax.sgd, nesterov": 7,
        "mo.sgd": 6,
        "mo.sgd, nesterov": 7,
        "mo.fused_sgd": 5,
        "mo.fused_sgd, nesterov": 5,
    }
    steps = update_step.variants()
    for name, count in expected.items():
        init, step, donate = steps[name]
        params = update_step._layout(kind, 10_000)
        _, passes = update_step._jax_call(step, params, init(params), params, donate)
        assert passes == count, name
