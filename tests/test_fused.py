"""The one-pass fused SGD: sgd + apply_updates bit for bit, in place, and hard to misuse."""

import re
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers

# the block edge cases: a leaf smaller than a block, an exact multiple of it, a ragged size
BLOCK_CASES = {
    "small": jnp.linspace(-1.0, 1.0, 5),
    "exact": jnp.ones((8, 16)),
    "ragged": jnp.full((7, 19), 0.5),
    "scalar": jnp.float32(2.0),
}
CONFIGS = [
    dict(learning_rate=0.05, momentum=0.9),
    dict(learning_rate=0.05, momentum=0.9, nesterov=True),
    dict(
        learning_rate=optax.linear_schedule(0.1, 0.01, 10),
        momentum=mo.schedules.anneal(0.5, 0.95, steps=6),
        nesterov=True,
    ),
]


def _plain_step(opt):
    @jax.jit
    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def _run_side_by_side(fused, plain, params, dtype=jnp.float32):
    """Fifteen steps of both; returns ((params, buffer), (params, buffer))."""
    ours, theirs = (params, fused.init(params)), (params, plain.init(params))
    plain_step = _plain_step(plain)
    for seed in range(15):
        grads = jax.tree.map(lambda g: g.astype(dtype), helpers.grads(seed, BLOCK_CASES))
        ours = jax.jit(fused.apply)(*ours, grads)
        theirs = plain_step(*theirs, grads)
    return (ours[0], ours[1].trace), (theirs[0], theirs[1][0].trace)


@pytest.mark.parametrize("chunk_size", [16, 128, None])
@pytest.mark.parametrize("config", CONFIGS, ids=["heavy_ball", "nesterov", "scheduled"])
def test_fused_sgd_is_bit_for_bit_sgd_then_apply_updates(config, chunk_size):
    fused = mo.fused_sgd(**config, chunk_size=chunk_size)
    ours, theirs = _run_side_by_side(fused, mo.sgd(**config), BLOCK_CASES)
    chex.assert_trees_all_equal(ours, theirs)


@pytest.mark.slow
def test_fused_sgd_state_counts_the_steps_its_schedules_read():
    scheduled = mo.fused_sgd(optax.linear_schedule(0.1, 0.0, 4), 0.9)
    state = scheduled.init(BLOCK_CASES)
    assert mo.fused_sgd(0.1, 0.9).init(BLOCK_CASES).count is None  # constants keep no count
    params = BLOCK_CASES
    for _ in range(5):
        params, state = scheduled.apply(params, state, helpers.grads(0, BLOCK_CASES))
    assert int(state.count) == 5
    # the learning rate reached 0 at step 4: the last step leaves the parameters alone
    again, _ = scheduled.apply(params, state, helpers.grads(1, BLOCK_CASES))
    chex.assert_trees_all_equal(again, params)


def _memory(step, *args):
    """The compiled step's buffer sizes: the XLA memory analysis jax exposes."""
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(*args).compile()
    return compiled.memory_analysis()


@pytest.mark.parametrize("nesterov", [False, True])
def test_plain_path_allocates_what_optax_allocates(nesterov):
    params, grads = jnp.ones(100_000), jnp.ones(100_000)

    def make_step(opt):
        def step(params, state, grads):
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return step

    sizes = []
    for opt in (mo.sgd(0.01, 0.9, nesterov=nesterov), optax.sgd(0.01, 0.9, nesterov=nesterov)):
        memory = _memory(make_step(opt), params, opt.init(params), grads)
        sizes.append(
            (memory.temp_size_in_bytes, memory.alias_size_in_bytes, memory.output_size_in_bytes)
        )
    assert sizes[0] == sizes[1]
    assert sizes[0][1] >= 2 * 4 * 100_000  # params and buffer written in place


def test_the_kernel_runs_in_this_suite():
    # numba comes with the test extra: the bit-for-bit tests here exercise the CPU kernel
    assert mo.fused.kernel_available()


def _kernel_calls(text):
    return text.count("stablehlo.custom_call @momentum_optax_fused_sgd")


def test_fused_path_is_one_kernel_call_that_writes_in_place_without_copies():
    n, chunk = 1_000_003, 1 << 12  # ragged: the last block is shorter
    fused = mo.fused_sgd(0.01, 0.9, chunk_size=chunk, accumulator_dtype=jnp.float32)
    params = {"w": jnp.ones(n), "half": jnp.ones((3, 1000), jnp.bfloat16), "s": jnp.float32(1)}
    args = (params, fused.init(params), params)
    lowered = jax.jit(fused.apply).lower(*args).as_text()
    assert _kernel_calls(lowered) == 1  # every leaf in one call
    assert lowered.count("stablehlo.while") == 0
    memory = _memory(fused.apply, *args)
    written = 2 * 4 * n + (2 + 4) * 3000 + 2 * 4  # params and buffer
    assert memory.alias_size_in_bytes >= written  # updated in place
    assert memory.temp_size_in_bytes < 4096  # no copy of any array


@pytest.mark.parametrize("nesterov", [False, True], ids=["heavy_ball", "nesterov"])
@pytest.mark.parametrize(
    "params_dtype, grads_dtype",
    [(jnp.bfloat16, jnp.bfloat16), (jnp.float32, jnp.bfloat16), (jnp.bfloat16, jnp.float32)],
)
def test_fused_sgd_is_bit_for_bit_sgd_with_bfloat16_and_a_float32_buffer(
    params_dtype, grads_dtype, nesterov
):
    # the kernel where parameters and gradients share a dtype, mo.sgd's expressions otherwise
    params = jax.tree.map(lambda p: p.astype(params_dtype), BLOCK_CASES)
    config = dict(learning_rate=0.05, momentum=0.99, nesterov=nesterov)
    config["accumulator_dtype"] = jnp.float32
    fused, plain = mo.fused_sgd(**config, chunk_size=32), mo.sgd(**config)
    grads = jax.tree.map(lambda p: p.astype(grads_dtype), params)
    text = jax.jit(fused.apply).lower(params, fused.init(params), grads).as_text()
    assert _kernel_calls(text) == (params_dtype == grads_dtype)
    ours, theirs = _run_side_by_side(fused, plain, params, grads_dtype)
    chex.assert_trees_all_equal(ours, theirs)
    chex.assert_trees_all_equal_dtypes(ours, theirs)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_kernel_carries_infinities_and_nans_as_sgd_does(dtype):
    params = {"w": jnp.linspace(-1.0, 1.0, 40).astype(dtype)}
    grads = jnp.linspace(-1.0, 1.0, 40).at[3].set(jnp.inf).at[7].set(-jnp.inf)
    grads = {"w": grads.at[11].set(jnp.nan).astype(dtype)}
    big = {"w": jnp.full(40, 3e38, dtype)}  # past float32's range once scaled and added
    config = dict(learning_rate=0.5, momentum=0.9, nesterov=True, accumulator_dtype=jnp.float32)
    fused, plain = mo.fused_sgd(**config, chunk_size=8), mo.sgd(**config)
    step = _plain_step(plain)
    for g in (grads, big):
        ours = jax.jit(fused.apply)(params, fused.init(params), g)
        new_params, state = step(params, plain.init(params), g)
        theirs = (new_params, state[0].trace)
        chex.assert_trees_all_equal((ours[0], ours[1].trace), theirs)  # NaN where sgd's is NaN


def test_kernel_leaves_undonated_inputs_intact():
    fused = mo.fused_sgd(0.1, 0.9)
    params = {"w": jnp.arange(10.0)}
    state = fused.init(params)
    state = fused.apply(params, state, params)[1]  # a nonzero buffer
    kept = jax.tree.map(np.array, (params, state))
    new_params, _ = jax.jit(fused.apply)(params, state, params)
    chex.assert_trees_all_equal((params, state), kept)  # XLA copied them for the kernel
    assert not np.array_equal(new_params["w"], params["w"])


def test_kernel_under_vmap_sweeps_the_learning_rate_as_sgd_does():
    params = {"w": jnp.linspace(-1.0, 1.0, 33)}
    grads, buffer = helpers.grads(3, params), helpers.grads(4, params)

    def fused_step(lr):  # the arrays are constants: the kernel computes at run time anyway
        fused = mo.fused_sgd(lr, 0.9, nesterov=True)
        return fused.apply(params, mo.FusedSGDState(trace=buffer, count=None), grads)

    def plain_step(lr, params, buffer, grads):  # arguments: XLA would fold constants
        opt = mo.sgd(lr, 0.9, nesterov=True)
        state = (optax.TraceState(trace=buffer), *opt.init(params)[1:])
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state[0].trace

    lrs = jnp.array([0.0, 0.01, 0.3])
    ours = jax.jit(jax.vmap(fused_step))(lrs)
    for i, lr in enumerate(lrs):  # one jitted mo.sgd step per rate
        mine = jax.tree.map(lambda x, i=i: x[i], (ours[0], ours[1].trace))
        chex.assert_trees_all_equal(mine, jax.jit(plain_step)(lr, params, buffer, grads))


def test_leaves_the_kernel_does_not_take_follow_sgd():
    # a float16 leaf, a float64 coefficient under x64: mo.sgd's expressions, its numbers
    params = {"half": jnp.ones(9, jnp.float16), "w": jnp.ones(9)}
    fused = mo.fused_sgd(0.1, 0.9)
    text = jax.jit(fused.apply).lower(params, fused.init(params), params).as_text()
    assert _kernel_calls(text) == 1 and "tensor<9xf16>" not in text.split("custom_call")[1][:400]
    with helpers.enable_x64():
        wide = mo.fused_sgd(jnp.float64(0.1), 0.9)
        p = {"w": jnp.ones(9, jnp.float32)}
        assert not _kernel_calls(jax.jit(wide.apply).lower(p, wide.init(p), p).as_text())


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_fused_sgd_matches_sgd_in_low_precision(dtype):
    # arithmetic in float32, rounded once on write, exactly as trace + apply_updates
    params = jax.tree.map(lambda p: p.astype(dtype), BLOCK_CASES)
    fused, plain = mo.fused_sgd(0.05, 0.99, chunk_size=32), mo.sgd(0.05, 0.99)
    ours, theirs = _run_side_by_side(fused, plain, params, dtype)
    chex.assert_trees_all_equal(ours, theirs)
    chex.assert_trees_all_equal_dtypes(ours[0], params)


def test_fused_sgd_rejects_mismatched_gradients_and_states():
    fused = mo.fused_sgd(0.05, 0.9)
    state = fused.init({"w": jnp.ones(3)})
    with pytest.raises(ValueError, match=r"\['w'\] has shape \(3, 3\)"):
        fused.apply({"w": jnp.ones(3)}, state, {"w": jnp.ones((3, 3))})
    with pytest.raises(ValueError, match=r"missing \['w'\]"):
        fused.apply({"w": jnp.ones(3)}, state, {"v": jnp.ones(3)})
    with pytest.raises(TypeError, match="FusedSGDState returned by fused_sgd"):
        fused.apply(
            {"w": jnp.ones(3)}, mo.sgd(0.05, 0.9).init({"w": jnp.ones(3)}), {"w": jnp.ones(3)}
        )


def test_fused_sgd_handles_empty_leaves():
    fused = mo.fused_sgd(0.05, 0.9)
    params = {"empty": jnp.ones((0, 4)), "w": jnp.ones(3)}
    new, _ = fused.apply(params, fused.init(params), params)
    assert new["empty"].shape == (0, 4)
    np.testing.assert_allclose(new["w"], 0.95)


ZERO = r"momentum must be > 0 for fused_sgd \(plain SGD is already one pass: use mo\.sgd\); got "


@pytest.mark.parametrize(
    "zero",
    [0.0, 0, np.float32(0), jnp.float32(0), jnp.zeros([], jnp.bfloat16)],
    ids=["float", "int", "numpy", "jax_array", "bfloat16_array"],
)
def test_fused_sgd_rejects_zero_momentum_known_at_construction(zero):
    # a concrete jax.Array is read as its number, with the message a Python 0.0 gets
    with pytest.raises(ValueError, match=ZERO + re.escape(repr(zero))):
        mo.fused_sgd(0.1, zero)


def test_fused_sgd_with_a_traced_zero_momentum_is_plain_sgd():
    # a traced momentum cannot be read when the step is built: it passes, and 0 is SGD
    params, grads = {"w": jnp.linspace(-1.0, 1.0, 7)}, {"w": jnp.linspace(2.0, 3.0, 7)}

    @jax.jit
    def step(momentum):
        fused = mo.fused_sgd(0.1, momentum)
        return fused.apply(params, fused.init(params), grads)

    new, state = step(jnp.float32(0.0))
    chex.assert_trees_all_close(new, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads))
    chex.assert_trees_all_equal(state.trace, grads)


MISUSE = (
    r"not an optax\.GradientTransformation.*fused\.apply\(params, state, grads\).*mo\.train_step"
)


def test_fused_sgd_does_not_unpack_as_init_and_update():
    fused = mo.fused_sgd(0.1, 0.9)
    assert not isinstance(fused, optax.GradientTransformation)
    with pytest.raises(TypeError, match=MISUSE + r".*does not unpack as \(init, update\)"):
        _init, _update = fused
    with pytest.raises(TypeError, match=MISUSE + ".*has no update"):
        fused.update({"w": jnp.ones(3)}, fused.init({"w": jnp.ones(3)}), {"w": jnp.ones(3)})


@pytest.mark.parametrize(
    "wrap",
    [
        lambda fused: optax.chain(optax.clip(1.0), fused),
        lambda fused: optax.MultiSteps(fused, every_k_schedule=1),
        lambda fused: optax.apply_if_finite(fused, max_consecutive_errors=2),
    ],
    ids=["chain", "multi_steps", "apply_if_finite"],
)
def test_optax_wrappers_given_fused_sgd_fail_by_the_first_update_naming_apply(wrap):
    params = {"w": jnp.ones(3)}
    with pytest.raises(TypeError, match=MISUSE):
        opt = wrap(mo.fused_sgd(0.1, 0.9))
        opt.update(params, opt.init(params), params)


def test_fused_sgd_keeps_the_fields_its_users_read():
    fused = mo.fused_sgd(0.1, 0.9)
    params = {"w": jnp.ones(2)}
    state = fused.init(params)
    assert isinstance(state, mo.FusedSGDState)
    new, state = fused.apply(params, state, {"w": jnp.ones(2)})  # (params, state, grads)
    np.testing.assert_allclose(new["w"], 0.9)
    np.testing.assert_allclose(state.trace["w"], 1.0)


def test_a_new_process_runs_the_kernel_from_numbas_cache():
    # this process compiles the kernel (and caches it, if it was not); a new one loads it
    # from the cache, which needs Numba's threading layer loaded first
    fused = mo.fused_sgd(0.1, 0.9)
    params = jnp.ones(8)
    expected = jax.jit(fused.apply)(params, fused.init(params), params)[0]
    script = (
        "import jax, jax.numpy as jnp, momentum_optax as mo\n"
        "f = mo.fused_sgd(0.1, 0.9); p = jnp.ones(8)\n"
        "print(jax.jit(f.apply).lower(p, f.init(p), p).as_text().count('custom_call'))\n"
        "print(list(map(float, jax.jit(f.apply)(p, f.init(p), p)[0])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    calls, values = done.stdout.strip().splitlines()
    assert calls == "1"
    np.testing.assert_array_equal(eval(values), expected)
