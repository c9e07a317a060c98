"""mo.train_step on parameters sharded over four devices: shardings kept, donation safe.

Runs in its own process, with four fake CPU devices (the device count is fixed when JAX starts).
Reusing a donated multi-device array makes XLA crash the process (a segmentation fault in
jaxlib 0.10 on CPU), so the step refuses one before XLA sees it: the process must survive.
"""

import os
import subprocess
import sys
import textwrap

import pytest

WORKER = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    import momentum_optax as mo

    assert len(jax.devices()) == 4
    rows = {
        "sgd": lambda: mo.sgd(0.05, 0.9),
        "fused_sgd": lambda: mo.fused_sgd(0.05, 0.9, nesterov=True, chunk_size=8),
        "qhadam": lambda: mo.qhadam(0.01),
    }
    W = np.linspace(-1.0, 1.0, 48, dtype=np.float32).reshape(8, 6)
    B = np.linspace(0.0, 1.0, 12, dtype=np.float32)

    def loss(params, x, *, y):
        return jnp.sum((params["w"] * x - y) ** 2) + x * jnp.sum(params["b"] ** 2)

    def run(opt, params, donate, steps=3):
        step = mo.train_step(loss, opt, donate=donate)
        state = opt.init(params)
        for t in range(steps):
            old = (params, state)
            params, state, value = step(params, state, jnp.float32(0.5 + t), y=jnp.float32(0.2))
            gone = [x.is_deleted() for x in jax.tree.leaves(old)]
            assert all(gone) if donate else not any(gone), (donate, gone)
            if not donate:  # the inputs are reusable and give the same step
                again = step(*old, jnp.float32(0.5 + t), y=jnp.float32(0.2))
                jax.tree.map(np.testing.assert_array_equal, again, (params, state, value))
        return params, state, value

    def shardings(tree):  # of the parameters and of the state's parameter-shaped buffers
        shapes = {W.shape, B.shape}
        return [(x.sharding, x.ndim) for x in jax.tree.leaves(tree) if x.shape in shapes]

    plain = {"w": jnp.asarray(W), "b": jnp.asarray(B)}
    expected = {name: run(make(), plain, donate=False) for name, make in rows.items()}
    for axis_types in (None, (AxisType.Auto,)):  # make_mesh's default, and automatic sharding
        mesh = jax.make_mesh((4,), ("d",), axis_types=axis_types)
        for name, make in rows.items():
            for donate in (True, False):
                opt = make()
                params = {
                    "w": jax.device_put(W, NamedSharding(mesh, P("d", None))),
                    "b": jax.device_put(B, NamedSharding(mesh, P("d"))),
                }
                before = shardings((params, opt.init(params)))
                assert all(len(s.device_set) == 4 for s, _ in before)
                got = run(opt, params, donate)
                after = shardings(got[:2])
                assert len(after) == len(before), (len(after), len(before))
                for (s, ndim), (t, _) in zip(after, before):
                    assert s.is_equivalent_to(t, ndim), (name, s, t)
                jax.tree.map(
                    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                    got, expected[name],
                )
                print("ok", name, axis_types, donate)
        # a donated input handed back is refused, not passed on to XLA to crash on
        opt = mo.sgd(0.05, 0.9)
        step = mo.train_step(loss, opt)
        params = {
            "w": jax.device_put(W, NamedSharding(mesh, P("d", None))),
            "b": jax.device_put(B, NamedSharding(mesh, P("d"))),
        }
        state = opt.init(params)
        step(params, state, jnp.float32(0.5), y=jnp.float32(0.2))
        try:
            step(params, state, jnp.float32(0.5), y=jnp.float32(0.2))
        except ValueError as error:
            assert str(error).startswith("params['b'] is a deleted array"), error
            print("ok refused", axis_types)
    """
)


@pytest.mark.slow
def test_sharded_step_keeps_the_shardings_and_refuses_donated_inputs():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run(
        [sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert done.stdout.split().count("ok") == 2 * (3 * 2 + 1), done.stdout
