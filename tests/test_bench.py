"""The benchmark's bookkeeping (its timings are measured by `python -m experiments bench`,
never asserted here): state memory per parameter byte, and the tables it writes."""

import pytest

from experiments.bench import memory
from experiments.bench import tables
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
    reference = next(r for r in rows if r["optimizer"] == "optax.sgd" and r["layout"] == "array")
    assert reference["vs_optax_sgd"]["median"] == 1.0  # itself, paired
    for row in rows:
        assert row["seconds"]["min"] <= row["seconds"]["median"] <= row["seconds"]["max"]
        assert row["GB_per_s"] > 0
    results = {"machine": {"cpu": "test", "cores": 2, "jax": "x", "backend": "cpu"},
               "quick": True, "update_step": rows, "mlp_throughput": [],
               "momentum_sweep": [{"method": "one vmap compile, all values at once",
                                   "compile_seconds": 1.0, "run_seconds": 1.0,
                                   "total_seconds": 2.0}],
               "state_memory": memory.state_bytes(size=1000)}
    text = tables.markdown(results)
    assert text.count("| 1e+04 |") == len(rows)
    assert "| one vmap compile, all values at once | 1.00 | 1.00 | 2.00 | 1.0x |" in text
