"""Reliability figures: low-precision error against float64, and sharded-vs-single agreement.

    python -m experiments.reliability precision
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m experiments.reliability sharding

Both print JSON; the test suite runs the same functions and checks the numbers.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

import momentum_optax as mo

# --- precision: bfloat16 parameters, momentum buffers of several dtypes ---


def _final_buffer(opt: optax.GradientTransformation, grads: jax.Array, buffer: str) -> np.ndarray:
    """The momentum buffer after feeding ``grads`` (steps x n) through ``opt`` in one scan."""
    params = jnp.zeros(grads.shape[1], grads.dtype)

    def body(state, g):
        _, state = opt.update(g, state, params)
        return state, None

    state, _ = jax.jit(lambda g: jax.lax.scan(body, opt.init(params), g))(grads)
    return np.asarray(getattr(state, buffer), np.float64)


def _reference(grads: np.ndarray, decay: float, kind: str) -> np.ndarray:
    """The same recursion in float64 NumPy, on the same (already rounded) gradients."""
    m = np.zeros(grads.shape[1])
    for g in grads:
        m = decay * m + (1 - decay) * g if kind == "ema" else g + decay * m
    return m


def precision_errors(
    *, n: int = 1000, seed: int = 0, ema_steps: int = 5000, trace_steps: int = 1000
) -> dict[str, float]:
    """Relative error ||m - m_64|| / ||m_64|| of the final momentum buffer, bfloat16 params.

    Gradients are N(1, 1) in bfloat16. Cases: EMA(0.999) after ``ema_steps`` and
    trace(0.99) after ``trace_steps``, for momentum_optax with a float32 and
    with the default (bfloat16) buffer, and for optax with the same two buffers.
    """
    rng = np.random.default_rng(seed)
    errors = {}
    cases = [
        ("ema", 0.999, ema_steps, mo.ema, lambda d, **kw: optax.ema(d, debias=False, **kw)),
        ("trace", 0.99, trace_steps, mo.trace, optax.trace),
    ]
    for kind, decay, steps, ours, theirs in cases:
        grads = jnp.asarray(rng.normal(1.0, 1.0, (steps, n)), jnp.bfloat16)
        want = _reference(np.asarray(grads, np.float64), decay, kind)
        for library, make in (("momentum_optax", ours), ("optax", theirs)):
            for label, dtype in (("float32 buffer", jnp.float32), ("bfloat16 buffer", None)):
                got = _final_buffer(make(decay, accumulator_dtype=dtype), grads, kind)
                key = f"{library} {kind}({decay}) x{steps}, {label}"
                errors[key] = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    return errors


# --- sharding: the same run on a mesh of all devices and on one device ---


def _problem(seed: int):
    keys = jax.random.split(jax.random.key(seed), 3)
    params = {
        "kernel": jax.random.normal(keys[0], (64, 16)),
        "bias": jax.random.normal(keys[1], (16,)),
        "scale": jnp.ones(()),
    }
    target = jax.random.normal(keys[2], (64, 16))
    loss = lambda p: jnp.sum((p["kernel"] * p["scale"] + p["bias"] - target) ** 2) / 64
    return params, loss


OPTIMIZERS = {
    "trace nesterov": lambda: optax.chain(
        mo.trace(0.9, nesterov=True), optax.scale_by_learning_rate(0.01)
    ),
    "ema debias, scheduled": lambda: optax.chain(
        mo.ema(mo.schedules.anneal(0.5, 0.9, steps=5), debias=True),
        optax.scale_by_learning_rate(0.01),
    ),
    "delta_momentum": lambda: optax.chain(
        optax.scale_by_learning_rate(0.01), mo.delta_momentum(0.5)
    ),
    "sgd reset": lambda: mo.sgd(0.01, 0.9, reset_every=3),
}


def _run(opt, params, loss, steps):
    @jax.jit
    def step(params, state):
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    state = opt.init(params)
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def sharded_agreement(*, steps: int = 10, seed: int = 0) -> dict[str, dict]:
    """Runs each optimizer with parameters sharded over all devices and on one device.

    Rows of ``kernel`` are split over a 1-D mesh (``NamedSharding``); the other
    leaves are replicated. Returns, per optimizer, the max absolute difference of
    the parameters, and whether every momentum buffer has its parameter's sharding.
    """
    devices = np.array(jax.devices())
    mesh = Mesh(devices, ("data",))
    params, loss = _problem(seed)
    spec = {"kernel": PartitionSpec("data"), "bias": PartitionSpec(), "scale": PartitionSpec()}
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), spec)
    sharded_params = jax.device_put(params, shardings)
    single_params = jax.device_put(params, devices[0])
    report = {}
    for name, make in OPTIMIZERS.items():
        opt = make()
        sharded, state = _run(opt, sharded_params, loss, steps)
        single, _ = _run(opt, single_params, loss, steps)
        buffers = [leaf for leaf in jax.tree.leaves(state) if leaf.shape == (64, 16)]
        report[name] = {
            "max_abs_difference": float(
                max(
                    jax.tree.leaves(
                        jax.tree.map(
                            lambda a, b: jnp.max(jnp.abs(np.asarray(a) - np.asarray(b))),
                            sharded,
                            single,
                        )
                    )
                )
            ),
            "state_follows_params": bool(buffers)
            and all(leaf.sharding.is_equivalent_to(shardings["kernel"], 2) for leaf in buffers),
            "params_stay_sharded": sharded["kernel"].sharding.is_equivalent_to(
                shardings["kernel"], 2
            ),
            "loss_ratio": float(loss(single) / loss(params)),
        }
    return {
        "devices": len(devices),
        "optimizers": report,
        "pmap_vs_vmap_max_abs_difference": _pmap_vs_vmap(len(devices), steps, seed),
    }


def _pmap_vs_vmap(replicas: int, steps: int, seed: int) -> float:
    """One replica per device under ``pmap`` against the same batch under ``vmap``."""
    opt = mo.sgd(0.01, 0.9, nesterov=True, reset_every=4)
    params, loss = _problem(seed)
    batch = jax.tree.map(lambda x: jnp.stack([x * (1 + 0.1 * i) for i in range(replicas)]), params)

    def step(carry, _):
        params, state = carry
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        return (optax.apply_updates(params, updates), state), None

    def run(params):
        return jax.lax.scan(step, (params, opt.init(params)), length=steps)[0][0]

    mapped = jax.pmap(run)(batch)
    vectorised = jax.jit(jax.vmap(run))(batch)
    return float(
        max(
            jnp.max(jnp.abs(np.asarray(a) - np.asarray(b)))
            for a, b in zip(jax.tree.leaves(mapped), jax.tree.leaves(vectorised))
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=["precision", "sharding"])
    args = parser.parse_args(argv)
    result = precision_errors() if args.figure == "precision" else sharded_agreement()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
