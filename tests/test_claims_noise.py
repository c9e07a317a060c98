"""C11 and C14 (experiments/claims/noise.py, batch_size.py) and the noisy quadratic model
they run on: the judges on hand-made per-seed numbers, the arms' selection and report
pieces, the NQM arm, and one tiny end-to-end run."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import momentum_optax as mo
from experiments import comparison
from experiments import loop
from experiments import noisy_quadratic as nqm
from experiments.claims import noise
from experiments.parts import batch_size as bs
from experiments.parts import ema_error
from experiments.protocol import race
from experiments.protocol import tuning
from experiments.protocol import verdicts

CFG = noise.QUICK
S, N, I = verdicts.SUPPORTED, verdicts.NOT_SUPPORTED, verdicts.INCONCLUSIVE


# ------------------------------------------------------------------ the noisy quadratic model


@pytest.mark.slow
def test_expected_loss_matches_the_mean_of_sampled_runs():
    h, batch, steps = nqm.curvatures(8), 4.0, 40
    x0 = nqm.start(jax.random.key(0), 8)
    expected = nqm.expected_loss(0.3, 0.8, h, x0, batch, steps, every=10)
    run = lambda key: nqm.sample(mo.sgd(0.3, 0.8), h, x0, key, batch, steps, every=10)
    sampled = jax.vmap(run)(jax.random.split(jax.random.key(1), 4000))
    mean, se = sampled.mean(0), sampled.std(0) / np.sqrt(sampled.shape[0])
    np.testing.assert_array_less(np.abs(mean - expected), 4 * se + 1e-6)


def test_expected_loss_of_sgd_is_the_one_dimensional_recursion():
    h, x0, lr, batch, noise_scale = jnp.array([0.5]), jnp.array([2.0]), 0.4, 8.0, 3.0
    xx = [4.0]
    for _ in range(5):  # E[x'^2] = (1 - lr h)^2 E[x^2] + lr^2 c h / B
        xx.append((1 - lr * 0.5) ** 2 * xx[-1] + lr**2 * noise_scale * 0.5 / batch)
    got = nqm.expected_loss(lr, 0.0, h, x0, batch, 5, noise=noise_scale)
    np.testing.assert_allclose(got, 0.25 * np.asarray(xx), rtol=1e-5)


def test_gradient_noise_has_covariance_h_over_batch():
    h, x = nqm.curvatures(4), jnp.ones(4)
    g = jax.vmap(lambda k: nqm.gradient(h, x, 16.0, k, 2.0))(
        jax.random.split(jax.random.key(0), 20000)
    )
    np.testing.assert_allclose(g.mean(0), h * x, atol=0.01)
    np.testing.assert_allclose(g.var(0), 2.0 * h / 16.0, rtol=0.05)


# ------------------------------------------------------------------------------- C14 judge

SIZES = (32, 256, 2048)
SGD_STEPS = np.array([1000.0, 1100.0, 900.0, 1050.0, 950.0])  # per seed (5: the quick run's)
JITTER = np.array([1.0, -1.0, 0.5, -0.5, 0.0])


def arrived(steps, censored=(), horizon: float = 1500.0) -> race.Arrival:
    """Per-seed arrivals; the seeds in ``censored`` never arrived (held at ``horizon``)."""
    steps = np.asarray(steps, np.float64)
    flags = np.zeros(steps.size, bool)
    flags[list(censored)] = True
    return race.Arrival(np.where(flags, horizon, steps), flags, horizon)


def pair(ratio: float, spread: float = 0.02) -> tuple[race.Arrival, race.Arrival]:
    """(SGD, heavy ball) arrivals with heavy ball / SGD about ``ratio`` on every seed."""
    return arrived(SGD_STEPS), arrived(SGD_STEPS * (ratio + spread * JITTER))


def arms(ratios: dict[int, tuple[float, float]]) -> tuple[dict, dict]:
    """``{batch: (ratio, spread)}`` as the (SGD, heavy ball) dicts ``judge_c14`` takes."""
    pairs = {b: pair(*r) for b, r in ratios.items()}
    return {b: p[0] for b, p in pairs.items()}, {b: p[1] for b, p in pairs.items()}


def c14_verdict(small, large, spread=0.02, nqm_ratios=(1.0, 0.3)) -> verdicts.Verdict:
    """C14's verdict from MNIST-1D steps with heavy ball / SGD about ``small`` at batch 32
    (spread ``spread``) and ``large`` at 2048 (0.7 between), the NQM's ``nqm_ratios`` at
    32 and 2048 (0.5 between)."""
    sgd, heavy = arms({32: (small, spread), 256: (0.7, 0.02), 2048: (large, 0.02)})
    small_q, large_q = nqm_ratios
    q_sgd, q_heavy = arms({32: (small_q, 0.02), 256: (0.5, 0.02), 2048: (large_q, 0.02)})
    return noise.judge_c14(sgd, heavy, q_sgd, q_heavy, CFG)


def growth_of(small: float, large: float, spread: float = 0.02) -> np.ndarray:
    """The per-seed growth log(ratio at the small batch) - log(ratio at the large one) of
    ``c14_verdict``'s numbers, written out."""
    return np.log(small + spread * JITTER) - np.log(large + 0.02 * JITTER)


@pytest.mark.parametrize(
    "small, large, spread, status",
    [
        (0.95, 0.5, 0.02, S),  # the statement: momentum helps more at the large batch
        (0.6, 0.6, 0.02, N),  # it helps, but as much at every size
        (0.5, 0.95, 0.02, N),  # the reverse pattern (a per-size 'depends' would print it too)
        (0.95, 0.75, 0.3, I),  # the small batch spread over seeds: straddles 0.223
    ],
)
def test_c14_primary_is_the_growth_of_momentums_advantage(small, large, spread, status):
    verdict = c14_verdict(small, large, spread)
    (primary,) = verdict.primary
    assert verdict.status == status == primary.status
    assert primary.text == "MNIST-1D: log steps ratio, batch 32 - batch 2048"
    assert primary.threshold == CFG.growth == pytest.approx(0.223)
    assert primary.side == verdicts.ABOVE and primary.estimate.bound == ""
    assert primary.estimate.mean == pytest.approx(growth_of(small, large, spread).mean())
    assert primary.estimate.n == SGD_STEPS.size


def test_c14_the_growth_is_paired_over_seeds():
    # seeds almost 3x apart in steps, the same log ratio on each: the interval is narrow
    sgd = arrived([500.0, 1000.0, 700.0, 1400.0, 600.0])
    heavy_small = arrived(sgd.steps * 0.9)
    heavy_large = arrived(sgd.steps * 0.45 * (1 + 0.01 * JITTER))
    got = noise.growth(heavy_small, heavy_large, sgd, sgd)
    assert got.mean == pytest.approx(np.log(2.0), abs=1e-3)
    assert got.high - got.low < 0.05 and got.bound == ""
    # by hand on two seeds: log(100 / 100) - log(50 / 100), log(200 / 100) - log(50 / 100)
    two = noise.growth(
        arrived([100.0, 200.0]),
        arrived([50.0, 50.0]),
        arrived([100.0, 100.0]),
        arrived([100.0, 100.0]),
    )
    assert two.n == 2 and two.mean == pytest.approx((np.log(2) + np.log(4)) / 2)


@pytest.mark.parametrize("arm", ["sgd small", "heavy small", "sgd large", "heavy large"])
def test_c14_censored_runs_at_either_end_make_the_growth_inconclusive(arm):
    sgd, heavy = arms({32: (0.95, 0.02), 256: (0.7, 0.02), 2048: (0.5, 0.02)})
    which, end = arm.split()
    side, batch = (sgd if which == "sgd" else heavy), (32 if end == "small" else 2048)
    steps = side[batch].steps
    # flagged with the numbers unchanged: the slowest seed held at its own step
    side[batch] = arrived(steps, [int(np.argmax(steps))], horizon=float(steps.max()))
    verdict = noise.judge_c14(sgd, heavy, sgd, heavy, CFG)
    estimate = verdict.primary[0].estimate
    assert estimate.bound == "both" and estimate.low > CFG.growth  # measured, it would pass
    assert estimate.mean == pytest.approx(growth_of(0.95, 0.5).mean())
    assert verdict.status == I
    # the NQM's growth (here the same numbers) is censored as well
    assert verdict.secondary[len(SIZES)].estimate.bound == "both"


def test_c14_censored_runs_between_the_ends_leave_the_primary_measured():
    sgd, heavy = arms({32: (0.95, 0.02), 256: (0.7, 0.02), 2048: (0.5, 0.02)})
    heavy[256] = arrived(heavy[256].steps, [0], horizon=2000.0)
    verdict = noise.judge_c14(sgd, heavy, sgd, heavy, CFG)
    assert verdict.primary[0].estimate.bound == "" and verdict.status == S
    assert verdict.secondary[1].text.startswith("MNIST-1D, batch 256")
    assert verdict.secondary[1].estimate.bound == "lower"


@pytest.mark.parametrize("nqm_ratios, nqm_status", [((1.0, 0.3), S), ((0.3, 1.0), N)])
def test_c14_every_ratio_and_the_nqm_are_secondary(nqm_ratios, nqm_status):
    verdict = c14_verdict(0.95, 0.5, nqm_ratios=nqm_ratios)
    assert verdict.status == S  # the NQM never changes it
    ratio = "steps to target, heavy ball / SGD"
    assert [c.text for c in verdict.secondary] == (
        [f"MNIST-1D, batch {b}: {ratio}" for b in SIZES]
        + ["NQM: log steps ratio, batch 32 - batch 2048"]
        + [f"NQM, batch {b}: {ratio}" for b in SIZES]
    )
    mnist = verdict.secondary[: len(SIZES)]
    for cond, r in zip(mnist, (0.95, 0.7, 0.5)):
        assert cond.estimate.mean == pytest.approx(r, rel=1e-3)
        assert cond.threshold == CFG.speedup and cond.side == verdicts.BELOW
    assert [c.status for c in mnist] == [N, S, S]
    nqm_growth = verdict.secondary[len(SIZES)]
    assert nqm_growth.status == nqm_status
    assert nqm_growth.estimate.mean == pytest.approx(growth_of(*nqm_ratios).mean())


def test_c14_the_primary_batches_are_the_ends_of_the_mnist1d_arm():
    # the quick run: MNIST-1D at batch 32 and 256 only, the NQM at all three sizes
    sgd, heavy = arms({32: (0.95, 0.02), 256: (0.5, 0.02)})
    q_sgd, q_heavy = arms({b: (0.5, 0.02) for b in SIZES})
    verdict = noise.judge_c14(sgd, heavy, q_sgd, q_heavy, CFG)
    assert verdict.primary[0].text == "MNIST-1D: log steps ratio, batch 32 - batch 256"
    assert verdict.primary[0].estimate.mean == pytest.approx(growth_of(0.95, 0.5).mean())
    assert verdict.secondary[2].text == "NQM: log steps ratio, batch 32 - batch 2048"
    assert verdict.status == S and verdict.secondary[2].status == N


# ------------------------------------------------------------------- C14's MNIST-1D arm


def trials_of(acc, lrs, schedule: loop.Schedule) -> comparison.Trials:
    """A method's trials from hand-made validation-accuracy curves ``(trials, seeds, evals)``."""
    acc = np.asarray(acc, np.float64)
    loss = np.where(np.isfinite(acc), 2.3 * (1 - acc), np.nan)
    curves = loop.Curves(loss, loss, acc, loss, np.nan_to_num(acc[..., -1]))
    table = {"lr": np.asarray(lrs, np.float32), "momentum": np.zeros(len(lrs), np.float32)}
    return comparison.Trials("SGD", tuning.Space(lr=(lrs[0], lrs[-1])), table, curves, schedule)


def test_select_races_the_trials_to_the_accuracy_target():
    schedule = loop.Schedule(steps=60, batch_size=32, eval_every=20)  # evaluations 0 .. 60
    fast = [0.1, 0.7, 0.8, 0.9]  # reaches 0.6 at step 20 x 0.5 / 0.6
    slow = [0.1, 0.3, 0.5, 0.7]  # half-way from step 40 to 60: step 50
    medium = [0.1, 0.4, 0.6, 0.7]  # exactly at step 40
    fastest = [0.1, 0.9, 0.95, 0.97]  # at step 20 x 0.5 / 0.8
    never = [0.1, 0.2, 0.3, 0.4]
    diverged = [0.1, np.nan, np.nan, np.nan]
    acc = [
        [fast, slow, fast, slow],  # lr 0.1: the fewest mean steps of the uncensored trials
        [medium] * 4,  # lr 0.2
        [fastest, fastest, fastest, never],  # lr 0.3: the fastest, censored on seed 3
        [diverged] * 4,  # lr 1.0
    ]
    selected, pick = bs.select(trials_of(acc, [0.1, 0.2, 0.3, 1.0], schedule), 0.6)
    # on all seeds: the fewest censored runs, then the fewest mean steps (the setting shown)
    assert pick.overall == selected.index == 0 and selected.setting["lr"] == pytest.approx(0.1)
    # per seed, the trial chosen on the other fold: on the odd seeds lr 0.1 is slow and
    # lr 0.3 censored, so the even seeds get lr 0.2; on the even seeds lr 0.3 is the
    # fastest and uncensored, so the odd seeds get it (and seed 3 its censored run)
    assert pick.chosen.tolist() == [1, 2, 1, 2]
    np.testing.assert_allclose(pick.arrival.steps, [40.0, 20 * 0.5 / 0.8, 40.0, 60.0])
    assert pick.arrival.censored.tolist() == [False, False, False, True]
    assert pick.arrival.horizon == 60.0 and pick.arrival.count == 1


def test_rows_and_ratios_read_the_per_seed_arrivals():
    fast = arrived([100.0, 120.0, 90.0, 110.0, 150.0], [4], horizon=150.0)
    slow = arrived([200.0, 240.0, 180.0, 220.0, 190.0], horizon=300.0)
    curve = np.zeros((5, 3))
    mnist = {
        ("SGD", 32): bs.Pick(0.5, slow, False, curve, np.full(5, 0.7)),
        ("heavy ball", 32): bs.Pick(0.05, fast, False, curve, np.full(5, 0.72)),
    }
    rows = bs.rows("MNIST-1D", mnist, (32,))
    assert [(r["method"], r["lr"]) for r in rows] == [("SGD", 0.5), ("heavy ball", 0.05)]
    assert rows[0]["steps to target"] == str(slow.mean())
    assert rows[1]["steps to target"].startswith(">= ")  # a lower bound ...
    assert rows[1]["steps to target"].endswith("(1/5 censored)")  # ... and why
    assert rows[1]["test accuracy"].mean == pytest.approx(0.72)
    ratio = bs.ratios(mnist, (32,))[32]
    assert ratio.mean == pytest.approx(np.exp(np.log(fast.steps / slow.steps).mean()))
    assert ratio.bound == "lower"
    without_test = {k: v._replace(test=None) for k, v in mnist.items()}
    assert all("test accuracy" not in r for r in bs.rows("NQM", without_test, (32,)))


def test_the_nqm_arm_races_every_method_and_batch_size():
    cfg = dataclasses.replace(CFG, seeds=3, dim=50, trials=4, steps=300, every=10)
    out = bs.measure_nqm(cfg, jax.random.key(0))
    lrs = bs.nqm_table(cfg)["lr"][: cfg.trials]
    np.testing.assert_allclose(lrs, np.geomspace(*cfg.lr, cfg.trials), rtol=1e-5)
    for b in cfg.batch_sizes:
        np.testing.assert_array_equal(out.eval_steps[b], np.arange(0, 301, 10))
    sel = out.selected
    assert set(sel) == {(m, b) for m in bs.METHODS for b in cfg.batch_sizes}
    for s in sel.values():
        assert np.isclose(s.lr, lrs).any() and s.curve.shape == (cfg.seeds, 31)
        assert isinstance(s.steps, race.Arrival) and s.steps.horizon == 300.0
        # the arrivals are those of the curves kept for each seed; none starts at the target
        again = race.arrival(s.curve, cfg.target, out.eval_steps[32], higher_is_better=False)
        np.testing.assert_allclose(s.steps.steps, again.steps)
        assert np.all(s.steps.steps > 0)
    # Zhang et al.'s mechanism: at the large batch (curvature-limited) momentum cuts the
    # steps; at the small one (noise-limited) much less
    large = race.ratio(sel["heavy ball", 2048].steps, sel["SGD", 2048].steps)
    small = race.ratio(sel["heavy ball", 32].steps, sel["SGD", 32].steps)
    assert large.high < 0.5 < small.low


def test_both_methods_get_the_same_grid_of_effective_step_sizes():
    arm = noise.FULL.arms[-1]
    sgd, heavy = (tuning.trials(m.space, 4) for m in bs.methods(arm, 0.9))
    np.testing.assert_allclose(sgd["lr"], heavy["lr"] / (1 - heavy["momentum"]), rtol=1e-5)
    np.testing.assert_allclose(sgd["lr"][[0, -1]], arm.lr, rtol=1e-5)
    assert np.all(sgd["momentum"] == 0) and np.allclose(heavy["momentum"], 0.9)


# The MNIST-1D arm's budget in units (batch-32 MLP steps), at 8 trials, 5 / 8 seeds and
# evaluations every 20 steps: 3.9x / 3.1x the units of 3 trials, 3 seeds / 4 trials, 5
# seeds and sparse evaluations before. The full experiment (this arm, the NQM and C11)
# ran in 65 s on 2 CPU cores.
BUDGET_QUICK, BUDGET_FULL = 230_000, 1_400_000


def test_step_units_are_the_briefs_and_the_arms_fit_the_budget():
    np.testing.assert_allclose([bs.step_units(b) for b in SIZES], [1, 3, 20], rtol=1e-6)
    units = lambda cfg: bs.units(cfg.arms, trials=cfg.arm_trials, seeds=cfg.seeds)
    # quick: 2 methods x 8 trials x 5 seeds; batch 32: 600 steps and 31 evaluations of 40
    # units; batch 256: 180 steps of 3 units and 10 evaluations
    assert units(noise.QUICK) == 2 * 8 * 5 * ((600 + 31 * 40) + (180 * 3 + 10 * 40))
    # full: 8 seeds; 1500 steps at 32, 400 at 256 and 180 steps of 20 units at 2048
    full = 2 * 8 * 8 * ((1500 + 76 * 40) + (400 * 3 + 21 * 40) + (180 * 20 + 10 * 40))
    assert units(noise.FULL) == full
    assert units(noise.QUICK) <= BUDGET_QUICK and units(noise.FULL) <= BUDGET_FULL
    assert max(a.batch for a in noise.FULL.arms) == 2048 and noise.FULL.seeds >= 8
    assert noise.QUICK.seeds >= 5


# ------------------------------------------------------------------------------ C11 judge


@pytest.mark.parametrize(
    "ratio, spread, status",
    [
        (0.3, 0.02, S),
        (1.2, 0.02, N),
        (0.8, 0.3, I),
    ],
)
def test_c11_judge_returns_every_status(ratio, spread, status):
    raw, ema = SGD_STEPS / 1000, SGD_STEPS / 1000 * (ratio + spread * JITTER)
    names = list(ema_error.regimes({b: 0.1 for b in CFG.batch_sizes}, CFG))
    verdict = ema_error.judge_c11(
        {names[0]: raw, names[1]: raw}, {names[0]: ema, names[1]: 2 * raw}, CFG
    )
    assert verdict.status == status and len(verdict.secondary) == 1
    (primary,) = verdict.primary
    assert primary.text.startswith(names[0]) and primary.threshold == CFG.ema_gain
    geometric = np.exp(np.log(ratio + spread * JITTER).mean())
    assert primary.estimate.mean == pytest.approx(geometric)
    # the other regimes are secondary: an EMA twice as far off never votes
    assert verdict.secondary[0].estimate.mean == pytest.approx(2.0)


# ------------------------------------------------------------------------ C11's measurement

TINY = dataclasses.replace(
    CFG,
    seeds=3,
    dim=50,
    trials=6,
    steps=300,
    every=10,
    target=0.05,
    ema_steps=200,
    ema_burn=50,
    ema_every=25,
    arm_trials=2,
    accuracy=0.25,
    arms=(
        bs.Arm(loop.Schedule(60, 32, 20), (0.1, 0.4)),
        bs.Arm(loop.Schedule(20, 256, 10), (0.3, 1.2)),
    ),
)


def test_without_noise_the_ema_of_gradients_is_pure_lag():
    h = nqm.curvatures(TINY.dim)
    errs = ema_error.errors(0.2, 32.0, h, jax.random.key(0), dataclasses.replace(TINY, noise=0.0))
    np.testing.assert_allclose(errs[:, 0], 0.0, atol=1e-6)  # (a) is the true gradient
    np.testing.assert_allclose(errs[:, 1], errs[:, 2], rtol=1e-5)  # (b) == (c)
    assert np.all(errs[:, 2] > 0.01)  # the EMA lags a moving point


def test_at_a_standing_point_the_ema_of_true_gradients_has_no_lag():
    errs = ema_error.errors(0.0, 32.0, nqm.curvatures(TINY.dim), jax.random.key(0), TINY)
    t = np.arange(TINY.ema_burn, TINY.ema_steps, TINY.ema_every)
    # the EMA started at 0 holds (1 - beta^(t+1)) of the constant gradient: error beta^(t+1)
    np.testing.assert_allclose(errs[:, 2], TINY.momentum ** (t + 1.0), rtol=0.01, atol=2e-6)
    assert np.all(errs[:, 1] < errs[:, 0])  # averaging a fixed point's noise helps


@pytest.mark.slow
def test_run_writes_both_findings_with_finite_intervals(tmp_path):
    c11, c14 = noise.run(TINY, jax.random.key(0), tmp_path)
    assert (c11.id, c14.id) == ("C11", "C14")
    for finding in (c11, c14):
        assert all((tmp_path / p).exists() for p in finding.plots)
        assert finding.verdict.status in verdicts.EMPIRICAL
        for cond in finding.verdict.primary + finding.verdict.secondary:
            assert np.isfinite([cond.estimate.low, cond.estimate.high]).all()
    # the primary: the growth from the arm's smallest batch to its largest
    assert [c.text for c in c14.verdict.primary] == [
        "MNIST-1D: log steps ratio, batch 32 - batch 256"
    ]
    # secondary: each MNIST-1D batch size's ratio, the NQM's growth and each NQM ratio
    assert len(c14.verdict.secondary) == len(TINY.arms) + 1 + len(TINY.batch_sizes)
    selected = c14.metrics["selected"]
    arms = {a.batch: a for a in TINY.arms}
    for row in c14.table:
        entry = selected[f"{row['problem']}, {row['method']}, batch {row['batch']}"]
        steps, censored = entry["steps"], entry["censored"]
        assert steps.shape == (TINY.seeds,) and isinstance(row["steps to target"], str)
        if row["problem"] == "NQM":
            assert TINY.lr[0] * 0.999 <= row["lr"] <= TINY.lr[1] * 1.001
            assert np.all((steps > 0) & (steps <= TINY.steps))
            np.testing.assert_array_equal(steps[censored], TINY.steps)
            continue
        arm = arms[row["batch"]]
        scale = 1.0 if row["method"] == "SGD" else 1 - TINY.momentum
        assert arm.lr[0] * scale * 0.999 <= row["lr"] <= arm.lr[1] * scale * 1.001
        assert np.all((steps > 0) & (steps <= arm.schedule.steps))
        np.testing.assert_array_equal(steps[censored], arm.schedule.steps)
        assert 0.1 < row["test accuracy"].mean < 1
    # the primary estimate is the per-seed growth of the selected arrivals
    log = lambda m, b: np.log(selected[f"MNIST-1D, {m}, batch {b}"]["steps"])
    growth = (log("heavy ball", 32) - log("SGD", 32)) - (log("heavy ball", 256) - log("SGD", 256))
    assert c14.verdict.primary[0].estimate.mean == pytest.approx(growth.mean())
    rows = {r["regime"]: r for r in c11.table}
    small = min(TINY.batch_sizes)
    # a tenth of the speed lags less than the tuned trajectory
    assert (
        rows[f"batch {small}, slow lr"]["(c) lag only"].mean
        < rows[f"batch {small}, tuned lr"]["(c) lag only"].mean
    )
    # at the largest batch heavy ball reaches the NQM's target sooner than SGD
    big = max(TINY.batch_sizes)
    heavy, sgd = (selected[f"NQM, {m}, batch {big}"]["steps"] for m in ("heavy ball", "SGD"))
    assert heavy.mean() < sgd.mean()
