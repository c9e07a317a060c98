"""A sharded sweep across two processes under ``jax.distributed`` gives the single-process
numbers: two CPU processes (2 fake devices each, gloo collectives, coordinator on
127.0.0.1) against one process with 4 devices, all running ``experiments.distributed``."""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from experiments import distributed

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds for every child to finish (compiles on a loaded 2-core machine)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(out: pathlib.Path, devices: int, *flags: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.distributed", "--out", str(out), *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(children: dict[str, subprocess.Popen]) -> None:
    """Waits for every child; on a failure or a timeout kills the rest and fails with each
    child's exit status and the end of its stderr."""
    outputs, failed = {}, False
    for name, child in children.items():
        try:
            outputs[name] = child.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for other in children.values():
                other.kill()
            outputs[name] = child.communicate()
            failed = True
        failed |= child.returncode != 0
    if failed:
        report = "\n".join(
            f"--- {name}: exit status {children[name].returncode}\n{err[-3000:]}"
            for name, (_, err) in outputs.items()
        )
        pytest.fail(f"a child process failed or timed out after {TIMEOUT} s:\n{report}")


@pytest.mark.slow
def test_two_processes_give_the_single_process_numbers(tmp_path):
    port = str(free_port())
    children = {
        f"process {i}": launch(
            tmp_path / f"process{i}.npz",
            2,
            "--num-processes",
            "2",
            "--process-id",
            str(i),
            "--port",
            port,
        )
        for i in range(2)
    }
    children["reference"] = launch(tmp_path / "reference.npz", 4)
    finish(children)
    reference = dict(np.load(tmp_path / "reference.npz"))
    assert (reference["processes"], reference["devices"]) == (1, 4)
    curves = [*distributed.FIELDS, "lr"]
    # the numbers are a real run: finite, and training lowered the loss of every run
    loss = reference["train_loss"]
    assert loss.shape == (3, 3, 3)  # trials, seeds, evaluations
    assert np.isfinite(loss).all() and (loss[..., -1] < loss[..., 0]).all()
    for i in range(2):
        got = dict(np.load(tmp_path / f"process{i}.npz"))
        assert (got["processes"], got["process_index"], got["devices"], got["local_devices"]) == (
            2,
            i,
            4,
            2,
        )
        for k in curves:
            assert got[k].shape == reference[k].shape, k
            np.testing.assert_array_equal(got[k], reference[k], err_msg=f"process {i}, {k}")
