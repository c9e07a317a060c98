"""``mo.fused_sgd`` on four devices: the shardings ``mo.sgd`` keeps, and its numbers.

One process with four fake CPU devices (the device count is fixed when JAX starts) runs
every case once and reports each; a test per case reads its report. Each case runs
three jitted steps of ``fused_sgd`` and of ``mo.sgd`` + ``optax.apply_updates`` on the
same inputs, and compares the parameters and the momentum buffer: their shardings (and,
on an Explicit mesh, their ``jax.typeof``) and their values.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import pytest

WORKER = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    import momentum_optax as mo

    assert len(jax.devices()) == 4
    W = np.linspace(-1.0, 1.0, 96, dtype=np.float32).reshape(8, 12)
    CONFIG = dict(learning_rate=0.05, momentum=0.9, nesterov=True)

    def grads_at(t, params):  # step t's gradient: the same values on every layout
        return jax.tree.map(lambda p: jnp.cos(p * (1.0 + t)), params)

    def sgd_step(opt):
        def step(params, state, grads):
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state
        return jax.jit(step)

    def steps(params, grads, steps=3):
        # fused_sgd and mo.sgd, three jitted steps each, grads(t, params) at step t
        f, s = mo.fused_sgd(**CONFIG, chunk_size=16), mo.sgd(**CONFIG)
        ours, theirs = (params, f.init(params)), (params, s.init(params))
        apply, step = jax.jit(f.apply), sgd_step(s)
        for t in range(steps):
            ours = apply(*ours, grads(t, ours[0]))
            theirs = step(*theirs, grads(t, theirs[0]))
        return (ours[0], ours[1].trace), (theirs[0], theirs[1][0].trace)

    def layouts(tree):
        return [(x.sharding, x.ndim, str(jax.typeof(x))) for x in jax.tree.leaves(tree)]

    def compare(params, grads, kept):
        # kept: whether the inputs' shardings must also come back unchanged (they must
        # wherever mo.sgd keeps them)
        before = layouts((params, mo.sgd(**CONFIG).init(params)))
        ours, theirs = steps(params, grads)
        problems = []
        for what, got, want in zip(("params", "buffer"), ours, theirs):
            for (s, ndim, typ), (t, _, want_typ) in zip(layouts(got), layouts(want)):
                if not s.is_equivalent_to(t, ndim) or typ != want_typ:
                    problems.append(f"{what}: {s} {typ}, mo.sgd gives {t} {want_typ}")
        if kept:
            for (s, ndim, _), (t, _, _) in zip(layouts(ours), before):
                if not s.is_equivalent_to(t, ndim):
                    problems.append(f"input sharding {t} came back as {s}")
        try:
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                         ours, theirs)
        except AssertionError as error:
            problems.append(str(error)[:500])
        return problems

    def guarded(case):
        try:
            return case()
        except Exception as error:  # the report names the failure; the test fails on it
            return [f"{type(error).__name__}: {str(error)[:500]}"]

    report = {}
    auto = jax.make_mesh((2, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    auto_cases = {  # the weight's layout, and its bias's
        "model": (P(None, "model"), P("model")),
        "data_model": (P("data", "model"), P("model")),
        "data": (P("data"), P("data")),
        "replicated": (P(), P()),
    }
    for name, (w_spec, b_spec) in auto_cases.items():
        def case(w_spec=w_spec, b_spec=b_spec):
            params = {"w": jax.device_put(W, NamedSharding(auto, w_spec)),
                      "b": jax.device_put(W[0], NamedSharding(auto, b_spec))}
            return compare(params, grads_at, kept=True)
        report["auto_" + name] = guarded(case)

    explicit = jax.make_mesh((2, 2), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    made_before = {"w": jnp.asarray(W), "b": jnp.asarray(W[0])}
    # jax.set_mesh from JAX 0.7.1; jax.sharding.use_mesh before it (the floors' release)
    set_mesh = jax.set_mesh if hasattr(jax, "set_mesh") else jax.sharding.use_mesh
    with set_mesh(explicit):
        def sharded_like(t, params):  # the gradients split as the sharded case's params
            specs = {"w": P("data", "model"), "b": P("model")}
            return jax.tree.map(jax.sharding.reshard, grads_at(t, params), specs)

        def before_set_mesh():  # parameters made before jax.set_mesh, the buffer inside it
            return compare(made_before, grads_at, kept=False)

        def unsharded_params_sharded_grads():
            params = {"w": jnp.asarray(W), "b": jnp.asarray(W[0])}
            return compare(params, sharded_like, kept=False)

        def sharded():
            params = {"w": jax.device_put(W, P("data", "model")),
                      "b": jax.device_put(W[0], P("model"))}
            return compare(params, sharded_like, kept=True)

        def replicated_takes_sgds_expressions():
            # several devices would launch the CPU kernel concurrently: mo.sgd's expressions
            params = {"w": jnp.asarray(W), "b": jnp.asarray(W[0])}
            problems = compare(params, grads_at, kept=True)
            fused = mo.fused_sgd(**CONFIG, chunk_size=16)
            text = jax.jit(fused.apply).lower(params, fused.init(params), params).as_text()
            if not mo.fused.kernel_available() and "custom_call" not in text:
                return problems
            return problems + ["the kernel was used on 4 devices"]

        for case in (before_set_mesh, unsharded_params_sharded_grads, sharded,
                     replicated_takes_sgds_expressions):
            report["explicit_" + case.__name__] = guarded(case)
    print(json.dumps(report))
    """
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASES = [
    "auto_model",
    "auto_data_model",
    "auto_data",
    "auto_replicated",
    "explicit_before_set_mesh",
    "explicit_unsharded_params_sharded_grads",
    "explicit_sharded",
    "explicit_replicated_takes_sgds_expressions",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        # the package under test first (a copy on PYTHONPATH wins), then this checkout
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
    }
    done = subprocess.run(
        [sys.executable, "-c", WORKER],
        env=env,
        cwd=tmp_path_factory.mktemp("fused_sharding"),  # python -c puts the cwd first
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# explicit meshes as the worker builds them (jax.set_mesh, jax.sharding.reshard) are JAX
# 0.7.1's; at the declared floor (0.6.1) only the Auto-mesh cases run
EXPLICIT_API = hasattr(jax, "set_mesh") and hasattr(jax.sharding, "reshard")


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c,
            marks=pytest.mark.skipif(
                c.startswith("explicit") and not EXPLICIT_API,
                reason="explicit-mesh API from JAX 0.7.1 (jax.set_mesh, jax.sharding.reshard)",
            ),
        )
        for c in CASES
    ],
)
def test_fused_sgd_keeps_the_shardings_and_numbers_of_sgd(report, case):
    assert report[case] == [], report[case]
