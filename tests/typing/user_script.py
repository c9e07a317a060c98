"""A user's script, type-checked against the installed package by ``.ci/typecheck``.

It uses the public API as the README and the guides do, fully annotated, and must be
clean under both mypy (with the ``mypy.ini`` beside it) and pyright. It also runs (a few
steps on a small quadratic), so every line here is real usage.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import momentum_optax as mo
from momentum_optax import testing


def loss_fn(params: jax.Array, x: jax.Array, *, y: jax.Array) -> jax.Array:
    return jnp.sum((params * x - y) ** 2)


def manual_loop(opt: optax.GradientTransformation, steps: int) -> jax.Array:
    params = jnp.array([1.0, -2.0])
    state: optax.OptState = opt.init(params)
    x, y = jnp.ones(2), jnp.zeros(2)
    for _ in range(steps):
        grads: jax.Array = jax.grad(loss_fn)(params, x, y=y)
        updates, state = opt.update(grads, state, params)
        # apply_updates returns a pytree (optax.Params); this loss takes one array
        params = jnp.asarray(optax.apply_updates(params, updates))
    return loss_fn(params, x, y=y)


def main() -> None:
    # a ready-made optimizer, and the same chain written out
    sgd: optax.GradientTransformationExtraArgs = mo.sgd(0.1, momentum=0.9, nesterov=True)
    chained: optax.GradientTransformation = optax.chain(
        mo.trace(0.9, nesterov=True), mo.scale_by_learning_rate(0.1)
    )
    print("sgd:", float(manual_loop(sgd, 20)), "chain:", float(manual_loop(chained, 20)))

    # a scheduled momentum: a schedule is an optax.Schedule, count -> coefficient
    schedule: optax.Schedule = mo.schedules.anneal(0.5, 0.9, steps=10)
    first: jax.Array = jnp.asarray(schedule(0))
    scheduled = optax.chain(mo.trace(schedule), optax.scale_by_learning_rate(0.1))
    print("annealed:", float(manual_loop(scheduled, 20)), "from", float(first))
    params = jnp.zeros(2)
    scheduled_state = mo.trace(schedule).init(params)
    if isinstance(scheduled_state, mo.ScheduledTraceState):  # a state NamedTuple's fields
        buffer: optax.Params = scheduled_state.trace
        count: jax.Array = scheduled_state.count
        print("count", int(count), "buffer", buffer)

    # a constant decay keeps optax's own state, so it narrows to optax.TraceState
    constant_state = mo.trace(0.9).init(params)
    if isinstance(constant_state, mo.TraceState):
        print("optax.TraceState.trace:", constant_state.trace)

    # restarts wrap any transformation
    restarted = optax.chain(mo.periodic_reset(mo.trace(0.9), every=5), optax.sgd(0.1))
    print("restarted:", float(manual_loop(restarted, 10)))

    # the library-owned training step: jitted, donated buffers
    opt = mo.sgd(0.1, 0.5)
    step = mo.train_step(loss_fn, opt, metrics=lambda g, u, p: optax.tree.norm(g))
    w: jax.Array = jnp.zeros(3)
    opt_state = opt.init(w)
    loss = grad_norm = jnp.zeros([])
    for _ in range(5):
        w, opt_state, loss, grad_norm = step(w, opt_state, jnp.ones(3), y=jnp.ones(3))
    print("train_step loss", float(loss), "grad norm", float(grad_norm))

    # the testing kit (the [testing] extra): the invariant battery and an oracle
    ran: tuple[str, ...] = testing.check_transformation(
        mo.trace(0.9), jnp.ones(3), steps=3, only=["updates_match_gradients", "state_is_stable"]
    )
    oracle = testing.oracles.trace([1.0, 1.0, 1.0], 0.5)
    print("battery ran", ", ".join(ran), "oracle", oracle.tolist())


if __name__ == "__main__":
    main()
