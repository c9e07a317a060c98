"""The invariants that run ``tx`` another way and compare: eager, scan, in a chain, vmapped."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from momentum_optax.testing import _compare
from momentum_optax.testing._gradients import draw_gradients
from momentum_optax.testing._gradients import gradients_like
from momentum_optax.testing._registry import compare_runs
from momentum_optax.testing._registry import invariant
from momentum_optax.testing._registry import stack
from momentum_optax.testing._registry import take
from momentum_optax.testing._run import Case
from momentum_optax.testing._run import make_step
from momentum_optax.testing._run import run

#: the chain of :func:`works_in_chain`: a clip that never binds on the gradients drawn, and a
#: learning rate that scales exactly (a power of two)
CLIP, LEARNING_RATE = 100.0, 0.5
CHAIN = f"optax.chain(optax.clip({CLIP}), tx, optax.scale_by_learning_rate({LEARNING_RATE}))"
#: batch members of :func:`vmap_equals_loop`
BATCH = 2


@invariant
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
    compare_runs("jit_equals_eager", case, case.trajectory, eager, "jit", "eager")


@invariant
def scan_equals_loop(case: Case) -> None:
    r"""The steps inside ``jax.lax.scan`` give the Python loop's updates and states.

    .. math::

        \mathrm{scan}(\mathrm{step})_t = \mathrm{step}^{(t)} \text{ (within tolerance)}

    ``scan`` needs a state whose structure, shapes and dtypes are fixed.
    """

    def body(carry: Any, inputs: Any) -> Any:
        updates, state, params = case.step(*carry, *inputs)
        return (params, state), (updates, state)

    inputs = (stack(case.grads), jnp.arange(case.steps, dtype=jnp.int32))
    scan = jax.jit(lambda p, s: jax.lax.scan(body, (p, s), inputs)[1])
    updates, states = scan(case.params, case.tx.init(case.params))
    loop = case.trajectory
    for t in range(case.steps):
        for what, a, b in (("updates", updates, loop.updates), ("state", states, loop.states)):
            _compare.close(
                "scan_equals_loop",
                f"step {t}, {what}",
                take(a, t),
                b[t],
                got_name="scan",
                want_name="loop",
                rtol=case.rtol,
                atol=case.atol,
            )


@invariant
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


@invariant
def vmap_equals_loop(case: Case) -> None:
    r"""``jax.vmap`` over a batch of parameters gives each member's own run.

    .. math::

        \mathrm{vmap}(\mathrm{step})(\theta^{(b)}, g^{(b)})_b = \mathrm{step}(\theta^{(b)}, g^{(b)})

    The batch holds ``params`` and a perturbed copy, each with its own gradients (the
    copy's drawn from ``[seed, 1]``; with ``gradients=``, a list gives every member the
    same sequence and a callable is called with seed ``seed + 1``); the state comes from
    ``jax.vmap(tx.init)``.
    """
    members, grads = [case.params], [case.grads]
    for b in range(1, BATCH):
        rng = np.random.default_rng([case.seed, b])
        noise = draw_gradients(case.params, 1, rng)[0]
        member = optax.apply_updates(case.params, noise)
        members.append(member)
        if case.gradients is None:
            grads.append(draw_gradients(gradients_like(member), case.steps, rng))
        else:
            grads.append(case.grads_for(member, case.seed + b))
    batch = stack(members)
    batched = run(
        jax.jit(jax.vmap(case.step, in_axes=(0, 0, 0, None))),
        batch,
        jax.vmap(case.tx.init)(batch),
        [stack(list(g)) for g in zip(*grads)],
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
                    take(a, b),
                    c,
                    got_name="vmap",
                    want_name="alone",
                    rtol=case.rtol,
                    atol=case.atol,
                )
