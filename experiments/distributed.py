"""A small sharded comparison run as one process of several under ``jax.distributed``.

    python -m experiments.distributed --out FILE.npz \\
        [--process-id I --num-processes N --port PORT [--host 127.0.0.1]]

With ``--num-processes N`` (N > 1) the process joins a CPU cluster of N processes
(coordinator ``HOST:PORT``, gloo collectives), so ``jax.devices()`` holds the devices of
every process; without it, it runs alone (the single-process reference). Either way it
runs ``comparison.run`` of heavy ball on the digits MLP (trials x seeds, one
compiled function sharded over all devices, ``experiments.sweeps``) and writes the
gathered curves, as every process sees them, to ``--out`` (``.npz``). The fake CPU
devices per process come from ``XLA_FLAGS=--xla_force_host_platform_device_count=K``,
set in the environment before Python starts. ``tests/test_distributed.py`` launches two
processes and a reference and checks that the numbers agree.
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import numpy as np

from . import comparison
from . import loop
from . import tasks
from .protocol import tuning

FIELDS = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy")


def join(*, num_processes: int, process_id: int, host: str, port: int, timeout: int = 60) -> None:
    """Joins the cluster: gloo CPU collectives (set before ``initialize``), then
    ``jax.distributed.initialize`` with the coordinator on ``host:port``."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"{host}:{port}",
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=timeout,
    )


def numbers(*, trials: int = 3, seeds: int = 3, steps: int = 40) -> dict[str, np.ndarray]:
    """The curves of heavy ball on the digits MLP, ``trials`` learning rates x ``seeds``
    seeds (9 rows by default, not a multiple of 4 devices, so the padding is exercised),
    keyed by field, plus the trials' learning rates (``"lr"``)."""
    task = tasks.digits_mlp(hidden=16)
    method = comparison.Method(
        "heavy ball", comparison.heavy_ball, tuning.Space(lr=(0.005, 0.05), momentum=0.9)
    )
    schedule = loop.Schedule(steps=steps, batch_size=32, eval_every=steps // 2)
    run = comparison.run(
        method, task, trials=trials, seeds=seeds, key=jax.random.key(0), schedule=schedule
    )
    return {
        **{field: np.asarray(getattr(run.curves, field)) for field in FIELDS},
        "lr": np.asarray(run.table["lr"]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.distributed", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        required=True,
        help="where this process writes its numbers (.npz)",
    )
    parser.add_argument(
        "--num-processes",
        type=int,
        default=1,
        help="processes in the cluster (1: run alone, no jax.distributed)",
    )
    parser.add_argument("--process-id", type=int, default=0, help="this process, 0 .. N-1")
    parser.add_argument("--host", default="127.0.0.1", help="the coordinator's address")
    parser.add_argument("--port", type=int, default=0, help="the coordinator's port")
    parser.add_argument(
        "--timeout", type=int, default=60, help="seconds to wait for the other processes to join"
    )
    args = parser.parse_args(argv)
    if args.num_processes > 1:
        if not 0 <= args.process_id < args.num_processes or not 0 < args.port < 65536:
            parser.error(
                f"--process-id must lie in 0 .. {args.num_processes - 1} and --port "
                f"in 1 .. 65535; got {args.process_id} and {args.port}."
            )
        join(
            num_processes=args.num_processes,
            process_id=args.process_id,
            host=args.host,
            port=args.port,
            timeout=args.timeout,
        )
    result = numbers()
    result |= {
        "processes": np.asarray(jax.process_count()),
        "process_index": np.asarray(jax.process_index()),
        "devices": np.asarray(jax.device_count()),
        "local_devices": np.asarray(jax.local_device_count()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **result)
    if args.num_processes > 1:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
