"""YellowFin against Algorithm 1 of Zhang & Mitliagkas, written out in NumPy (float64).

The oracle below follows the paper's pseudo-code, not the JAX code: a Python list as the
curvature window, debiasing by ``1 - beta^(t+1)``, and SingleStep solved as the
minimisation it is (``mu D^2 + alpha^2 C`` over ``sqrt(mu)`` in [0, 1], by SciPy's bounded
scalar minimiser), not through the cubic.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import optimize

import momentum_optax as mo
from momentum_optax import self_tuning
from tests import helpers

EPS = 1e-12


def oracle_single_step(variance, distance, h_min, h_max, eps=EPS):
    """argmin_{sqrt(mu) in [0, 1]} mu D^2 + ((1 - sqrt(mu))^2 / h_min)^2 C, floored."""
    variance, h_min = max(variance, eps), max(h_min, eps)
    h_max = max(h_max, h_min)

    def objective(x):  # divided by D^2 so that the minimiser sees numbers near 1
        return x**2 + (1 - x) ** 4 * variance / (h_min**2 * distance**2)

    x = optimize.minimize_scalar(
        objective, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-13}
    ).x
    root_ratio = np.sqrt(h_max / h_min)
    mu = max(x**2, ((root_ratio - 1) / (root_ratio + 1)) ** 2)
    return (1 - np.sqrt(mu)) ** 2 / h_min, mu


def oracle_yellowfin(gradients, beta=0.999, window=20, eps=EPS):
    """Algorithm 1 (with Algorithms 2-4 and the smoothed, heavy-ball step) in float64:
    the updates (``x_{t+1} - x_t = -u_t``) and, per step, the tuned (alpha_t, mu_t) and
    the curvature range (h_min, h_max)."""
    flat = [
        np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)]).astype(np.float64)
        for g in gradients
    ]
    averages = dict.fromkeys(("g2", "g1", "hmin", "hmax", "dist", "lr", "mu"), 0.0)
    grad_avg, velocity, curvatures = np.zeros_like(flat[0]), np.zeros_like(flat[0]), []
    updates, tuned = [], []

    def ema(name, value):
        averages[name] = beta * averages[name] + (1 - beta) * value

    for t, g in enumerate(flat):
        debias = 1 - beta ** (t + 1)
        h = float(g @ g)
        curvatures = [*curvatures, h][-window:]  # CurvatureRange
        ema("hmin", min(curvatures))
        ema("hmax", max(curvatures))
        ema("g2", h)  # Variance: 1^T (mean of g^2 - (mean of g)^2)
        grad_avg = beta * grad_avg + (1 - beta) * g
        variance = averages["g2"] / debias - float(grad_avg @ grad_avg) / debias**2
        if t == 0:
            variance = 0.0
        ema("g1", np.sqrt(h))  # Distance: mean ||g|| / mean ||g||^2
        ema("dist", (averages["g1"] / debias) / max(averages["g2"] / debias, eps))
        lr_t, mu_t = oracle_single_step(
            variance,
            averages["dist"] / debias,
            averages["hmin"] / debias,
            averages["hmax"] / debias,
            eps,
        )
        ema("lr", lr_t)
        ema("mu", mu_t)
        lr, mu = averages["lr"] / debias, averages["mu"] / debias
        velocity = mu * velocity + lr * g  # x_{t+1} = x_t - lr g_t + mu (x_t - x_{t-1})
        updates.append(velocity.copy())
        tuned.append((lr, mu, averages["hmin"] / debias, averages["hmax"] / debias))
    return updates, np.array(tuned)


def noisy_gradients(steps, seed=0, spread=0.0, noise=0.3):
    """Gradient trees of a shrinking, pulsing mean plus noise: variance, distance and both
    ends of the curvature range move (the norm rises as well as falls). With ``spread``
    the whole gradient is scaled by ``10^(spread sin(0.9 t))``: a curvature range that
    spans decades (the floor stays below the cubic's root there too: the single-step
    test covers the floor)."""
    rng = np.random.default_rng(seed)
    shapes = {"w": (4, 3), "b": (3,)}
    mean = {k: rng.standard_normal(s) for k, s in shapes.items()}
    return [
        {
            k: jnp.asarray(
                10 ** (spread * np.sin(0.9 * t))
                * (
                    mean[k] * 0.97**t * (1 + 0.8 * np.sin(0.7 * t)) + noise * rng.standard_normal(s)
                ),
                jnp.float32,
            )
            for k, s in shapes.items()
        }
        for t in range(steps)
    ]


@pytest.mark.parametrize("spread", [0.0, 1.0], ids=["pulsing", "spread"])
@pytest.mark.parametrize("window", [20, 3], ids=["window20", "window3"])
@pytest.mark.parametrize("beta", [0.999, 0.9])
def test_yellowfin_follows_algorithm_1_step_by_step(beta, window, spread):
    grads = noisy_gradients(40, spread=spread)
    opt = mo.scale_by_yellowfin(beta=beta, curvature_window=window)
    params = jax.tree.map(jnp.zeros_like, grads[0])
    state, update = opt.init(params), jax.jit(opt.update)
    want_updates, want_tuned = oracle_yellowfin(grads, beta, window)
    for t, g in enumerate(grads):
        u, state = update(g, state)
        got = np.concatenate([np.ravel(x) for x in jax.tree.leaves(u)])
        np.testing.assert_allclose(got, want_updates[t], rtol=2e-4, atol=1e-6, err_msg=f"step {t}")
        correction = float(state.averages[0])
        h_range = [float(state.averages[i]) / correction for i in (3, 4)]  # h_min, h_max
        np.testing.assert_allclose(
            [float(state.learning_rate), float(state.momentum), *h_range],
            want_tuned[t],
            rtol=2e-4,
            atol=1e-7,
            err_msg=f"step {t}",
        )
    # the momentum moved away from 0 and the floor or the cubic decided it: not a trivial run
    assert want_tuned[-1, 1] > 0.05, want_tuned[-1]


def test_first_step_is_a_normalised_gradient_step():
    g = {"w": jnp.array([3.0, 4.0]), "b": jnp.array([0.0])}
    opt = mo.scale_by_yellowfin()
    u, state = opt.update(g, opt.init(g))
    assert float(state.learning_rate) == pytest.approx(1 / 25, rel=1e-6)
    assert float(state.momentum) == pytest.approx(0.0, abs=1e-12)
    chex.assert_trees_all_close(u, jax.tree.map(lambda x: x / 25, g), rtol=1e-6)


P_GRID = np.logspace(-30, 30, 121)


def test_cubic_root_matches_a_numerical_solver_over_a_grid():
    got = np.asarray(self_tuning.cubic_root(jnp.asarray(P_GRID, jnp.float32)), np.float64)
    for p, x in zip(P_GRID, got):
        # p x = (1 - x)^3 has exactly one root in [0, 1]: f(0) = -1 < 0 < f(1) = p
        want = optimize.brentq(
            lambda y, p=p: p * y - (1 - y) ** 3, 0.0, 1.0, xtol=1e-300, rtol=1e-15
        )
        assert x == pytest.approx(want, rel=1e-5), p
        # and s = 1 - x against the root of its own form s^3 + p s = p, solved apart: near
        # p = 0, s is tiny and x close to 1, so 1 - x must be s to a relative 1e-5 or to
        # within two float32 steps of x (what returning x rather than s can hold), a test
        # far tighter there than the relative 1e-5 on x above
        s = optimize.brentq(lambda z, p=p: z**3 + p * z - p, 0.0, 1.0, xtol=1e-300, rtol=1e-15)
        assert abs((1 - x) - s) <= max(1e-5 * s, 2 * np.spacing(np.float32(x))), p


@pytest.mark.parametrize("p", [0.0, np.inf, 1e-45, 1e38])
def test_cubic_root_stays_finite_at_the_ends(p):
    x = float(self_tuning.cubic_root(jnp.float32(p)))
    assert 0.0 <= x <= 1.0
    assert np.isfinite(x)


def test_single_step_matches_the_minimisation_over_a_grid():
    rng = np.random.default_rng(1)
    cases = 10.0 ** rng.uniform(-4, 4, size=(60, 3))  # variance, distance, h_min
    spread = 10.0 ** rng.uniform(0, 6, size=60)  # h_max / h_min: the floor decides some
    floored = 0
    for (variance, distance, h_min), k in zip(cases, spread):
        lr, mu = self_tuning.single_step(
            jnp.float32(variance),
            jnp.float32(distance),
            jnp.float32(h_min),
            jnp.float32(h_min * k),
            EPS,
        )
        want_lr, want_mu = oracle_single_step(variance, distance, h_min, h_min * k)
        assert float(mu) == pytest.approx(want_mu, rel=1e-4, abs=1e-7)
        assert float(lr) == pytest.approx(want_lr, rel=1e-4, abs=1e-7 / h_min)
        floored += want_mu == ((np.sqrt(k) - 1) / (np.sqrt(k) + 1)) ** 2
    assert 5 < floored < 55, floored  # both branches of the max are exercised


def test_yellowfin_is_scale_by_yellowfin_times_the_factor():
    grads = noisy_gradients(12)
    params = jax.tree.map(jnp.zeros_like, grads[0])
    plain, _ = helpers.run_updates(mo.scale_by_yellowfin(), grads, params)
    scaled, state = helpers.run_updates(mo.yellowfin(0.5), grads, params)
    for a, b in zip(plain, scaled):
        chex.assert_trees_all_close(b, jax.tree.map(lambda x: -0.5 * x, a), rtol=1e-6)
    assert isinstance(state[0], mo.YellowFinState)


def test_untuned_yellowfin_trains_a_noisy_regression():
    # least squares on mini-batches: the tuned rate and momentum settle and the loss falls
    rng = np.random.default_rng(0)
    features = jnp.asarray(rng.standard_normal((512, 8)), jnp.float32)
    truth = jnp.asarray(rng.standard_normal(8), jnp.float32)
    targets = features @ truth + 0.1 * jnp.asarray(rng.standard_normal(512), jnp.float32)
    loss = lambda w, x, y: 0.5 * jnp.mean((x @ w - y) ** 2)
    opt = mo.yellowfin()

    @jax.jit
    def step(w, state, batch):
        x, y = features[batch], targets[batch]
        updates, state = opt.update(jax.grad(loss)(w, x, y), state, w)
        return optax.apply_updates(w, updates), state

    w = jnp.zeros(8)
    state = opt.init(w)
    start = float(loss(w, features, targets))
    for _ in range(400):
        w, state = step(w, state, jnp.asarray(rng.integers(0, 512, 32)))
    assert float(loss(w, features, targets)) < 0.05 * start
    assert 0.0 < float(state[0].momentum) < 1.0 and float(state[0].learning_rate) > 0.0
