"""Tree helpers shared by the transformations: structure checks and per-leaf updates."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

_MAX_LISTED = 5


def _shape(x: Any) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else jnp.shape(x)


def _paths(tree: Any) -> list[str]:
    return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _listing(paths: list[str]) -> str:
    shown = ", ".join(paths[:_MAX_LISTED])
    more = len(paths) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _is_none(x: Any) -> bool:
    return x is None


def structure(tree: Any) -> Any:
    """The tree structure of ``tree`` with its ``None`` entries as leaves.

    An update tree may hold ``None`` where a parameter is frozen (optax passes
    such entries through); treating ``None`` as a leaf lets such a tree be
    matched against a buffer that holds an array there.
    """
    return jax.tree_util.tree_structure(tree, is_leaf=_is_none)


def _is_leaf(x: Any) -> bool:
    return x is None or jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(x))


def check_tree_match(updates: Any, reference: Any, *, what: str, name: str = "updates") -> None:
    """Raises ``ValueError`` unless ``updates`` has ``reference``'s structure and leaf shapes.

    A ``None`` entry of ``updates`` matches whatever ``reference`` holds there
    (it passes through, as in optax). Runs at trace time (structure and shapes
    are static), so it costs nothing in a compiled step. Without it a (3, 3)
    gradient would silently broadcast against a (3,) momentum buffer and
    reshape the state.

    Args:
      updates: the incoming gradient/update tree.
      reference: the tree it must match (a momentum buffer in the state).
      what: how the error names ``reference``.
      name: how the error names ``updates``.
    """
    updates_def: Any = structure(updates)
    try:
        references = updates_def.flatten_up_to(reference)
    except (ValueError, TypeError):
        references = None
    flat_updates = jax.tree_util.tree_flatten_with_path(updates, is_leaf=_is_none)[0]
    if references is not None:
        for (_, update), ref in zip(flat_updates, references):
            if update is not None and not _is_leaf(ref):
                references = None  # a leaf of the updates where the reference has a subtree
                break
    if references is None:
        got, want = _paths(updates), _paths(reference)
        missing = [p for p in want if p not in set(got)]
        extra = [p for p in got if p not in set(want)]
        parts = []
        if missing:
            parts.append(f"missing {_listing(missing)}")
        if extra:
            parts.append(f"unexpected {_listing(extra)}")
        if not parts:
            parts.append(
                f"same leaf paths in other containers: {updates_def} vs {structure(reference)}"
            )
        raise ValueError(
            f"the structure of {name} differs from {what}: {'; '.join(parts)}. "
            "Was the state initialised from other parameters?"
        )
    for (path, update), ref in zip(flat_updates, references):
        if update is None:
            continue
        if ref is None:
            raise ValueError(
                f"{name}{jax.tree_util.keystr(path)} is an array but {what} holds None there "
                "(the state was initialised from parameters with None at that place)."
            )
        if _shape(update) != _shape(ref):
            raise ValueError(
                f"{name}{jax.tree_util.keystr(path)} has shape {_shape(update)} but "
                f"{what} has shape {_shape(ref)} there; refusing to broadcast."
            )


def a(name: str) -> str:
    """``name`` with its indefinite article: "a TraceState", "an EmaState"."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _type_name(x: Any) -> str:
    if isinstance(x, jax.Array):  # a concrete array or a tracer
        return "jax.Array"
    if isinstance(x, np.ndarray):
        return "numpy.ndarray"
    return type(x).__name__


def _is_named_tuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _shaped_like_updates(state: Any) -> bool:
    """Whether ``state`` is a tree of arrays in dicts, lists and tuples (or a mapping such
    as ``nnx.State``), the shape of parameters and gradients: optimizer states are
    named tuples."""
    if _is_named_tuple(state):
        return False
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    if not flat or not all(hasattr(leaf, "shape") and hasattr(leaf, "dtype") for _, leaf in flat):
        return False
    if isinstance(state, Mapping):
        return True
    return not any(isinstance(key, jax.tree_util.GetAttrKey) for path, _ in flat for key in path)


_RIGHT_CALL = (
    "Call update(updates, state, params): the gradients (or incoming updates) first, "
    "then the state, then the parameters."
)


def check_not_updates(state: Any, owner: str) -> None:
    """Raises ``TypeError`` when ``state`` is what ``update(grads, params)`` passes there.

    The parameters passed where the state goes arrive either as they are (a tree of
    arrays), or, inside ``optax.chain``, which iterates its state, as one of their keys (a
    ``str``) or rows. A legitimate state is never refused: a ``NamedTuple`` (optax's
    states, ``optax.EmptyState`` included) or a tree holding one passes, and
    :func:`check_state` asks only once ``state`` is not its transformation's own.
    """
    if isinstance(state, str):
        raise TypeError(
            "the second argument of update is the optimizer state made by init(params); "
            f"{owner} got the str {state!r} as its state: a key of a dict (or another "
            "mapping) passed as the state, which optax.chain iterates, so a tree shaped like "
            f"the parameters/gradients was passed where the state goes. {_RIGHT_CALL}"
        )
    if _shaped_like_updates(state):
        shape = f" of shape {tuple(state.shape)}" if hasattr(state, "shape") else ""
        raise TypeError(
            f"the second argument of update is the optimizer state made by {owner}(...).init"
            f"(params); got {a(_type_name(state))}{shape}, a tree shaped like the "
            f"parameters/gradients (arrays, no optimizer state in it). {_RIGHT_CALL}"
        )


def check_state(state: Any, expected: type, owner: str) -> None:
    """Raises ``TypeError`` unless ``state`` is an ``expected``, as ``owner``'s init makes.

    Every transformation's state goes through here, so it is also where ``update(grads,
    params)`` (the parameters where the state goes) is refused, in those words
    (:func:`check_not_updates`).
    """
    if not isinstance(state, expected):
        check_not_updates(state, owner)
        want, got = expected.__name__, type(state).__name__
        if want == got:  # two classes of one name (e.g. another library's state)
            want = f"{expected.__module__}.{expected.__qualname__}"
            got = f"{type(state).__module__}.{type(state).__qualname__}"
        raise TypeError(
            f"state must be the {want} returned by {owner}(...).init; "
            f"got {a(got)}. Was it made by another transformation, "
            "or restored from a checkpoint without a target?"
        )


def check_count(state: Any, scheduled: bool, owner: str, coefficient: str) -> None:
    """Raises ``TypeError`` when ``state.count`` belongs to the other configuration.

    A state made with a constant ``coefficient`` keeps ``count=None``; one made
    with a schedule keeps the int32 step count the schedule reads. The message
    says which the state is and how to continue it.
    """
    kind = type(state).__name__
    if scheduled and state.count is None:
        raise TypeError(
            f"this {kind} has no step count: it was made with a constant {coefficient}; "
            f"{owner} here has a scheduled {coefficient}, which reads the step count: continue "
            "with state._replace(count=jnp.asarray(steps_taken, jnp.int32))."
        )
    if not scheduled and state.count is not None:
        raise TypeError(
            f"this {kind} has a step count: it was made with a scheduled {coefficient}; "
            f"{owner} here has a constant {coefficient}, which keeps count=None: continue "
            "with state._replace(count=None)."
        )


def check_made_alike(state: Any, owner: str, setting: str, made: Any, here: Any) -> None:
    """Raises ``TypeError`` when ``state`` was made with another ``setting`` than ``owner``
    has here (read from the state's own structure), saying which."""
    if made != here:
        raise TypeError(
            f"this {type(state).__name__} was made with {setting}={made!r}; {owner} here has "
            f"{setting}={here!r}. Build {owner} as the state was made, or start from its "
            "init(params)."
        )


def check_inputs(
    updates: Any,
    state: Any,
    expected: type,
    owner: str,
    field: str,
    *,
    reference: Any = None,
    name: str = "updates",
    detail: str = "",
    scheduled: bool | None = None,
    coefficient: str = "coefficient",
) -> None:
    """The two checks that open an ``update``: the state's type, then the updates' tree.

    ``updates`` must match ``state.<field>`` (or ``reference``, when the field's
    leaves are not shaped like the parameters, with ``detail`` saying how); the
    messages name ``owner``, ``expected`` and the field, e.g. "the structure of
    updates differs from TraceState.trace". With ``scheduled`` given, the
    state's ``count`` is checked against it (:func:`check_count`).
    """
    check_state(state, expected, owner)
    if scheduled is not None:
        check_count(state, scheduled, owner, coefficient)
    if reference is None:
        reference = getattr(state, field)
    check_tree_match(updates, reference, what=f"{expected.__name__}.{field}{detail}", name=name)


def compute_dtype(*arrays: Any) -> Any:
    """The dtype arithmetic runs in: the inputs' promotion, at least float32.

    Coefficients such as 0.999 are thus applied in float32 even to bfloat16
    buffers (in bfloat16, 0.999 rounds to 1.0). For float32 inputs this is a
    no-op, so in float32 the results are optax's bit for bit. The dtypes are
    worked out under standard promotion, so the policy holds under
    ``jax.numpy_dtype_promotion('strict')`` too (the arithmetic itself then
    runs on arrays that all have this dtype).
    """
    with jax.numpy_dtype_promotion("standard"):
        return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def result_dtype(*arrays: Any) -> Any:
    """The dtype an update comes out in: the promotion of ``arrays`` (standard rules)."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*arrays)


def is_trainable(x: Any) -> bool:
    """Whether a leaf is trained: a floating or complex array (an integer or boolean one
    is passed over, its update 0)."""
    return bool(jnp.issubdtype(jnp.result_type(x), jnp.inexact))


def leafwise(fn: Callable[..., tuple], updates: Any, *buffers: Any) -> Any:
    """Applies a transformation's per-leaf formula under the library's one dtype policy.

    ``fn(g, *bufs) -> (u, *new_bufs)`` is pure math on one leaf of ``updates``
    and the matching leaves of ``buffers``. It receives every input cast to
    :func:`compute_dtype` of them all (at least float32); its update ``u`` is
    rounded once to the gradient's dtype (so ``optax.apply_updates`` keeps the
    parameters' dtype, also under strict promotion and with a float32 buffer
    for bfloat16 parameters), and each new buffer back to its own buffer's
    dtype, so a state's dtypes never change. ``None`` leaves of ``updates`` pass
    through and leave their buffers as they were. An integer (or boolean) leaf of
    ``updates`` is not trained: its update is 0 in its own dtype and its buffers stay as
    they were, so the parameter it belongs to (a step counter, an index table) is left
    unchanged by ``optax.apply_updates``, as ``None`` leaves are.

    Returns:
        The new updates when there are no buffers, else the tuple
        ``(updates, *new_buffers)``.
    """
    n = 1 + len(buffers)

    def leaf(g: Any, *bufs: Any) -> tuple:
        if not is_trainable(g):
            return (jnp.zeros_like(g), *bufs)
        dtype = compute_dtype(g, *bufs)
        out = fn(*(jnp.asarray(x, dtype) for x in (g, *bufs)))
        if len(out) != n:
            raise ValueError(f"the leaf formula returned {len(out)} values for {n} (u, *buffers).")
        update, *new = out
        update = jnp.asarray(update).astype(result_dtype(g))
        return (update, *(jnp.asarray(v).astype(b.dtype) for v, b in zip(new, bufs)))

    for i, buffer in enumerate(buffers[1:], start=1):
        check_tree_match(buffer, buffers[0], what="the first buffer", name=f"buffer {i}")
    treedef: Any = structure(updates)
    leaves = treedef.flatten_up_to(updates)
    if not leaves:
        return (updates, *buffers) if buffers else updates
    # the first buffer was checked against the updates by check_inputs, the others here;
    # a None update passes through and leaves its buffers as they were
    columns = [treedef.flatten_up_to(b) for b in buffers]
    outputs = [leaf(*x) if x[0] is not None else x for x in zip(leaves, *columns)]
    trees = tuple(treedef.unflatten(list(column)) for column in zip(*outputs))
    return trees if buffers else trees[0]


def keep_where_none(new: Any, old: Any) -> Any:
    """``new``, with ``old``'s entries where ``new`` holds ``None`` (a frozen leaf)."""
    treedef: Any = structure(new)
    pairs = zip(treedef.flatten_up_to(new), treedef.flatten_up_to(old))
    return treedef.unflatten([o if n is None else n for n, o in pairs])


def vdot(tree_a: Any, tree_b: Any) -> jax.Array:
    """Real inner product of two trees, accumulated in float32 (or wider).

    ``optax.tree.vdot`` accumulates in the leaves' own dtype; with bfloat16
    updates that rounds every partial sum to 8 bits of mantissa, which can flip
    the sign of a restart test, hence this one. It is a sum of products rather
    than ``jnp.vdot``, so a leaf sharded on an explicit mesh reduces to a
    replicated scalar without an ``out_sharding``.
    """

    def leaf(a: Any, b: Any) -> jax.Array:
        dtype = compute_dtype(a, b)
        return jnp.sum(jnp.real(jnp.conj(jnp.asarray(a, dtype)) * jnp.asarray(b, dtype)))

    treedef = structure(tree_b)  # a None entry of either tree (a frozen leaf) adds nothing
    pairs = zip(treedef.flatten_up_to(tree_a), treedef.flatten_up_to(tree_b))
    products = [leaf(a, b) for a, b in pairs if a is not None and b is not None]
    return sum(products, jnp.zeros([], jnp.float32))


def chain(
    *transforms: optax.GradientTransformation, owner: str
) -> optax.GradientTransformationExtraArgs:
    """``optax.chain(*transforms)`` whose ``update`` first refuses, in
    :func:`check_not_updates`'s words, a state that is not a chain's (a tuple of the parts'
    states): the parameters passed where the state goes would otherwise meet optax's "The
    number of updates and states has to be the same in chain!". Init and the state are
    ``optax.chain``'s."""
    inner = optax.chain(*transforms)

    def update(
        updates: optax.Updates, state: Any, params: optax.Params | None = None, **extra: Any
    ) -> tuple[optax.Updates, Any]:
        if not isinstance(state, (tuple, list)):
            check_not_updates(state, owner)
        return inner.update(updates, state, params, **extra)

    return optax.GradientTransformationExtraArgs(inner.init, update)
