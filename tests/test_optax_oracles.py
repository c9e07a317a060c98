"""Against optax's own implementations: bit-for-bit where the formula is the same."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers

STEPS = 40


def _quadratic_trajectory(opt, steps=STEPS, seed=0):
    """Parameters along ``steps`` jitted steps on a random quadratic (a pytree of two leaves)."""
    rng = np.random.default_rng(seed)
    scales = {
        "a": jnp.asarray(rng.uniform(0.1, 2.0, (3, 4)), jnp.float32),
        "b": jnp.asarray(rng.uniform(0.1, 2.0, (5,)), jnp.float32),
    }
    params = {
        "a": jnp.asarray(rng.standard_normal((3, 4)), jnp.float32),
        "b": jnp.asarray(rng.standard_normal(5), jnp.float32),
    }
    loss = lambda p: sum(
        jnp.sum(s * x**2) for s, x in zip(jax.tree.leaves(scales), jax.tree.leaves(p))
    )
    run = helpers.descend(opt, params, steps, helpers.gradient_of(loss))
    return run.history, run.state


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("nesterov", [False, True], ids=["classical", "nesterov"])
def test_trace_is_bit_for_bit_optax_trace(nesterov, decay):
    grads = list(helpers.random_steps(0, STEPS, (6,)))
    ours, our_state = helpers.run_updates(
        mo.trace(decay, nesterov=nesterov), grads, jnp.zeros(6), jit=True
    )
    theirs, their_state = helpers.run_updates(
        optax.trace(decay, nesterov=nesterov), grads, jnp.zeros(6), jit=True
    )
    chex.assert_trees_all_equal(ours, theirs)
    # optax's state itself: the same tree structure (optax.TraceState) and leaves, bit for bit
    assert type(our_state) is optax.TraceState
    chex.assert_trees_all_equal(our_state, their_state)


@pytest.mark.parametrize(
    "momentum, nesterov", [(None, False), (0.0, False), (0.0, True), (0.9, False), (0.9, True)]
)
def test_sgd_is_bit_for_bit_optax_sgd(nesterov, momentum):
    ours, our_state = _quadratic_trajectory(mo.sgd(0.05, momentum, nesterov=nesterov))
    theirs, _ = _quadratic_trajectory(optax.sgd(0.05, momentum, nesterov=nesterov))
    chex.assert_trees_all_equal(ours, theirs)
    # the state is optax's, structure included (None keeps no buffer, 0.0 keeps one, as optax)
    _, their_state = _quadratic_trajectory(optax.sgd(0.05, momentum, nesterov=nesterov))
    chex.assert_trees_all_equal(our_state, their_state)


def test_lr_inside_trace_is_bit_for_bit_optax_rmsprop_momentum():
    # seed 001: momentum combined with RMSprop, the learning rate inside the velocity
    ours = optax.chain(
        optax.scale_by_rms(decay=0.9, eps=1e-6),
        optax.scale_by_learning_rate(0.01),
        mo.trace(0.8),
    )
    theirs = optax.rmsprop(0.01, decay=0.9, eps=1e-6, momentum=0.8)
    chex.assert_trees_all_equal(_quadratic_trajectory(ours)[0], _quadratic_trajectory(theirs)[0])


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.999])
@pytest.mark.parametrize("debias", [False, True], ids=["biased", "debiased"])
def test_ema_is_close_to_optax_ema(debias, decay):
    grads = list(helpers.random_steps(1, STEPS, (6,)))
    ours, _ = helpers.run_updates(mo.ema(decay, debias=debias), grads, jnp.zeros(6))
    theirs, _ = helpers.run_updates(optax.ema(decay, debias=debias), grads, jnp.zeros(6))
    chex.assert_trees_all_close(ours, theirs, rtol=5e-5, atol=1e-6)
    # and at least as close as optax to the float64 formula (1 - prod b is kept
    # as an EMA of ones, which loses no relative precision when prod b -> 1)
    truth = helpers.np_ema(np.array(grads, np.float64), np.full(STEPS + 1, decay), debias)
    error = lambda x: np.max(np.abs(np.array(x, np.float64) - truth) / np.abs(truth))
    assert error(ours) <= error(theirs) * 1.01 + 1e-7


@pytest.mark.parametrize("nesterov", [False, True], ids=["adam", "nadam"])
def test_adam_is_debiased_ema_over_root_of_debiased_ema_of_squares(nesterov):
    # seed 001: m_hat / (sqrt(v_hat) + eps), both moments debiased EMAs
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    grads = list(helpers.random_steps(2, STEPS, (6,)))
    m_hat, _ = helpers.run_updates(mo.ema(b1, debias=True, nesterov=nesterov), grads, grads[0])
    v_hat, _ = helpers.run_updates(mo.ema(b2, debias=True), [g**2 for g in grads], grads[0])
    ours = [-lr * m / (jnp.sqrt(v) + eps) for m, v in zip(m_hat, v_hat)]
    make = optax.nadam if nesterov else optax.adam
    theirs, _ = helpers.run_updates(make(lr, b1=b1, b2=b2, eps=eps), grads, jnp.zeros(6))
    chex.assert_trees_all_close(ours, theirs, rtol=1e-4, atol=1e-7)


def test_scheduled_debias_is_exact_where_power_form_is_not():
    # with b_t scheduled, 1 - prod b_i is the right normaliser: a constant gradient
    # must come back unchanged; optax-style 1 - b_t**t gets it wrong
    schedule = optax.linear_schedule(0.5, 0.99, 10)
    outs, _ = helpers.run_updates(
        mo.ema(schedule, debias=True), [jnp.float32(3.0)] * 15, jnp.zeros(())
    )
    np.testing.assert_allclose(outs, 3.0, rtol=1e-5)
    betas = helpers.schedule_values(schedule, 15)
    m, power_form = 0.0, []
    for t, b in enumerate(betas):
        m = b * m + (1 - b) * 3.0
        power_form.append(m / (1 - b ** (t + 1)))
    assert np.max(np.abs(np.array(power_form) - 3.0)) > 0.1
