"""What a transformation is compared with: another one step by step, and the NumPy oracles.

``assert_trajectories_close`` tells a planted bug from optax's transformation and
complex updates apart by their imaginary parts; the oracles give the numbers worked by
hand, then the library's.
"""

import re

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from momentum_optax import testing
from momentum_optax.testing import oracles

# only the shapes and dtypes matter: they fix the gradient sequence
PARAMS = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}

# --- assert_trajectories_close ---


def _trace_ignoring_its_decay(decay):
    """Heavy ball with a planted bug: 0.9 whatever ``decay`` is asked for."""
    del decay

    def update_fn(updates, state, params=None):
        del params
        trace = optax.tree.add_scale(updates, 0.9, state)
        return trace, trace

    return optax.GradientTransformation(optax.tree.zeros_like, update_fn)


def test_a_transformation_that_ignores_its_coefficient_differs_from_optax_trace():
    # the battery cannot know what the coefficient means; the comparison with optax can
    testing.check_transformation(_trace_ignoring_its_decay(0.5), PARAMS)
    with pytest.raises(AssertionError) as info:
        testing.assert_trajectories_close(
            _trace_ignoring_its_decay(0.5), optax.trace(0.5), PARAMS, steps=5
        )
    message = str(info.value)
    # step 0 is g_0 for any decay; step 1 is g_1 + 0.9 g_0 instead of g_1 + 0.5 g_0
    grads = testing.gradient_sequence(PARAMS, 5, seed=0)
    g0, g1 = (np.asarray(g["b"], np.float64) for g in grads[:2])
    found = re.search(
        r"^assert_trajectories_close: step 1, updates\['b'\]: tx_a and tx_b differ by (\S+) "
        r"\(first at index \((\d),\): tx_a (\S+), tx_b (\S+)\)",
        message,
    )
    assert found, message
    gap, index, got, want = float(found[1]), int(found[2]), float(found[3]), float(found[4])
    np.testing.assert_allclose(gap, np.max(np.abs(0.4 * g0)), rtol=2e-3)  # 3 digits
    np.testing.assert_allclose(got, g1[index] + 0.9 * g0[index], rtol=1e-5)
    np.testing.assert_allclose(want, g1[index] + 0.5 * g0[index], rtol=1e-5)
    # the same bug against the oracle, on the same gradients
    outs, state = [], _trace_ignoring_its_decay(0.5).init(PARAMS)
    for g in grads:
        u, state = _trace_ignoring_its_decay(0.5).update(g, state)
        outs.append(u["w"])
    want = oracles.trace(np.stack([g["w"] for g in grads]), 0.5)
    assert np.max(np.abs(np.stack(outs) - want)) > 0.1
    # for the one coefficient it hard-codes, it is optax.trace
    testing.assert_trajectories_close(_trace_ignoring_its_decay(0.9), optax.trace(0.9), PARAMS)


# complex parameters: the gradients drawn are real, so times 1j the updates are imaginary
COMPLEX = {"z": jnp.linspace(-1.0, 1.0, 4).astype(jnp.complex64) * (1 + 0.5j)}


def test_complex_updates_that_differ_only_in_their_imaginary_parts_are_told_apart():
    # 1j as one scale or as two: the same complex updates
    testing.assert_trajectories_close(
        optax.scale(1j), optax.chain(optax.scale(-1.0), optax.scale(-1j)), COMPLEX
    )
    with pytest.raises(AssertionError) as info:
        testing.assert_trajectories_close(optax.scale(1.01j), optax.scale(1j), COMPLEX, steps=2)
    # both real parts are zero; the imaginary ones differ by 0.01 |g_0| at step 0
    g0 = np.asarray(testing.gradient_sequence(COMPLEX, 1)[0]["z"])
    found = re.search(
        r"^assert_trajectories_close: step 0, updates\['z'\]: tx_a and tx_b differ by (\S+) ",
        str(info.value),
    )
    assert found, info.value
    np.testing.assert_allclose(float(found[1]), 0.01 * np.max(np.abs(g0)), rtol=2e-3)


# --- the oracles: hand-computed numbers, then the library ---


def test_oracles_give_the_numbers_worked_by_hand():
    np.testing.assert_allclose(oracles.trace([1.0, 1.0], 0.9), [1.0, 1.9])
    # nesterov: g + b m = 1 + 0.9 * 1, 1 + 0.9 * 1.9
    np.testing.assert_allclose(oracles.trace([1.0, 1.0], 0.9, nesterov=True), [1.9, 2.71])
    np.testing.assert_allclose(oracles.ema([1.0, 2.0, 3.0], 0.5), [0.5, 1.25, 2.125])
    for decay in (0.0, 0.5, 0.9, 0.999):
        assert oracles.ema([3.25], decay, debias=True)[0] == pytest.approx(3.25, rel=1e-12)
    # scheduled debias: (1 - 0.5 * 0.8) m_1 with m_1 = 0.8 * 0.5 * 2 + 0.2 * 2
    np.testing.assert_allclose(oracles.ema([2.0, 2.0], [0.5, 0.8], debias=True), [2.0, 2.0])
    # nesterov + debias: b_1 m_0 / (1 - b_0 b_1) + (1 - b_0) g_0 / (1 - b_0) = 0.5 * 1 / 0.75 + 2
    np.testing.assert_allclose(
        oracles.ema([2.0], [0.5, 0.5], debias=True, nesterov=True), [0.5 / 0.75 + 2.0]
    )
    np.testing.assert_allclose(oracles.delta_momentum([1.0, 2.0, 3.0], 0.5), [1.0, 2.5, 4.0])
    np.testing.assert_allclose(
        oracles.coefficient_values(optax.linear_schedule(0.0, 1.0, 2), 4), [0.0, 0.5, 1.0, 1.0]
    )
    run = oracles.nesterov_lookahead(lambda x: x, np.array([1.0]), 0.5, 0.1, 2)
    np.testing.assert_allclose(run.velocity[:, 0], [0.1, 0.135])
    np.testing.assert_allclose(run.params[:, 0], [0.9, 0.765])
    np.testing.assert_allclose(run.lookahead[:, 0], [0.85, 0.765 - 0.0675])
    with pytest.raises(ValueError, match="at least 3 values; got an array of shape"):
        oracles.trace([1.0, 1.0], [0.9, 0.9], nesterov=True)


SCHEDULE = optax.linear_schedule(0.3, 0.95, 12)


@pytest.mark.parametrize("decay", [0.9, SCHEDULE], ids=["constant", "scheduled"])
@pytest.mark.parametrize("nesterov", [False, True], ids=["classical", "nesterov"])
def test_oracles_agree_with_the_library(decay, nesterov):
    grads = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)

    def library(opt):
        state, outs = opt.init(jnp.zeros(3)), []
        for g in grads:
            u, state = opt.update(jnp.asarray(g), state)
            outs.append(u)
        return np.stack(outs)

    np.testing.assert_allclose(
        library(mo.trace(decay, nesterov=nesterov)),
        oracles.trace(grads, decay, nesterov),
        rtol=2e-5,
        atol=2e-5,
    )
    for debias in (False, True):
        np.testing.assert_allclose(
            library(mo.ema(decay, debias=debias, nesterov=nesterov)),
            oracles.ema(grads, decay, debias, nesterov),
            rtol=2e-5,
            atol=2e-5,
        )
    np.testing.assert_allclose(
        library(mo.delta_momentum(decay)),
        oracles.delta_momentum(grads, decay),
        rtol=1e-6,
        atol=1e-6,
    )


def test_lookahead_oracle_is_the_path_of_nesterov_trace_in_a_chain():
    a = np.diag([0.1, 1.0, 2.0])
    theta0, eta, gamma = np.array([1.0, -1.0, 0.5]), 0.1, mo.schedules.linear_to_one(0.3, 25)
    want = oracles.nesterov_lookahead(lambda x: a @ x, theta0, gamma, eta, 30)
    opt = optax.chain(mo.trace(gamma, nesterov=True), optax.scale_by_learning_rate(eta))
    theta, state, got = jnp.asarray(theta0, jnp.float32), None, []
    state = opt.init(theta)
    for _ in range(30):
        u, state = opt.update(jnp.asarray(a, jnp.float32) @ theta, state)
        theta = optax.apply_updates(theta, u)
        got.append(theta)
    np.testing.assert_allclose(np.stack(got), want.lookahead, rtol=1e-4, atol=1e-5)
    assert np.max(np.abs(want.lookahead - want.params)) > 1e-2  # not the classical path
