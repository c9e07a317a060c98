"""The invariants of the state leaving the run: a checkpoint continues; strict dtype promotion.

:func:`strict_promotion` is opt-in (not among ``invariants.DEFAULT``): stock ``optax.adam``,
``optax.adamw`` and ``optax.MultiSteps`` fail it themselves (optax 0.2.8), so a failure
says whether it was raised inside optax's own code.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from momentum_optax.testing import _compare
from momentum_optax.testing._gradients import draw_gradients
from momentum_optax.testing._gradients import gradients_like
from momentum_optax.testing._registry import invariant
from momentum_optax.testing._run import Case
from momentum_optax.testing._run import extra_at
from momentum_optax.testing._run import run

#: eager steps of each run of :func:`strict_promotion`; leaves it tries one by one at most
STRICT_STEPS, MAX_PROBED_LEAVES = 2, 16
_OPTAX = os.path.dirname(optax.__file__) + os.sep
#: where the frames that are not the culprit's live: jax, numpy and this kit
_NOT_THE_CULPRIT = tuple(
    os.path.dirname(path) + os.sep
    for path in (jax.__file__, np.__file__, __file__)
    if path is not None
)


def _weak_leaves(tree: Any) -> list[str]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [jax.tree_util.keystr(p) for p, x in flat if getattr(x, "weak_type", False)]


def _restore(template: Any, data: bytes) -> Any:
    """``flax.serialization.from_bytes`` into ``template``, typed PRNG keys included.

    Flax cannot serialize a key array: keys go through ``jax.random.key_data`` and come
    back with ``jax.random.wrap_key_data`` in the template key's implementation.
    """
    restored = serialization.from_bytes(_compare.key_data(template), data)
    return jax.tree.map(
        lambda t, x: (
            jax.random.wrap_key_data(x, impl=jax.random.key_impl(t)) if _compare.is_key(t) else x
        ),
        template,
        restored,
    )


@invariant
def checkpoint_continues(case: Case) -> None:
    r"""A flax checkpoint of the state, restored into ``tx.init(params)``, continues bit for bit.

    .. math::

        \mathrm{from\_bytes}(tx.\mathrm{init}(\theta_0), \mathrm{to\_bytes}(s_k)) = s_k,
        \qquad u^{\mathrm{resumed}}_t = u_t

    The state after step ``steps // 2 - 1`` goes through ``flax.serialization.to_bytes`` /
    ``from_bytes`` (a typed PRNG key as its ``jax.random.key_data``, wrapped again on
    restore); the restored state must equal it bit for bit, and the run resumed from it
    must give the uninterrupted run's updates and states exactly. Weakly typed state
    leaves (made from Python scalars) are a common cause of failure: a restored leaf is
    strongly typed, and promotes differently.
    """
    name, split, loop = "checkpoint_continues", case.steps // 2, case.trajectory
    saved = loop.states[split - 1]
    restored = _restore(case.tx.init(case.params), serialization.to_bytes(_compare.key_data(saved)))
    where = f"after step {split - 1}, the state restored into tx.init(params)"
    _compare.bits(name, where, restored, saved, got_name="restored", want_name="saved")
    weak = _weak_leaves(saved)
    hint = f" (weakly typed in the saved state, not once restored: {weak})" if weak else ""
    resumed = run(case.jitted, loop.params[split], restored, case.grads[split:], start=split)
    for i, t in enumerate(range(split, case.steps)):
        for what, a, b in (
            ("updates", resumed.updates[i], loop.updates[t]),
            ("state", resumed.states[i], loop.states[t]),
        ):
            try:
                _compare.bits(
                    name,
                    f"step {t} (resumed after step {split - 1}), {what}",
                    a,
                    b,
                    got_name="resumed",
                    want_name="the uninterrupted run",
                )
            except AssertionError as error:
                raise AssertionError(f"{error}{hint}") from None


def _float_copy(params: Any, dtype: Any) -> Any:
    return jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params
    )


def _raised_at(error: Exception) -> str:
    """Where ``error`` was raised, outside jax and numpy; whether that is inside optax."""
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.startswith(_NOT_THE_CULPRIT)
    ]
    if not frames:
        return ""
    frame = frames[-1]
    if frame.filename.startswith(_OPTAX):
        place = f"optax/{frame.filename[len(_OPTAX) :]}:{frame.lineno}, in {frame.name}"
        return (
            f" (raised inside optax, at {place}: optax itself fails here under strict "
            "promotion; stock optax.adam, optax.adamw and optax.MultiSteps fail it too)"
        )
    return f" (raised at {frame.filename}:{frame.lineno}, in {frame.name})"


def _mismatch(updates: Any, params: Any) -> str:
    """The first leaf whose updates' dtype is not the parameter's, as a sentence."""
    flat_u = jax.tree_util.tree_flatten_with_path(updates)[0]
    for (path, u), p in zip(flat_u, jax.tree.leaves(params)):
        if jnp.result_type(u) != jnp.result_type(p):
            key = jax.tree_util.keystr(path)
            return (
                f": updates{key} is {jnp.result_type(u)}, but params{key} is {jnp.result_type(p)}"
            )
    return ""


def _strict_failure(case: Case, params: Any) -> tuple[str, bool] | None:
    """Why ``init`` and :data:`STRICT_STEPS` eager steps fail under strict promotion, and
    whether that names the leaf; ``None`` when they run."""
    grads = draw_gradients(gradients_like(params), STRICT_STEPS, np.random.default_rng(case.seed))
    what = "tx.init(params)"
    with jax.numpy_dtype_promotion("strict"):
        try:
            state = case.tx.init(params)
            current = params
            for t, g in enumerate(grads):
                what = f"step {t}, tx.update"
                extra = extra_at(case.extra_args, current, jnp.int32(t))
                updates, state = case.tx.update(g, state, current, **extra)
                what = f"step {t}, optax.apply_updates(params, updates)"
                try:
                    new = optax.apply_updates(current, updates)
                except Exception as error:
                    leaf = _mismatch(updates, current)
                    return f"{what} raised {type(error).__name__}{leaf or f': {error}'}", bool(leaf)
                _compare.shapes_and_dtypes("strict_promotion", f"{what}", new, params, "params")
                current = new
        except AssertionError as error:  # the leaf's dtype changed: named
            return str(error).removeprefix("strict_promotion: ").removesuffix("."), True
        except Exception as error:
            return f"{what} raised {type(error).__name__}: {error}{_raised_at(error)}", False
    return None


def _culprit(case: Case, passing: Any, failing: Any) -> str:
    """The first leaf whose dtype alone, among ``passing``'s, makes the run fail."""
    flat, structure = jax.tree_util.tree_flatten_with_path(passing)
    others = jax.tree.leaves(failing)
    for i, (path, leaf) in enumerate(flat[:MAX_PROBED_LEAVES]):
        if jnp.result_type(leaf) == jnp.result_type(others[i]):
            continue
        mixed = [x for _, x in flat]
        mixed[i] = others[i]
        if _strict_failure(case, jax.tree.unflatten(structure, mixed)) is not None:
            key = jax.tree_util.keystr(path)
            return f"; the first leaf whose {jnp.result_type(others[i])} alone fails: params{key}"
    return ""


@invariant
def strict_promotion(case: Case) -> None:
    r"""Under strict dtype promotion ``tx`` runs and the parameters keep their dtypes (opt-in).

    .. math::

        \mathrm{dtype}(\mathrm{apply\_updates}(\theta, u_t)) = \mathrm{dtype}(\theta)

    ``init`` and a few eager steps run under ``jax.numpy_dtype_promotion('strict')``, with
    the parameters as given, as float32 and as bfloat16 (float copies), and
    ``optax.apply_updates(params, updates)`` must keep every parameter's dtype (under strict
    promotion it raises when the updates' dtype differs from the parameter's). Not in the
    default set (``invariants.DEFAULT``): stock ``optax.adam``, ``optax.adamw`` and
    ``optax.MultiSteps`` fail it themselves, so check it with ``only=`` when a
    transformation promises it. The error names the leaf (the updates' leaf whose dtype
    differs from the parameter's, or the first leaf whose dtype alone makes ``tx`` raise)
    and says when the error was raised inside optax's own code.
    """
    variants: dict[tuple, tuple[str, Any]] = {}
    for label, params in (
        ("the given", case.params),
        ("float32", _float_copy(case.params, jnp.float32)),
        ("bfloat16", _float_copy(case.params, jnp.bfloat16)),
    ):
        variants.setdefault(tuple(x.dtype for x in jax.tree.leaves(params)), (label, params))
    failures = [(label, p, _strict_failure(case, p)) for label, p in variants.values()]
    passing = next((p for _, p, failure in failures if failure is None), None)
    for label, params, failure in failures:
        if failure is None:
            continue
        message, located = failure
        if located:
            leaf = ""
        elif passing is None:
            leaf = "; it fails with every parameter dtype tried, not for one leaf's dtype"
        else:
            leaf = _culprit(case, passing, params)
        _compare.fail(
            "strict_promotion",
            f"under jax.numpy_dtype_promotion('strict'), with {label} parameters, {message}{leaf}.",
        )
