"""Training speed: the experiments' loop (``experiments.loop.train``) against a bare
``lax.scan`` of the same steps, a Python loop of jitted steps and eager PyTorch; and a
32-value momentum sweep, one ``vmap`` compile against the alternatives.

Every loop trains the MNIST-1D MLP (40-100-100-10) from the same initialisation on the
same batches (the ones ``loop.train`` draws from its key) with heavy ball, and evaluates
what ``loop.train`` evaluates: the loss on the full training set and the loss and
accuracy on the validation set every ``eval_every`` steps and at step 0, the test split
at the end. The bare scan (the floor) is what a user would write by hand: the batches
gathered beforehand and scanned over, ``optax.sgd``, ``jax.grad`` of the plain loss,
nothing of the library; it computes the same curves (a test checks it).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import momentum_optax as mo

from .. import loop
from .. import tasks
from ..bench import timing
from ..bench import torch_peers

LR, MOMENTUM = 0.01, 0.9
FLOOR = "bare lax.scan, same batches and evaluations (the floor)"
LIBRARY = "library's loop (experiments.loop.train)"
PYTHON = "Python loop of jitted mo.train_step"
TORCH = "PyTorch eager"


def batch_indices(task: tasks.Task, key: jax.Array, schedule: loop.Schedule) -> np.ndarray:
    """The training examples of every step, ``(steps, batch_size)``, as ``loop.train``
    draws them with ``key`` (uniform with replacement from the batch-order key)."""
    _, batch_key = jax.random.split(key)
    n = task.data.x_train.shape[0]
    draw = lambda t: jax.random.randint(
        jax.random.fold_in(batch_key, t), (schedule.batch_size,), 0, n
    )
    return np.asarray(jax.vmap(draw)(jnp.arange(schedule.steps)))


def _cross_entropy(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def evaluator(task: tasks.Task) -> Callable:
    """``params -> (train loss, validation loss, validation accuracy)`` on the full splits."""
    ds = task.data

    def evaluate(params):
        val_logits = task.apply(params, ds.x_val)
        return (
            _cross_entropy(task.apply(params, ds.x_train), ds.y_train),
            _cross_entropy(val_logits, ds.y_val),
            jnp.mean(jnp.argmax(val_logits, -1) == ds.y_val),
        )

    return evaluate


def bare_scan(task: tasks.Task, schedule: loop.Schedule) -> Callable:
    """The floor, jitted: ``(params, xb, yb) -> loop.Curves`` with the batches ``xb``,
    ``yb`` shaped ``(evaluations, eval_every, batch_size, ...)``."""
    opt = optax.sgd(LR, MOMENTUM)
    evaluate = evaluator(task)
    grad = jax.grad(lambda p, x, y: _cross_entropy(task.apply(p, x), y))
    ds = task.data

    def run(params, xb, yb):
        def step(carry, batch):
            p, s = carry
            updates, s = opt.update(grad(p, *batch), s, p)
            return (optax.apply_updates(p, updates), s), None

        def chunk(carry, batches):
            carry, _ = jax.lax.scan(step, carry, batches)
            return carry, evaluate(carry[0])

        first = evaluate(params)
        (params, _), evals = jax.lax.scan(chunk, (params, opt.init(params)), (xb, yb))
        curves = [jnp.concatenate([a[None], b]) for a, b in zip(first, evals)]
        test_logits = task.apply(params, ds.x_test)
        return loop.Curves(
            *curves,
            _cross_entropy(test_logits, ds.y_test),
            jnp.mean(jnp.argmax(test_logits, -1) == ds.y_test),
        )

    return jax.jit(run)


def library(task: tasks.Task, schedule: loop.Schedule) -> Callable:
    """``loop.train`` with ``mo.sgd``, jitted: ``key -> loop.Curves``."""
    return jax.jit(lambda key: loop.train(mo.sgd(LR, MOMENTUM), task, key, schedule))


def chunked(task: tasks.Task, idx: np.ndarray, schedule: loop.Schedule):
    """The batches of ``idx`` as arrays ``(evaluations, eval_every, batch_size, ...)``."""
    shape = (schedule.steps // schedule.eval_every, schedule.eval_every, schedule.batch_size)
    return (task.data.x_train[idx].reshape(*shape, -1), task.data.y_train[idx].reshape(shape))


def python_loop(task: tasks.Task, params, idx: np.ndarray, schedule: loop.Schedule) -> Callable:
    """A Python loop of jitted ``mo.train_step`` calls over the same batches, with a jitted
    evaluation every ``eval_every`` steps."""
    opt = mo.sgd(LR, MOMENTUM)
    step = mo.train_step(lambda p, x, y: _cross_entropy(task.apply(p, x), y), opt)
    evaluate = jax.jit(evaluator(task))
    xs, ys = (np.asarray(a) for a in chunked(task, idx, schedule))

    def run():
        p = jax.tree.map(jnp.copy, params)  # train_step donates its arguments
        s = opt.init(p)
        evals = [evaluate(p)]
        for xc, yc in zip(xs, ys):
            for x, y in zip(xc, yc):
                p, s, _ = step(p, s, x, y)
            evals.append(evaluate(p))
        jax.block_until_ready((p, evals))

    return run


def throughput(
    batch_sizes: list[int],
    repeats: int,
    seed: int,
    progress: Callable[[str], None],
    *,
    steps: int = 1000,
    eval_every: int = 100,
) -> list[dict]:
    """Samples per second of every loop on the MNIST-1D MLP, per batch size, timed
    interleaved with the floor; each row's ``vs_floor`` is the paired per-repeat ratio
    floor time / its time (1: as fast as the bare scan).

    Two evaluation settings: every ``eval_every`` steps (the experiments'), where every
    loop is timed, and only at the start and the end (``eval_every = steps``, the training
    steps alone), where the library's loop is timed against the floor.
    """
    task = tasks.mnist1d_mlp()
    key = jax.random.key(seed)
    params = task.init(jax.random.split(key)[0])
    rows = []
    for batch in batch_sizes:
        for every in (eval_every, steps):
            schedule = loop.Schedule(steps, batch, every, train_subset=0)
            label = f"every {every} steps" if every < steps else "at start and end only"
            progress(f"training loop, batch {batch}, evaluation {label}")
            idx = batch_indices(task, key, schedule)
            lib, floor, batches = (
                library(task, schedule),
                bare_scan(task, schedule),
                chunked(task, idx, schedule),
            )
            run_floor = functools.partial(
                lambda f, b: jax.block_until_ready(f(params, *b)), floor, batches
            )
            # the library and the floor timed as a pair, alone: the peers (PyTorch's threads
            # above all) would slow whatever is timed after them
            run_lib = functools.partial(lambda f: jax.block_until_ready(f(key)), lib)
            groups = [{LIBRARY: run_lib, FLOOR: run_floor}]
            if every < steps:
                peers = {FLOOR: run_floor, PYTHON: python_loop(task, params, idx, schedule)}
                if torch_peers.available():
                    peers[TORCH] = torch_peers.mlp_training(
                        task.data, idx, every, LR, MOMENTUM, hidden=100, seed=seed
                    )
                groups.append(peers)
            for i, group in enumerate(groups):
                times = timing.interleaved(group, repeats)
                rows += [
                    {
                        "batch_size": batch,
                        "steps": steps,
                        "evaluation": label,
                        "loop": name,
                        "seconds": timing.summary(values),
                        "samples_per_s": steps * batch / float(np.median(values)),
                        "vs_floor": timing.ratio(times[FLOOR], values),
                    }
                    for name, values in times.items()
                    if not (i and name == FLOOR)
                ]
    return rows


def _compile(jitted, *args, repeats: int = 3):
    """The compiled function and the median of ``repeats`` cold compile times (one is noisy;
    JAX's in-memory caches are cleared before each, or the repeats would hit them)."""
    seconds = []
    for _ in range(repeats):
        jax.clear_caches()
        start = time.perf_counter()
        compiled = jitted.lower(*args).compile()
        seconds.append(time.perf_counter() - start)
    return compiled, float(np.median(seconds))


def _median_run(fn, repeats: int = 3) -> float:
    """Median seconds of ``repeats`` calls (after compilation, which is timed apart)."""
    return float(np.median([timing.timed(fn) for _ in range(repeats)]))


SWEEP_SCHEDULE = loop.Schedule(steps=100, batch_size=32, eval_every=100, train_subset=0)


def momentum_sweep(values: int, seed: int, progress: Callable[[str], None]) -> list[dict]:
    """``values`` momentum values x 100 steps of ``loop.train`` at batch 32 on the digits
    MLP (evaluated at the start and the end), four ways; compile time apart."""
    task = tasks.digits_mlp()
    key = jax.random.key(seed)
    momenta = np.linspace(0.0, 0.99, values).astype(np.float32)
    train = lambda m: loop.train(mo.sgd(LR, m), task, key, SWEEP_SCHEDULE).test_accuracy
    rows = []

    def record(name, compile_s, run_s):
        rows.append(
            {
                "method": name,
                "values": values,
                "compile_seconds": compile_s,
                "run_seconds": run_s,
                "total_seconds": compile_s + run_s,
            }
        )

    progress(f"sweep of {values} momenta: one vmap compile")
    momenta_device = jnp.asarray(momenta)
    devices = jax.devices()
    if len(devices) > 1 and values % len(devices) == 0:
        mesh = jax.sharding.Mesh(np.array(devices), ("sweep",))
        momenta_device = jax.device_put(
            momenta_device, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("sweep"))
        )
    vmapped, compile_s = _compile(jax.jit(jax.vmap(train)), momenta_device)
    record(
        "one vmap compile, all values at once",
        compile_s,
        _median_run(lambda: jax.block_until_ready(vmapped(momenta_device))),
    )

    progress(f"sweep of {values} momenta: one compile per value")
    compile_s = run_s = 0.0
    for m in momenta.tolist():  # the value as a Python constant: a new program each time
        start = time.perf_counter()
        fn = jax.jit(functools.partial(train, m)).lower().compile()
        compile_s += time.perf_counter() - start
        run_s += timing.timed(functools.partial(lambda f: jax.block_until_ready(f()), fn))
    record("one compile per value (Python constant)", compile_s, run_s)

    progress(f"sweep of {values} momenta: one compile, traced value, {values} runs")
    traced, compile_s = _compile(jax.jit(train), jnp.float32(0.5))
    run_s = _median_run(
        lambda: [jax.block_until_ready(traced(jnp.float32(m))) for m in momenta.tolist()]
    )
    record("one compile, traced value, run sequentially", compile_s, run_s)

    if torch_peers.available():
        progress(f"sweep of {values} momenta: PyTorch eager")
        run = torch_peers.mlp_training(
            task.data,
            batch_indices(task, key, SWEEP_SCHEDULE),
            SWEEP_SCHEDULE.eval_every,
            LR,
            MOMENTUM,
            hidden=64,
            seed=seed,
        )
        record(
            "PyTorch eager, sequentially",
            0.0,
            sum(timing.timed(functools.partial(run, float(m))) for m in momenta.tolist()),
        )
    return rows
