"""C11 and C14 (experiments/claims/noise.py) and the noisy quadratic model they run on."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import momentum_optax as mo
from experiments import loop
from experiments import noisy_quadratic as nqm
from experiments.claims import batch_size as bs
from experiments.claims import noise
from experiments.protocol import tuning
from experiments.protocol import verdicts

CFG = noise.QUICK


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


def test_steps_to_is_the_first_recorded_step_at_or_below_target():
    curves = np.array([[3.0, 2.0, 1.0, 0.5], [3.0, np.nan, 2.5, 2.0]])
    np.testing.assert_array_equal(nqm.steps_to(curves, 1.0, every=10), [20.0, np.inf])


# ------------------------------------------------------------------------------- judges


def steps(ratio: float, spread: float = 0.02, seeds: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed (sgd, heavy ball) steps with heavy ball / SGD about ``ratio``."""
    sgd = np.array([1000.0, 1100.0, 900.0, 1050.0, 950.0])[:seeds]
    jitter = np.array([1.0, -1.0, 0.5, -0.5, 0.0])[:seeds] * spread
    return sgd, sgd * (ratio + jitter)


SIZES = (32, 256, 2048)


def c14_verdict(
    small: float, large: float, small_spread: float = 0.02, nqm_ratio: float = 2.0
) -> verdicts.Verdict:
    """C14's verdict from MNIST-1D steps with heavy ball / SGD about ``small`` at batch 32
    and ``large`` at 2048 (0.5 between), the NQM's ``nqm_ratio`` at every size."""
    (s32, h32), (s2k, h2k), middle = steps(small, small_spread), steps(large), steps(0.5)
    nqm_sgd, nqm_heavy = steps(nqm_ratio)
    return noise.judge_c14(
        {32: s32, 256: middle[0], 2048: s2k},
        {32: h32, 256: middle[1], 2048: h2k},
        {b: nqm_sgd for b in SIZES},
        {b: nqm_heavy for b in SIZES},
        CFG,
    )


@pytest.mark.parametrize(
    "small, large, spread, status",
    [
        (0.95, 0.3, 0.02, verdicts.DEPENDS),  # the statement's pattern
        (0.5, 0.3, 0.02, verdicts.SUPPORTED),
        (1.0, 0.9, 0.02, verdicts.NOT_SUPPORTED),
        (0.8, 0.3, 0.3, verdicts.INCONCLUSIVE),  # batch 32 straddles 0.8, no side against
    ],
)
def test_c14_judge_returns_every_status(small, large, spread, status):
    assert c14_verdict(small, large, spread).status == status


@pytest.mark.parametrize("nqm_ratio", [0.3, 2.0])
def test_c14_judge_votes_on_mnist1d_only(nqm_ratio):
    verdict = c14_verdict(0.95, 0.3, nqm_ratio=nqm_ratio)  # the NQM never changes it
    assert verdict.status == verdicts.DEPENDS
    assert len(verdict.primary) == 2 and len(verdict.secondary) == 1 + len(SIZES)
    assert verdict.secondary[0].text.startswith("MNIST-1D, batch 256")
    assert all(c.text.startswith("NQM, batch") for c in verdict.secondary[1:])
    assert "MNIST-1D, batch 2048 only" in verdict.reason


def test_c14_primary_batches_are_the_ends_of_the_mnist1d_arm():
    sgd, heavy = steps(0.3)
    slow = steps(1.0)  # batch 256 alone would not be supported
    verdict = noise.judge_c14(
        {32: sgd, 256: slow[0]}, {32: heavy, 256: slow[1]}, {32: sgd}, {32: heavy}, CFG
    )
    assert verdict.status == verdicts.DEPENDS and "batch 32 only" in verdict.reason


# ------------------------------------------------------------------- C14's MNIST-1D arm


def test_steps_to_interpolates_between_evaluations():
    acc = np.array(
        [
            [0.1, 0.4, 0.8, 0.9],  # 0.6 crossed half-way from step 100 to 200
            [0.1, 0.2, np.nan, 0.3],  # never (NaN never arrives)
            [0.1, 0.6, 0.5, 0.7],
        ]
    )  # exactly at an evaluation; the first crossing
    got = bs.steps_to(acc, 0.6, np.array([0, 100, 200, 300]))
    np.testing.assert_allclose(got, [150.0, np.inf, 100.0])


def test_never_arriving_counts_one_evaluation_past_the_end():
    schedule = loop.Schedule(steps=400, batch_size=256, eval_every=80)
    np.testing.assert_array_equal(bs.censored(np.array([120.0, np.inf]), schedule), [120, 480])


def test_both_methods_get_the_same_grid_of_effective_step_sizes():
    arm = noise.FULL.arms[-1]
    sgd, heavy = (tuning.trials(m.space, 4) for m in bs.methods(arm, 0.9))
    np.testing.assert_allclose(sgd["lr"], heavy["lr"] / (1 - heavy["momentum"]), rtol=1e-5)
    np.testing.assert_allclose(sgd["lr"][[0, -1]], arm.lr, rtol=1e-5)
    assert np.all(sgd["momentum"] == 0) and np.allclose(heavy["momentum"], 0.9)


def test_step_units_are_the_briefs_and_the_arms_fit_the_budget():
    np.testing.assert_allclose([bs.step_units(b) for b in SIZES], [1, 3, 20], rtol=1e-6)
    units = lambda cfg: bs.units(cfg.arms, trials=cfg.arm_trials, seeds=cfg.seeds)
    assert units(noise.QUICK) <= 60_000 and units(noise.FULL) <= 440_000  # NQM: the rest
    assert max(a.batch for a in noise.FULL.arms) == 2048 and noise.FULL.seeds >= 5


@pytest.mark.parametrize(
    "ratio, spread, status",
    [
        (0.3, 0.02, verdicts.SUPPORTED),
        (1.2, 0.02, verdicts.NOT_SUPPORTED),
        (0.8, 0.3, verdicts.INCONCLUSIVE),
    ],
)
def test_c11_judge_returns_every_status(ratio, spread, status):
    raw, ema = steps(ratio, spread)
    other = steps(2.0)  # secondary regimes never vote
    names = list(noise.regimes({b: 0.1 for b in CFG.batch_sizes}, CFG))
    verdict = noise.judge_c11(
        {names[0]: raw, names[1]: other[0]}, {names[0]: ema, names[1]: other[1]}, CFG
    )
    assert verdict.status == status and len(verdict.secondary) == 1


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
    errs = noise.errors(0.2, 32.0, h, jax.random.key(0), dataclasses.replace(TINY, noise=0.0))
    np.testing.assert_allclose(errs[:, 0], 0.0, atol=1e-6)  # (a) is the true gradient
    np.testing.assert_allclose(errs[:, 1], errs[:, 2], rtol=1e-5)  # (b) == (c)
    assert np.all(errs[:, 2] > 0.01)  # the EMA lags a moving point


def test_at_a_standing_point_the_ema_of_true_gradients_has_no_lag():
    errs = noise.errors(0.0, 32.0, nqm.curvatures(TINY.dim), jax.random.key(0), TINY)
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
    assert [c.text for c in c14.verdict.primary] == [
        f"MNIST-1D, batch {b}: steps to target, heavy ball / SGD" for b in (32, 256)
    ]
    assert len(c14.verdict.secondary) == len(TINY.batch_sizes)  # the NQM's sizes
    arms = {a.batch: a for a in TINY.arms}
    for row in c14.table:
        if row["problem"] == "NQM":
            assert TINY.lr[0] * 0.999 <= row["lr"] <= TINY.lr[1] * 1.001
            assert row["steps to target"].high <= TINY.steps + TINY.every
            continue
        arm = arms[row["batch"]]
        scale = 1.0 if row["method"] == "SGD" else 1 - TINY.momentum
        assert arm.lr[0] * scale * 0.999 <= row["lr"] <= arm.lr[1] * scale * 1.001
        assert 0 < row["steps to target"].low <= row["steps to target"].high
        assert row["steps to target"].high <= arm.schedule.steps + arm.schedule.eval_every
        assert 0.0 <= row["seeds arriving"] <= 1.0 and 0.1 < row["test accuracy"].mean < 1
    rows = {r["regime"]: r for r in c11.table}
    small = min(TINY.batch_sizes)
    # a tenth of the speed lags less than the tuned trajectory
    assert (
        rows[f"batch {small}, slow lr"]["(c) lag only"].mean
        < rows[f"batch {small}, tuned lr"]["(c) lag only"].mean
    )
    # at the largest batch heavy ball reaches the target sooner than SGD
    big = [r for r in c14.table if r["problem"] == "NQM" and r["batch"] == max(TINY.batch_sizes)]
    assert big[1]["steps to target"].mean < big[0]["steps to target"].mean
