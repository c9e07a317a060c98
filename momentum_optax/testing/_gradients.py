"""The gradients the checks feed a transformation: drawn, given by the user, or rescaled.

The gradients are shaped like the parameters the loss is differentiated against
(:func:`gradients_like`): ``params`` itself, or its fast half for ``optax.lookahead``'s
``optax.LookaheadParams``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

#: ``gradients`` of the checks: ``None`` (the seeded standard normal sequence of
#: :func:`~momentum_optax.testing.gradient_sequence`), a list of gradient trees, or a
#: callable ``(like, steps, seed) -> list`` of ``steps`` trees shaped like ``like``
Gradients = Sequence[Any] | Callable[[Any, int, int], Sequence[Any]] | None

#: the fraction of a dtype's decimal range that :func:`huge` reaches: 1e30 for float32
_RANGE = 0.78


def gradients_like(params: Any) -> Any:
    """The tree the gradients are shaped like: ``params.fast`` for ``optax.LookaheadParams``.

    ``optax.lookahead`` keeps fast and slow parameters and is given the gradient of the
    loss at the fast ones (its documented use); every other transformation is given
    gradients shaped like its parameters.
    """
    return params.fast if isinstance(params, optax.LookaheadParams) else params


def like_name(params: Any) -> str:
    """How an error names the tree of :func:`gradients_like`."""
    return "params.fast" if isinstance(params, optax.LookaheadParams) else "params"


def draw_gradients(like: Any, steps: int, rng: np.random.Generator) -> list[Any]:
    """``steps`` trees shaped like ``like``: standard normal, in each leaf's dtype."""

    def leaf(x: jax.Array) -> jax.Array:
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            return jnp.zeros_like(x)
        return jnp.asarray(rng.standard_normal(x.shape), x.dtype)

    return [jax.tree.map(leaf, like) for _ in range(steps)]


def check_gradients_arg(gradients: Any) -> Gradients:
    """``gradients`` if it is ``None``, a list or tuple of trees or a callable; else a
    ``TypeError`` naming it."""
    if gradients is None or callable(gradients) or isinstance(gradients, list | tuple):
        return gradients
    raise TypeError(
        "gradients must be None, a list of gradient trees, or a callable (like, steps, seed) "
        f"-> list of gradient trees; got {gradients!r} of type {type(gradients).__name__}."
    )


def _as_gradient(where: str, tree: Any, like: Any, name: str) -> Any:
    """``tree`` with each leaf cast to ``like``'s dtype, or a ``ValueError`` naming ``where``."""
    flat, structure = jax.tree_util.tree_flatten_with_path(tree)
    want_flat, want_def = jax.tree_util.tree_flatten_with_path(like)
    want: Any = want_def  # PyTreeDef compares with ==; its stub says otherwise
    if structure != want:
        raise ValueError(
            f"{where} must have the tree structure of {name}: got {structure}, expected {want}."
        )
    leaves = []
    for (path, x), (_, p) in zip(flat, want_flat):
        dtype = jnp.result_type(p)
        at = f"{where}{jax.tree_util.keystr(path)}"
        if jnp.shape(x) != jnp.shape(p):
            raise ValueError(
                f"{at} has shape {jnp.shape(x)}, but {name}{jax.tree_util.keystr(path)} has "
                f"shape {jnp.shape(p)}."
            )
        if not np.can_cast(jnp.result_type(x), dtype, casting="same_kind"):
            raise ValueError(
                f"{at} is {jnp.result_type(x)}, which does not cast to the {dtype} of "
                f"{name}{jax.tree_util.keystr(path)}."
            )
        leaves.append(jnp.asarray(x, dtype))
    return jax.tree.unflatten(want, leaves)


def gradient_trees(gradients: Gradients, like: Any, steps: int, seed: int, name: str) -> list:
    """The ``steps`` gradient trees of a run, shaped like ``like`` (named ``name``).

    ``None`` draws :func:`draw_gradients` from ``numpy.random.default_rng(seed)``; a list
    must hold exactly ``steps`` trees; a callable is called as ``gradients(like, steps,
    seed)``. Each tree must have ``like``'s structure and shapes, and a dtype that casts to
    its leaf's (``same_kind``: float64 to float32, not float to int); the errors name
    ``gradients``, the step and the leaf.
    """
    if gradients is None:
        return draw_gradients(like, steps, np.random.default_rng(seed))
    trees = gradients(like, steps, seed) if callable(gradients) else gradients
    source = "gradients" if not callable(gradients) else "gradients(like, steps, seed)"
    if not isinstance(trees, list | tuple) or len(trees) != steps:
        got = f"{len(trees)} trees" if isinstance(trees, list | tuple) else repr(trees)
        raise ValueError(f"{source} must be a list of steps={steps} gradient trees; got {got}.")
    return [_as_gradient(f"{source}[{t}]", g, like, name) for t, g in enumerate(trees)]


def huge(dtype: Any) -> float:
    r"""The huge gradient scale of ``dtype``: :math:`10^{\lfloor 0.78 \log_{10} \max \rfloor}`.

    1e30 for float32 and bfloat16, 1e3 for float16, 1e240 for float64: finite, a few times
    larger still stays finite, and its square overflows.
    """
    real = jnp.finfo(dtype)
    return 10.0 ** math.floor(_RANGE * math.log10(float(real.max)))


def scaled_sequences(like: Any, steps: int, seed: int) -> dict[str, list[Any]]:
    """The gradient sequences of ``handles_scale``, by label: zeros, huge and tiny.

    ``zero``: every entry 0. ``huge``: standard normal times :func:`huge` of the leaf's
    dtype (1e30 for float32). ``tiny``: standard normal divided by it (1e-30). Integer leaves
    are zeros throughout.
    """
    base = draw_gradients(like, steps, np.random.default_rng(seed))

    def scaled(factor: Callable[[Any], float]) -> list[Any]:
        def leaf(g: jax.Array) -> jax.Array:
            if not jnp.issubdtype(g.dtype, jnp.inexact):
                return g
            wide = np.complex128 if jnp.issubdtype(g.dtype, jnp.complexfloating) else np.float64
            return jnp.asarray(np.asarray(g, wide) * factor(g.dtype), g.dtype)

        return [jax.tree.map(leaf, g) for g in base]

    return {
        "zero": [jax.tree.map(jnp.zeros_like, g) for g in base],
        "huge": scaled(huge),
        "tiny": scaled(lambda dtype: 1.0 / huge(dtype)),
    }
