"""The invariants' implementations: each takes a :class:`Case` and fails with its own name.

Each is documented (summary, formula, what breaks it) where it is written; the public
function of :mod:`~momentum_optax.testing.invariants` is made from it and its docstring.
"""

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
    r"""The updates have the gradients' tree structure and leaf shapes, at every step.

    .. math::

        \mathrm{tree}(u_t) = \mathrm{tree}(g_t), \quad \mathrm{shape}(u_t^i) = \mathrm{shape}(g_t^i)

    Their dtypes may differ (a float32 buffer promotes bfloat16 gradients); what the
    parameters keep is :func:`strict_promotion`'s concern.
    """
    for t, (g, u) in enumerate(zip(case.grads, case.trajectory.updates)):
        _compare.shapes_and_dtypes(
            "updates_match_gradients", f"step {t}, updates", u, g, "the gradient", dtypes=False
        )


@_invariant
def state_is_stable(case: Case) -> None:
    r"""The state keeps the structure, shapes and dtypes of ``tx.init(params)`` at every step.

    .. math::

        \mathrm{tree}(s_t) = \mathrm{tree}(s_0), \qquad \mathrm{aval}(s_t^i) = \mathrm{aval}(s_0^i)

    A state that drifts (a buffer promoted to float32, a field that appears after the
    first step) recompiles a jitted step, breaks ``jax.lax.scan`` and checkpoints.
    """
    init = case.tx.init(case.params)
    for t, state in enumerate(case.trajectory.states):
        _compare.shapes_and_dtypes(
            "state_is_stable", f"step {t}, state", state, init, "tx.init(params)"
        )


@_invariant
def finite_in_finite_out(case: Case) -> None:
    r"""Finite gradients give finite updates, at every step.

    .. math::

        g_t \in \mathbb{R}^n \;\Rightarrow\; u_t \in \mathbb{R}^n

    The error names the step, the leaf and the first entry that is NaN or infinite.
    """
    for t, updates in enumerate(case.trajectory.updates):
        _compare.finite("finite_in_finite_out", f"step {t} (finite gradients), updates", updates)


@_invariant
def compiles_once(case: Case) -> None:
    r"""The jitted step is traced once over all the steps (no recompilation).

    .. math::

        \#\mathrm{traces}(\mathrm{jit}(\mathrm{step})) = 1 \text{ over } t = 0, \dots, T-1

    A second trace means the state or the updates change structure, shape, dtype or
    weak type between steps; the error names the step that traced again.
    """
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
    r"""The jitted step gives the eager step's updates and states, up to rounding.

    .. math::

        |u^{\mathrm{jit}}_t - u_t| \le \mathrm{atol} \max(1, \|u_t\|_\infty) + \mathrm{rtol}\, |u_t|

    XLA fuses operations under ``jit``, so the two may differ by rounding (default
    tolerances by dtype: 1e-6 for float32, looser for the 16-bit types). A Python side
    effect in ``update`` (a counter in a closure) runs once under ``jit`` and at every
    eager step: this invariant catches it.
    """
    eager = run(case.step, case.params, case.tx.init(case.params), case.grads)
    _compare_runs("jit_equals_eager", case, case.trajectory, eager, "jit", "eager")


@_invariant
def scan_equals_loop(case: Case) -> None:
    r"""The steps inside ``jax.lax.scan`` give the Python loop's updates and states.

    .. math::

        \mathrm{scan}(\mathrm{step})_t = \mathrm{step}^{(t)} \text{ (within tolerance)}

    ``scan`` needs a state whose structure, shapes and dtypes are fixed.
    """

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
    r"""Inside ``optax.chain`` between a clip and a learning rate, ``tx`` gives its updates alone.

    .. math::

        \mathrm{chain}(\mathrm{clip}, tx, \mathrm{lr}_{0.5})(g_t) = -0.5\, tx(g_t)

    The clip never binds on the gradients drawn, and the learning rate 0.5 scales exactly,
    so the two runs differ only by rounding; both see the same parameters at each step.
    The state inside the chain must also follow the state alone. The expected updates
    are computed as ``optax.scale`` computes them, with jnp's promotion: an integer
    leaf's become float32.
    """
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
        # -lr * u as optax.scale computes it (jnp's promotion: an integer leaf becomes
        # float32), exact in that dtype (lr is a power of two)
        scaled = jax.tree.map(lambda x: -LEARNING_RATE * x, v)
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
    r"""``jax.vmap`` over a batch of parameters gives each member's own run.

    .. math::

        \mathrm{vmap}(\mathrm{step})(\theta^{(b)}, g^{(b)})_b = \mathrm{step}(\theta^{(b)}, g^{(b)})

    The batch holds ``params`` and a perturbed copy, each with its own gradients; the
    state comes from ``jax.vmap(tx.init)``.
    """
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
    r"""A flax checkpoint of the state, restored into ``tx.init(params)``, continues bit for bit.

    .. math::

        \mathrm{from\_bytes}(tx.\mathrm{init}(\theta_0), \mathrm{to\_bytes}(s_k)) = s_k,
        \qquad u^{\mathrm{resumed}}_t = u_t

    The state after step ``steps // 2 - 1`` goes through ``flax.serialization.to_bytes`` /
    ``from_bytes``; the restored state must equal it bit for bit, and the run resumed from
    it must give the uninterrupted run's updates and states exactly. Weakly typed state
    leaves (made from Python scalars) are a common cause of failure: a restored leaf is
    strongly typed, and promotes differently.
    """
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
    r"""Under strict dtype promotion ``tx`` runs and the parameters keep their dtypes.

    .. math::

        \mathrm{dtype}(\mathrm{apply\_updates}(\theta, u_t)) = \mathrm{dtype}(\theta)

    ``init`` and a few eager steps run under ``jax.numpy_dtype_promotion('strict')``, with
    the parameters as given, as float32 and as bfloat16 (float copies), and
    ``optax.apply_updates(params, updates)`` must keep every parameter's dtype (under strict
    promotion it raises when the updates' dtype differs from the parameter's).
    """
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


#: every invariant's name, in the order they are written here (and checked)
NAMES = tuple(CHECKS)
