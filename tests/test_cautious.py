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
    # without flip_sign the mask of a descent step is inverted: it keeps the components
    # that disagree, never one that the right mask keeps
    unflipped, _ = helpers.run_updates(
        mo.cautious(mo.sgd(0.1, 0.9, nesterov=nesterov)), grads, params
    )
    for wrong, right in zip(unflipped[1:], outside[1:]):
        for k in SHAPES:
            both = (np.asarray(wrong[k]) != 0) & (np.asarray(right[k]) != 0)
            assert not np.any(both), k


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
