"""Cautious momentum against Liang et al.'s formula in NumPy; a zero mask; any inner."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers

SHAPES = {"w": (6, 5), "b": (5,), "scale": ()}


def gradient_trees(steps, seed=0):
    """Gradients with a persistent direction and noise: masks keep some components, drop
    others."""
    rng = np.random.default_rng(seed)
    drift = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    return [
        {
            k: jnp.asarray(drift[k] + 1.5 * rng.standard_normal(s), jnp.float32)
            for k, s in SHAPES.items()
        }
        for _ in range(steps)
    ]


def paper_cautious_heavy_ball(grads, beta):
    """C-SGDM of the paper, float64: ``m_t = beta m_{t-1} + g_t``, ``phi = 1[m_t g_t > 0]``,
    ``u_t = d / (nnz(phi) + 1) * phi * m_t`` per parameter tensor of ``d`` elements."""
    m = {k: np.zeros(s) for k, s in SHAPES.items()}
    out = []
    for g in grads:
        u = {}
        for k in SHAPES:
            gk = np.asarray(g[k], np.float64)
            m[k] = beta * m[k] + gk
            phi = (m[k] * gk > 0).astype(np.float64)
            u[k] = m[k].size / (phi.sum() + 1) * phi * m[k]
        out.append(u)
    return out


def test_cautious_trace_follows_the_papers_formula():
    grads = gradient_trees(25)
    params = jax.tree.map(jnp.zeros_like, grads[0])
    got, state = helpers.run_updates(mo.cautious(mo.trace(0.9)), grads, params, jit=True)
    want = paper_cautious_heavy_ball(grads, 0.9)
    kept = []
    for t, (u, w) in enumerate(zip(got, want)):
        for k in SHAPES:
            np.testing.assert_allclose(
                np.asarray(u[k]), w[k], rtol=1e-5, atol=1e-6, err_msg=f"{t}{k}"
            )
        kept.append(np.mean(np.asarray(u["w"]) != 0))
    assert 0.3 < np.mean(kept) < 0.95, kept  # the mask does keep some and drop some
    # the buffer is the plain heavy ball's: the mask acts on the output only
    _, plain = helpers.run_updates(mo.trace(0.9), grads, params, jit=True)
    chex.assert_trees_all_close(state, plain, rtol=1e-6)
    chex.assert_trees_all_equal_structs(state, plain)


def test_a_zero_mask_gives_a_zero_update_not_a_division_by_zero():
    opt = mo.cautious(mo.trace(0.9))
    params = {"w": jnp.zeros(4), "s": jnp.zeros(())}
    state = opt.init(params)
    _, state = opt.update({"w": jnp.ones(4), "s": jnp.ones(())}, state)  # m = 1
    # every component disagrees (m = 1 - 0.9 * ... stays positive, g = -0.5)
    u, state = opt.update({"w": jnp.full(4, -0.5), "s": -0.5 * jnp.ones(())}, state)
    chex.assert_trees_all_equal(u, {"w": jnp.zeros(4), "s": jnp.zeros(())})
    # a zero gradient agrees with nothing either: zero, finite
    u, _ = opt.update({"w": jnp.zeros(4), "s": jnp.zeros(())}, state)
    chex.assert_trees_all_equal(u, {"w": jnp.zeros(4), "s": jnp.zeros(())})


def test_a_full_mask_is_scaled_by_d_over_d_plus_one():
    opt = mo.cautious(mo.trace(0.5))
    g = {"w": jnp.arange(1.0, 9.0)}
    u, _ = opt.update(g, opt.init(g))
    chex.assert_trees_all_close(u, {"w": 8 / 9 * g["w"]}, rtol=1e-6)


@pytest.mark.parametrize("nesterov", [False, True], ids=["heavy_ball", "nesterov"])
def test_a_whole_optimizer_is_masked_with_flip_sign(nesterov):
    # mo.sgd's updates are -lr m: with flip_sign the mask keeps -u g > 0, so wrapping the
    # optimizer equals wrapping the momentum before the learning rate
    grads = gradient_trees(15, seed=1)
    params = jax.tree.map(jnp.zeros_like, grads[0])
    outside, _ = helpers.run_updates(
        mo.cautious(mo.sgd(0.1, 0.9, nesterov=nesterov), flip_sign=True), grads, params
    )
    inside, _ = helpers.run_updates(
        optax.chain(mo.cautious(mo.trace(0.9, nesterov=nesterov)), mo.scale_by_learning_rate(0.1)),
        grads,
        params,
    )
    for a, b in zip(outside, inside):
        chex.assert_trees_all_close(a, b, rtol=1e-6)
    assert any(np.any(np.asarray(u["w"]) == 0) for u in outside)  # some were masked
    assert any(np.any(np.asarray(u["w"]) != 0) for u in outside)  # and some kept
    # without flip_sign the direction is read from the optimizer: the same updates
    inferred, _ = helpers.run_updates(
        mo.cautious(mo.sgd(0.1, 0.9, nesterov=nesterov)), grads, params
    )
    for a, b in zip(inferred, outside):
        chex.assert_trees_all_close(a, b, rtol=1e-6)


def test_a_warm_up_from_zero_is_masked_by_the_gradient_not_by_a_fresh_step():
    # the learning rate starts at 0: the mask reads the gradient, so training starts as the
    # rate rises (a mask read from a fresh optimizer's first step would stay empty)
    warm_up = optax.linear_schedule(0.0, 0.1, 10)
    grads = gradient_trees(20, seed=3)
    params = jax.tree.map(jnp.zeros_like, grads[0])
    got, _ = helpers.run_updates(mo.cautious(mo.sgd(warm_up, 0.9), flip_sign=True), grads, params)
    want, _ = helpers.run_updates(
        optax.chain(mo.cautious(mo.trace(0.9)), mo.scale_by_learning_rate(warm_up)),
        grads,
        params,
    )
    for a, b in zip(got, want):
        chex.assert_trees_all_close(a, b, rtol=1e-6)
    assert np.any(np.asarray(got[-1]["w"]) != 0)


def test_cautious_ema_with_debias_masks_by_the_gradients_sign():
    grads = gradient_trees(10, seed=2)
    params = jax.tree.map(jnp.zeros_like, grads[0])
    got, _ = helpers.run_updates(mo.cautious(mo.ema(0.9, debias=True)), grads, params)
    plain, _ = helpers.run_updates(mo.ema(0.9, debias=True), grads, params)
    for u, m, g in zip(got, plain, grads):
        for k in SHAPES:
            m_k, g_k = np.asarray(m[k], np.float64), np.asarray(g[k], np.float64)
            phi = m_k * g_k > 0
            want = np.where(phi, m_k * m_k.size / (phi.sum() + 1), 0.0)
            np.testing.assert_allclose(np.asarray(u[k]), want, rtol=1e-5, atol=1e-7)


def test_cautious_keeps_the_inner_state_and_passes_the_loss_on():
    inner = mo.adaptive_restart(mo.trace(0.9), scheme="function")
    opt = mo.cautious(inner)
    params = jnp.zeros(3)
    state = opt.init(params)
    chex.assert_trees_all_equal_structs(state, inner.init(params))
    _, state = opt.update(jnp.ones(3), state, params, value=jnp.float32(1.0))
    _, state = opt.update(jnp.ones(3), state, params, value=jnp.float32(2.0))  # loss rose
    assert int(state.restarts) == 1


# --- the direction: inferred, or checked and refused when it would invert the mask --------


@pytest.mark.parametrize(
    "inner,flip_sign,right",
    [
        (lambda: mo.sgd(0.1, 0.9), False, True),
        (lambda: optax.adam(1e-2), False, True),
        (lambda: mo.trace(0.9), True, False),
        (lambda: optax.scale_by_adam(), True, False),
    ],
    ids=["sgd", "adam", "trace", "scale_by_adam"],
)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_a_flip_sign_that_would_invert_the_mask_is_refused(inner, flip_sign, right, jit):
    opt = mo.cautious(inner(), flip_sign=flip_sign)
    params = {"w": jnp.zeros(3)}
    update = jax.jit(opt.update) if jit else opt.update
    with pytest.raises(ValueError, match=rf"flip_sign={flip_sign}\).*Use flip_sign={right}"):
        update({"w": jnp.ones(3)}, opt.init(params), params)


def test_adam_wrapped_whole_reads_its_direction_and_equals_the_direction_masked():
    grads = gradient_trees(15, seed=4)
    params = jax.tree.map(jnp.zeros_like, grads[0])
    whole, _ = helpers.run_updates(mo.cautious(optax.adam(1e-2)), grads, params, jit=True)
    inside, _ = helpers.run_updates(
        optax.chain(mo.cautious(optax.scale_by_adam()), optax.scale(-1e-2)), grads, params
    )
    for a, b in zip(whole, inside):
        chex.assert_trees_all_close(a, b, rtol=1e-6, atol=1e-9)
    assert any(np.any(np.asarray(u["w"]) == 0) for u in whole)  # some were masked


def test_a_direction_that_cannot_be_read_asks_for_flip_sign():
    # a learning rate warming up from 0: the probe's first step is 0 (see the warm-up test
    # for the same optimizer with flip_sign=True)
    opt = mo.cautious(mo.sgd(optax.linear_schedule(0.0, 0.1, 10), 0.9))
    params = jnp.zeros(3)
    with pytest.raises(ValueError, match=r"pass flip_sign=False .* or flip_sign=True"):
        opt.update(jnp.ones(3), opt.init(params), params)
    # hyperparameters injected under jit are traced: the probe cannot read them either
    injected = optax.inject_hyperparams(lambda learning_rate: mo.cautious(mo.sgd(learning_rate)))
    opt = injected(learning_rate=0.1)
    with pytest.raises(ValueError, match="pass flip_sign"):
        jax.jit(opt.update)(jnp.ones(3), opt.init(params), params)
    given = optax.inject_hyperparams(
        lambda learning_rate: mo.cautious(mo.sgd(learning_rate), flip_sign=True)
    )(learning_rate=0.1)
    u, _ = jax.jit(given.update)(jnp.ones(3), given.init(params), params)
    np.testing.assert_allclose(u, -0.1 * 3 / 4 * np.ones(3), rtol=1e-6)


def test_cautious_sgd_without_flip_sign_descends_a_quadratic():
    # with the mask inverted (the old default) this quadratic never moved
    h = jnp.array([1.0, 3.0, 10.0])
    loss = lambda w: 0.5 * jnp.sum(h * w**2)
    run = helpers.descend(
        mo.cautious(mo.sgd(0.05, 0.9)), jnp.ones(3), 100, helpers.gradient_of(loss)
    )
    assert float(loss(run.params)) < 1e-3 * float(loss(jnp.ones(3)))


# --- weight decay: C-AdamW's decay is unmasked ---------------------------------------------


def paper_c_adamw(grads, params, lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    """C-AdamW of the paper's code, float64: Adam's direction masked by the gradient and
    rescaled, the decoupled decay ``lr * wd * p`` unmasked."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for t, g in enumerate(grads, start=1):
        for k in p:
            gk = np.asarray(g[k], np.float64)
            m[k] = b1 * m[k] + (1 - b1) * gk
            v[k] = b2 * v[k] + (1 - b2) * gk**2
            u = (m[k] / (1 - b1**t)) / (np.sqrt(v[k] / (1 - b2**t)) + eps)
            phi = (u * gk > 0).astype(np.float64)
            p[k] = p[k] - lr * (u * phi * u.size / (phi.sum() + 1) + wd * p[k])
    return p


def test_adamw_wrapped_whole_is_refused_naming_the_c_adamw_chain():
    opt = mo.cautious(optax.adamw(1e-2, weight_decay=0.1))
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"optax.chain\(mo.cautious\(optax.scale_by_adam"):
        opt.update({"w": jnp.ones(3)}, opt.init(params), params)
    # the spelling it names is C-AdamW
    grads = gradient_trees(20, seed=5)
    params = jax.tree.map(lambda g: jnp.full(g.shape, 0.5, jnp.float32), grads[0])
    chain = optax.chain(
        mo.cautious(optax.scale_by_adam()),
        optax.add_decayed_weights(0.1),
        optax.scale_by_learning_rate(1e-2),
    )
    run = helpers.descend(chain, params, len(grads), helpers.given(grads))
    want = paper_c_adamw(grads, params, 1e-2, 0.1)
    for k in SHAPES:
        np.testing.assert_allclose(np.asarray(run.params[k]), want[k], rtol=1e-5, atol=1e-6)
    # mask_decay=True masks the decay too, as asked: not C-AdamW
    masked = mo.cautious(optax.adamw(1e-2, weight_decay=0.1), mask_decay=True)
    other = helpers.descend(masked, params, len(grads), helpers.given(grads))
    assert not np.allclose(np.asarray(other.params["w"]), want["w"], rtol=1e-3)


# --- non-finite values and tiny products ---------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_a_non_finite_gradient_shows_in_the_update_as_in_trace(bad):
    grads = gradient_trees(6, seed=6)
    grads[2] = {**grads[2], "w": grads[2]["w"].at[1, 2].set(bad)}
    for t in range(3, 6):  # later gradients disagree with the +inf buffer there
        grads[t] = {**grads[t], "w": grads[t]["w"].at[1, 2].set(-1.0)}
    params = jax.tree.map(jnp.zeros_like, grads[0])
    got, _ = helpers.run_updates(mo.cautious(mo.trace(0.9)), grads, params, jit=True)
    plain, _ = helpers.run_updates(mo.trace(0.9), grads, params, jit=True)
    for t in range(2, 6):  # from the bad step on, non-finite wherever trace's update is
        u, m = np.asarray(got[t]["w"]), np.asarray(plain[t]["w"])
        assert not np.isfinite(u[1, 2]), t
        np.testing.assert_array_equal(np.isfinite(u), np.isfinite(m))
    assert np.all(np.isfinite(np.asarray(got[1]["w"])))


def test_the_mask_reads_signs_so_tiny_products_do_not_underflow():
    # u * g = 1e-40 flushes to 0 in float32 on XLA's CPU: every sign agrees all the same
    g = jnp.full(4, 1e-20, jnp.float32)
    opt = mo.cautious(mo.trace(0.9))
    u, _ = jax.jit(opt.update)(g, opt.init(g))
    np.testing.assert_allclose(np.asarray(u), 4 / 5 * 1e-20, rtol=1e-6)
