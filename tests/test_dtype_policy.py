"""The one per-leaf dtype policy and the one rule for known constants, at their edges."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers

# float16 in the full run only (-m "not slow" keeps bfloat16)
LOW = [jnp.bfloat16, pytest.param(jnp.float16, marks=pytest.mark.slow)]
# every transformation whose leaf formula runs through the policy
POLICY_ROWS = {
    "trace_nesterov": lambda: mo.trace(0.9, nesterov=True),
    "trace_bf16_buffer": lambda: mo.trace(0.9, accumulator_dtype=jnp.bfloat16),
    "ema_debias_nesterov": lambda: mo.ema(0.9, debias=True, nesterov=True),
    "ema_scheduled": lambda: mo.ema(mo.schedules.anneal(0.5, 0.9, steps=3)),
    "delta_momentum": lambda: mo.delta_momentum(0.5),
    "qhm": lambda: mo.qhm(0.7, 0.9),
    "scale_by_qhadam": lambda: mo.scale_by_qhadam(),
    "aggmo": lambda: mo.aggmo((0.0, 0.5, 0.9)),
    "sma": lambda: mo.sma(3),
    "torch_sgd": lambda: mo.torch_sgd(0.1, 0.9, dampening=0.1, weight_decay=0.01),
    "sgd_scheduled_lr": lambda: mo.sgd(optax.linear_schedule(0.1, 0.01, 5), 0.9),
    "scale_by_learning_rate": lambda: mo.scale_by_learning_rate(0.1),
}


def _ramp(params, n=4):
    """``n`` gradients shaped like ``params``, in its dtypes."""
    return [
        jax.tree.map(lambda p, i=i: (p * (i + 1) - 0.25).astype(p.dtype), params) for i in range(n)
    ]


@pytest.mark.parametrize("dtype", LOW, ids=["bfloat16", "float16"])
@pytest.mark.parametrize("row", sorted(POLICY_ROWS))
def test_strict_dtype_promotion_gives_the_standard_results(row, dtype):
    params = {"w": jnp.linspace(-1.0, 1.0, 5).astype(dtype), "b": jnp.asarray(0.5, dtype)}
    expected = helpers.run_updates(POLICY_ROWS[row](), _ramp(params), params)
    with jax.numpy_dtype_promotion("strict"):
        got = helpers.run_updates(POLICY_ROWS[row](), _ramp(params), params)
    chex.assert_trees_all_equal(got, expected)


def test_low_precision_hyperparameters_under_inject_hyperparams_are_read_and_checked():
    params = jnp.linspace(-1.0, 1.0, 4).astype(jnp.bfloat16)
    opt = optax.inject_hyperparams(mo.sgd)(learning_rate=0.1, momentum=0.9)
    updates = helpers.run_updates(opt, [params] * 3, params)[0][-1]
    # inject_hyperparams keeps the values in the parameters' dtype: 0.1 -> 0.100098 in bfloat16
    reference = mo.sgd(float(jnp.bfloat16(0.1)), float(jnp.bfloat16(0.9)))
    expected = helpers.run_updates(reference, [params] * 3, params)[0][-1]
    chex.assert_trees_all_equal(updates, expected)
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\]; got Array\(1\.5"):
        mo.trace(jnp.asarray(1.5, jnp.bfloat16))


def test_only_python_and_numpy_numbers_decide_the_state_structure():
    params = jnp.zeros(3)
    # torch_sgd keeps no buffer for a momentum of 0, as PyTorch: a known 0 decides that
    assert jax.tree.leaves(mo.torch_sgd(0.1, 0.0).init(params)) == []
    assert jax.tree.leaves(mo.torch_sgd(0.1, np.float32(0.0)).init(params)) == []  # NumPy too
    # a jax.Array may be traced in the next call: the buffer (and its count) is kept
    assert len(jax.tree.leaves(mo.torch_sgd(0.1, jnp.float32(0.0)).init(params))) == 2
    # mo.sgd, as optax.sgd: momentum None keeps no buffer, any number keeps one
    assert jax.tree.leaves(mo.sgd(0.1).init(params)) == []
    assert len(jax.tree.leaves(mo.sgd(0.1, 0.0).init(params))) == 1
    with pytest.raises(ValueError, match="momentum must be in"):
        mo.sgd(0.1, jnp.float32(1.5))  # concrete: range-checked like a number

    @jax.jit
    def traced(momentum):  # a tracer passes unchecked and keeps the buffer
        opt = mo.sgd(0.1, momentum)
        updates, _ = opt.update(jnp.ones(3), opt.init(params))
        return updates

    np.testing.assert_allclose(traced(jnp.float32(0.5)), -0.1 * np.ones(3), rtol=1e-6)


def test_every_buffer_of_a_state_must_match_the_updates():
    opt = mo.aggmo((0.0, 0.9))
    state = opt.init({"a": jnp.ones(2), "b": jnp.ones(2)})
    renamed = {"a": jnp.ones(2), "c": jnp.ones(2)}
    bad = state._replace(velocities=(state.velocities[0], renamed))
    with pytest.raises(
        ValueError, match=r"buffer 1 differs from the first buffer: missing \['b'\]"
    ):
        opt.update({"a": jnp.ones(2), "b": jnp.ones(2)}, bad)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("nesterov", [False, True], ids=["heavy_ball", "nesterov"])
def test_fused_sgd_off_cpu_is_sgd_then_apply_updates_bit_for_bit(monkeypatch, nesterov, dtype):
    # the GPU/TPU branch, taken here by reporting another backend while the step is traced
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    fused, plain = mo.fused_sgd(0.05, 0.9, nesterov=nesterov), mo.sgd(0.05, 0.9, nesterov=nesterov)

    @jax.jit
    def plain_step(params, state, grads):
        updates, state = plain.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    rng = np.random.default_rng(0)
    params = jnp.asarray(rng.standard_normal(37), dtype)
    ours, theirs = (params, fused.init(params)), (params, plain.init(params))
    for _ in range(10):
        grads = jnp.asarray(rng.standard_normal(37), dtype)
        ours = jax.jit(fused.apply)(*ours, grads)
        theirs = plain_step(*theirs, grads)
    chex.assert_trees_all_equal((ours[0], ours[1].trace), (theirs[0], theirs[1][0].trace))


STRICT_BFLOAT16 = {
    "inject_sgd": lambda: optax.inject_hyperparams(mo.sgd)(learning_rate=0.1, momentum=0.9),
    "inject_trace": lambda: optax.inject_hyperparams(mo.trace)(decay=0.9),
    "inject_ema": lambda: optax.inject_hyperparams(mo.ema)(decay=0.9),
    "inject_qhadam": lambda: optax.inject_hyperparams(mo.qhadam)(
        learning_rate=0.1, b1=0.9, b2=0.99, nu1=0.7, nu2=1.0, eps=1e-8
    ),
    "inject_torch_sgd": lambda: optax.inject_hyperparams(mo.torch_sgd)(
        learning_rate=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01
    ),
    "inject_qhm": lambda: optax.inject_hyperparams(mo.qhm)(nu=0.7, decay=0.9),
    "inject_scale_by_learning_rate": lambda: optax.inject_hyperparams(mo.scale_by_learning_rate)(
        learning_rate=0.1
    ),
    "sgd_float32_buffer": lambda: mo.sgd(0.1, 0.9, accumulator_dtype=jnp.float32),
    "ema_float32_buffer": lambda: mo.ema(0.9, accumulator_dtype=jnp.float32),
}


@pytest.mark.parametrize("case", sorted(STRICT_BFLOAT16))
def test_bfloat16_parameters_under_strict_promotion_keep_their_dtype(case):
    # inject_hyperparams keeps its values in the parameters' dtype, and a float32 buffer
    # differs from bfloat16 parameters: neither may need an implicit promotion
    params = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=jnp.bfloat16), "s": jnp.bfloat16(0.5)}
    with jax.numpy_dtype_promotion("strict"):
        opt = STRICT_BFLOAT16[case]()
        state = opt.init(params)
        update = jax.jit(opt.update)
        for seed in range(3):
            updates, state = update(helpers.grads(seed, params), state, params)
            new = optax.apply_updates(params, updates)
            chex.assert_trees_all_equal_dtypes(updates, params)
            chex.assert_trees_all_equal_dtypes(new, params)
    # and the same numbers as under standard promotion
    opt = STRICT_BFLOAT16[case]()
    state = opt.init(params)
    for seed in range(3):
        standard, state = jax.jit(opt.update)(helpers.grads(seed, params), state, params)
    chex.assert_trees_all_equal(updates, standard)
