"""The experiments: shared machinery, then each experiment in a tiny configuration, its
numbers checked against facts that must hold (theory, exact identities, robust margins)."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import momentum_optax as mo
from experiments import __main__ as cli
from experiments import descent
from experiments import measures
from experiments import problems
from experiments import report
from experiments import runner
from experiments import sweeps
from experiments import training
from experiments.claims import minima
from experiments.claims import mlp
from experiments.claims import ravine
from experiments.claims import restart
from experiments.claims import rosenbrock
from experiments.claims import schedules
from experiments.claims import sweep
from experiments.claims import variants

KEY = jax.random.key(0)
RAVINE_TINY = dataclasses.replace(ravine.QUICK, kappas=(10.0, 100.0),
                                  lr_multiples=(0.01, 0.5, 1.5, 2.2), lr_steps=2000,
                                  rate_steps=1000, restart_steps=500, restart_periods=(100,))
MINIMA_TINY = dataclasses.replace(minima.QUICK, starts=96, steps=1500)
ROSENBROCK_TINY = dataclasses.replace(rosenbrock.QUICK, lr_multiples=(0.3, 2.0),
                                      momenta=(0.9, 0.99), steps=3000)
SWEEP_TINY = dataclasses.replace(sweep.QUICK, epochs=5, steps=3000)
SCHEDULES_TINY = dataclasses.replace(schedules.QUICK, epochs=6, steps=2000)
RESTART_TINY = dataclasses.replace(restart.QUICK, epochs=3, steps=3000)
MLP_TINY = dataclasses.replace(mlp.QUICK, online_epochs=2, online_momenta=(0.0, 0.9),
                               ema_epochs=2, adaptive_epochs=4, sgd_lrs=(0.03,),
                               adaptive_lrs=(1e-3,), batch_sizes=(16, 0), noise_steps=100,
                               noise_momenta=(0.9,), noise_samples=10)
VARIANTS_TINY = dataclasses.replace(variants.QUICK, epochs=4, seeds=2, step_sizes=(0.4, 0.8))


def claims_of(module, cfg, out, key=KEY) -> dict[str, report.Claim]:
    return {c.id: c for c in module.run(cfg, key, out)}


def condition(claim: report.Claim, text: str) -> bool:
    """The value of the one condition of ``claim``'s verdict whose sentence contains ``text``."""
    found = [ok for sentence, ok in claim.verdict.conditions if text in sentence]
    assert len(found) == 1, (text, claim.verdict.conditions)
    return found[0]


def conditions_of(claim: report.Claim, text: str) -> list[bool]:
    """The values of all the conditions whose sentence contains ``text``, in order."""
    return [ok for sentence, ok in claim.verdict.conditions if text in sentence]


def experiment(module, cfg):
    """A module-scoped fixture: the experiment run once, as (claims by id, output folder)."""
    @pytest.fixture(scope="module")
    def run(tmp_path_factory):
        out = tmp_path_factory.mktemp(module.__name__.rsplit(".", 1)[-1])
        return claims_of(module, cfg, out), out
    return run


ravine_tiny = experiment(ravine, RAVINE_TINY)
minima_tiny = experiment(minima, MINIMA_TINY)
rosenbrock_tiny = experiment(rosenbrock, ROSENBROCK_TINY)
sweep_tiny = experiment(sweep, SWEEP_TINY)
schedules_tiny = experiment(schedules, SCHEDULES_TINY)
restart_tiny = experiment(restart, RESTART_TINY)
mlp_tiny = experiment(mlp, MLP_TINY)
variants_tiny = experiment(variants, VARIANTS_TINY)


def ravine_run(lr: float, momentum: float, kappa: float, steps: int,
               nesterov: bool = False) -> descent.Path:
    """One run on the ravine, outside any sweep (the reference for the swept runs)."""
    opt = mo.sgd(lr, momentum, nesterov=nesterov)
    return descent.descend(problems.quadratic(problems.ravine_curvatures(kappa)), opt,
                           problems.RAVINE_START, steps)


# --------------------------------------------------------------------- shared machinery


def test_grid_is_the_cartesian_product_with_the_first_axis_slowest():
    table = sweeps.grid(lr=[0.1, 0.2], momentum=[0.0, 0.5, 0.9])
    np.testing.assert_allclose(table["lr"], [0.1, 0.1, 0.1, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(table["momentum"], [0.0, 0.5, 0.9] * 2)
    assert sweeps.rows(table) == 6


def test_sweep_traces_once_and_each_row_equals_its_own_run():
    traces = []

    def fn(row):
        traces.append(1)
        return ravine_like(row)

    def ravine_like(row):
        return descent.descend(descent.ravine_loss(row), sweeps.momentum_sgd(row),
                               problems.RAVINE_START, 30).x[-1]

    table = sweeps.grid(kappa=[10.0, 100.0], lr=[0.005, 0.01], momentum=[0.0, 0.9])
    swept = sweeps.sweep(fn, table)
    assert len(traces) == 1  # one trace, one compile, for all 8 rows
    for i in range(sweeps.rows(table)):
        single = ravine_run(float(table["lr"][i]), float(table["momentum"][i]),
                            float(table["kappa"][i]), 30).x[-1]
        np.testing.assert_allclose(swept[i], single, rtol=1e-5, atol=1e-7)


def test_select_runs_exactly_the_chosen_transformation():
    options = [mo.sgd(0.01, 0.5), mo.sgd(0.01, 0.9), mo.sgd(0.01, 0.9, nesterov=True)]
    table = {"choice": np.arange(3, dtype=np.int32)}
    swept = sweeps.sweep(lambda row: descent.descend(
        problems.rosenbrock, sweeps.select(options, row["choice"]),
        problems.ROSENBROCK_START, 50).x, table)
    for i, opt in enumerate(options):
        single = descent.descend(problems.rosenbrock, opt, problems.ROSENBROCK_START, 50).x
        np.testing.assert_allclose(swept[i], single, rtol=1e-5, atol=1e-6)


def test_sweep_shards_the_rows_over_two_devices_with_the_same_numbers():
    code = textwrap.dedent("""
        import json, jax, numpy as np
        from experiments import descent, problems, sweeps
        assert jax.device_count() == 2
        table = sweeps.grid(lr=[0.002, 0.005, 0.01], momentum=[0.9])  # 3 rows: padded to 4
        placed = sweeps.place(table)
        assert len(placed["lr"].sharding.device_set) == 2
        assert placed["lr"].addressable_shards[0].data.shape == (2,)
        table["kappa"] = np.full(3, 100.0, np.float32)
        x = descent.sweep_paths(descent.ravine_loss, sweeps.momentum_sgd, table,
                                problems.RAVINE_START, 40).x[:, -1]
        print(json.dumps(x.tolist()))
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=os.path.dirname(os.path.dirname(__file__)), check=False)
    assert done.returncode == 0, done.stderr
    sharded = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]))
    for i, lr in enumerate([0.002, 0.005, 0.01]):
        np.testing.assert_allclose(sharded[i], ravine_run(lr, 0.9, 100.0, 40).x[-1], rtol=1e-5)


def test_measures_on_series_with_known_answers():
    np.testing.assert_array_equal(measures.steps_to(np.array([[5.0, 3.0, 1.0, 0.5],
                                                              [5.0, 4.0, 3.0, 2.0]]), 1.0),
                                  [2, np.inf])
    assert measures.sign_changes(np.array([1.0, -1.0, 1.0, 0.0, -1.0])) == 3
    assert measures.sign_changes(np.array([1.0, -1e-9, 1e-9, 2.0]), floor=1e-6) == 0
    assert measures.increases(np.array([3.0, 2.0, 2.5, 1.0, 1.5])) == 2
    np.testing.assert_array_equal(measures.diverged(np.array([[1.0, 2.0], [1.0, np.nan],
                                                              [1.0, 0.5]])), [True, True, False])
    np.testing.assert_allclose(measures.fitted_rate(0.9 ** np.arange(400.0)), 0.9, rtol=1e-9)
    coherence = measures.coherence(np.array([[1.0] * 20, [1.0, -1.0] * 10]), 0.9)[:, -1]
    np.testing.assert_allclose(coherence[0], 1.0)
    assert coherence[1] < 0.1  # alternating signs cancel


def test_rule_turns_conditions_into_the_three_verdicts():
    assert report.rule({"a": True, "b": True}).status == report.SUPPORTED
    assert report.rule({"a": False, "b": False}).status == report.NOT_SUPPORTED
    mixed = report.rule({"holds": True, "fails": False})
    assert mixed.status == report.DEPENDS
    assert mixed.reason == "Holds: holds. Does not hold: fails."


def test_training_probe_records_every_step_with_its_number():
    start = training.setup("iris", KEY, hidden=8)
    train = training.make_train(mo.sgd(0.05, 0.9), start.graphdef, epochs=3, batch_size=16,
                                probe=lambda p, g, u, split, step: step)
    steps = np.asarray(train(start.params, start.split, start.key).probes)
    per_epoch = start.split.x_train.shape[0] // 16
    np.testing.assert_array_equal(steps, np.arange(3 * per_epoch).reshape(3, per_epoch))


# --------------------------------------------------------------------- experiments


def test_ravine_rates_match_theory_and_the_learning_rate_limits_hold(ravine_tiny):
    claims, tmp_path = ravine_tiny
    m = claims["C2"].metrics
    kappa, method, rate = m["kappa"], np.asarray(m["method"]), m["measured_rate"]
    s = np.sqrt(kappa)
    polyak = (s - 1) / (s + 1)
    hb = method == "heavy ball"
    np.testing.assert_allclose(rate[hb], polyak[hb], rtol=0.1)
    np.testing.assert_allclose(np.log(rate[hb]) / np.log(polyak[hb]), 1.0, atol=0.1)
    gd = method == "GD"
    np.testing.assert_allclose(rate[gd], ((kappa - 1) / (kappa + 1))[gd], rtol=1e-3)
    # GD: learning rates above 2/L diverge, below do not (the quadratic's exact limit)
    mult = np.asarray(RAVINE_TINY.lr_multiples)
    assert np.all(claims["C1"].metrics["diverged"] == (mult > 2))
    assert claims["C1"].verdict.status == report.SUPPORTED
    assert claims["C2"].verdict.status == report.SUPPORTED
    coherence, gain = claims["C12"].metrics["coherence"], claims["C12"].metrics["gain"]
    assert coherence[0] < 0.5 < coherence[1] and gain[0] < 1 < gain[1]
    for claim in claims.values():
        assert all((tmp_path / p).stat().st_size > 10_000 for p in claim.plots)


def test_nesterov_has_the_smaller_stable_learning_rate_range(rosenbrock_tiny):
    cfg = ROSENBROCK_TINY
    m = rosenbrock_tiny[0]["C4"].metrics[f"ravine kappa={cfg.ravine_kappa:g}"]
    # on a quadratic, heavy ball is stable for lr L < 2 (1 + b), Nesterov only for
    # lr L < (2 + 2b) / (1 + 2b): at b = 0.9 and lr = 2/L the first converges, the second not
    steps = m["steps"][:, :, 0]  # (method, lr)
    assert np.isfinite(steps[0, 1]) and m["diverged"][1, 1, 0]
    assert np.all(np.isfinite(steps[:, 0])) and steps[0, 0] < m["gd_steps"][0]


def test_minima_gradient_descent_stays_in_its_start_basin_and_momentum_rolls_on(minima_tiny):
    c6 = minima_tiny[0]["C6"]
    # in 1-D, gradient descent with lr * f'' < 1 cannot pass a maximum: it ends in the
    # basin it starts in; the global basin lies between the maxima next to 0
    grid = np.linspace(0.2, 0.8, 60001)
    edge = grid[np.argmax(np.asarray(jax.vmap(problems.dips)(grid[:, None])))]
    x0 = minima.starts(MINIMA_TINY, KEY)
    assert c6.metrics["in_basin"][0] == pytest.approx(np.mean(np.abs(x0) < edge))
    assert c6.metrics["rolled_past"][0] == 0
    assert max(c6.metrics["in_basin"]) >= 2 * c6.metrics["in_basin"][0]


def test_momentum_sweep_overdamped_values_never_cross_and_mlp_learns(sweep_tiny):
    cfg = SWEEP_TINY
    q, m = (sweep_tiny[0]["C3"].metrics[k] for k in ("ravine", "mlp"))
    # along the valley (curvature 1, lr 0.5/L = 0.005) heavy ball has real roots for
    # b <= 0.8 (no oscillation) and complex ones from 0.9 on
    b = np.asarray(cfg.momenta)
    assert np.all(q["crossings"][b <= 0.8] == 0) and np.all(q["crossings"][b >= 0.9] > 0)
    assert m["accuracy"][list(cfg.momenta).index(0.9)] > 0.9
    assert q["final"][-1] > q["final"][list(cfg.momenta).index(0.9)]


def test_schedules_select_the_library_schedule_and_momentum_one_stops_progress(
        schedules_tiny):
    cfg = SCHEDULES_TINY
    c8 = schedules_tiny[0]["C8"]
    r = c8.metrics["ravine"]
    constant = ravine_run(cfg.ravine_lr / cfg.kappa, 0.9, cfg.kappa, cfg.steps).x[-1]
    np.testing.assert_allclose(r["final"][0], np.linalg.norm(constant) / np.sqrt(2), rtol=1e-3)
    # with momentum 1 there is no friction left: the distance stops shrinking
    assert r["tail"][2] > 0.5 * r["at_one"][2]
    assert c8.metrics["MLP"]["final"][2] > c8.metrics["MLP"]["final"][0]


def test_restart_never_equals_no_reset_and_helps_when_momentum_is_too_high(restart_tiny):
    cfg = RESTART_TINY
    m = restart_tiny[0]["C9"].metrics
    err = measures.distance(ravine_run(cfg.ravine_lr / cfg.kappa, 0.99, cfg.kappa,
                                       cfg.steps).x, np.zeros(2)) / np.sqrt(2)
    assert m["ravine_steps"][1, -1] == measures.steps_to(err, cfg.tolerance)
    assert m["ravine_steps"][1, :-1].min() < 0.5 * m["ravine_steps"][1, -1]


def test_mlp_claims_identities_and_accuracy(mlp_tiny):
    claims = mlp_tiny[0]
    # C7: EMA momentum at lr is heavy ball at lr (1 - b): equal up to float rounding
    assert np.all(claims["C7"].metrics["relative_difference"] < 1e-5)
    assert claims["C7"].verdict.status == report.SUPPORTED
    # C5: without momentum the effective step is exactly the learning rate, for every weight
    stats = claims["C5"].metrics["stats"]
    for method in ("heavy ball", "delta momentum"):
        for window in ("early", "late"):
            assert list(stats[f"{method}|0.0|{window}"].values()) == pytest.approx([1, 1, 1])
    assert stats["heavy ball|0.9|early"]["p50"] > 1
    # C10: the digits MLP learns with heavy ball 0.9
    assert claims["C10"].metrics["heavy ball|0.9"]["test accuracy"] > 0.9
    # C11: at full batch the mini-batch gradient is the full gradient
    cosine = claims["C11"].metrics["cosine"]
    full = str(max(int(s) for s in cosine))
    np.testing.assert_allclose(cosine[full][:, 0, 1], 1.0, atol=1e-4)
    small_lr = 0  # lr 0.005: the weights move slowly over the EMA's window
    assert cosine["16"][small_lr, 0, 0] > cosine["16"][small_lr, 0, 1]


def test_descend_passes_the_loss_and_returns_the_final_state():
    # the function scheme restarts exactly when the loss passed as value= rose; the gradient
    # scheme exactly when the last step went uphill, <x_t - x_(t-1), g_t> > 0
    loss = problems.quadratic(problems.spectrum_curvatures(1e4, 10))
    for scheme in ("function", "gradient"):
        path = jax.jit(lambda: descent.descend(
            loss, mo.adaptive_restart(mo.sgd(1e-4, 0.9999), scheme=scheme),
            np.ones(10, np.float32), 400))()
        if scheme == "function":
            uphill = np.diff(np.asarray(path.loss[:-1], np.float64)) > 0
        else:
            uphill = np.einsum("ti,ti->t", np.asarray(path.update[:-1], np.float64),
                               np.asarray(path.grad[1:], np.float64)) > 0
        assert int(path.state.restarts) == uphill.sum() > 100


def test_restart_every_period_never_is_the_plain_optimizer():
    make = lambda row: mo.sgd(row["lr"], row["momentum"])
    table = {"lr": np.float32([0.005] * 2), "momentum": np.float32([0.9] * 2),
             "kappa": np.float32([100.0] * 2), "period": np.int32([0, 1])}
    x = descent.sweep_paths(descent.ravine_loss, sweeps.periodic(make, [7], 60), table,
                            problems.RAVINE_START, 60).x
    np.testing.assert_allclose(x[1], ravine_run(0.005, 0.9, 100.0, 60).x, rtol=1e-5, atol=1e-7)
    assert not np.allclose(x[0], x[1])


def test_seeds_sweep_repeats_the_single_sweep_as_its_seed_zero():
    start = training.setup("iris", KEY, hidden=8)
    table = {"lr": np.float32([0.05, 0.1])}
    make = lambda row: mo.sgd(row["lr"], 0.9)
    one = training.sweep_train(make, start, table, epochs=3, batch_size=16)
    seeds = training.sweep_train_seeds(make, start, table, 3, epochs=3, batch_size=16)
    assert seeds.epoch_loss.shape == (2, 3, 3) and seeds.test_accuracy.shape == (2, 3)
    np.testing.assert_array_equal(seeds.epoch_loss[:, 0], one.epoch_loss)
    assert np.all(seeds.epoch_loss[:, 1] != seeds.epoch_loss[:, 0])


def test_adaptive_restart_rescues_momentum_0_9999_and_restarted_nesterov_is_optimal(tmp_path):
    cfg = dataclasses.replace(ravine.QUICK, restart_steps=15_000, restart_periods=(100, 1000))
    e1 = ravine.restart(cfg, tmp_path)
    hb, nag = e1.metrics["heavy ball"], e1.metrics["Nesterov"]
    # momentum 0.9999 with lr 1/L: every eigen-direction contracts by only sqrt(0.9999) a
    # step, so the loss falls 1e-6 only after ~138,000 steps; restarting brings it to 1e-6
    assert hb["no restart"]["coarse"] == np.inf
    for scheme in ("gradient", "function"):
        assert hb[scheme]["coarse"] < cfg.restart_steps
        # a constant momentum is back at 0.9999 right after a restart: restarts every few steps
        assert hb[scheme]["restarts"] > cfg.restart_steps // 4
        # t/(t+3) restarts few times, and then at about the rate of the tuned constant momentum
        assert 0 < nag[scheme]["restarts"] < 100
        assert nag[scheme]["fine"] <= 1.25 * nag["known mu"]["fine"]
        assert 3 * nag[scheme]["fine"] <= nag["no restart"]["fine"]
    assert e1.verdict.status in {report.SUPPORTED, report.DEPENDS}
    assert all((tmp_path / p).stat().st_size > 10_000 for p in e1.plots)


def test_variants_gains_equalise_the_step_of_a_constant_gradient():
    # at equal step size every method moves a constant gradient by lr x gain once its
    # buffers are full (Demon with a horizon far away: its momentum stays at the start)
    cfg = variants.QUICK
    for name, (make_opt, gain) in variants.methods(cfg, total_steps=10 ** 9).items():
        opt = make_opt({"lr": jnp.float32(0.5 / gain)})

        def step(state, _, opt=opt):
            updates, state = opt.update(jnp.ones(2), state)
            return state, updates

        _, updates = jax.lax.scan(step, opt.init(jnp.zeros(2)), length=20_000)
        np.testing.assert_allclose(np.asarray(updates[-1]), -0.5, rtol=1e-3, err_msg=name)


def test_variants_and_heavy_ball_learn_digits(variants_tiny):
    e2, tmp_path = variants_tiny[0]["E2"], variants_tiny[1]
    for name in ("heavy ball", "QHM", "AggMo", "Demon"):
        m = e2.metrics[name]
        assert m["accuracy"][m["best"]] > 0.9, name
        assert m["typical"][m["best"]] == min(m["typical"])
        assert np.all(m["worst accuracy"] <= m["accuracy"])
    assert (tmp_path / e2.plots[0]).stat().st_size > 10_000


# --------------------------------------------------------------------- verdict conditions
# Each verdict's conditions on the tiny configurations: those that hold (or fail) for a reason
# are asserted as such; those that depend on the configuration are recomputed from the
# numbers the rule compares, so that a flipped comparison in a rule shows.


def test_verdict_status_follows_its_conditions(ravine_tiny, minima_tiny, sweep_tiny,
                                               rosenbrock_tiny, schedules_tiny, restart_tiny,
                                               mlp_tiny, variants_tiny):
    for claims, _ in (ravine_tiny, minima_tiny, sweep_tiny, rosenbrock_tiny, schedules_tiny,
                      restart_tiny, mlp_tiny, variants_tiny):
        for claim in claims.values():
            assert claim.verdict == report.rule(dict(claim.verdict.conditions)), claim.id


def test_c1_headline_counts_the_runs_above_two_over_l(ravine_tiny):
    c1 = ravine_tiny[0]["C1"]
    above = np.asarray(RAVINE_TINY.lr_multiples) > 2
    n = int(c1.metrics["diverged"][:, above].size)
    # gradient descent diverges at every lr above 2/L on a quadratic: all of them
    assert f"all {n} runs above 2/L diverge" in c1.headline
    assert condition(c1, "every learning rate above 2/L diverges")


def test_c3_conditions(sweep_tiny):
    c3, cfg = sweep_tiny[0]["C3"], SWEEP_TINY
    q, m = c3.metrics["ravine"], c3.metrics["mlp"]
    i9, top = list(cfg.momenta).index(0.9), len(cfg.momenta) - 1
    assert condition(c3, "0.9 is fast on the ravine") == bool(
        q["steps"][i9] <= 2 * np.min(q["steps"]))
    assert condition(c3, "0.9 is good on the MLP") == bool(
        m["accuracy"][i9] >= np.nanmax(m["accuracy"]) - cfg.well)
    # momentum 0.999 has almost no friction left: it oscillates across the valley's minimum
    # far more often than 0.9 and is still far from it after the run (complex roots of
    # modulus sqrt(0.999))
    assert q["crossings"][top] > q["crossings"][i9] and q["final"][top] > q["final"][i9]
    assert condition(c3, "overshoots on the ravine")
    assert condition(c3, "overshoots on the MLP") == bool(
        m["rises"][top] > m["rises"][i9] and m["final"][top] > m["final"][i9])


def test_c4_conditions(rosenbrock_tiny):
    c4, cfg = rosenbrock_tiny[0]["C4"], ROSENBROCK_TINY
    results = c4.metrics.values()
    hb = np.concatenate([r["steps"][0].ravel() for r in results])
    nag = np.concatenate([r["steps"][1].ravel() for r in results])
    rises = [np.concatenate([r["rises"][i].ravel() for r in results]) for i in (0, 1)]
    div = [sum(int(r["diverged"][i].sum()) for r in results) for i in (0, 1)]
    both = np.isfinite(hb) & np.isfinite(nag)
    high = np.tile(np.asarray(cfg.momenta) >= 0.95, len(c4.metrics) * len(cfg.lr_multiples))
    assert high.any() and both.any()
    assert condition(c4, "Nesterov needs fewer steps") == bool(np.median(nag[both] / hb[both]) < 1)
    assert condition(c4, "with momentum >= 0.95") == bool(
        np.sum((nag < hb)[both & high]) > np.sum(both & high) / 2)
    assert condition(c4, "at least as many settings") == bool(
        np.isfinite(nag).sum() >= np.isfinite(hb).sum())
    assert condition(c4, "rises less often") == bool(np.sum(rises[1] < rises[0]) > hb.size / 2)
    # at lr 2/L and momentum 0.9 Nesterov diverges on the ravine and heavy ball does not
    # (stability limits (2 + 2b) / (1 + 2b) < 2 < 2 (1 + b)): Nesterov diverges more often
    assert div[1] > div[0]
    assert not condition(c4, "diverges in no more settings")


def test_c5_conditions(mlp_tiny):
    c5, cfg = mlp_tiny[0]["C5"], MLP_TINY
    stats, b = c5.metrics["stats"], cfg.online_momenta[-1]
    for n in ("heavy ball", "delta momentum"):
        late, early = stats[f"{n}|{b}|late"], stats[f"{n}|{b}|early"]
        assert condition(c5, f"{n}: the effective step varies") == bool(
            late["p90"] / late["p10"] >= cfg.spread)
        assert condition(c5, f"{n}: it adapts") == bool(
            abs(late["p50"] / early["p50"] - 1) >= cfg.shift)
    # the buffer adds the past gradients, which mostly agree early in training: the median
    # effective step is above the learning rate alone for both momentum forms
    assert all(stats[f"{n}|{b}|early"]["p50"] > 1 for n in ("heavy ball", "delta momentum"))
    assert condition(c5, "early in training both move faster")


def test_c6_conditions(minima_tiny):
    c6, cfg = minima_tiny[0]["C6"], MINIMA_TINY
    found, past = np.asarray(c6.metrics["in_basin"]), np.asarray(c6.metrics["rolled_past"])
    # momentum rolls through the dips: see the minima test above (at least 2x gradient descent)
    assert condition(c6, "momentum rolls through the dips")
    assert found.max() >= cfg.helps_factor * found[0]
    assert condition(c6, "can roll past the global minimum") == bool(past.max() >= cfg.rolls_past)


def test_c8_conditions(schedules_tiny):
    c8, cfg = schedules_tiny[0]["C8"], SCHEDULES_TINY
    const, anneal, to_one, capped = range(4)
    for p in ("ravine", "MLP"):
        r = c8.metrics[p]

        def as_good(i):
            ok = r["final"][i] <= cfg.slack * r["final"][const]
            return bool(ok and (p == "ravine" or r["accuracy"][i] >= r["accuracy"][const] - 0.01))

        assert condition(c8, f"{p}: annealing") == as_good(anneal)
        assert condition(c8, f"{p}: the same ramp capped") == as_good(capped)
        assert condition(c8, f"{p}: seed 001's linear-to-one") == bool(
            r["tail"][to_one] <= 0.5 * r["at_one"][to_one])
    # momentum 1 on the ravine: no friction, the distance stops shrinking (test above)
    assert not condition(c8, "ravine: seed 001's linear-to-one")


def test_c9_conditions(restart_tiny):
    c9, cfg = restart_tiny[0]["C9"], RESTART_TINY
    steps, final = c9.metrics["ravine_steps"], c9.metrics["mlp_final_loss"]
    ravine_ok = conditions_of(c9, "ravine, momentum")
    mlp_ok = conditions_of(c9, "MLP, momentum")
    assert ravine_ok == [bool(steps[i, :-1].min() < steps[i, -1]) for i in range(len(cfg.momenta))]
    assert mlp_ok == [bool(final[i, :-1].min() < cfg.margin * final[i, -1])
                      for i in range(len(cfg.momenta))]
    # momentum 0.99 on the ravine is underdamped: restarting removes the oscillation (test above)
    assert ravine_ok[-1]


def test_c10_conditions(mlp_tiny):
    c10, cfg = mlp_tiny[0]["C10"], MLP_TINY
    best = c10.metrics

    def faster(a, b):
        return bool(a["epochs to target"] < b["epochs to target"] or (
            a["epochs to target"] == b["epochs to target"]
            and a["final loss"] < cfg.margin * b["final loss"]))

    hb = best["heavy ball|0.9"]
    adaptive = min(("RMSprop", "Adam"), key=lambda n: (best[f"{n}|0.9"]["epochs to target"],
                                                        best[f"{n}|0.9"]["final loss"]))
    ad = best[f"{adaptive}|0.9"]
    assert condition(c10, f"{adaptive} with momentum 0.9 learns faster") == faster(ad, hb)
    assert condition(c10, "at most 1 point below") == bool(
        ad["test accuracy"] >= hb["test accuracy"] - 0.01)
    assert condition(c10, "makes both RMSprop and Adam") == all(
        faster(best[f"{n}|0.9"], best[f"{n}|0"]) for n in ("RMSprop", "Adam"))


def test_c11_conditions(mlp_tiny):
    c11, cfg = mlp_tiny[0]["C11"], MLP_TINY
    cosine = c11.metrics["cosine"]
    full = max(int(s) for s in cosine)
    minis = [s for s in cosine if int(s) < full]
    i9 = list(cfg.noise_momenta).index(0.9)
    assert minis
    assert conditions_of(c11, "the EMA (b = 0.9)") == [
        all(cosine[s][j, i9, 0] > cosine[s][j, i9, 1] for s in minis)
        for j in range(len(cfg.noise_lrs))]
    # at the small lr the weights move slowly over the EMA's window: averaging the mini-batch
    # gradients brings them closer to the full gradient (test above)
    assert conditions_of(c11, "the EMA (b = 0.9)")[0]


def test_e2_conditions(variants_tiny):
    e2, cfg = variants_tiny[0]["E2"], VARIANTS_TINY
    at = lambda name, field: e2.metrics[name][field][e2.metrics[name]["best"]]
    others = ("QHM", "AggMo", "Demon")
    for name in others:
        assert condition(e2, f"{name} trains faster than heavy ball") == bool(
            at(name, "typical") <= cfg.margin * at("heavy ball", "typical"))
    assert condition(e2, "no variant's test accuracy") == all(
        at(n, "accuracy") >= at("heavy ball", "accuracy") - cfg.accuracy_drop for n in others)


def test_rule_refuses_no_conditions_and_vacuous_ones_fail(tmp_path):
    with pytest.raises(ValueError):
        report.rule({})
    # no learning rate above 2/L: "every learning rate above 2/L diverges" is not shown true
    cfg = dataclasses.replace(RAVINE_TINY, kappas=(10.0,), lr_multiples=(0.5, 1.5), lr_steps=50)
    c1 = ravine.learning_rates(cfg, tmp_path)
    assert "0 of 0 runs above 2/L diverge" in c1.headline
    assert not condition(c1, "every learning rate above 2/L diverges")


def test_report_writes_each_verdict_reason_and_headline(tmp_path):
    made = {s: report.claim("C1", setup="s", headline=f"headline {s}", table=[{"a": 1}],
                            plots=[], verdict=v)
            for s, v in (("depends", report.rule({"a holds": True, "b fails": False})),
                         ("not", report.rule({"nothing holds": False})))}
    for claim in made.values():
        text = report.section(claim, "x/")
        assert f"**Verdict: {claim.verdict.status}.** {claim.verdict.reason}" in text
    claim = made["depends"]
    report.write_report(tmp_path / "REPORT.md", [("x/", claim)], "header")
    text = (tmp_path / "REPORT.md").read_text()
    assert (f"| C1. {claim.title} | {claim.seed} | {claim.headline} | {report.DEPENDS} |"
            in text)
    assert f"**Verdict: depends.** Holds: a holds. Does not hold: b fails." in text


# --------------------------------------------------------------------- command line


def test_help_lists_every_experiment(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in [*runner.EXPERIMENTS, "bench", "all"])


def test_runner_writes_the_report_and_the_same_seed_gives_the_same_numbers(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(minima, "QUICK", MINIMA_TINY)
    monkeypatch.setattr(ravine, "QUICK", RAVINE_TINY)
    for out, seed in (("a", 3), ("b", 3), ("c", 4)):
        runner.run(["ravine", "minima"], quick=True, out=tmp_path / out, seed=seed)
    text = (tmp_path / "a" / "REPORT.md").read_text()
    for claim in ("C1", "C2", "C6", "C12"):
        assert f"## {claim}." in text
    # the claims beyond the seed documents come last, under their own heading
    assert text.index("## C12.") < text.index("# Beyond the source documents") < text.index(
        "## E1.")
    assert "O'Donoghue & Candès 2015" in text
    for image in ("ravine/c1_learning_rates.png", "minima/c6_dips.png"):
        assert f"]({image})" in text and (tmp_path / "a" / image).exists()
    metrics = {out: json.loads((tmp_path / out / "minima" / "metrics.json").read_text())
               for out in "abc"}
    assert metrics["a"] == metrics["b"]
    assert metrics["a"]["claims"]["C6"] != metrics["c"]["claims"]["C6"]
    # every claim's status, reason and headline, as metrics.json has them, are in the report:
    # in the summary table (headline and status) and in the claim's section (all three)
    for experiment in ("ravine", "minima"):
        data = json.loads((tmp_path / "a" / experiment / "metrics.json").read_text())
        for claim_id, c in data["claims"].items():
            status, reason = c["verdict"]["status"], c["verdict"]["reason"]
            assert status in {report.SUPPORTED, report.NOT_SUPPORTED, report.DEPENDS}
            assert reason == report.rule(dict(c["verdict"]["conditions"])).reason
            assert f"| {c['headline']} | {status} |" in text, claim_id
            section = text[text.index(f"## {claim_id}. {c['title']}"):].split("\n#")[0]
            assert f"**Numbers.** {c['headline']}" in section, claim_id
            assert f"**Verdict: {status}.** {reason}" in section, claim_id
