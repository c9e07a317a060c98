"""Checking a restored optimizer state against the state it must replace."""

from __future__ import annotations

from typing import Any
from typing import TypeVar

import jax
import jax.numpy as jnp

from momentum_optax import _tree

State = TypeVar("State")


def check_restored(restored: State, target: Any) -> State:
    """Returns ``restored`` after checking it has ``target``'s structure, shapes and dtypes.

    Checkpoint libraries differ in what they verify: ``flax.serialization.from_bytes``
    restores arrays of any shape into the target's slots, so a state saved for
    other parameters would only fail later, or broadcast. Call this right after
    restoring; the error names the first path that differs.

    Args:
        restored: the state read back from a checkpoint.
        target: a state of the right kind, e.g. ``opt.init(params)`` (or its
            ``jax.eval_shape``).

    Returns:
        ``restored``, unchanged.

    Raises:
        ValueError: the trees differ in structure, or a leaf in shape or dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.trace(0.9)
        >>> saved = opt.init({"w": jnp.zeros(3)})
        >>> mo.check_restored(saved, opt.init({"w": jnp.zeros(4)}))
        Traceback (most recent call last):
        ...
        ValueError: restored state.trace['w'] has shape (3,) but the target has shape (4,) ...
    """
    _tree.check_tree_match(restored, target, what="the target", name="restored state")
    flat = jax.tree_util.tree_flatten_with_path(restored)[0]
    for (path, leaf), ref in zip(flat, jax.tree_util.tree_leaves(target)):
        got = (jnp.shape(leaf), jnp.result_type(leaf))
        want = (jnp.shape(ref), jnp.result_type(ref))
        if got != want:
            raise ValueError(
                f"restored state{jax.tree_util.keystr(path)} has shape {got[0]} and "
                f"dtype {got[1]}, but the target has shape {want[0]} and dtype "
                f"{want[1]}."
            )
    return restored
