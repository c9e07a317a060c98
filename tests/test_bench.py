"""The benchmark's bookkeeping (its timings are measured by `python -m experiments bench`,
never asserted here): state memory per parameter byte, and the tables it writes."""

import pytest

from experiments.bench import memory
from experiments.bench import tables
from experiments.bench import timing
from experiments.bench import torch_peers
from experiments.bench import update_step


def test_state_memory_per_parameter_byte():
    rows = {r["transformation"]: r for r in memory.state_bytes(size=10_000)}
    expected = {"trace": 1.0, "trace, scheduled": 1.0, "ema": 1.0, "delta_momentum": 1.0,
                "periodic_reset(trace)": 1.0, "adaptive_restart(trace)": 2.0, "qhm": 1.0,
                "aggmo (3 decays)": 3.0, "sma (window 4)": 4.0, "sgd, momentum 0": 0.0,
                "sgd, momentum 0.9": 1.0, "fused_sgd": 1.0,
                "optax.sgd, momentum 0.9 (reference)": 1.0}
    for name, ratio in expected.items():
        assert rows[name]["state_per_param_byte"] == pytest.approx(ratio, abs=1e-3), name
    # constants keep no count; a schedule adds one int32, periodic_reset one phase
    assert rows["trace"]["scalar_bytes"] == 0
    assert rows["trace, scheduled"]["scalar_bytes"] == 4
    assert rows["periodic_reset(trace)"]["scalar_bytes"] == 4


def test_update_step_rows_and_markdown():
    messages = []
    rows = update_step.run([10_000], repeats=2, progress=messages.append)
    names = {r["optimizer"] for r in rows}
    assert set(update_step.variants()) <= names
    assert len(messages) == len(rows)
    for row in rows:
        assert row["seconds"]["min"] <= row["seconds"]["median"] <= row["seconds"]["max"]
    results = {"machine": {"cpu": "test", "cores": 2, "jax": "x", "backend": "cpu"},
               "quick": True, "update_step": rows, "mlp_throughput": [],
               "momentum_sweep": [{"method": "one vmap compile, all values at once",
                                   "compile_seconds": 1.0, "run_seconds": 1.0,
                                   "total_seconds": 2.0}],
               "state_memory": memory.state_bytes(size=1000)}
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
    assert timing.ratio([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == {"median": 2.0, "min": 2.0,
                                                              "max": 3.0}


def test_row_arithmetic_on_stub_times():
    times = {"limit": [3.0, 3.0, 6.0], "optax.sgd": [6.0, 6.0, 6.0], "mo.sgd": [5.0, 6.0, 10.0]}
    r = update_step.row(1000, "array", "mo.sgd", times)
    # a momentum step moves 5 passes of 4 bytes; the limit a += s*b moves 3
    assert r["GB_per_s"] == pytest.approx(5 * 4 * 1000 / 6.0 / 1e9)
    # paired per repeat: 5/3 * (3/5, 3/6, 6/10) = (1, 0.83, 1), median 1 (the ratio of the
    # medians would be 5/3 * 3/6 = 0.83)
    assert r["fraction_of_limit"] == {"median": pytest.approx(1.0), "min": pytest.approx(5 / 6),
                                      "max": pytest.approx(1.0)}
    assert r["vs_optax_sgd"] == {"median": 1.0, "min": 5 / 6, "max": 10 / 6}
    rows = [r, update_step.row(1000, "array", torch_peers.FUSED,
                               {**times, torch_peers.FUSED: [4.0, 4.0, 4.0]})]
    update_step._add_torch_ratios(rows)
    # through optax.sgd, timed alongside both: (6/6) / (4/6)
    assert rows[0]["vs_torch_fused"] == pytest.approx(1.5)
