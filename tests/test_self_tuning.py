"""YellowFin against Algorithm 1 of Zhang & Mitliagkas and the safeguards of the authors' code,
written out in NumPy (float64).

The oracle below follows the paper's pseudo-code and the reference implementations'
safeguards (JianGoForIt/YellowFin ``tuner_utils/yellowfin.py``, JianGoForIt/YellowFin_Pytorch
``tuner_utils/yellowfin.py``), not the JAX code: a Python list as the curvature window,
debiasing by ``1 - beta^(t+1)``, and SingleStep solved as the minimisation it is
(``mu D^2 + alpha^2 C`` over ``sqrt(mu)`` in [0, 1], by SciPy's bounded scalar minimiser), not
through the cubic. ``PAPER`` switches the safeguards off: Algorithm 1 as printed.
"""

import collections

import chex
import flax.serialization
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
INT32_MAX = 2**31 - 1
#: every safeguard off: the paper's Algorithm 1 (the library's YellowFin before these safeguards)
PAPER = dict(
    scale_invariant=False,
    log_curvature=False,
    smooth_tuned=True,
    slow_start=False,
    adaptive_clip=False,
    max_move=None,
)
DEFAULTS = dict(
    scale_invariant=True,
    log_curvature=True,
    smooth_tuned=True,
    slow_start=True,
    adaptive_clip=True,
    stat_protect_factor=100.0,
    max_move=100.0,
    sparsity_debias=False,
    non_increasing_step=False,
)


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


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)]).astype(np.float64)


def oracle_yellowfin(gradients, beta=0.999, window=20, eps=EPS, **options):
    """Algorithm 1 (with Algorithms 2-4 and the heavy-ball step) and the safeguards, in
    float64. Returns the updates (``x_{t+1} - x_t = -u_t``), per step the tuned
    ``(alpha_t, mu_t, h_min, h_max)``, how often each safeguard fired, and the paper-layout
    state after the last step (what the library stored before these safeguards)."""
    o = {**DEFAULTS, **options}
    flat = [_flat(g) for g in gradients]
    avg = collections.defaultdict(float)
    grad_avg, velocity = np.zeros_like(flat[0]), np.zeros_like(flat[0])
    curvatures, ring = [], np.zeros(window)
    scale = 0.0 if o["scale_invariant"] else 1.0
    least, h_max_prev = None, None
    updates, tuned, fired = [], [], collections.Counter()

    def ema(name, value):
        avg[name] = beta * avg[name] + (1 - beta) * value

    for t, g in enumerate(flat):
        debias = 1 - beta ** (t + 1)
        if scale == 0.0:
            scale = float(np.linalg.norm(g))  # the first nonzero gradient's norm
        g = g / (scale or 1.0)
        n = float(np.linalg.norm(g))
        if o["adaptive_clip"] and t >= 1 and n > np.sqrt(o["stat_protect_factor"] * h_max_prev):
            limit = np.sqrt(o["stat_protect_factor"] * h_max_prev)  # protects the statistics
            g, n, fired["protect"] = g * limit / n, limit, fired["protect"] + 1
        h = n * n
        ring[t % window] = h
        curvatures = [*curvatures, h + eps][-window:]  # CurvatureRange
        low, high = min(curvatures), max(curvatures)
        ema("hmin", np.log(low) if o["log_curvature"] else low)
        ema("hmax", np.log(high) if o["log_curvature"] else high)
        ema("g2", h)  # Variance: 1^T (mean of g^2 - (mean of g)^2)
        grad_avg = beta * grad_avg + (1 - beta) * g
        variance = avg["g2"] / debias - float(grad_avg @ grad_avg) / debias**2
        if t == 0:
            variance = 0.0
        ema("g1", n)  # Distance: mean ||g|| / mean ||g||^2
        ema("dist", (avg["g1"] / debias) / max(avg["g2"] / debias, eps))
        h_min, h_max = avg["hmin"] / debias, avg["hmax"] / debias
        if o["log_curvature"]:
            h_min, h_max = np.exp(h_min), np.exp(h_max)
        distance = avg["dist"] / debias
        if o["sparsity_debias"]:
            ema("density", np.count_nonzero(g) / g.size)
            density = avg["density"] / debias
            h_min, h_max, variance = h_min * density, h_max * density, variance * density
            distance /= np.sqrt(density) + eps
        lr_t, mu_t = oracle_single_step(variance, distance, h_min, h_max, eps)
        ema("lr", lr_t)
        ema("mu", mu_t)
        lr, mu = (avg["lr"] / debias, avg["mu"] / debias) if o["smooth_tuned"] else (lr_t, mu_t)
        if o["slow_start"]:  # on the rate used, as the codes' (unsmoothed) default has it
            lr *= min(1.0, (t + 1) / (10 * window))
        if o["non_increasing_step"] and t > window:  # the PyTorch port's force_non_inc_step
            ema("step_debias", 1.0)
            ema("log_g2", np.log(h + eps))
            ema("log_step", np.log(lr * n + eps))
            step = np.exp(avg["log_step"] / avg["step_debias"])
            least = step if least is None else min(least, step)
            capped = 2 * least / (np.exp(avg["log_g2"] / avg["step_debias"] / 2) + eps)
            fired["non-increasing"] += capped < lr
            lr = min(lr, capped)
        if o["max_move"] is not None and lr * n > o["max_move"]:
            lr, fired["move"] = o["max_move"] / n, fired["move"] + 1
        step_g = g
        if o["adaptive_clip"] and t >= 1 and n > np.sqrt(h_max_prev):
            step_g, fired["explode"] = g * np.sqrt(h_max_prev) / n, fired["explode"] + 1
        h_max_prev = h_max
        velocity = mu * velocity + lr * step_g  # x_{t+1} = x_t - lr g_t + mu (x_t - x_{t-1})
        updates.append(velocity.copy())
        tuned.append((lr / (scale or 1.0), mu, h_min, h_max))
    paper_layout = {
        "count": len(flat),
        "velocity": velocity,
        "grad_avg": grad_avg,
        "window": ring,
        "averages": np.array(
            [1 - beta ** len(flat)]
            + [avg[k] for k in ("g2", "g1", "hmin", "hmax", "dist", "lr")]
            + [avg["mu"]]
        ),
        "learning_rate": tuned[-1][0],
        "momentum": tuned[-1][1],
    }
    return updates, np.array(tuned), fired, paper_layout


def noisy_gradients(steps, seed=0, spread=0.0, noise=0.3, spikes=()):
    """Gradient trees of a shrinking, pulsing mean plus noise: variance, distance and both
    ends of the curvature range move (the norm rises as well as falls). With ``spread``
    the whole gradient is scaled by ``10^(spread sin(0.9 t))``: a curvature range that
    spans decades (the floor stays below the cubic's root there too: the single-step
    test covers the floor). ``spikes`` maps steps to factors on their gradient."""
    rng = np.random.default_rng(seed)
    shapes = {"w": (4, 3), "b": (3,)}
    mean = {k: rng.standard_normal(s) for k, s in shapes.items()}
    spikes = dict(spikes)
    return [
        {
            k: jnp.asarray(
                spikes.get(t, 1.0)
                * 10 ** (spread * np.sin(0.9 * t))
                * (
                    mean[k] * 0.97**t * (1 + 0.8 * np.sin(0.7 * t)) + noise * rng.standard_normal(s)
                ),
                jnp.float32,
            )
            for k, s in shapes.items()
        }
        for t in range(steps)
    ]


def _check_against_oracle(opt, grads, want_updates, want_tuned):
    params = jax.tree.map(jnp.zeros_like, grads[0])
    state, update = opt.init(params), jax.jit(opt.update)
    for t, g in enumerate(grads):
        u, state = update(g, state)
        np.testing.assert_allclose(
            _flat(u), want_updates[t], rtol=2e-4, atol=1e-6, err_msg=f"step {t}"
        )
        np.testing.assert_allclose(
            [float(state.learning_rate), float(state.momentum)],
            want_tuned[t, :2],
            rtol=2e-4,
            atol=1e-7,
            err_msg=f"step {t}",
        )
    return state


@pytest.mark.parametrize("spread", [0.0, 1.0], ids=["pulsing", "spread"])
@pytest.mark.parametrize("window", [20, 3], ids=["window20", "window3"])
@pytest.mark.parametrize("beta", [0.999, 0.9])
def test_yellowfin_follows_algorithm_1_step_by_step(beta, window, spread):
    grads = noisy_gradients(40, spread=spread)
    opt = mo.scale_by_yellowfin(beta=beta, curvature_window=window, **PAPER)
    want_updates, want_tuned, _, _ = oracle_yellowfin(grads, beta, window, **PAPER)
    state = _check_against_oracle(opt, grads, want_updates, want_tuned)
    correction = float(state.averages[0])
    h_range = [float(state.averages[i]) / correction for i in (3, 4)]  # h_min, h_max
    np.testing.assert_allclose(h_range, want_tuned[-1, 2:], rtol=2e-4)
    # the momentum moved away from 0 and the floor or the cubic decided it: not a trivial run
    assert want_tuned[-1, 1] > 0.05, want_tuned[-1]


SAFEGUARDED = {
    "defaults": {},
    "unsmoothed": dict(smooth_tuned=False),
    "linear_curvature": dict(log_curvature=False),
    "tight_move": dict(max_move=0.02),
    "sparsity_debias": dict(sparsity_debias=True),
    "non_increasing_step": dict(non_increasing_step=True),
}


@pytest.mark.parametrize("window", [20, 3], ids=["window20", "window3"])
@pytest.mark.parametrize("options", SAFEGUARDED.values(), ids=SAFEGUARDED.keys())
def test_safeguards_follow_the_reference_code_step_by_step(options, window):
    # a spike of 1000x fires the statistics' protection and the exploding-gradient clip
    grads = noisy_gradients(60, seed=1, spread=1.0, spikes={30: 1e3, 45: 1e-3})
    if options.get("sparsity_debias"):
        rng = np.random.default_rng(2)
        grads = [jax.tree.map(lambda x: x * (rng.random(x.shape) < 0.4), g) for g in grads]
    beta = 0.9
    opt = mo.scale_by_yellowfin(beta=beta, curvature_window=window, **options)
    want_updates, want_tuned, fired, _ = oracle_yellowfin(grads, beta, window, **options)
    _check_against_oracle(opt, grads, want_updates, want_tuned)
    assert fired["protect"] >= 1 and fired["explode"] >= 1, fired
    if "max_move" in options:
        assert fired["move"] >= 1, fired
    if options.get("non_increasing_step"):
        assert fired["non-increasing"] >= 1, fired


def test_first_step_is_a_normalised_gradient_step():
    g = {"w": jnp.array([3.0, 4.0]), "b": jnp.array([0.0])}
    opt = mo.scale_by_yellowfin(**PAPER)
    u, state = opt.update(g, opt.init(g))
    assert float(state.learning_rate) == pytest.approx(1 / 25, rel=1e-6)
    assert float(state.momentum) == pytest.approx(0.0, abs=1e-12)
    chex.assert_trees_all_close(u, jax.tree.map(lambda x: x / 25, g), rtol=1e-6)


def test_first_step_by_default_has_length_one_over_ten_windows():
    # scale invariant: the step is g / ||g||, and the slow start takes 1 / (10 w) of it
    g = {"w": jnp.array([3.0, 4.0]), "b": jnp.array([0.0])}
    opt = mo.scale_by_yellowfin()
    u, state = opt.update(g, opt.init(g))
    chex.assert_trees_all_close(u, jax.tree.map(lambda x: x / 5 / 200, g), rtol=1e-6)
    assert float(state.scale) == pytest.approx(5.0, rel=1e-6)
    assert float(state.learning_rate) == pytest.approx(1 / 5 / 200, rel=1e-6)


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


# --- the state: its own buffers, a window that cycles, old states restored ----------------


def test_init_gives_every_state_field_its_own_buffer():
    state = mo.scale_by_yellowfin().init({"w": jnp.zeros(3), "b": jnp.zeros(2)})
    leaves = [leaf for leaf in jax.tree.leaves(state) if isinstance(leaf, jax.Array)]
    pointers = [leaf.unsafe_buffer_pointer() for leaf in leaves]
    assert len({id(leaf) for leaf in leaves}) == len(leaves)
    assert len(set(pointers)) == len(pointers), state


def test_train_step_donates_the_yellowfin_state():
    loss = lambda w, x: jnp.sum((w - x) ** 2)
    opt = mo.yellowfin()
    step = mo.train_step(loss, opt)
    w = jnp.ones(3)
    state = opt.init(w)
    for t in range(3):
        w, state, value = step(w, state, jnp.full(3, 0.5 * t))
    assert int(state[0].count) == 3 and bool(jnp.isfinite(value))


def test_curvature_window_cycles_after_the_count_saturates():
    # 25 steps of large gradients, then the count pinned at int32's maximum (where it
    # saturates): the next w steps replace every slot of the window, so the curvature
    # range forgets the large gradients
    opt, w = mo.scale_by_yellowfin(curvature_window=5), 5
    state = opt.init(jnp.zeros(2))
    for _ in range(25):
        _, state = opt.update(jnp.array([30.0, 40.0]), state)
    large = np.asarray(state.window).min()  # every slot holds ||g|| = 50
    state = state._replace(count=jnp.asarray(INT32_MAX, jnp.int32))
    norms = 0.1 * np.arange(1.0, w + 1)  # ||g|| of the next w gradients
    for n in norms:
        _, state = opt.update(jnp.array([0.6 * n, 0.8 * n]), state)
    assert int(state.count) == INT32_MAX
    assert np.asarray(state.window).max() < large  # no slot is left from before
    # the slots hold log(||g / s||^2 + eps), s = 50 the first gradient's norm
    want = np.log((norms / 50.0) ** 2 + EPS)
    np.testing.assert_allclose(np.sort(np.asarray(state.window, np.float64)), want, rtol=1e-6)


def _paper_state(layout, params):
    """The oracle's paper-layout state as the library stored it before these safeguards
    (the legacy layout): field names to float32 arrays, the buffers shaped like ``params``."""
    return {
        "count": jnp.asarray(layout["count"], jnp.int32),
        "velocity": _unflatten(params, layout["velocity"]),
        "grad_avg": _unflatten(params, layout["grad_avg"]),
        "window": jnp.asarray(layout["window"], jnp.float32),
        "averages": jnp.asarray(layout["averages"], jnp.float32),
        "learning_rate": jnp.asarray(layout["learning_rate"], jnp.float32),
        "momentum": jnp.asarray(layout["momentum"], jnp.float32),
    }


def _unflatten(params, flat):
    """``flat`` (the oracle's concatenated leaves) as a tree shaped like ``params``."""
    leaves, treedef = jax.tree.flatten(params)
    sizes = np.cumsum([leaf.size for leaf in leaves])[:-1]
    parts = np.split(np.asarray(flat, np.float32), sizes)
    return treedef.unflatten([jnp.asarray(p.reshape(leaf.shape)) for p, leaf in zip(parts, leaves)])


@pytest.mark.parametrize("window,taken", [(20, 25), (20, 7), (3, 40)])
def test_a_legacy_state_continues_as_algorithm_1(window, taken):
    # the paper-layout state after `taken` steps, upgraded, continues Algorithm 1 exactly
    # (with every safeguard off, as that state was made)
    grads = noisy_gradients(taken + 15, spread=1.0)
    beta = 0.9
    *_, layout = oracle_yellowfin(grads[:taken], beta, window, **PAPER)
    want_updates, want_tuned, _, _ = oracle_yellowfin(grads, beta, window, **PAPER)
    old = _paper_state(layout, grads[0])
    state = mo.YellowFinState.from_legacy(old, log_curvature=False)
    opt = mo.scale_by_yellowfin(beta=beta, curvature_window=window, **PAPER)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, opt.init(grads[0]))
    update = jax.jit(opt.update)
    for t in range(taken, len(grads)):
        u, state = update(grads[t], state)
        np.testing.assert_allclose(
            _flat(u), want_updates[t], rtol=2e-4, atol=1e-6, err_msg=f"step {t}"
        )
        np.testing.assert_allclose(float(state.momentum), want_tuned[t, 1], rtol=2e-4, atol=1e-7)


def test_a_legacy_msgpack_checkpoint_restores_and_keeps_its_curvature_range():
    # an old chain state, serialised by flax: restored without a target (a dict of the old
    # fields), upgraded for the default log-space curvature range, and trained on
    grads = noisy_gradients(30)
    *_, layout = oracle_yellowfin(grads, **PAPER)
    old = _paper_state(layout, grads[0])
    saved = flax.serialization.msgpack_serialize({"0": old, "1": {"count": jnp.zeros([])}})
    restored = flax.serialization.msgpack_restore(saved)
    opt = mo.yellowfin()
    state = mo.YellowFinState.from_legacy(restored["0"])
    target = opt.init(grads[0])
    mo.check_restored((state, target[1]), target)
    corr = float(state.averages[0])
    for i in (3, 4):  # the debiased h_min, h_max: log of the old ones
        want = np.log(layout["averages"][i] / layout["averages"][0])
        assert float(state.averages[i]) / corr == pytest.approx(want, rel=1e-5)
    opt_state = (state, target[1])
    params = jax.tree.map(jnp.zeros_like, grads[0])
    for g in grads[:5]:
        updates, opt_state = opt.update(g, opt_state, params)
        params = optax.apply_updates(params, updates)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves((params, opt_state)))


def test_from_legacy_names_what_is_missing():
    with pytest.raises(ValueError, match="averages"):
        mo.YellowFinState.from_legacy({"count": 0, "velocity": 0, "grad_avg": 0, "window": 0})


# --- optax.inject_hyperparams -------------------------------------------------------------


@pytest.mark.parametrize(
    "factory,kwargs",
    [
        (mo.yellowfin, {}),
        (mo.yellowfin, {"learning_rate": 1.0}),
        (mo.yellowfin, {"learning_rate": 0.3, "beta": 0.9, "curvature_window": 4}),
        (mo.scale_by_yellowfin, {}),
    ],
    ids=["yellowfin_defaults", "yellowfin_lr", "yellowfin_given", "scale_by_yellowfin"],
)
def test_inject_hyperparams_matches_the_plain_factory_under_jit(factory, kwargs):
    # inject_hyperparams hands every number on as a float32 (int32) array, traced in the
    # jitted update: the same steps as the factory given those arrays, and as the factory
    # given Python numbers up to the rounding of 1 - beta in float32 (which the variance's
    # cancellation amplifies)
    grads = noisy_gradients(8, spread=1.0)
    params = jax.tree.map(jnp.zeros_like, grads[0])
    injected = optax.inject_hyperparams(factory)(**kwargs)
    state = injected.init(params)
    runs = {"injected": (injected, state)}
    for name, hyperparams in (("as arrays", state.hyperparams), ("as given", kwargs)):
        plain = factory(**hyperparams)
        runs[name] = (plain, plain.init(params))
    steps = {name: [] for name in runs}
    for name, (opt, opt_state) in runs.items():
        update = jax.jit(opt.update)
        for g in grads:
            u, opt_state = update(g, opt_state, params)
            steps[name].append(u)
        runs[name] = (opt, opt_state)
    chex.assert_trees_all_close(steps["injected"], steps["as arrays"], rtol=1e-5, atol=1e-12)
    chex.assert_trees_all_close(steps["injected"], steps["as given"], rtol=1e-4, atol=1e-10)
    inner = runs["injected"][1].inner_state
    chex.assert_trees_all_equal_shapes_and_dtypes(inner, runs["as given"][1])


def test_inject_hyperparams_with_a_traced_window_at_init_names_static_args():
    injected = optax.inject_hyperparams(mo.scale_by_yellowfin)()
    with pytest.raises(TypeError, match="static_args"):
        jax.jit(lambda p: mo.scale_by_yellowfin(curvature_window=jnp.int32(p.size)).init(p))(
            jnp.zeros(3)
        )
    assert injected.init(jnp.zeros(3)).inner_state.window.shape == (20,)


@pytest.mark.parametrize(
    "kwargs,error,words",
    [
        ({"stat_protect_factor": 0.0}, ValueError, ("stat_protect_factor", "0.0", "> 0")),
        ({"stat_protect_factor": np.inf}, ValueError, ("stat_protect_factor", "inf")),
        ({"max_move": -1.0}, ValueError, ("max_move", "-1.0", "None")),
        ({"max_move": "big"}, TypeError, ("max_move", "'big'")),
        ({"scale_invariant": "yes"}, TypeError, ("scale_invariant", "'yes'")),
    ],
)
def test_new_arguments_are_checked_at_construction(kwargs, error, words):
    with pytest.raises(error) as info:
        mo.scale_by_yellowfin(**kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_concrete_array_hyperparameters_are_accepted_and_checked():
    # what inject_hyperparams hands on at init: arrays, read and range-checked
    opt = mo.scale_by_yellowfin(
        beta=jnp.float32(0.9),
        curvature_window=jnp.int32(4),
        eps=jnp.float32(1e-10),
        stat_protect_factor=jnp.float32(10.0),
        max_move=jnp.float32(5.0),
    )
    assert opt.init(jnp.zeros(2)).window.shape == (4,)
    with pytest.raises(ValueError, match=r"eps must be a finite float > 0; got Array\(-1"):
        mo.scale_by_yellowfin(eps=jnp.float32(-1.0))
    with pytest.raises(ValueError, match="curvature_window"):
        mo.scale_by_yellowfin(curvature_window=jnp.int32(0))
    with pytest.raises(TypeError, match="curvature_window"):
        mo.scale_by_yellowfin(curvature_window=jnp.float32(2.0))


# --- the noiseless behaviour the docstring states -----------------------------------------


def _noiseless(curvatures, steps, **options):
    """The losses of ``steps`` of YellowFin on ``0.5 sum(c x^2)`` from ones, over the first,
    and the last state."""
    opt = mo.scale_by_yellowfin(**options)
    curvatures = jnp.asarray(curvatures, jnp.float32)

    @jax.jit
    def run(x0):
        def body(carry, _):
            x, state = carry
            u, state = opt.update(curvatures * x, state)
            return (x - u, state), 0.5 * jnp.sum(curvatures * x**2)

        (_, state), losses = jax.lax.scan(body, (x0, opt.init(x0)), None, length=steps)
        return losses, state

    losses, state = run(jnp.ones_like(curvatures))
    losses = np.asarray(losses, np.float64)
    return losses / losses[0], state


def test_noiseless_quadratic_converges_then_the_tuned_rate_outgrows_the_curvature():
    # what scale_by_yellowfin's docstring states. diag(100, 10, 1): fast, never above the start
    fast, _ = _noiseless([100.0, 10.0, 1.0], 1001)
    assert fast[500] < 1e-15 and fast[1000] < 1e-26 and fast.max() <= 1.0
    # 50 curvatures from 100 to 0.01: 1e-11 at step 10,000; then the tuned rate, grown as
    # ||g|| vanished, blows the run up (from about step 14,300 to 27,200, peak near 7e3),
    # after which it converges again: a cycle, finite throughout
    slow, _ = _noiseless(np.logspace(2, -2, 50), 30_001)
    assert np.isfinite(slow).all() and slow[10_000] < 1e-10
    above = np.flatnonzero(slow > 1.0)
    assert 14_000 < above[0] < 15_000 and 27_000 < above[-1] < 28_000, above[[0, -1]]
    assert 1e3 < slow.max() < 1e5 and slow[30_000] < 1e-24
    # with the PyTorch port's non-increasing step: no blow-up in 40,000 steps, a slower tail
    held, _ = _noiseless(np.logspace(2, -2, 50), 40_000, non_increasing_step=True)
    assert held[1:].max() <= 1.0 and 1e-20 < held[-1] < 1e-14


def test_unsmoothed_tuned_values_stall_a_noiseless_quadratic():
    # the codes' default (use_unsmoothed_lr_mu): the momentum goes to 1 and, from step 500
    # on, the loss stays between 1e-8 and 1e-3 of its start (the smoothed values reach 1e-18)
    losses, state = _noiseless([100.0, 10.0, 1.0], 3000, smooth_tuned=False)
    assert 1e-9 < losses[500:].min() and losses[500:].max() < 1e-3
    assert float(state.momentum) > 0.99
    smoothed, _ = _noiseless([100.0, 10.0, 1.0], 3000)
    assert smoothed[500] < 1e-15
