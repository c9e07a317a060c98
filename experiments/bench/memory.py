"""Optimizer state memory per parameter byte, for every public transformation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import momentum_optax as mo


def transformations() -> dict[str, object]:
    """name -> an object with ``init`` (a transformation, or fused_sgd's pair)."""
    schedule = mo.schedules.anneal(0.5, 0.9, steps=100)
    return {
        "trace": mo.trace(0.9),
        "trace, scheduled": mo.trace(schedule),
        "ema": mo.ema(0.9),
        "ema, debias": mo.ema(0.9, debias=True),
        "delta_momentum": mo.delta_momentum(0.5),
        "periodic_reset(trace)": mo.periodic_reset(mo.trace(0.9), 100),
        "adaptive_restart(trace)": mo.adaptive_restart(mo.trace(0.9)),
        "qhm": mo.qhm(0.7, 0.999),
        "qhadam": mo.qhadam(0.01),
        "aggmo (3 decays)": mo.aggmo(),
        "sma (window 4)": mo.sma(4),
        "sgd, momentum 0": mo.sgd(0.1),
        "sgd, momentum 0.9": mo.sgd(0.1, 0.9),
        "torch_sgd, momentum 0.9": mo.torch_sgd(0.1, 0.9),
        "fused_sgd": mo.fused_sgd(0.1, 0.9),
        "optax.sgd, momentum 0.9 (reference)": optax.sgd(0.1, 0.9),
    }


def state_bytes(size: int = 1_000_000) -> list[dict]:
    """Bytes of state per byte of parameters (a 10-leaf tree of ``size`` float32 in all),
    split into the per-parameter part and the fixed scalar part."""
    params = [jax.ShapeDtypeStruct((size // 10,), jnp.float32) for _ in range(10)]
    param_bytes = size * 4
    rows = []
    for name, opt in transformations().items():
        state = jax.eval_shape(opt.init, params)
        sizes = [
            int(np.prod(leaf.shape)) * jnp.dtype(leaf.dtype).itemsize
            for leaf in jax.tree.leaves(state)
        ]
        big = sum(s for s, leaf in zip(sizes, jax.tree.leaves(state)) if leaf.shape != ())
        rows.append(
            {
                "transformation": name,
                "state_per_param_byte": big / param_bytes,
                "scalar_bytes": sum(sizes) - big,
            }
        )
    return rows
