"""``python -m experiments bench [--quick]``: speed and memory, measured side by side.

Writes ``OUT/bench/bench.json`` and ``OUT/bench/bench.md`` and prints the tables. Speed is
measured here, never in the tests: each figure is a median (with min and max) over repeats,
and each ratio is taken between series timed interleaved in the same run.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform

import jax

from ..bench import memory
from ..bench import torch_peers
from ..bench import training_speed
from ..bench import update_step
from ..bench.tables import markdown
from ..bench.tables import print_tables


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }
    if torch_peers.available():
        import torch

        info["torch"] = torch.__version__
    return info


def run(*, quick: bool, out: pathlib.Path, seed: int = 0, progress=print) -> dict:
    """Runs every benchmark; returns (and writes) the results."""
    sizes = [10**6, 10**7, 10**8]
    if not torch_peers.available():
        progress(torch_peers.missing_message())
    results = {
        "machine": machine(),
        "quick": quick,
        "update_step": update_step.run(sizes, repeats=7 if quick else 15, progress=progress),
        "training_loop": training_speed.throughput(
            [1, 32, 256], repeats=9 if quick else 15, seed=seed, progress=progress
        ),
        "momentum_sweep": training_speed.momentum_sweep(
            8 if quick else 32, seed=seed, progress=progress
        ),
        "state_memory": memory.state_bytes(),
    }
    folder = out / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (folder / "bench.md").write_text(markdown(results), encoding="utf-8")
    print_tables(results)
    return results
