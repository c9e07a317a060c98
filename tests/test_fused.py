"""The fast paths: the one-pass fused SGD and the donating train step."""

import collections
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo

# leaves smaller than a block, an exact multiple of it, and a ragged size
PARAMS = {
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
        momentum=mo.schedules.anneal(0.5, 0.95, 6),
        nesterov=True,
    ),
]


def _grads(seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.standard_normal(jnp.shape(p)), jnp.float32), PARAMS
    )


@pytest.mark.parametrize("chunk_size", [16, 128, None])
@pytest.mark.parametrize("config", CONFIGS, ids=["heavy_ball", "nesterov", "scheduled"])
def test_fused_sgd_is_bit_for_bit_sgd_then_apply_updates(config, chunk_size):
    fused = mo.fused_sgd(**config, chunk_size=chunk_size)
    plain = mo.sgd(**config)

    @jax.jit
    def plain_step(params, state, grads):
        updates, state = plain.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    fused_step = jax.jit(fused.apply)
    ours, theirs = (PARAMS, fused.init(PARAMS)), (PARAMS, plain.init(PARAMS))
    for seed in range(15):
        ours = fused_step(*ours, _grads(seed))
        theirs = plain_step(*theirs, _grads(seed))
    chex.assert_trees_all_equal(ours, theirs)


def _entry_ops(compiled_text):
    """Opcode counts of the optimized HLO, all computations included."""
    ops = re.findall(r"= \S+ ([a-z][a-z0-9-]*)\(", compiled_text)
    return collections.Counter(ops)


def _compiled(step, *args):
    return jax.jit(step, donate_argnums=(0, 1)).lower(*args).compile().as_text()


@pytest.mark.parametrize("nesterov", [False, True])
def test_plain_path_compiles_to_the_same_ops_as_optax(nesterov):
    params, grads = jnp.ones(100_000), jnp.ones(100_000)

    def make_step(opt):
        def step(params, state, grads):
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return step

    ours, theirs = mo.sgd(0.01, 0.9, nesterov=nesterov), optax.sgd(0.01, 0.9, nesterov=nesterov)
    our_ops = _entry_ops(_compiled(make_step(ours), params, ours.init(params), grads))
    their_ops = _entry_ops(_compiled(make_step(theirs), params, theirs.init(params), grads))
    assert our_ops == their_ops
    assert our_ops["fusion"] >= 2  # the two passes the fused path removes


def test_fused_path_is_one_loop_without_copies_of_the_arrays():
    n = 1_000_003  # ragged: the masked last block must stay inside the loop
    fused = mo.fused_sgd(0.01, 0.9)
    params = jnp.ones(n)
    text = _compiled(fused.apply, params, fused.init(params), jnp.ones(n))
    entry = text.split("ENTRY")[1]
    assert " while(" in entry
    assert not re.search(rf"f32\[{n}\]\S* copy\(", text)
    # outside the loop nothing touches the big arrays
    assert not [
        line
        for line in entry.splitlines()
        if "fusion(" in line and f"f32[{n}]" in line.split("=")[1].split("fusion(")[0]
    ]


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_fused_sgd_matches_sgd_in_low_precision(dtype):
    # arithmetic in float32, rounded once on write, exactly as trace + apply_updates
    params = jax.tree.map(lambda p: p.astype(dtype), PARAMS)
    fused, plain = mo.fused_sgd(0.05, 0.99, chunk_size=32), mo.sgd(0.05, 0.99)

    @jax.jit
    def plain_step(params, state, grads):
        updates, state = plain.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    ours, theirs = (params, fused.init(params)), (params, plain.init(params))
    for seed in range(15):
        grads = jax.tree.map(lambda g: g.astype(dtype), _grads(seed))
        ours = jax.jit(fused.apply)(*ours, grads)
        theirs = plain_step(*theirs, grads)
    chex.assert_trees_all_equal(ours, theirs)
    chex.assert_trees_all_equal_dtypes(ours[0], params)


def test_fused_sgd_rejects_mismatched_gradients_and_states():
    fused = mo.fused_sgd(0.05, 0.9)
    state = fused.init({"w": jnp.ones(3)})
    with pytest.raises(ValueError, match=r"\['w'\] has shape \(3, 3\)"):
        fused.apply({"w": jnp.ones(3)}, state, {"w": jnp.ones((3, 3))})
    with pytest.raises(ValueError, match=r"missing \['w'\]"):
        fused.apply({"w": jnp.ones(3)}, state, {"v": jnp.ones(3)})
    with pytest.raises(TypeError, match="TraceState"):
        fused.apply(
            {"w": jnp.ones(3)}, (mo.ema(0.9).init({"w": jnp.ones(3)}), state[1]), {"w": jnp.ones(3)}
        )


def test_fused_sgd_handles_empty_leaves():
    fused = mo.fused_sgd(0.05, 0.9)
    params = {"empty": jnp.ones((0, 4)), "w": jnp.ones(3)}
    new, _ = fused.apply(params, fused.init(params), params)
    assert new["empty"].shape == (0, 4)
    np.testing.assert_allclose(new["w"], 0.95)


def test_fused_sgd_rejects_zero_momentum():
    with pytest.raises(ValueError, match="momentum must be > 0 for fused_sgd"):
        mo.fused_sgd(0.1, 0.0)


@pytest.mark.parametrize(
    "make",
    [lambda: mo.sgd(0.05, 0.9, nesterov=True), lambda: mo.fused_sgd(0.05, 0.9, nesterov=True)],
    ids=["sgd", "fused_sgd"],
)
def test_train_step_donates_and_matches_a_manual_step(make):
    opt = make()
    loss = lambda p, x: sum(jnp.sum((leaf - x) ** 2) for leaf in jax.tree.leaves(p))
    step = mo.train_step(loss, opt)
    reference = mo.sgd(0.05, 0.9, nesterov=True)
    params = jax.tree.map(jnp.array, PARAMS)
    state = opt.init(params)
    ref_params, ref_state = PARAMS, reference.init(PARAMS)
    for _ in range(5):
        old = jax.tree.leaves(params)[0]
        params, state, value = step(params, state, jnp.float32(0.3))
        assert old.is_deleted()  # donated: the new parameters live in the old buffers
        ref_value, grads = jax.value_and_grad(loss)(ref_params, jnp.float32(0.3))
        updates, ref_state = reference.update(grads, ref_state, ref_params)
        ref_params = optax.apply_updates(ref_params, updates)
        np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    chex.assert_trees_all_close(params, ref_params, rtol=1e-5, atol=1e-6)


def test_train_step_passes_the_loss_to_function_restart():
    loss = lambda w: jnp.sum((w - 1.0) ** 2)
    opt = optax.chain(
        mo.adaptive_restart(mo.trace(0.99), scheme="function"), optax.scale_by_learning_rate(0.4)
    )
    step = mo.train_step(loss, opt)
    w, state = jnp.zeros(2), opt.init(jnp.zeros(2))
    for _ in range(30):
        w, state, value = step(w, state)
    assert int(state[0].restarts) > 0  # the loss rose at least once: it was seen
    assert float(value) < 1e-2


def test_train_step_with_aux_returns_it():
    loss = lambda w: (jnp.sum(w**2), {"norm": jnp.linalg.norm(w)})
    opt = mo.sgd(0.1, 0.5)
    step = mo.train_step(loss, opt, has_aux=True)
    w = jnp.ones(4)
    w, _, (value, aux) = step(w, opt.init(w))
    assert float(value) == 4.0 and float(aux["norm"]) == 2.0
