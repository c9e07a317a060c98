"""Under an explicit-sharding mesh the state keeps its ``jax.typeof`` and the numbers stay.

Runs in its own process, with two fake CPU devices (the device count is fixed when JAX starts).
"""

import os
import subprocess
import sys
import textwrap

WORKER = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    import momentum_optax as mo

    schedule = optax.linear_schedule(0.5, 0.9, 5)
    rows = {
        "trace": lambda: mo.trace(0.9),
        "trace_scheduled_nesterov": lambda: mo.trace(schedule, nesterov=True),
        "ema_debias": lambda: mo.ema(0.9, debias=True),
        "delta_momentum": lambda: mo.delta_momentum(0.5),
        "aggmo": lambda: mo.aggmo(),
        "sma": lambda: mo.sma(3),
        "qhm": lambda: mo.qhm(0.7, 0.9),
        "qhadam": lambda: mo.qhadam(0.1),
        "sgd_reset": lambda: mo.sgd(0.1, 0.9, reset_every=2),
        "torch_sgd": lambda: mo.torch_sgd(0.1, 0.9, weight_decay=0.01),
        "adaptive_restart": lambda: mo.adaptive_restart(mo.trace(0.9)),
    }

    def run(opt, params, steps=3):
        state = opt.init(params)
        types = jax.tree.map(jax.typeof, state)
        update = jax.jit(opt.update)
        for i in range(steps):
            grads = jax.tree.map(lambda p: p * (0.5 - i), params)
            updates, state = update(grads, state, params)
            assert jax.tree.map(jax.typeof, state) == types, "state type changed"
            assert jax.tree.map(jax.typeof, updates) == jax.tree.map(jax.typeof, grads)
        return updates, state

    def fused_run(params, steps=3):
        fused = mo.fused_sgd(0.1, 0.9)
        state = fused.init(params)
        types = jax.tree.map(jax.typeof, (params, state))
        for i in range(steps):
            params, state = jax.jit(fused.apply)(params, state, params)
            assert jax.tree.map(jax.typeof, (params, state)) == types, "fused types changed"
        return params, state

    values = np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(4, 6)
    plain = {"w": jnp.asarray(values), "b": jnp.ones(3)}
    expected = {name: run(make(), plain) for name, make in rows.items()}
    expected_fused = fused_run(plain)
    mesh = jax.make_mesh((2,), ("x",), axis_types=(AxisType.Explicit,))
    with jax.set_mesh(mesh):
        sharded = {"w": jax.device_put(values, NamedSharding(mesh, P("x", None))), "b": jnp.ones(3)}
        assert str(jax.typeof(sharded["w"])) == "float32[4@x,6]"
        for name, make in rows.items():
            got = run(make(), sharded)
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got,
                         expected[name])
            print("ok", name)
        got = fused_run(sharded)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, expected_fused)
        print("ok fused_sgd")
    """
)


def test_state_keeps_its_sharded_type_and_the_results_of_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run(
        [sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split().count("ok") == 12, done.stdout
