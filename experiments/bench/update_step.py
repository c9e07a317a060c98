"""The momentum update step at 1e6-1e8 float32 parameters, against optax, PyTorch and the
in-place bandwidth limit ``a += s * b`` measured in the same run (with XLA; PyTorch's own
in-place add is timed too, since it shows how far XLA's loops are from the machine)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

import momentum_optax as mo

from ..bench import timing
from ..bench import torch_peers

# a momentum step reads p, g, m and writes p, m: 5 passes; the limit a += s*b makes 3
PASSES, LIMIT_PASSES = 5, 3
LR, MOMENTUM = 0.01, 0.9


def _optax_step(opt: optax.GradientTransformation) -> Callable:
    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def variants() -> dict[str, tuple[Callable, Callable, bool]]:
    """name -> (init, step(params, state, grads), donated)."""

    def chain(opt, donate=True):
        return opt.init, _optax_step(opt), donate

    fused = mo.fused_sgd(LR, MOMENTUM)
    return {
        "optax.sgd": chain(optax.sgd(LR, MOMENTUM)),
        "optax.sgd, not donated": chain(optax.sgd(LR, MOMENTUM), donate=False),
        "mo.sgd": chain(mo.sgd(LR, MOMENTUM)),
        "mo.sgd, scheduled momentum": chain(
            mo.sgd(LR, mo.schedules.anneal(0.5, MOMENTUM, steps=1000))
        ),
        "mo.sgd, nesterov": chain(mo.sgd(LR, MOMENTUM, nesterov=True)),
        "mo.sgd, ema": chain(mo.sgd(LR, MOMENTUM, ema=True)),
        "mo.sgd, reset every 100": chain(mo.sgd(LR, MOMENTUM, reset_every=100)),
        "mo.fused_sgd (train_step path)": (fused.init, fused.apply, True),
    }


def _layout(kind: str, size: int) -> Any:
    if kind == "array":
        return jnp.ones(size, jnp.float32)
    return [jnp.ones(size // 100, jnp.float32) for _ in range(100)]


def _jax_call(step: Callable, params: Any, state: Any, grads: Any, donate: bool) -> Callable:
    compiled = jax.jit(step, donate_argnums=(0, 1) if donate else ())
    cell = [params, state]

    def call():
        cell[0], cell[1] = compiled(cell[0], cell[1], grads)
        jax.block_until_ready(cell)

    return call


def _limit_call(size_kind: str, size: int, grads: Any) -> Callable:
    add = jax.jit(lambda a, b: jax.tree.map(lambda x, y: x + 0.01 * y, a, b), donate_argnums=0)
    cell = [_layout(size_kind, size)]

    def call():
        cell[0] = add(cell[0], grads)
        jax.block_until_ready(cell)

    return call


def run(sizes: list[int], repeats: int, progress: Callable[[str], None]) -> list[dict]:
    """One row per (size, layout, optimizer): its time and its ratios to the references.

    Every optimizer is timed interleaved with the limit and with ``optax.sgd`` (donated),
    so each ratio is a median of ratios measured side by side.
    """
    rows = []
    for size in sizes:
        for layout in ("array", "tree of 100 leaves"):
            kind = "array" if layout == "array" else "tree"
            grads = jax.tree.map(lambda x: x * 1e-3, _layout(kind, size))
            peers = torch_peers.sgd_steps(size, kind, LR, MOMENTUM)
            candidates: dict[str, Callable] = {**variants(), **{k: None for k in peers}}
            for name in candidates:
                progress(f"update step {size:.0e} {layout}: {name}")
                group = {"limit": _limit_call(kind, size, grads)}
                init, step, donate = variants()["optax.sgd"]
                params = _layout(kind, size)
                group["optax.sgd"] = _jax_call(step, params, init(params), grads, True)
                if name in peers:
                    group[name] = peers[name]()
                elif name != "optax.sgd":
                    init, step, donate = variants()[name]
                    params = _layout(kind, size)
                    group[name] = _jax_call(step, params, init(params), grads, donate)
                times = timing.interleaved(group, repeats)
                rows.append(row(size, layout, name, times))
                del group
    _add_torch_ratios(rows)
    return rows


def row(size: int, layout: str, name: str, times: dict[str, list[float]]) -> dict:
    """The figures of one optimizer from its interleaved series (and those of ``limit`` and
    ``optax.sgd``): time, effective GB/s, paired fractions of the limit and of optax."""
    passes = LIMIT_PASSES if name == torch_peers.LIMIT else PASSES
    seconds = timing.summary(times[name])
    return {
        "size": size,
        "layout": layout,
        "optimizer": name,
        "seconds": seconds,
        "limit_seconds": timing.summary(times["limit"]),
        "GB_per_s": passes * 4 * size / seconds["median"] / 1e9,
        "fraction_of_limit": timing.summary(
            [passes / LIMIT_PASSES * t_limit / t for t, t_limit in zip(times[name], times["limit"])]
        ),
        "vs_optax_sgd": timing.ratio(times[name], times["optax.sgd"]),
    }


def _add_torch_ratios(rows: list[dict]) -> None:
    """Ratio to torch's fused SGD through optax.sgd, which every group times alongside:
    (ours / optax) / (torch fused / optax), both paired. (Through the limit would be
    skewed: torch's threads slow the XLA limit timed in its own group.)"""
    for r in rows:
        torch_row = next(
            (
                t
                for t in rows
                if t["optimizer"] == torch_peers.FUSED
                and t["size"] == r["size"]
                and t["layout"] == r["layout"]
            ),
            None,
        )
        if torch_row is not None:
            r["vs_torch_fused"] = r["vs_optax_sgd"]["median"] / torch_row["vs_optax_sgd"]["median"]
