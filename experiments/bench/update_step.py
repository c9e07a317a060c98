"""The momentum update step at 1e6-1e8 float32 parameters, against optax, PyTorch and the
in-place bandwidth limit ``a += s * b`` measured in the same run (with XLA; PyTorch's own
in-place add is timed too, since it shows how far XLA's loops are from the machine)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
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


OPTAX, OPTAX_NESTEROV = "optax.sgd", "optax.sgd, nesterov"
# bfloat16 parameters (with float32 buffers) are timed for these, at these sizes
BFLOAT16_NAMES = (
    OPTAX,
    OPTAX_NESTEROV,
    "mo.sgd",
    "mo.sgd, nesterov",
    "mo.fused_sgd",
    "mo.fused_sgd, nesterov",
)
BFLOAT16_SIZES = (10**7, 10**8)


def reference(name: str) -> str:
    """The optax step each optimizer is timed against: Nesterov's for Nesterov's."""
    return OPTAX_NESTEROV if "nesterov" in name else OPTAX


def variants(buffer_dtype: Any = None) -> dict[str, tuple[Callable, Callable, bool]]:
    """name -> (init, step(params, state, grads), donated); ``buffer_dtype`` for every
    momentum buffer (``None``: the parameters')."""

    def chain(opt, donate=True):
        return opt.init, _optax_step(opt), donate

    def fused(**kwargs):
        f = mo.fused_sgd(LR, MOMENTUM, accumulator_dtype=buffer_dtype, **kwargs)
        return f.init, f.apply, True

    acc = dict(accumulator_dtype=buffer_dtype)
    return {
        OPTAX: chain(optax.sgd(LR, MOMENTUM, **acc)),
        OPTAX_NESTEROV: chain(optax.sgd(LR, MOMENTUM, nesterov=True, **acc)),
        "optax.sgd, not donated": chain(optax.sgd(LR, MOMENTUM, **acc), donate=False),
        "mo.sgd": chain(mo.sgd(LR, MOMENTUM, **acc)),
        "mo.sgd, scheduled momentum": chain(
            mo.sgd(LR, mo.schedules.anneal(0.5, MOMENTUM, steps=1000), **acc)
        ),
        "mo.sgd, nesterov": chain(mo.sgd(LR, MOMENTUM, nesterov=True, **acc)),
        "mo.sgd, ema": chain(mo.sgd(LR, MOMENTUM, ema=True, **acc)),
        "mo.sgd, reset every 100": chain(mo.sgd(LR, MOMENTUM, reset_every=100, **acc)),
        "mo.fused_sgd": fused(),
        "mo.fused_sgd, nesterov": fused(nesterov=True),
    }


def passes(compiled_text: str, size: int) -> float:
    """Passes over memory of one leaf in a compiled step: arrays of the leaf's ``size``
    elements read or written by the program's top-level fusions, custom calls and copies
    (the ENTRY computation of XLA's optimised HLO), per leaf (a leaf is three parameters of
    that size: its parameter, buffer and gradient)."""
    entry = compiled_text[compiled_text.index("\nENTRY") :]
    sizes: dict[str, list[int]] = {}
    count, parameters = 0, 0
    for line in entry.splitlines()[1:]:
        match = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (.*?)\s(\w[\w\-]*)\((.*?)\)", line)
        if not match:
            continue
        name, shapes, op, operands = match.groups()
        sizes[name] = [
            int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
            for dims in re.findall(r"\w+\[([\d,]*)\]", shapes)
        ]
        if op == "parameter":
            parameters += sizes[name] == [size]
        elif op in ("fusion", "custom-call", "copy"):
            count += sum(sizes.get(o, [0])[0] == size for o in re.findall(r"%([\w.\-]+)", operands))
            count += sum(n == size for n in sizes[name])
    return count / max(parameters / 3, 1)


def _layout(kind: str, size: int, dtype: Any = jnp.float32) -> Any:
    if kind == "array":
        return jnp.ones(size, dtype)
    return [jnp.ones(size // 100, dtype) for _ in range(100)]


def _jax_call(step: Callable, params: Any, state: Any, grads: Any, donate: bool) -> tuple:
    """(a call that runs one step in place, the step's pass count over memory)."""
    compiled = jax.jit(step, donate_argnums=(0, 1) if donate else ())
    text = compiled.lower(params, state, grads).compile().as_text()
    cell = [params, state]

    def call():
        cell[0], cell[1] = compiled(cell[0], cell[1], grads)
        jax.block_until_ready(cell)

    return call, passes(text, jax.tree.leaves(params)[0].size)


def _limit_call(size_kind: str, size: int, grads: Any, dtype: Any) -> Callable:
    add = jax.jit(lambda a, b: jax.tree.map(lambda x, y: x + 0.01 * y, a, b), donate_argnums=0)
    cell = [_layout(size_kind, size, dtype)]

    def call():
        cell[0] = add(cell[0], grads)
        jax.block_until_ready(cell)

    return call


def run(sizes: list[int], repeats: int, progress: Callable[[str], None]) -> list[dict]:
    """One row per (size, layout, dtype, optimizer): its time and its ratios.

    Every optimizer is timed interleaved with the limit, with ``optax.sgd`` (donated) and,
    for a Nesterov step, with ``optax.sgd(nesterov=True)``, so each ratio is a median of
    ratios measured side by side. bfloat16 parameters keep float32 buffers.
    """
    rows = []
    for size in sizes:
        for dtype in (jnp.float32, jnp.bfloat16):
            if dtype == jnp.bfloat16 and size not in BFLOAT16_SIZES:
                continue
            buffer = None if dtype == jnp.float32 else jnp.float32
            steps = variants(buffer)
            names = list(steps) if buffer is None else list(BFLOAT16_NAMES)
            for layout in ("array", "tree of 100 leaves"):
                kind = "array" if layout == "array" else "tree"
                grads = jax.tree.map(lambda x: x * 1e-3, _layout(kind, size, dtype))
                peers = {} if buffer else torch_peers.sgd_steps(size, kind, LR, MOMENTUM)
                for name in names + list(peers):
                    progress(f"update step {size:.0e} {layout} {jnp.dtype(dtype).name}: {name}")
                    group = {"limit": _limit_call(kind, size, grads, dtype)}
                    counts = {}
                    for ref in dict.fromkeys((OPTAX, reference(name), name)):
                        if ref in peers:
                            group[ref] = peers[ref]()
                            continue
                        init, step, donate = steps[ref]
                        params = _layout(kind, size, dtype)
                        group[ref], counts[ref] = _jax_call(
                            step, params, init(params), grads, donate
                        )
                    times = timing.interleaved(group, repeats)
                    rows.append(row(size, layout, name, times, dtype, counts.get(name)))
                    del group
    _add_torch_ratios(rows)
    return rows


def row(
    size: int,
    layout: str,
    name: str,
    times: dict[str, list[float]],
    dtype: Any = jnp.float32,
    hlo_passes: float | None = None,
) -> dict:
    """The figures of one optimizer from its interleaved series (and those of ``limit``,
    ``optax.sgd`` and, for Nesterov, ``optax.sgd, nesterov``): time, effective GB/s, paired
    fractions of the limit and of optax, and the compiled step's passes over memory."""
    passes_made = LIMIT_PASSES if name == torch_peers.LIMIT else PASSES
    seconds = timing.summary(times[name])
    out = {
        "size": size,
        "layout": layout,
        "dtype": jnp.dtype(dtype).name,
        "optimizer": name,
        "seconds": seconds,
        "limit_seconds": timing.summary(times["limit"]),
        "GB_per_s": passes_made * 4 * size / seconds["median"] / 1e9,
        "fraction_of_limit": timing.summary(
            [
                passes_made / LIMIT_PASSES * t_limit / t
                for t, t_limit in zip(times[name], times["limit"])
            ]
        ),
        "vs_optax_sgd": timing.ratio(times[name], times[OPTAX]),
        "hlo_passes": hlo_passes,
    }
    if reference(name) != OPTAX and reference(name) in times:
        out["vs_optax_nesterov"] = timing.ratio(times[name], times[reference(name)])
    return out


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
                and t["dtype"] == r["dtype"]
                and t["layout"] == r["layout"]
            ),
            None,
        )
        if torch_row is not None and r.get("dtype", "float32") == "float32":
            r["vs_torch_fused"] = r["vs_optax_sgd"]["median"] / torch_row["vs_optax_sgd"]["median"]
