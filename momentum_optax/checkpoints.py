"""Checkpoints: checking a restored optimizer state, and reading 0.1's states into 0.2's."""

from __future__ import annotations

from typing import Any
from typing import TypeVar

import jax
import jax.numpy as jnp
import optax

from momentum_optax import _tree
from momentum_optax.fused import FusedSGDState
from momentum_optax.moving_average import SmaState
from momentum_optax.quasi_hyperbolic import QhAdamState

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


# 0.2's fields that had another name in 0.1, by state type: {new name: old name}
_RENAMED: dict[type, dict[str, str]] = {
    SmaState: {"buffer": "window"},
    QhAdamState: {"first_moment": "mu", "second_moment": "nu"},
}


def from_v0_1(saved: Any, target: State) -> State:
    """Converts an optimizer state saved by momentum_optax 0.1 into ``target``'s layout.

    Pass the checkpoint as it was read back without a target, and the state of the same
    optimizer built with this version::

        raw = flax.serialization.msgpack_restore(data)        # flax (to_bytes)
        raw = orbax.checkpoint.StandardCheckpointer().restore(path)   # orbax
        state = mo.checkpoints.from_v0_1(raw, opt.init(params))

    What changed between 0.1 and 0.2, and how each is converted:

    - a constant-decay ``trace`` (``mo.sgd(lr, 0.9)``): 0.1's ``TraceState(trace, count=None)``
      is ``optax.TraceState(trace)``; a scheduled decay's ``count`` moves to
      :class:`~momentum_optax.ScheduledTraceState`;
    - ``mo.sgd(lr, 0.0)`` kept no buffer in 0.1 and keeps one (as ``optax.sgd``) now: the
      buffer starts at zero, which a momentum of 0 multiplies away, so the run continues
      exactly;
    - ``mo.fused_sgd``: 0.1 stored ``mo.sgd``'s chain state ``(TraceState, lr state)``, 0.2
      its own :class:`~momentum_optax.FusedSGDState` ``(trace, count)``;
    - :class:`~momentum_optax.SmaState` ``window`` is ``buffer``;
      :class:`~momentum_optax.QhAdamState` ``mu`` / ``nu`` are ``first_moment`` /
      ``second_moment``.

    Everything else must match ``target`` field for field (flax's dicts keyed ``'0'``,
    ``'1'`` and orbax's lists both stand for tuples); the result is checked with
    :func:`check_restored`.

    Args:
        saved: the 0.1 state: nested dicts and lists as flax's ``msgpack_restore`` or
            orbax's ``restore`` without a target give them (or the 0.1 objects).
        target: ``opt.init(params)`` for the same optimizer and params under this version.

    Returns:
        The state in ``target``'s structure, holding ``saved``'s values.

    Raises:
        ValueError: ``saved`` is not a 0.1 state of ``target``'s optimizer; the message
            names the first path that differs.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> saved = {"0": {"trace": {"w": jnp.ones(2)}, "count": None}, "1": {}}  # 0.1's sgd
        >>> state = mo.checkpoints.from_v0_1(saved, mo.sgd(0.1, 0.9).init({"w": jnp.zeros(2)}))
        >>> state[0]
        TraceState(trace={'w': Array([1., 1.], dtype=float32)})
    """
    converted = _convert(saved, target, "state")
    return check_restored(converted, target)


def _is_empty(saved: Any) -> bool:
    """0.1's "nothing stored": ``EmptyState``, flax's ``{}``, orbax's ``None``."""
    return saved is None or (isinstance(saved, (dict, list, tuple)) and len(saved) == 0)


def _entries(saved: Any) -> dict[str, Any]:
    """``saved``'s entries by name: a NamedTuple's fields (0.1's objects), a dict's keys
    (flax), a list's or tuple's indices (orbax, chains), each as a ``str``; none for a leaf."""
    if hasattr(saved, "_fields"):
        return {field: getattr(saved, field) for field in saved._fields}
    if isinstance(saved, dict):
        return {str(key): value for key, value in saved.items()}
    if isinstance(saved, (list, tuple)):
        return {str(i): value for i, value in enumerate(saved)}
    return {}


_REQUIRED = object()


def _child(saved: Any, key: Any, where: str, default: Any = _REQUIRED) -> Any:
    """``saved``'s entry ``key`` (a field name, a dict key or an index), else ``default``;
    without a default a missing entry raises, naming ``where``."""
    entries = _entries(saved)
    if str(key) in entries:
        return entries[str(key)]
    if default is not _REQUIRED:
        return default
    raise ValueError(
        f"the saved {where} has no entry {key!r}; it is not a 0.1 state of this optimizer"
    )


def _convert(saved: Any, target: Any, where: str) -> Any:
    if isinstance(target, FusedSGDState):
        return _fused(saved, target, where)
    if isinstance(target, optax.TraceState) and _is_empty(saved):
        return target  # 0.1's sgd(lr, 0.0) kept no buffer: zeros continue it exactly
    if target is None or isinstance(target, optax.EmptyState):
        if not _is_empty(saved):
            raise ValueError(
                f"the saved {where} holds {sorted(_entries(saved))}, but the target keeps nothing"
            )
        return target
    children, treedef = jax.tree_util.tree_flatten_with_path(
        target, is_leaf=lambda node: node is not target
    )
    if len(children) == 1 and not children[0][0]:  # an array
        if isinstance(saved, (dict, list, tuple)) or saved is None:
            raise ValueError(f"the saved {where} is {type(saved).__name__}, not an array")
        return jnp.asarray(saved)
    renamed = _RENAMED.get(type(target), {})
    used = set()
    values = []
    for (path,), child in children:
        key = getattr(path, "name", getattr(path, "key", getattr(path, "idx", None)))
        old = renamed.get(str(key), key)
        used.add(str(old))
        values.append(_convert(_child(saved, old, where), child, f"{where}{path}"))
    extra = set(_entries(saved)) - used
    if isinstance(target, optax.TraceState) and extra == {"count"}:
        if _child(saved, "count", where) is not None:
            raise ValueError(
                f"the saved {where} has a step count: it was a scheduled momentum, which "
                "this version keeps in ScheduledTraceState; build the optimizer with the "
                "same schedule"
            )
        extra = set()
    if extra:
        raise ValueError(f"the saved {where} has entries {sorted(extra)} the target lacks")
    return jax.tree_util.tree_unflatten(treedef, values)


def _fused(saved: Any, target: FusedSGDState, where: str) -> FusedSGDState:
    """0.1's ``fused_sgd`` state was ``mo.sgd``'s chain: ``(TraceState, lr state)``."""
    momentum, schedule = _child(saved, 0, where), _child(saved, 1, where)
    trace = _convert(_child(momentum, "trace", f"{where}[0]"), target.trace, f"{where}.trace")
    if target.count is None:
        return FusedSGDState(trace=trace, count=None)
    # the step count of whichever was scheduled, the momentum or the learning rate
    counts = [
        c
        for c in (_child(momentum, "count", where, None), _child(schedule, "count", where, None))
        if c is not None
    ]
    if not counts:
        raise ValueError(
            f"the saved {where} has no step count, but the target's schedules need one"
        )
    return FusedSGDState(trace=trace, count=_convert(counts[0], target.count, f"{where}.count"))
