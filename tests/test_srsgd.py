"""SRSGD, Nesterov's sequence and growing restart periods, against their formulas in NumPy."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from momentum_optax import restarts
from tests import helpers

CURVATURE = np.array([1.0, 0.3, 0.05, 0.01])


def paper_srsgd(w0, s, periods, noise):
    """Wang et al.'s SRSGD as the paper writes it, in float64: ``v_{k+1} = w_k - s g_k``,
    ``w_{k+1} = v_{k+1} + (kappa / (kappa + 3)) (v_{k+1} - v_k)``, ``kappa`` the steps since
    the last restart, which come after ``periods[0]``, then ``periods[1]`` steps, ...; ``g_k``
    the gradient of ``0.5 sum(c w^2)`` at ``w_k`` plus ``noise[k]``. Returns every ``w_k``."""
    w, v = np.array(w0, np.float64), np.array(w0, np.float64)
    restart_at, j, boundary = set(), 0, 0
    while boundary < len(noise):
        restart_at.add(boundary)
        boundary += periods(j)
        j += 1
    kappa, out = 0, []
    for k in range(len(noise)):
        if k in restart_at:
            kappa = 0
        g = CURVATURE * w + noise[k]
        v_next = w - s * g
        w = v_next + kappa / (kappa + 3) * (v_next - v)
        v = v_next
        kappa += 1
        out.append(w)
    return np.array(out)


@pytest.mark.parametrize(
    "restart_every,periods",
    [(5, lambda j: 5), (lambda j: 3 + 2 * j, lambda j: 3 + 2 * j), (10**6, lambda j: 10**6)],
    ids=["every5", "growing", "never"],
)
def test_srsgd_follows_the_papers_update(restart_every, periods):
    steps, s = 60, 0.5
    noise = 0.01 * helpers.random_steps(0, steps, (4,))
    want = paper_srsgd(np.ones(4), s, periods, noise.astype(np.float64))
    opt = mo.srsgd(s, restart_every=restart_every)
    stacked = jnp.asarray(noise)
    run = helpers.descend(
        opt,
        jnp.ones(4),
        steps,
        lambda w, t: jnp.asarray(CURVATURE, jnp.float32) * w + stacked[t],
    )
    np.testing.assert_allclose(np.asarray(run.history), want, rtol=2e-5, atol=2e-6)


def test_default_restart_period_grows_from_40_to_80_over_40_restarts():
    periods = [int(restarts.period_at(mo.aliases.SRSGD_PERIOD, jnp.int32(j))) for j in range(45)]
    assert periods[:3] == [40, 41, 42] and periods[20] == 60
    assert periods[40:] == [80] * 5
    # and mo.srsgd(lr) uses it: the first restarts come after 40 and 41 steps
    opt = mo.srsgd(0.1)
    state = opt.init(jnp.zeros(2))
    update = jax.jit(opt.update)
    restarted_at = []
    for t in range(90):
        _, state = update(jnp.ones(2), state)
        if int(state[0].phase) == 0:
            restarted_at.append(t + 1)
    assert restarted_at == [40, 81]
    assert int(state[0].restarts) == 2


def test_srsgd_beats_gradient_descent_on_an_ill_conditioned_quadratic():
    # the accelerated sequence with restarts: far below plain gradient descent at one step
    loss = lambda w: 0.5 * jnp.sum(jnp.asarray(CURVATURE, jnp.float32) * w**2)
    final = {}
    for name, opt in {"srsgd": mo.srsgd(1.0, restart_every=50), "gd": mo.sgd(1.0)}.items():
        run = helpers.descend(opt, jnp.ones(4), 300, helpers.gradient_of(loss))
        final[name] = float(loss(run.params))
    assert final["srsgd"] < 1e-3 * final["gd"], final


@pytest.mark.parametrize("r", [3.0, 5.0])
def test_nesterov_sequence_looks_ahead_with_k_over_k_plus_r(r):
    schedule = mo.schedules.nesterov_sequence(r)
    b = helpers.schedule_values(schedule, 50)
    k = np.arange(49)
    np.testing.assert_allclose(b[1:], k / (k + r), rtol=1e-6)  # b_{t+1} = t / (t + r)
    assert b[0] == 0.0 and b[1] == 0.0  # the first two steps carry no momentum
    assert np.all(np.diff(b) >= 0) and b[-1] < 1


def test_nesterov_sequence_is_fistas_momentum_in_closed_form():
    # FISTA: t_1 = 1, t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2, momentum (t_k - 1) / t_{k+1};
    # the closed form t_k = (k + 1) / 2 gives (k - 1) / (k + 2), and the two agree to O(log k / k^2)
    t, fista = 1.0, []
    for _ in range(400):
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        fista.append((t - 1) / t_next)
        t = t_next
    b = helpers.schedule_values(mo.schedules.nesterov_sequence(), 401)[1:]  # b_1 <-> k = 1
    fista = np.array(fista)
    assert np.max(np.abs(b - fista)) < 0.05
    assert abs(b[-1] - fista[-1]) < 1e-4


def test_a_scheduled_period_resets_before_each_periods_first_step():
    opt = mo.periodic_reset(mo.trace(0.5), lambda k: 2 + k)  # periods 2, 3, 4, ...
    state = opt.init(jnp.zeros(1))
    outs = []
    for _ in range(9):
        u, state = opt.update(jnp.ones(1), state)
        outs.append(float(u[0]))
    # resets before steps 0, 2, 5: 1, 1.5 | 1, 1.5, 1.75 | 1, 1.5, 1.75, 1.875
    assert outs == [1.0, 1.5, 1.0, 1.5, 1.75, 1.0, 1.5, 1.75, 1.875]
    assert isinstance(state, mo.ScheduledResetState)
    assert int(state.restarts) == 3 and int(state.phase) == 0  # three periods done


def test_a_scheduled_period_is_rounded_and_at_least_one():
    values = [int(restarts.period_at(lambda k: 2.6 - k, jnp.int32(k))) for k in range(5)]
    assert values == [3, 2, 1, 1, 1]
    assert int(restarts.period_at(lambda k: jnp.nan * k, jnp.int32(2))) == 1  # NaN counts as 1


def test_srsgd_is_built_from_the_librarys_trace_and_restart():
    state = mo.srsgd(0.1).init({"w": jnp.zeros(3)})
    assert isinstance(state[0], mo.ScheduledResetState)
    assert isinstance(state[0].inner_state, mo.ScheduledTraceState)
    constant = mo.srsgd(0.1, restart_every=7).init({"w": jnp.zeros(3)})
    assert isinstance(constant[0], mo.PeriodicResetState)
    chex.assert_trees_all_equal_structs(
        constant,
        optax.chain(
            mo.periodic_reset(mo.trace(mo.schedules.nesterov_sequence(), nesterov=True), every=7),
            mo.scale_by_learning_rate(0.1),
        ).init({"w": jnp.zeros(3)}),
    )
