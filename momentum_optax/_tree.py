"""Tree helpers shared by the transformations: structure checks and per-leaf updates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

_MAX_LISTED = 5


def _shape(x: Any) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else jnp.shape(x)


def _paths(tree: Any) -> list[str]:
    return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _listing(paths: list[str]) -> str:
    shown = ", ".join(paths[:_MAX_LISTED])
    more = len(paths) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def check_tree_match(updates: Any, reference: Any, *, what: str, name: str = "updates") -> None:
    """Raises ``ValueError`` unless ``updates`` has ``reference``'s structure and leaf shapes.

    Runs at trace time (structure and shapes are static), so it costs nothing in
    a compiled step. Without it a (3, 3) gradient would silently broadcast
    against a (3,) momentum buffer and reshape the state.

    Args:
      updates: the incoming gradient/update tree.
      reference: the tree it must match (a momentum buffer in the state).
      what: how the error names ``reference``.
      name: how the error names ``updates``.
    """
    updates_def = jax.tree_util.tree_structure(updates)
    reference_def = jax.tree_util.tree_structure(reference)
    if updates_def != reference_def:
        got, want = _paths(updates), _paths(reference)
        missing = [p for p in want if p not in set(got)]
        extra = [p for p in got if p not in set(want)]
        parts = []
        if missing:
            parts.append(f"missing {_listing(missing)}")
        if extra:
            parts.append(f"unexpected {_listing(extra)}")
        if not parts:
            parts.append(f"same leaf paths in other containers: {updates_def} vs {reference_def}")
        raise ValueError(
            f"the structure of {name} differs from {what}: {'; '.join(parts)}. "
            "Was the state initialised from other parameters?"
        )
    flat_updates = jax.tree_util.tree_flatten_with_path(updates)[0]
    for (path, update), ref in zip(flat_updates, jax.tree_util.tree_leaves(reference)):
        if _shape(update) != _shape(ref):
            raise ValueError(
                f"{name}{jax.tree_util.keystr(path)} has shape {_shape(update)} but "
                f"{what} has shape {_shape(ref)} there; refusing to broadcast."
            )


def check_state(state: Any, expected: type, owner: str) -> None:
    """Raises ``TypeError`` unless ``state`` is the ``expected`` NamedTuple made by ``owner``'s init."""
    if not isinstance(state, expected):
        raise TypeError(
            f"state must be the {expected.__name__} returned by {owner}(...).init; "
            f"got a {type(state).__name__}. Was it made by another transformation, "
            "or restored from a checkpoint without a target?"
        )


def compute_dtype(*arrays: Any) -> Any:
    """The dtype arithmetic runs in: the inputs' promotion, at least float32.

    Coefficients such as 0.999 are thus applied in float32 even to bfloat16
    buffers (in bfloat16, 0.999 rounds to 1.0). For float32 inputs this is a
    no-op, so float32 results are bit-for-bit those of optax.
    """
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def map_split(fn: Callable[..., tuple], first: Any, *rest: Any, n: int = 2) -> tuple:
    """Maps ``fn`` (returning an ``n``-tuple per leaf) over trees; returns ``n`` trees."""
    treedef = jax.tree_util.tree_structure(first)
    outputs = treedef.flatten_up_to(jax.tree.map(fn, first, *rest))
    if not outputs:
        return tuple(treedef.unflatten([]) for _ in range(n))
    return tuple(treedef.unflatten(list(column)) for column in zip(*outputs))


def cast_like(tree: Any, reference: Any) -> Any:
    """``tree`` with every leaf cast to the dtype of the matching leaf of ``reference``."""
    return jax.tree.map(lambda x, r: jnp.asarray(x).astype(jnp.result_type(r)), tree, reference)


def vdot(tree_a: Any, tree_b: Any) -> jax.Array:
    """Real inner product of two trees, accumulated in float32 (or wider)."""

    def leaf(a, b):
        dtype = compute_dtype(a, b)
        return jnp.real(jnp.vdot(jnp.asarray(a, dtype), jnp.asarray(b, dtype)))

    return sum(jax.tree.leaves(jax.tree.map(leaf, tree_a, tree_b)), jnp.zeros([], jnp.float32))
