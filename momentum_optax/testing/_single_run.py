"""The invariants of one run: the updates fit, the state is stable, finite at any scale, one
trace."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from momentum_optax.testing import _compare
from momentum_optax.testing._gradients import huge
from momentum_optax.testing._gradients import scaled_sequences
from momentum_optax.testing._registry import invariant
from momentum_optax.testing._run import Case
from momentum_optax.testing._run import run


@invariant
def updates_match_gradients(case: Case) -> None:
    r"""The updates have the gradients' tree structure and leaf shapes, at every step.

    .. math::

        \mathrm{tree}(u_t) = \mathrm{tree}(g_t), \quad \mathrm{shape}(u_t^i) = \mathrm{shape}(g_t^i)

    Their dtypes may differ (a float32 buffer promotes bfloat16 gradients); what the
    parameters keep is :func:`strict_promotion`'s concern. For ``optax.lookahead``, whose
    parameters are an ``optax.LookaheadParams`` and whose gradients are those of its fast
    half, the updates must have the parameters' structure (fast and slow), as
    ``optax.apply_updates`` needs.
    """
    lookahead = isinstance(case.params, optax.LookaheadParams)
    for t, (g, u) in enumerate(zip(case.grads, case.trajectory.updates)):
        want, want_name = (case.params, "params") if lookahead else (g, "the gradient")
        _compare.shapes_and_dtypes(
            "updates_match_gradients", f"step {t}, updates", u, want, want_name, dtypes=False
        )


@invariant
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


def _all_finite(tree: object) -> bool:
    leaves = jax.tree.leaves(_compare.key_data(tree))
    return all(
        bool(np.all(np.isfinite(np.asarray(x))))
        for x in leaves
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    )


@invariant
def finite_in_finite_out(case: Case) -> None:
    r"""Finite gradients give finite updates, at every step.

    .. math::

        g_0, \dots, g_t \in \mathbb{R}^n \;\Rightarrow\; u_t \in \mathbb{R}^n

    The error names the step, the leaf and the first entry that is NaN or infinite. With
    ``gradients=`` that hold non-finite entries, the steps from the first such gradient on
    are not checked (what a transformation does with them is its own choice).
    """
    for t, (g, updates) in enumerate(zip(case.grads, case.trajectory.updates)):
        if not _all_finite(g):
            break
        _compare.finite("finite_in_finite_out", f"step {t} (finite gradients), updates", updates)


@invariant
def handles_scale(case: Case) -> None:
    r"""Gradients of every scale give finite updates: all zeros, huge (1e30) and tiny (1e-30).

    .. math::

        g_t = 0, \quad g_t = 10^{30} z_t, \quad g_t = 10^{-30} z_t \;\Rightarrow\;
        u_t \in \mathbb{R}^n, \qquad z_t^i \sim \mathcal{N}(0, 1)

    Three jitted runs from ``tx.init(params)``, each of ``steps`` steps: every gradient
    zero; the standard normal sequence times 1e30; the same divided by 1e30 (for float32
    and bfloat16 leaves; in general :math:`10^{\lfloor 0.78 \log_{10} \max \rfloor}` of the
    leaf's dtype, 1e3 for float16). The parameters stay at ``params`` (the updates are not
    applied), so only the gradients' scale changes. A normalisation ``g / ||g||`` gives
    0/0 = NaN on a zero gradient, and a norm computed as ``sqrt(sum(g**2))`` overflows at
    1e30 (to ``inf``, and ``g / inf`` is 0, which is finite) or underflows at 1e-30 (to 0,
    and ``g / 0`` is not): each is caught here, with its sequence, step and leaf named.
    """
    labels = {
        "zero": "zero gradients (every entry 0)",
        "huge": f"huge gradients (standard normal times {huge(jnp.float32):.0e} for float32)",
        "tiny": f"tiny gradients (standard normal times {1 / huge(jnp.float32):.0e} for float32)",
    }
    fixed = [case.params] * case.steps
    for key, grads in scaled_sequences(case.like, case.steps, case.seed).items():
        scaled = run(case.jitted, case.params, case.tx.init(case.params), grads, given_params=fixed)
        for t, updates in enumerate(scaled.updates):
            _compare.finite("handles_scale", f"{labels[key]}, step {t}, updates", updates)


@invariant
def compiles_once(case: Case) -> None:
    r"""The jitted step is traced once over all the steps (no recompilation).

    .. math::

        \#\mathrm{traces}(\mathrm{jit}(\mathrm{step})) = 1 \text{ over } t = 0, \dots, T-1

    A second trace means the state or the updates change structure, shape, dtype or
    weak type between steps; the error names the step that traced again.
    """
    counts = case.traces_after
    if counts[-1] != 1:
        again = next(t for t, n in enumerate(counts) if n > 1)
        _compare.fail(
            "compiles_once",
            f"the jitted step was traced {counts[-1]} times over {case.steps} steps, again at "
            f"step {again}: the state or the updates change structure, shape, dtype or weak "
            "type from step to step.",
        )
