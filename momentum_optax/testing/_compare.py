"""Tree comparisons whose failures name the invariant, the step and the leaf.

A typed PRNG key leaf (``jax.random.key``, as ``optax.add_noise`` keeps) is compared through
its ``jax.random.key_data``: NumPy cannot hold a key, its raw ``uint32`` words it can.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_MAX_LISTED = 5

#: default rtol (and atol, relative to the leaf's scale) of a comparison, by the leaf's dtype:
#: about ten units in the last place for float32, a few for the 16-bit types
TOLERANCES = {
    np.dtype(jnp.float64): 1e-12,
    np.dtype(jnp.float32): 1e-6,
    np.dtype(jnp.float16): 4e-3,
    np.dtype(jnp.bfloat16): 3e-2,
}


def fail(invariant: str, detail: str) -> None:
    """Raises the ``AssertionError`` of a broken invariant."""
    raise AssertionError(f"{invariant}: {detail}")


def is_key(x: Any) -> bool:
    """Whether ``x`` is an array of typed PRNG keys (``jax.random.key``)."""
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def key_data(tree: Any) -> Any:
    """``tree`` with every typed PRNG key leaf replaced by its ``jax.random.key_data``."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def _flat(tree: Any, *, keys: bool = False) -> list[tuple[str, Any]]:
    """``(path, leaf)`` pairs; key leaves as their key data unless ``keys``."""
    flat = jax.tree_util.tree_flatten_with_path(tree if keys else key_data(tree))[0]
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in flat]


def _listing(paths: list[str]) -> str:
    more = len(paths) - _MAX_LISTED
    return ", ".join(paths[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def _describe(x: Any) -> str:
    return f"{jnp.result_type(x)}{list(jnp.shape(x))}"


def structure(invariant: str, where: str, got: Any, want: Any, want_name: str) -> None:
    """Fails unless ``got`` has the tree structure of ``want``; names the differing paths."""
    got_def: Any = jax.tree.structure(got)
    want_def: Any = jax.tree.structure(want)
    if got_def == want_def:
        return
    got_paths, want_paths = [p for p, _ in _flat(got)], [p for p, _ in _flat(want)]
    missing = [p for p in want_paths if p not in set(got_paths)]
    extra = [p for p in got_paths if p not in set(want_paths)]
    parts = [f"missing {_listing(missing)}"] if missing else []
    parts += [f"unexpected {_listing(extra)}"] if extra else []
    if not parts:
        parts = [f"the same paths in other containers: {got_def} vs {want_def}"]
    fail(invariant, f"{where}: the structure differs from {want_name} ({'; '.join(parts)}).")


def shapes_and_dtypes(
    invariant: str, where: str, got: Any, want: Any, want_name: str, *, dtypes: bool = True
) -> None:
    """Fails unless the leaves of ``got`` have the shapes (and dtypes) of ``want``'s."""
    structure(invariant, where, got, want, want_name)
    for (path, a), (_, b) in zip(_flat(got, keys=True), _flat(want, keys=True)):
        same = jnp.shape(a) == jnp.shape(b)
        if dtypes:
            same = same and jnp.result_type(a) == jnp.result_type(b)
        if not same:
            fail(invariant, f"{where}{path} is {_describe(a)}, but {want_name} is {_describe(b)}.")


def finite(invariant: str, where: str, tree: Any) -> None:
    """Fails if a floating leaf of ``tree`` holds a NaN or an infinity."""
    for path, leaf in _flat(tree):
        x = np.asarray(leaf)
        if jnp.issubdtype(x.dtype, jnp.inexact) and not np.all(np.isfinite(x)):
            bad = np.argwhere(~np.isfinite(x))
            index = tuple(int(i) for i in bad[0])
            fail(
                invariant,
                f"{where}{path} is not finite: {len(bad)} of {x.size} entries, the first "
                f"{x[index]} at index {index}.",
            )


def _tolerance(dtype: Any, value: float | None) -> float:
    if value is not None:
        return value
    real = jnp.finfo(dtype).dtype  # a complex dtype's parts: complex64 -> float32
    return TOLERANCES.get(np.dtype(real), TOLERANCES[np.dtype(jnp.float32)])


def close(
    invariant: str,
    where: str,
    got: Any,
    want: Any,
    *,
    got_name: str,
    want_name: str,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Fails unless every leaf has ``|got - want| <= atol * scale + rtol * |want|``.

    ``scale`` is ``max(1, max |want|)`` over the leaf; a tolerance left at ``None``
    is the leaf dtype's entry of :data:`TOLERANCES` (a complex dtype's: its parts').
    Complex leaves compare as complex, ``|got - want|`` the modulus. Integer and
    boolean leaves must be equal; equal infinities count as close.
    """
    shapes_and_dtypes(invariant, where, got, want, want_name)
    for (path, a), (_, b) in zip(_flat(got), _flat(want)):
        dtype = jnp.result_type(b)
        if not jnp.issubdtype(dtype, jnp.inexact):
            if not np.array_equal(np.asarray(a), np.asarray(b)):
                fail(invariant, f"{where}{path}: {got_name} {a} differs from {want_name} {b}.")
            continue
        # complex leaves as complex: the error is the modulus of the difference
        wide = np.complex128 if jnp.issubdtype(dtype, jnp.complexfloating) else np.float64
        x, y = np.asarray(a, wide), np.asarray(b, wide)
        if x.size == 0:
            continue
        r, t = _tolerance(dtype, rtol), _tolerance(dtype, atol)
        scale = max(1.0, float(np.max(np.abs(y[np.isfinite(y)]), initial=0.0)))
        with np.errstate(invalid="ignore"):
            error = np.abs(x - y)
            bad = ~((error <= t * scale + r * np.abs(y)) | (x == y) | (np.isnan(x) & np.isnan(y)))
        if np.any(bad):
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            fail(
                invariant,
                f"{where}{path}: {got_name} and {want_name} differ by "
                f"{float(np.max(np.where(bad, error, 0.0))):.3g} (first at index {index}: "
                f"{got_name} {x[index]:.9g}, {want_name} {y[index]:.9g}); allowed "
                f"{t:g} * {scale:.3g} + {r:g} * |{want_name}| ({dtype}).",
            )


def bits(invariant: str, where: str, got: Any, want: Any, *, got_name: str, want_name: str) -> None:
    """Fails unless every leaf of ``got`` equals ``want``'s bit for bit (shape and dtype too)."""
    shapes_and_dtypes(invariant, where, got, want, want_name)
    for (path, a), (_, b) in zip(_flat(got), _flat(want)):
        x, y = np.asarray(a), np.asarray(b)
        if x.tobytes() != y.tobytes():
            rows_x = np.ascontiguousarray(x).reshape(-1).view(np.uint8).reshape(x.size, -1)
            rows_y = np.ascontiguousarray(y).reshape(-1).view(np.uint8).reshape(y.size, -1)
            first = int(np.argmax(np.any(rows_x != rows_y, axis=1)))
            index = tuple(int(i) for i in np.unravel_index(first, x.shape))
            fail(
                invariant,
                f"{where}{path} is not bit-identical: {got_name} {x[index]!r} vs "
                f"{want_name} {y[index]!r} at index {index}.",
            )
