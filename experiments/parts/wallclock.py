"""Wall-clock per step, beside steps, where the methods of a comparison cost differently
(YellowFin's statistics, the cautious mask): steps to a target times seconds per step.

Each optimizer's training step on the task's model (one fixed batch size, the batches drawn
as ``loop.train`` draws them, no evaluation) is compiled once as a ``lax.scan`` of
``steps`` steps; the compiled scans are then timed in turn, round after round, so that the
shared machine's noise falls on every optimizer alike, and each optimizer's median over the
rounds is divided by ``steps``. A measurement of the machine it runs on, reported with it,
never judged: the verdicts rest on steps.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import jax
import numpy as np
import optax

from .. import tasks as tasks_lib


def seconds_per_step(
    opts: Mapping[str, optax.GradientTransformation],
    task: tasks_lib.Task,
    *,
    batch_size: int,
    key: jax.Array,
    steps: int = 100,
    rounds: int = 5,
) -> dict[str, float]:
    """Per optimizer, the median over ``rounds`` of the wall time of ``steps`` compiled
    training steps, divided by ``steps`` (seconds per step)."""
    ds = task.data
    params = task.init(key)
    idx = jax.random.randint(key, (steps, batch_size), 0, ds.x_train.shape[0])
    batches = (ds.x_train[idx], ds.y_train[idx])

    def compiled(opt: optax.GradientTransformation):
        opt = optax.with_extra_args_support(opt)

        def step(carry, batch):
            p, s = carry
            x, y = batch
            value, grads = jax.value_and_grad(lambda q: tasks_lib.loss(task, q, x, y))(p)
            updates, s = opt.update(grads, s, p, value=value)
            return (optax.apply_updates(p, updates), s), None

        run = jax.jit(lambda p, b: jax.lax.scan(step, (p, opt.init(p)), b)[0][0])
        jax.block_until_ready(run(params, batches))  # compile outside the timing
        return run

    runs = {name: compiled(opt) for name, opt in opts.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            began = time.perf_counter()
            jax.block_until_ready(run(params, batches))
            times[name].append(time.perf_counter() - began)
    return {name: float(np.median(t)) / steps for name, t in times.items()}


def cells(seconds: Mapping[str, float], steps: Mapping[str, float]) -> dict[str, dict]:
    """Per method, the table cells: milliseconds per step and the seconds to the target
    (mean steps to it times seconds per step)."""
    return {
        name: {
            "ms / step": 1e3 * seconds[name],
            "seconds to target": steps[name] * seconds[name] if name in steps else float("nan"),
        }
        for name in seconds
    }
