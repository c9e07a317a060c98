"""Under an explicit-sharding mesh every state keeps its ``jax.typeof`` and the numbers stay.

Runs in its own process, with four fake CPU devices (the device count is fixed when JAX
starts), over every row of ``helpers.ALL_TRANSFORMS``, eager and jitted.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

WORKER = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    import momentum_optax as mo
    from tests import helpers

    def run(opt, params, jit, steps=3):
        state = opt.init(params)
        types = jax.tree.map(jax.typeof, state)
        update = jax.jit(opt.update) if jit else opt.update
        for i in range(steps):
            grads = jax.tree.map(lambda p: p * (0.5 - i), params)
            updates, state = update(grads, state, params)
            assert jax.tree.map(jax.typeof, state) == types, ("state type changed", types,
                                                              jax.tree.map(jax.typeof, state))
            assert jax.tree.map(jax.typeof, updates) == jax.tree.map(jax.typeof, grads)
        return updates, state

    def fused_run(params, jit=True, steps=3):
        fused = mo.fused_sgd(0.1, 0.9)
        state = fused.init(params)
        types = jax.tree.map(jax.typeof, (params, state))
        apply = jax.jit(fused.apply) if jit else fused.apply
        for i in range(steps):
            params, state = apply(params, state, params)
            assert jax.tree.map(jax.typeof, (params, state)) == types, "fused types changed"
        return params, state

    def close(got, want):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                     got, want)

    values = np.linspace(-1.0, 1.0, 32, dtype=np.float32).reshape(8, 4)
    bias = np.linspace(0.5, 2.0, 4, dtype=np.float32)
    plain = {"w": jnp.asarray(values), "b": jnp.asarray(bias), "s": jnp.float32(2.0)}
    expected = {row.name: run(row.make(), plain, jit=True) for row in helpers.ALL_TRANSFORMS}
    expected_fused = fused_run(plain)
    mesh = jax.make_mesh((4,), ("d",), axis_types=(AxisType.Explicit,))
    # jax.set_mesh from JAX 0.7.1; jax.sharding.use_mesh before it (Python 3.10 stops at 0.6)
    set_mesh = jax.set_mesh if hasattr(jax, "set_mesh") else jax.sharding.use_mesh
    with set_mesh(mesh):
        sharded = {
            "w": jax.device_put(values, NamedSharding(mesh, P("d", None))),
            "b": jax.device_put(bias, NamedSharding(mesh, P("d"))),
            "s": jnp.float32(2.0),
        }
        assert str(jax.typeof(sharded["w"])) == "float32[8@d,4]", jax.typeof(sharded["w"])
        # optax.apply_if_finite's lax.cond fails eagerly on an explicit mesh, optax's own
        # sgd inside it too (its branches' types differ); jitted it works. Checked here, so
        # that the row runs eagerly again once optax's does
        try:
            guarded = optax.apply_if_finite(optax.sgd(0.1, 0.9), 3)
            guarded.update(sharded, guarded.init(sharded), sharded)
            optax_eager = True
        except TypeError as error:
            assert "cond branches" in str(error), error
            optax_eager = False
        for row in helpers.ALL_TRANSFORMS:
            eager = optax_eager or not row.name.startswith("apply_if_finite")
            for jit in (False, True) if eager else (True,):
                close(run(row.make(), sharded, jit), expected[row.name])
            print("ok", row.name)
        for jit in (False, True):
            close(fused_run(sharded, jit), expected_fused)
        print("ok fused_sgd")
    """
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_state_keeps_its_sharded_type_and_the_results_of_one_device(tmp_path):
    from tests import helpers

    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        # the package under test first (a copy on PYTHONPATH wins), then this checkout's tests
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
    }
    done = subprocess.run(
        [sys.executable, "-c", WORKER],
        env=env,
        cwd=tmp_path,  # not the checkout: python -c puts the working directory first
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = [row.name for row in helpers.ALL_TRANSFORMS] + ["fused_sgd"]
    assert done.stdout.split()[1::2] == names, done.stdout
