"""The invariants' implementations: each takes a :class:`Case` and fails with its own name."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from momentum_optax.testing import _compare
from momentum_optax.testing._run import Case
from momentum_optax.testing._run import draw_gradients
from momentum_optax.testing._run import make_step
from momentum_optax.testing._run import run

#: the chain of :func:`works_in_chain`: a clip that never binds on the gradients drawn, and a
#: learning rate that scales exactly (a power of two)
CLIP, LEARNING_RATE = 100.0, 0.5
CHAIN = f"optax.chain(optax.clip({CLIP}), tx, optax.scale_by_learning_rate({LEARNING_RATE}))"
#: batch members of :func:`vmap_equals_loop`, steps of :func:`strict_promotion`
BATCH, STRICT_STEPS = 2, 2

Check = Callable[[Case], None]
CHECKS: dict[str, Check] = {}


def _invariant(fn: Check) -> Check:
    """Registers ``fn`` under its name; an exception inside it fails the invariant."""
    name = fn.__name__

    @functools.wraps(fn)
    def checked(case: Case) -> None:
        try:
            fn(case)
        except AssertionError:
            raise
        except Exception as error:
            raise AssertionError(f"{name}: raised {type(error).__name__}: {error}") from error

    CHECKS[name] = checked
    return checked


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _take(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


@_invariant
def updates_match_gradients(case: Case) -> None:
    for t, (g, u) in enumerate(zip(case.grads, case.trajectory.updates)):
        _compare.shapes_and_dtypes(
            "updates_match_gradients", f"step {t}, updates", u, g, "the gradient", dtypes=False
        )


@_invariant
def state_is_stable(case: Case) -> None:
    init = case.tx.init(case.params)
    for t, state in enumerate(case.trajectory.states):
        _compare.shapes_and_dtypes(
            "state_is_stable", f"step {t}, state", state, init, "tx.init(params)"
        )


@_invariant
def finite_in_finite_out(case: Case) -> None:
    for t, updates in enumerate(case.trajectory.updates):
        _compare.finite("finite_in_finite_out", f"step {t} (finite gradients), updates", updates)


@_invariant
def compiles_once(case: Case) -> None:
    case.trajectory  # noqa: B018  (the run fills case.traces_after)
    counts = case.traces_after
    if counts[-1] != 1:
        again = next(t for t, n in enumerate(counts) if n > 1)
        _compare.fail(
            "compiles_once",
            f"the jitted step was traced {counts[-1]} times over {case.steps} steps, again at "
            f"step {again}: the state or the updates change structure, shape, dtype or weak "
            "type from step to step.",
        )


def _compare_runs(
    name: str, case: Case, got: Any, want: Any, got_name: str, want_name: str, offset: int = 0
) -> None:
    for i, (u, v, s, w) in enumerate(zip(got.updates, want.updates, got.states, want.states)):
        for what, a, b in (("updates", u, v), ("state", s, w)):
            _compare.close(
                name,
                f"step {offset + i}, {what}",
                a,
                b,
                got_name=got_name,
                want_name=want_name,
                rtol=case.rtol,
                atol=case.atol,
            )


@_invariant
def jit_equals_eager(case: Case) -> None:
    eager = run(case.step, case.params, case.tx.init(case.params), case.grads)
    _compare_runs("jit_equals_eager", case, case.trajectory, eager, "jit", "eager")


@_invariant
def scan_equals_loop(case: Case) -> None:
    def body(carry: Any, inputs: Any) -> Any:
        updates, state, params = case.step(*carry, *inputs)
        return (params, state), (updates, state)

    inputs = (_stack(case.grads), jnp.arange(case.steps, dtype=jnp.int32))
    scan = jax.jit(lambda p, s: jax.lax.scan(body, (p, s), inputs)[1])
    updates, states = scan(case.params, case.tx.init(case.params))
    loop = case.trajectory
    for t in range(case.steps):
        for what, a, b in (("updates", updates, loop.updates), ("state", states, loop.states)):
            _compare.close(
                "scan_equals_loop",
                f"step {t}, {what}",
                _take(a, t),
                b[t],
                got_name="scan",
                want_name="loop",
                rtol=case.rtol,
                atol=case.atol,
            )


@_invariant
def works_in_chain(case: Case) -> None:
    chain = optax.chain(optax.clip(CLIP), case.tx, optax.scale_by_learning_rate(LEARNING_RATE))
    alone = case.trajectory
    chained = run(
        jax.jit(make_step(chain, case.extra_args)),
        case.params,
        chain.init(case.params),
        case.grads,
        given_params=alone.params,
    )
    for t, (u, state, v, w) in enumerate(
        zip(chained.updates, chained.states, alone.updates, alone.states)
    ):
        # -lr * u is exact in the updates' dtype (lr is a power of two)
        scaled = jax.tree.map(
            lambda x: (-LEARNING_RATE * np.asarray(x, np.float64)).astype(np.asarray(x).dtype), v
        )
        for what, a, b in (("updates", u, scaled), ("state", state[1], w)):
            _compare.close(
                "works_in_chain",
                f"step {t}, {what}",
                a,
                b,
                got_name=f"in {CHAIN}" if what == "updates" else "in the chain",
                want_name=f"-{LEARNING_RATE} * alone" if what == "updates" else "alone",
                rtol=case.rtol,
                atol=case.atol,
            )


@_invariant
def vmap_equals_loop(case: Case) -> None:
    members, grads = [case.params], [case.grads]
    for b in range(1, BATCH):
        rng = np.random.default_rng([case.seed, b])
        noise = draw_gradients(case.params, 1, rng)[0]
        members.append(optax.apply_updates(case.params, noise))
        grads.append(draw_gradients(case.params, case.steps, rng))
    batch = _stack(members)
    batched = run(
        jax.jit(jax.vmap(case.step, in_axes=(0, 0, 0, None))),
        batch,
        jax.vmap(case.tx.init)(batch),
        [_stack(list(g)) for g in zip(*grads)],
    )
    for b in range(BATCH):
        alone = (
            case.trajectory
            if b == 0
            else run(case.jitted, members[b], case.tx.init(members[b]), grads[b])
        )
        for t in range(case.steps):
            for what, a, c in (
                ("updates", batched.updates[t], alone.updates[t]),
                ("state", batched.states[t], alone.states[t]),
            ):
                _compare.close(
                    "vmap_equals_loop",
                    f"batch member {b}, step {t}, {what}",
                    _take(a, b),
                    c,
                    got_name="vmap",
                    want_name="alone",
                    rtol=case.rtol,
                    atol=case.atol,
                )


def _weak_leaves(tree: Any) -> list[str]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [jax.tree_util.keystr(p) for p, x in flat if getattr(x, "weak_type", False)]


@_invariant
def checkpoint_continues(case: Case) -> None:
    name, split, loop = "checkpoint_continues", case.steps // 2, case.trajectory
    saved = loop.states[split - 1]
    restored = serialization.from_bytes(case.tx.init(case.params), serialization.to_bytes(saved))
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


@_invariant
def strict_promotion(case: Case) -> None:
    name = "strict_promotion"
    variants: dict[tuple, tuple[str, Any]] = {}
    for label, params in (
        ("the given", case.params),
        ("float32", _float_copy(case.params, jnp.float32)),
        ("bfloat16", _float_copy(case.params, jnp.bfloat16)),
    ):
        variants.setdefault(tuple(x.dtype for x in jax.tree.leaves(params)), (label, params))
    for label, params in variants.values():
        grads = draw_gradients(params, STRICT_STEPS, np.random.default_rng(case.seed))
        where = f"with {label} parameters, init"
        with jax.numpy_dtype_promotion("strict"):
            try:
                state = case.tx.init(params)
                current = params
                for t, g in enumerate(grads):
                    where = f"with {label} parameters, step {t}"
                    _, state, new = case.step(current, state, g, jnp.int32(t))
                    _compare.shapes_and_dtypes(
                        name,
                        f"{where}, optax.apply_updates(params, updates)",
                        new,
                        params,
                        "params",
                    )
                    current = new
            except AssertionError:
                raise
            except Exception as error:
                _compare.fail(
                    name,
                    f"under jax.numpy_dtype_promotion('strict'), {where} raised "
                    f"{type(error).__name__}: {error}",
                )
