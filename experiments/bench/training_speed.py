"""MLP training throughput and a 32-value momentum sweep: the library's compiled loop against
a Python loop of jitted steps and against eager PyTorch."""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import momentum_optax as mo
from experiments import data as data_lib
from experiments import training
from experiments.bench import timing
from experiments.bench import torch_peers

LR, MOMENTUM = 0.01, 0.9


def _setup(seed: int):
    split = data_lib.load("digits", seed=seed)
    graphdef, params = training.init_mlp(split, jax.random.key(seed))
    return split, graphdef, params


def throughput(batch_sizes: list[int], repeats: int, seed: int,
               progress: Callable[[str], None]) -> list[dict]:
    """Samples per second for one epoch of the digits MLP (64-64-10), per batch size.

    Every loop visits the batches in the stored order (PyTorch's loop too), except the
    row that reshuffles each epoch, which shows what the shuffle costs."""
    split, graphdef, params = _setup(seed)
    key = jax.random.key(seed + 1)
    rows = []
    for batch in batch_sizes:
        progress(f"MLP throughput, batch {batch}")
        n_batches = split.x_train.shape[0] // batch
        samples = n_batches * batch
        opt = mo.sgd(LR, MOMENTUM)
        in_order = training.make_train(opt, graphdef, epochs=1, batch_size=batch, shuffle=False)
        shuffled = training.make_train(opt, graphdef, epochs=1, batch_size=batch)
        loss = lambda p, x, y: training.classifier_loss(graphdef, p, x, y)
        step = mo.train_step(loss, opt)
        xs = [split.x_train[i * batch:(i + 1) * batch] for i in range(n_batches)]
        ys = [split.y_train[i * batch:(i + 1) * batch] for i in range(n_batches)]

        def library_epoch():
            jax.block_until_ready(in_order(params, split, key))

        def library_shuffled_epoch():
            jax.block_until_ready(shuffled(params, split, key))

        def python_loop():
            p = jax.tree.map(jnp.copy, params)
            s = opt.init(p)
            for x, y in zip(xs, ys):
                p, s, _ = step(p, s, x, y)
            jax.block_until_ready(p)

        raw = _raw_scan(graphdef, batch)
        xb = split.x_train[:samples].reshape(n_batches, batch, -1)
        yb = split.y_train[:samples].reshape(n_batches, batch)

        def raw_epoch():
            jax.block_until_ready(raw(params, xb, yb))

        candidates = {"library's compiled loop (lax.scan), in order": library_epoch,
                      "library's compiled loop, reshuffled each epoch": library_shuffled_epoch,
                      "raw lax.scan, in order, optax.sgd (the floor)": raw_epoch,
                      "Python loop of jitted mo.train_step": python_loop}
        if torch_peers.available():
            candidates["PyTorch eager"] = torch_peers.mlp_epoch(
                np.asarray(split.x_train), np.asarray(split.y_train), batch, LR, MOMENTUM)
        times = timing.interleaved(candidates, repeats)
        for name, values in times.items():
            rows.append({"batch_size": batch, "loop": name, "seconds": timing.summary(values),
                         "samples_per_s": samples / float(np.median(values))})
        best = rows[-len(times)]["samples_per_s"]
        for row in rows[-len(times):]:
            row["library_speedup"] = best / row["samples_per_s"]
    return rows


def _raw_scan(graphdef, batch: int) -> Callable:
    """The floor the library's loop is held to: a bare scan over batches in order, with
    optax.sgd (no permutation, no probes, nothing of the library)."""
    opt = optax.sgd(LR, MOMENTUM)
    grad = jax.grad(lambda p, x, y: training.classifier_loss(graphdef, p, x, y))

    def run(params, xb, yb):
        def step(carry, b):
            p, s = carry
            updates, s = opt.update(grad(p, *b), s, p)
            return (optax.apply_updates(p, updates), s), None
        return jax.lax.scan(step, (params, opt.init(params)), (xb, yb))[0][0]

    return jax.jit(run)


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


def momentum_sweep(values: int, seed: int, progress: Callable[[str], None]) -> list[dict]:
    """``values`` momentum values x 1 epoch at batch 32, four ways; compile time apart."""
    split, graphdef, params = _setup(seed)
    key = jax.random.key(seed + 1)
    momenta = np.linspace(0.0, 0.99, values).astype(np.float32)
    train = lambda m: training.mlp_train_fn(mo.sgd(LR, m), graphdef, epochs=1, batch_size=32)(
        params, split, key).test_accuracy
    rows = []

    def record(name, compile_s, run_s):
        rows.append({"method": name, "compile_seconds": compile_s, "run_seconds": run_s,
                     "total_seconds": compile_s + run_s})

    progress(f"sweep of {values} momenta: one vmap compile")
    momenta_device = jnp.asarray(momenta)
    devices = jax.devices()
    if len(devices) > 1 and values % len(devices) == 0:
        mesh = jax.sharding.Mesh(np.array(devices), ("sweep",))
        momenta_device = jax.device_put(
            momenta_device, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("sweep")))
    vmapped, compile_s = _compile(jax.jit(jax.vmap(train)), momenta_device)
    record("one vmap compile, all values at once", compile_s,
           _median_run(lambda: jax.block_until_ready(vmapped(momenta_device))))

    progress(f"sweep of {values} momenta: one compile per value")
    compile_s = run_s = 0.0
    for m in momenta.tolist():  # the value as a Python constant: a new program each time
        start = time.perf_counter()
        fn = jax.jit(lambda: train(m)).lower().compile()
        compile_s += time.perf_counter() - start
        run_s += timing.timed(lambda: jax.block_until_ready(fn()))
    record("one compile per value (Python constant)", compile_s, run_s)

    progress(f"sweep of {values} momenta: one compile, traced value, {values} runs")
    traced, compile_s = _compile(jax.jit(train), jnp.float32(0.5))
    run_s = _median_run(lambda: [jax.block_until_ready(traced(jnp.float32(m)))
                                 for m in momenta.tolist()])
    record("one compile, traced value, run sequentially", compile_s, run_s)

    if torch_peers.available():
        progress(f"sweep of {values} momenta: PyTorch eager")
        epoch = torch_peers.mlp_epoch(np.asarray(split.x_train), np.asarray(split.y_train), 32,
                                      LR, MOMENTUM)
        record("PyTorch eager, sequentially", 0.0,
               sum(timing.timed(lambda: epoch(float(m))) for m in momenta.tolist()))
    return rows
