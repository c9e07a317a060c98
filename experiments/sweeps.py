"""Hyper-parameter sweeps: one compiled ``vmap`` over traced values, sharded over the devices.

A sweep is a table of named columns (``grid(lr=[...], momentum=[...])``); every
row is one run of ``fn(row, *shared)``. All rows run inside one compiled
``jit(vmap(fn))``: the values are traced arrays, never constants baked into the
program, so one compilation serves every row and any other values. The row axis
is laid out over a 1-D device mesh (``NamedSharding``); with one device that is
a no-op, with several each device runs its share of the rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

import momentum_optax as mo

AXIS = "sweep"


def grid(**axes: Sequence[float]) -> dict[str, np.ndarray]:
    """The Cartesian product of named value lists, as equal-length float32 columns.

    Example: ``grid(lr=[0.1, 0.2], momentum=[0, 0.9])`` has four rows, ``lr``
    varying slowest.
    """
    rows = list(itertools.product(*axes.values()))
    return {name: np.asarray([row[i] for row in rows], np.float32) for i, name in enumerate(axes)}


def rows(table: dict[str, np.ndarray]) -> int:
    """The number of rows of a sweep table."""
    return len(next(iter(table.values())))


def mesh() -> Mesh:
    """A 1-D mesh over all devices (of every process under ``jax.distributed``); the sweep
    axis is sharded along it."""
    return Mesh(np.asarray(jax.devices()), (AXIS,))


def _global(value: Any, sharding: NamedSharding) -> jax.Array:
    """A host array as a global array with ``sharding``: each process fills only its own
    devices' shards (every process holds the same host value), so this works in one
    process and across processes alike."""
    value = np.asarray(value)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def place(table: dict[str, Any]) -> dict[str, jax.Array]:
    """The table's rows laid out over the device mesh (padded by repeating the last row,
    so every device holds as many rows)."""
    devices = mesh()
    pad = (-rows(table)) % devices.size
    sharding = NamedSharding(devices, PartitionSpec(AXIS))
    return {
        k: _global(
            np.concatenate([np.asarray(v), np.repeat(np.asarray(v)[-1:], pad, axis=0)]), sharding
        )
        for k, v in table.items()
    }


def replicate(tree: Any) -> Any:
    """Every leaf of ``tree`` replicated on every device of the mesh."""
    sharding = NamedSharding(mesh(), PartitionSpec())
    return jax.tree.map(lambda leaf: _global(leaf, sharding), tree)


def gather(tree: Any) -> Any:
    """A sharded result as NumPy arrays on every process (an all-gather across processes
    under ``jax.distributed``; a copy to the host otherwise)."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def seed_key(key: jax.Array, seed: jax.Array) -> jax.Array:
    """The key of seed ``seed`` (traced int): initialisation and batch order of that seed,
    the same for every trial and method."""
    return jax.random.fold_in(key, seed)


def sweep(
    fn: Callable[..., Any], table: dict[str, Any], *shared: Any, key: jax.Array | None = None
) -> Any:
    """Runs ``fn(row, *shared)`` for every row of ``table`` as one compiled function.

    Args:
        fn: a pure function of one row (a dict of scalars, traced) and the shared
            arguments; it must not turn the row's values into Python numbers.
        table: named columns of equal length (the swept hyper-parameters).
        *shared: arguments every row sees (data, initial parameters), replicated.
        key: a root key: then ``fn(row, row_key, *shared)`` gets its row's key,
            ``seed_key(key, row["seed"])`` (``table`` needs a ``seed`` column,
            ``with_seeds``), so rows of one seed share it across trials and methods.

    Returns:
        ``fn``'s output with a leading axis of one entry per row, as NumPy arrays.
    """
    if key is not None:
        if "seed" not in table:
            raise ValueError(
                f"sweep(key=...) hands each row the key of its seed, but the table has no "
                f"'seed' column (columns: {sorted(table)}); build it with with_seeds."
            )
        keyed = fn

        def fn(row, key_data, *rest):
            return keyed(row, seed_key(jax.random.wrap_key_data(key_data), row["seed"]), *rest)

        shared = (jax.random.key_data(key), *shared)
    n = rows(table)
    shared = tuple(replicate(s) for s in shared)
    run = jax.jit(jax.vmap(fn, in_axes=(0,) + (None,) * len(shared)))
    return jax.tree.map(lambda a: a[:n], gather(run(place(table), *shared)))


def with_seeds(table: dict[str, np.ndarray], seeds: int) -> dict[str, np.ndarray]:
    """Every row of ``table`` repeated for seeds ``0 .. seeds - 1`` (column ``seed``, int32),
    rows varying slowest: row ``i * seeds + s`` is trial ``i`` on seed ``s``."""
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer; got {seeds!r}.")
    out = {k: np.repeat(np.asarray(v), seeds) for k, v in table.items()}
    out["seed"] = np.tile(np.arange(seeds, dtype=np.int32), rows(table))
    return out


def select(
    options: Sequence[optax.GradientTransformation], index: jax.Array
) -> optax.GradientTransformationExtraArgs:
    """The transformation ``options[index]``, with ``index`` a traced integer.

    All options must keep states of one structure (e.g. the same optimizer
    with different schedules or restart periods), so that choosing between
    them is part of the compiled function rather than a recompilation. Extra
    arguments of ``update`` (``value=loss``) reach the options that take them.
    """
    index = jnp.asarray(index, jnp.int32)
    options = [optax.with_extra_args_support(o) for o in options]

    def init_fn(params):
        return jax.lax.switch(index, [o.init for o in options], params)

    def update_fn(updates, state, params=None, **extra_args):
        branches = [lambda u, s, p, o=o: o.update(u, s, p, **extra_args) for o in options]
        return jax.lax.switch(index, branches, updates, state, params)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def momentum_sgd(row: dict) -> optax.GradientTransformation:
    """``mo.sgd(row["lr"], row["momentum"])``, Nesterov where ``row["nesterov"]`` is 1.

    Every value is traced; a row without ``"nesterov"`` is heavy ball (or plain
    gradient descent where its momentum is 0).
    """
    return select(
        [mo.sgd(row["lr"], row["momentum"]), mo.sgd(row["lr"], row["momentum"], nesterov=True)],
        row.get("nesterov", jnp.zeros([], jnp.int32)),
    )
