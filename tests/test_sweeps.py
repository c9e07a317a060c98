"""Sweeps: one compiled vmap over traced hyper-parameters, sharded over devices."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import momentum_optax as mo
from experiments import descent
from experiments import problems
from experiments import sweeps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ravine_run(lr: float, momentum: float, kappa: float, steps: int) -> descent.Path:
    loss = problems.quadratic(problems.ravine_curvatures(kappa))
    return descent.descend(loss, mo.sgd(lr, momentum), problems.RAVINE_START, steps)


def test_grid_is_the_cartesian_product_with_the_first_axis_slowest():
    table = sweeps.grid(lr=[0.1, 0.2], momentum=[0.0, 0.5, 0.9])
    np.testing.assert_allclose(table["lr"], [0.1, 0.1, 0.1, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(table["momentum"], [0.0, 0.5, 0.9] * 2)
    assert sweeps.rows(table) == 6


def test_with_seeds_repeats_every_row_for_every_seed_rows_slowest():
    table = sweeps.with_seeds({"lr": np.array([0.1, 0.2], np.float32)}, 3)
    np.testing.assert_allclose(table["lr"], [0.1] * 3 + [0.2] * 3)
    assert table["seed"].tolist() == [0, 1, 2, 0, 1, 2] and table["seed"].dtype == np.int32


def test_sweep_traces_once_and_each_row_equals_its_own_run():
    traces = []

    def fn(row):
        traces.append(1)
        return descent.descend(
            descent.ravine_loss(row), sweeps.momentum_sgd(row), problems.RAVINE_START, 30
        ).x[-1]

    table = sweeps.grid(kappa=[10.0, 100.0], lr=[0.005, 0.01], momentum=[0.0, 0.9])
    swept = sweeps.sweep(fn, table)
    assert len(traces) == 1  # one trace, one compile, for all 8 rows
    for i in range(sweeps.rows(table)):
        single = ravine_run(
            float(table["lr"][i]), float(table["momentum"][i]), float(table["kappa"][i]), 30
        ).x[-1]
        np.testing.assert_allclose(swept[i], single, rtol=1e-5, atol=1e-7)


def test_a_keyed_sweep_hands_each_row_the_key_of_its_seed():
    table = sweeps.with_seeds({"lr": np.asarray([0.1, 0.2], np.float32)}, 3)
    key = jax.random.key(7)
    got = sweeps.sweep(
        lambda row, row_key, scale: jax.random.normal(row_key) * scale, table, 2.0, key=key
    )
    want = [float(jax.random.normal(jax.random.fold_in(key, s))) * 2.0 for s in table["seed"]]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[0] == got[3] and got[0] != got[1]  # same seed, other trial: the same key


def test_a_keyed_sweep_without_a_seed_column_is_refused_by_name():
    with pytest.raises(ValueError, match=r"'seed' column.*with_seeds"):
        sweeps.sweep(
            lambda row, k: row["lr"], {"lr": np.ones(2, np.float32)}, key=jax.random.key(0)
        )


def test_select_runs_exactly_the_chosen_transformation():
    options = [mo.sgd(0.01, 0.5), mo.sgd(0.01, 0.9), mo.sgd(0.01, 0.9, nesterov=True)]
    table = {"choice": np.arange(3, dtype=np.int32)}
    swept = sweeps.sweep(
        lambda row: (
            descent.descend(
                problems.rosenbrock,
                sweeps.select(options, row["choice"]),
                problems.ROSENBROCK_START,
                50,
            ).x
        ),
        table,
    )
    for i, opt in enumerate(options):
        single = descent.descend(problems.rosenbrock, opt, problems.ROSENBROCK_START, 50).x
        np.testing.assert_allclose(swept[i], single, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_sweep_shards_the_rows_over_two_devices_with_the_same_numbers():
    code = textwrap.dedent("""
        import json, jax, numpy as np
        from experiments import descent, problems, sweeps
        assert jax.device_count() == 2
        table = sweeps.grid(lr=[0.002, 0.005, 0.01], momentum=[0.9])  # 3 rows: padded to 4
        placed = sweeps.place(table)
        assert len(placed["lr"].sharding.device_set) == 2
        assert placed["lr"].addressable_shards[0].data.shape == (2,)
        table["kappa"] = np.full(3, 100.0, np.float32)
        x = descent.sweep_paths(descent.ravine_loss, sweeps.momentum_sgd, table,
                                problems.RAVINE_START, 40).x[:, -1]
        print(json.dumps(x.tolist()))
    """)
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    sharded = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]))
    assert sharded.shape == (3, 2)
    for i, lr in enumerate([0.002, 0.005, 0.01]):
        np.testing.assert_allclose(sharded[i], ravine_run(lr, 0.9, 100.0, 40).x[-1], rtol=1e-5)
