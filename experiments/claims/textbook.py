"""Textbook checks: GD's step-size limits, Polyak's and Nesterov's rates, EMA == scaled heavy ball.

Measure: every quadratic check (C1; C2; C3's and C4's quadratic parts; C12) runs on
randomised ravines f(x) = (kappa z1^2 + z2^2) / 2 with z = Q^T x: per seed a random
rotation Q, a random start on the unit circle and a condition number drawn log-uniformly,
all seeds x settings of every check in one compiled vmap. C7 trains the MNIST-1D MLP with
EMA momentum, heavy ball at lr (1 - b) and (as a control) heavy ball at lr on the same
batches, every seed and b in one compile. Judge: each statement is a theorem or an
identity, so every condition must hold on every seed (``verdicts.judge_check``).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import momentum_optax as mo
from experiments import comparison
from experiments import descent
from experiments import measures
from experiments import plotting
from experiments import problems
from experiments import report
from experiments import sweeps
from experiments import tasks
from experiments.protocol import stats
from experiments.protocol import verdicts

NAME = "textbook"
CLAIMS = ("C1", "C2", "C3", "C4", "C7", "C12")
METHODS = ("GD", "heavy ball", "Nesterov")


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 5
    steps: int = 12_000  # every quadratic run (one compile)
    tolerance: float = 1e-6  # distance to the minimum, relative to the start
    lr_kappa: tuple[float, float] = (10.0, 30.0)  # C1: condition numbers drawn in this range
    lr_multiples: tuple[float, ...] = (0.05, 0.2, 0.5, 0.9, 1.2, 1.5, 1.8, 2.1, 2.5)  # x 1/L
    rate_kappa: tuple[float, float] = (100.0, 1000.0)  # C2, C3, C4
    rate_error: float = 0.05  # measured vs theoretical -log(rate), relative
    speedup: float = 0.5  # C2: GD's steps / heavy ball's at least this x sqrt(kappa)
    below_polyak: tuple[float, ...] = (0.0, 0.5)  # C3: beta = these x Polyak's beta
    beyond_polyak: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)  # beta = 1 - (1 - Polyak's) / these
    beta_lrs: tuple[float, ...] = (0.5, 0.7, 1.0, 1.2)  # x 2 (1 + beta) / (L + mu)
    ravine_kappa: tuple[float, float] = (1000.0, 10000.0)  # C12
    ravine_lr: float = 1.5  # x 1/L
    ravine_momentum: float = 0.9
    ravine_steps: int = 50
    flip_floor: float = 1e-5  # C1: sign changes of |z1| below this (rounding) are not counted
    ema_betas: tuple[float, ...] = (0.5, 0.9, 0.99)  # C7
    ema_lr: float = 0.05
    ema_steps: int = 400
    ema_batch: int = 32
    ema_tolerance: float = 1e-4  # max relative parameter difference (float32)


QUICK = Config(seeds=3, ema_steps=300)
FULL = Config()

READING = {
    "C1": "On a quadratic with largest curvature L, gradient descent's steep eigen-coordinate is "
          "multiplied by 1 - lr L per step: below 1/L it shrinks without changing sign (slow "
          "but sure at a small lr), between 1/L and 2/L it overshoots to the other side at "
          "every step (the oscillating pattern), above 2/L it grows (divergence).",
    "C2": "The narrow valley is an ill-conditioned quadratic; 'faster' is the per-step rate at "
          "each method's optimal constant parameters, against the textbook rates.",
    "C3": "The quadratic part of 'too close to 1 overshoots': beyond Polyak's optimal beta, "
          "heavy ball's best rate over the learning rate is sqrt(beta), which worsens toward 1.",
    "C4": "The quadratic part of C4: each method at its own optimal constant parameters on a "
          "strongly convex quadratic, where theory ranks heavy ball ((sqrt k - 1)/(sqrt k + 1)) "
          "ahead of Nesterov (1 - 1/sqrt k).",
    "C7": "An identity of the update rule: with a constant b and the same gradients, EMA "
          "momentum at lr gives the iterates of heavy ball at lr (1 - b), up to float32 "
          "rounding; tested on the gradients of a real network's mini-batches.",
    "C12": "The 'components' are those of the gradient steps that heavy ball's velocity sums, "
           "in the ravine's eigen-directions; 'cancel' / 'reinforce' is their coherence "
           "|sum b^k g(t-k)| / sum b^k |g(t-k)| (0: cancel, 1: add up).",
}


class Ravine(NamedTuple):
    """A run on a rotated ravine in its eigen-coordinates (steep, shallow)."""

    z: jax.Array  # (steps + 1, 2)
    loss: jax.Array  # (steps + 1,)
    grad: jax.Array  # (steps, 2)


def rotation(theta: jax.Array) -> jax.Array:
    c, s = jnp.cos(theta), jnp.sin(theta)
    return jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])


def ravine_run(row: dict, steps: int) -> Ravine:
    """``sweeps.momentum_sgd(row)`` on the ravine of ``row`` (kappa, rotation theta, start
    angle phi, all traced), from the start (cos phi, sin phi)."""
    q = rotation(row["theta"])
    loss = lambda x: problems.quadratic(problems.ravine_curvatures(row["kappa"]))(q.T @ x)
    x0 = jnp.stack([jnp.cos(row["phi"]), jnp.sin(row["phi"])])
    path = descent.descend(loss, sweeps.momentum_sgd(row), x0, steps)
    return Ravine(path.x @ q, path.loss, path.grad @ q)


def ravines(key: jax.Array, seeds: int, kappa: tuple[float, float]) -> dict[str, np.ndarray]:
    """Seed ``s``'s ravine from ``fold_in(key, s)``: rotation and start angles uniform,
    the condition number log-uniform in ``kappa``."""
    u = np.stack([np.asarray(jax.random.uniform(jax.random.fold_in(key, s), (3,)))
                  for s in range(seeds)])
    lo, hi = np.log(kappa)
    return {"theta": 2 * np.pi * u[:, 0], "phi": 2 * np.pi * u[:, 1],
            "kappa": np.exp(lo + (hi - lo) * u[:, 2])}


def block(draw: dict, settings) -> dict[str, np.ndarray]:
    """Rows ``(seed, setting)`` (seed slowest): ``settings(kappa)`` lists each seed's
    ``(lr, momentum, nesterov)``."""
    rows = [(s, *setting) for s, k in enumerate(draw["kappa"]) for setting in settings(float(k))]
    seed, lr, momentum, nesterov = (np.asarray(c) for c in zip(*rows))
    out = {k: np.asarray(v[seed], np.float32) for k, v in draw.items()}
    out.update(lr=lr.astype(np.float32), momentum=momentum.astype(np.float32),
               nesterov=nesterov.astype(np.int32))
    return out


def run_blocks(blocks: dict[str, dict], steps: int, seeds: int) -> dict[str, Ravine]:
    """Every block's rows in one compiled vmap; each result shaped ``(seeds, settings, ...)``."""
    names = list(blocks)
    table = {c: np.concatenate([blocks[n][c] for n in names]) for c in blocks[names[0]]}
    paths = sweeps.sweep(lambda row: ravine_run(row, steps), table)
    out, start = {}, 0
    for n in names:
        size = sweeps.rows(blocks[n])
        out[n] = Ravine(*(a[start:start + size].reshape(seeds, size // seeds, *a.shape[1:])
                          for a in paths))
        start += size
    return out


def polyak_beta(kappa: float) -> float:
    return mo.tuning.heavy_ball(kappa, 1.0).momentum


def c3_betas(kappa: float, cfg: Config) -> list[float]:
    b = polyak_beta(kappa)
    return [f * b for f in cfg.below_polyak] + [1 - (1 - b) / d for d in cfg.beyond_polyak]


def quadratic_blocks(cfg: Config, key: jax.Array) -> tuple[dict, dict]:
    """The rows of C1, the tuned methods (C2, C4), C3's beta x lr grid and C12."""
    draws = {"C1": ravines(key, cfg.seeds, cfg.lr_kappa),
             "tuned": ravines(key, cfg.seeds, cfg.rate_kappa),
             "C3": ravines(key, cfg.seeds, cfg.rate_kappa),
             "C12": ravines(key, cfg.seeds, cfg.ravine_kappa)}

    def tuned(k):
        return [(*mo.tuning.gradient_descent(k, 1.0)[:2], 0), (*mo.tuning.heavy_ball(k, 1.0)[:2], 0),
                (*mo.tuning.nesterov(k, 1.0)[:2], 1)]

    settings = {
        "C1": lambda k: [(m / k, 0.0, 0) for m in cfg.lr_multiples],
        "tuned": tuned,
        "C3": lambda k: [(f * 2 * (1 + b) / (k + 1), b, 0) for b in c3_betas(k, cfg)
                         for f in cfg.beta_lrs],
        "C12": lambda k: [(cfg.ravine_lr / k, m, 0) for m in (0.0, cfg.ravine_momentum)],
    }
    return {n: block(draws[n], settings[n]) for n in draws}, draws


def fitted_rate(errors: np.ndarray, start: float = 1e-2, stop: float = 1e-25) -> np.ndarray:
    """Per-step rate ``rho`` of ``error_t ~ a (t + 1)^p rho^t``: least squares on the log of
    the error's upper envelope (``max_{s >= t} error_s``, so an oscillating error is fitted at
    its peaks) while it falls from ``start`` to ``stop`` of its first value. The polynomial
    factor of a double root (heavy ball and Nesterov at their optimal parameters) does not
    bias it.
    NaN where fewer than 4 steps lie in that window."""
    flat = np.asarray(errors, np.float64).reshape(-1, np.shape(errors)[-1])
    flat = np.maximum.accumulate(np.nan_to_num(flat, nan=np.inf)[:, ::-1], axis=-1)[:, ::-1]
    rates = np.full(flat.shape[0], np.nan)
    for i, e in enumerate(flat):
        t = np.flatnonzero((e <= start * e[0]) & (e >= stop * e[0]) & np.isfinite(e))
        if t.size >= 4:
            design = np.stack([np.ones(t.size), np.log(t + 1.0), t], -1)
            rates[i] = np.exp(np.linalg.lstsq(design, np.log(e[t]), rcond=None)[0][2])
    return rates.reshape(np.shape(errors)[:-1])


def exponent_error(measured: np.ndarray, theory: np.ndarray) -> np.ndarray:
    """``|log measured / log theory - 1|``: the relative error in steps per decade
    (NaN, a rate that could not be fitted, counts as 1)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(np.log(measured) / np.log(theory) - 1)
    return np.where(np.isfinite(err), err, 1.0)


def spread(values: np.ndarray) -> stats.Interval:
    """The mean and the range (min, max) over every seed and setting: a check must hold on
    each of them, so its condition is judged on the range, not on a bootstrap interval."""
    v = np.asarray(values, np.float64).ravel()
    return stats.Interval(float(v.mean()), float(v.min()), float(v.max()), int(v.size))


def check(text: str, values, threshold: float, side: str) -> verdicts.Condition:
    return verdicts.Condition(text + " [min, max over seeds]", spread(values), threshold, side)


def flip_fraction(z: np.ndarray, floor: float) -> np.ndarray:
    """The fraction of consecutive steps (both with ``|z| > floor``; last axis: time) at which
    ``z`` changes sign: 1 for an overshoot at every step, 0 for none (NaN: no such pair).
    The floor keeps float32 rounding of a coordinate that has converged from counting."""
    z = np.asarray(z, np.float64)
    both = (np.abs(z[..., 1:]) > floor) & (np.abs(z[..., :-1]) > floor)
    flips = both & (z[..., 1:] * z[..., :-1] < 0)
    with np.errstate(invalid="ignore"):
        return flips.sum(-1) / both.sum(-1)


def distance(run: Ravine) -> np.ndarray:
    """``||x_t - x*|| / ||x_0 - x*||`` (the start is on the unit circle, the minimum at 0)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.linalg.norm(np.asarray(run.z, np.float64), axis=-1)


# ------------------------------------------------------------------------------- C7: MNIST-1D

def ema_differences(row: dict, key_data: jax.Array, data, task: tasks.Task, steps: int,
                    batch: int) -> jax.Array:
    """EMA momentum at ``lr`` against heavy ball at ``lr (1 - b)`` and, as a control, at ``lr``,
    from one initialisation on the same batches. The two heavy balls are driven by the EMA
    run's gradients (the identity is about the update rule: same gradients, same iterates);
    a heavy ball at ``lr (1 - b)`` also runs freely on its own gradients, where rounding can
    be amplified by the network. Returns the largest relative parameter difference over the
    steps, ``(driven, control, free)``."""
    init_key, batch_key = jax.random.split(comparison.seed_key(jax.random.wrap_key_data(key_data),
                                                               row["seed"]))
    lr, b = row["lr"], row["momentum"]
    ema, scaled, unscaled = mo.sgd(lr, b, ema=True), mo.sgd(lr * (1 - b), b), mo.sgd(lr, b)
    opts = (ema, scaled, unscaled, scaled)  # the last runs on its own gradients
    params = task.init(init_key)
    n = data.x_train.shape[0]

    def relative(p, q):
        gap = optax.tree.norm(jax.tree.map(jnp.subtract, p, q)) / optax.tree.norm(p)
        return jnp.where(jnp.isfinite(gap), gap, jnp.inf)

    def step(carry, t):
        ps, states, worst = carry
        idx = jax.random.randint(jax.random.fold_in(batch_key, t), (batch,), 0, n)
        grad = jax.grad(lambda p: tasks.loss(task, p, data.x_train[idx], data.y_train[idx]))
        g = grad(ps[0])
        new = [o.update(gi, s, p) for o, gi, p, s in zip(opts, (g, g, g, grad(ps[3])), ps, states)]
        ps = tuple(optax.apply_updates(p, u) for p, (u, _) in zip(ps, new))
        gaps = jnp.stack([relative(ps[0], ps[i]) for i in (1, 2, 3)])
        return (ps, tuple(s for _, s in new), jnp.maximum(worst, gaps)), None

    start = ((params,) * 4, tuple(o.init(params) for o in opts), jnp.zeros(3))
    (_, _, worst), _ = jax.lax.scan(step, start, jnp.arange(steps))
    return worst


def measure_ema(cfg: Config, key: jax.Array) -> np.ndarray:
    """C7's differences, shape ``(betas, seeds, 3)``: every b and seed in one compile."""
    task = tasks.mnist1d_mlp()
    table = sweeps.with_seeds({"lr": np.full(len(cfg.ema_betas), cfg.ema_lr, np.float32),
                               "momentum": np.asarray(cfg.ema_betas, np.float32)}, cfg.seeds)
    fn = lambda row, k, d: ema_differences(row, k, d, task, cfg.ema_steps, cfg.ema_batch)
    out = sweeps.sweep(fn, table, jax.random.key_data(key), task.data)
    return out.reshape(len(cfg.ema_betas), cfg.seeds, 3)


# ------------------------------------------------------------------------------------ measure

def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> dict:
    """Every check's numbers: the quadratic runs (one compile) and C7's (one compile)."""
    status("quadratics: C1, C2, C3, C4, C12 (one compile)")
    blocks, draws = quadratic_blocks(cfg, key)
    runs = run_blocks(blocks, cfg.steps, cfg.seeds)
    c1, tuned, c3, c12 = (distance(runs[n]) for n in ("C1", "tuned", "C3", "C12"))
    kappa = draws["tuned"]["kappa"]
    theory = np.stack([[mo.tuning.gradient_descent(k, 1.0).rate, mo.tuning.heavy_ball(k, 1.0).rate,
                        mo.tuning.nesterov(k, 1.0).rate] for k in kappa])
    shape3 = (cfg.seeds, len(cfg.below_polyak) + len(cfg.beyond_polyak), len(cfg.beta_lrs))
    grads = np.moveaxis(runs["C12"].grad[:, 1, :cfg.ravine_steps], -1, 1)  # heavy ball, (s, axis, t)
    status("C7: EMA vs scaled heavy ball on MNIST-1D (one compile)")
    return {
        "C1": {"kappa": draws["C1"]["kappa"], "error": c1[:, :, :60],
               "steps": measures.steps_to(c1, cfg.tolerance), "diverged": measures.diverged(c1),
               "flips": flip_fraction(runs["C1"].z[:, :, :11, 0], cfg.flip_floor),
               "rises": measures.increases(runs["C1"].loss), "steep": runs["C1"].z[:, :, :31, 0]},
        "tuned": {"kappa": kappa, "theory": theory, "rate": fitted_rate(tuned),
                  "steps": measures.steps_to(tuned, cfg.tolerance), "error": tuned},
        "C3": {"kappa": draws["C3"]["kappa"], "polyak": np.array([polyak_beta(k) for k in
                                                                  draws["C3"]["kappa"]]),
               "betas": np.array([c3_betas(k, cfg) for k in draws["C3"]["kappa"]]),
               "rate": fitted_rate(c3).reshape(shape3)},
        "C12": {"kappa": draws["C12"]["kappa"], "grads": grads,
                "coherence": measures.coherence(grads, cfg.ravine_momentum),
                "final": c12[:, :, cfg.ravine_steps]},
        "C7": measure_ema(cfg, key),
    }


# ------------------------------------------------------------------------------------- judges

def judge_c1(steps, rises, flips, diverged, multiples) -> verdicts.Verdict:
    """Arrays ``(seeds, learning rates)``; ``multiples`` the learning rates x L."""
    m = np.asarray(multiples)
    small = int(np.argmin(m))
    best = np.where(diverged, np.inf, steps).min(1)
    with np.errstate(invalid="ignore"):
        slow = steps[:, small] / best
    return verdicts.judge_check([
        check(f"steps at the smallest lr ({m[small]:g}/L) / steps at the best lr", slow, 10.0,
              verdicts.ABOVE),
        check(f"loss increases at the smallest lr", rises[:, small], 0.5, verdicts.BELOW),
        check("fraction of the first 10 steps at which the steep eigen-coordinate changes "
              "sign, lr in (1/L, 2/L)", flips[:, (m > 1) & (m < 2)], 0.999, verdicts.ABOVE),
        check("the same, lr below 1/L", flips[:, m < 1], 0.001, verdicts.BELOW),
        check("fraction of runs that diverge exactly when lr > 2/L",
              np.mean(diverged == (m > 2), 1), 0.99, verdicts.ABOVE)])


def judge_c2(rate, theory, steps, kappa, cfg: Config) -> verdicts.Verdict:
    """``rate``, ``theory``, ``steps``: ``(seeds, 3)`` for GD, heavy ball, Nesterov."""
    error = exponent_error(rate, theory)
    with np.errstate(invalid="ignore"):
        speedup = steps[:, 0] / steps[:, 1] / np.sqrt(kappa)
    return verdicts.judge_check(
        [check(f"{name}: |log measured rate / log theoretical rate - 1|", error[:, i],
               cfg.rate_error, verdicts.BELOW) for i, name in enumerate(METHODS)]
        + [check("GD's steps to tolerance / heavy ball's, over sqrt(kappa)", speedup,
                 cfg.speedup, verdicts.ABOVE)])


def judge_c4(rate, theory, cfg: Config) -> verdicts.Verdict:
    """Heavy ball (column 1) against Nesterov (column 2) at their own optimal parameters."""
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.log(rate[:, 1]) / np.log(rate[:, 2])
        expected = np.log(theory[:, 1]) / np.log(theory[:, 2])
    error = np.where(np.isfinite(speed), np.abs(speed / expected - 1), 1.0)
    return verdicts.judge_check([
        check("heavy ball's measured rate - Nesterov's", rate[:, 1] - rate[:, 2], 0.0,
              verdicts.BELOW),
        check("measured speed ratio log rate(heavy ball) / log rate(Nesterov) vs theory, "
              "relative error", error, cfg.rate_error, verdicts.BELOW)])


def best_rates(rate: np.ndarray) -> np.ndarray:
    """The best (lowest) fitted rate over the last axis (learning rates); none fitted: 1."""
    return np.where(np.isfinite(rate), rate, 1.0).min(-1)


def judge_c3(betas, rate, cfg: Config) -> verdicts.Verdict:
    """``betas`` ``(seeds, betas)`` with Polyak's at index ``len(cfg.below_polyak)``; ``rate``
    ``(seeds, betas, learning rates)``."""
    best, p = best_rates(rate), len(cfg.below_polyak)
    others = np.delete(best, p, axis=1)
    return verdicts.judge_check([
        check("beta >= Polyak's: |log best rate / log sqrt(beta) - 1|",
              exponent_error(best[:, p:], np.sqrt(betas[:, p:])), cfg.rate_error,
              verdicts.BELOW),
        check("best rate of every other beta - Polyak's", others.min(1) - best[:, p], 0.0,
              verdicts.ABOVE),
        check("beyond Polyak's beta, the smallest rise of the best rate from one beta to the "
              "next", np.diff(best[:, p:], axis=1).min(1), 0.0, verdicts.ABOVE)])


def judge_c12(coherence) -> verdicts.Verdict:
    """``coherence``: ``(seeds, 2 axes (steep, shallow), steps)``; judged on the median over
    the steps from the third on."""
    median = np.median(coherence[..., 2:], -1)
    return verdicts.judge_check([
        check("steep direction: median coherence", median[:, 0], 0.5, verdicts.BELOW),
        check("shallow direction: median coherence", median[:, 1], 0.5, verdicts.ABOVE)])


def judge_c7(differences, cfg: Config) -> verdicts.Verdict:
    """``differences`` ``(betas, seeds, 2 or 3)``: EMA vs heavy ball at lr (1 - b) and vs heavy
    ball at lr, both fed the same gradients (a third column, free-running, is not judged)."""
    return verdicts.judge_check([
        check("EMA at lr vs heavy ball at lr (1 - b), same gradients: max relative parameter "
              "difference",
              differences[..., 0], cfg.ema_tolerance, verdicts.BELOW),
        check("control, EMA at lr vs heavy ball at lr: the same", differences[..., 1],
              100 * cfg.ema_tolerance, verdicts.ABOVE)])


# ------------------------------------------------------------------------------------ figures

def _per_seed(ax, x, ys, color, label, **kw) -> None:
    for i, y in enumerate(ys):
        ax.plot(x, y, color=color, lw=0.9, label=label if i == 0 else None, **kw)


def figures(n: dict, cfg: Config, out: pathlib.Path) -> dict[str, str]:
    """One PNG per check; every seed drawn (the toys are deterministic given the seed)."""
    names, m = {}, np.asarray(cfg.lr_multiples)
    fig, (a, b) = plotting.figure(2, title="C1: gradient descent on randomised ravines")
    for s, k in enumerate(n["C1"]["kappa"]):
        steps = n["C1"]["steps"][s]
        a.plot(m, np.where(np.isfinite(steps), steps, np.nan), "o-", label=f"kappa {k:.0f}")
        a.plot(m[n["C1"]["diverged"][s]], np.full(n["C1"]["diverged"][s].sum(), cfg.steps), "rx")
    a.axvline(2, color="k", ls="--", lw=0.8)
    a.set(xscale="log", yscale="log", xlabel="learning rate x L", title="x: diverged",
          ylabel=f"steps to {cfg.tolerance:g} of the start distance")
    a.legend(fontsize=7)
    for j, c in zip((2, 5, 7), plotting.ordered_colors([0, 1, 2])):
        b.plot(n["C1"]["steep"][0, j], ".-", color=c, label=f"lr {m[j]:g}/L")
    b.set(xlabel="step", ylabel="steep eigen-coordinate", title="seed 0")
    b.legend(fontsize=7)
    names["C1"] = plotting.save(fig, out, "c1_learning_rates.png")

    t = n["tuned"]
    fig, (a, b) = plotting.figure(2, title="C2: optimal constant parameters on ravines, "
                                           "kappa in " + report.listing(cfg.rate_kappa))
    for i, name in enumerate(METHODS):
        _per_seed(a, np.arange(t["error"].shape[-1]), np.maximum(t["error"][:, i], 1e-30),
                  plotting.COLORS[name], name)
        b.plot(1 - t["theory"][:, i], 1 - t["rate"][:, i], "o", color=plotting.COLORS[name],
               label=name)
    a.set(xscale="log", yscale="log", xlabel="step", ylabel="distance to the minimum / start",
          ylim=(1e-25, 10), title="every seed")
    lim = [1e-3, 1]
    b.plot(lim, lim, "k--", lw=0.8, label="measured = theory")
    b.set(xscale="log", yscale="log", xlabel="1 - theoretical rate", ylabel="1 - measured rate",
          title="per-step rate, every seed")
    for ax in (a, b):
        ax.legend(fontsize=7)
    names["C2"] = names["C4"] = plotting.save(fig, out, "c2_c4_rates.png")

    c = n["C3"]
    fig, (a,) = plotting.figure(1, title="C3 (quadratic): heavy ball's best rate against beta")
    best = best_rates(c["rate"])
    for s, k in enumerate(c["kappa"]):
        a.plot(1 - c["betas"][s], 1 - best[s], "o-", label=f"kappa {k:.0f}")
        a.plot(1 - c["polyak"][s], 1 - best[s, len(cfg.below_polyak)], "k*", ms=9)
    grid = np.geomspace(1 - c["betas"].max(), 1, 50)
    a.plot(grid, 1 - np.sqrt(1 - grid), "k--", lw=0.8, label="1 - sqrt(beta)")
    a.set(xscale="log", yscale="log", xlabel="1 - beta", ylabel="1 - best measured rate",
          title="star: Polyak's beta; higher = faster")
    a.legend(fontsize=7)
    names["C3"] = plotting.save(fig, out, "c3_quadratic_rate.png")

    fig, (a,) = plotting.figure(1, title=f"C12: heavy ball {cfg.ravine_momentum:g}, lr "
                                         f"{cfg.ravine_lr:g}/L on randomised ravines")
    for axis, name in enumerate(("steep", "shallow")):
        _per_seed(a, np.arange(cfg.ravine_steps), n["C12"]["coherence"][:, axis],
                  f"C{axis}", f"{name} direction")
    a.axhline(0.5, color="k", ls=":", lw=0.8)
    a.set(xlabel="step", ylabel="coherence of the summed gradient steps", ylim=(0, 1.05))
    a.legend(fontsize=7)
    names["C12"] = plotting.save(fig, out, "c12_coherence.png")

    fig, (a,) = plotting.figure(1, title="C7: EMA momentum vs heavy ball, MNIST-1D MLP")
    for j, (label, mark) in enumerate((("heavy ball at lr (1 - b), same gradients", "o"),
                                       ("control: heavy ball at lr", "s"),
                                       ("heavy ball at lr (1 - b), own gradients", "^"))):
        for i, beta in enumerate(cfg.ema_betas):
            v = n["C7"][i, :, j]
            a.plot(np.full(v.size, beta), np.where(np.isfinite(v), v, 1e3), mark, mfc="none",
                   color=f"C{j}", label=label if i == 0 else None)
    a.axhline(cfg.ema_tolerance, color="k", ls="--", lw=0.8, label="tolerance")
    a.set(yscale="log", xlabel="b", ylabel="max relative parameter difference",
          title="diverged control drawn at 1e3")
    a.legend(fontsize=7)
    names["C7"] = plotting.save(fig, out, "c7_ema.png")
    return names


# ----------------------------------------------------------------------------------- describe

PRIMARY = {
    "C1": "On every seed: the smallest lr needs at least 10x the steps of the best lr and its "
          "loss never rises; for lr in (1/L, 2/L) the steep eigen-coordinate changes sign at "
          "each of the first 10 steps (while above {flip_floor:g}, float32 rounding), below 1/L "
          "never; a run diverges exactly when lr > 2/L.",
    "C2": "On every seed: each method's measured per-step rate has -log(rate) within "
          "{rate_error:.0%} of theory's (GD (k-1)/(k+1), heavy ball (sqrt k-1)/(sqrt k+1), "
          "Nesterov 1-1/sqrt k), and GD needs at least {speedup:g} sqrt(kappa) times heavy "
          "ball's steps to the tolerance.",
    "C3": "On every seed: Polyak's beta has the lowest best-lr rate of all betas tried; for "
          "beta at or beyond it the best rate is sqrt(beta) (-log within {rate_error:.0%}) and "
          "rises with beta toward 1.",
    "C4": "On every seed: heavy ball's measured rate is below Nesterov's, and the measured "
          "ratio of their -log rates matches theory's within {rate_error:.0%}.",
    "C7": "On every seed and b: the largest relative parameter difference (global norm, over "
          "all steps) between EMA momentum at lr and heavy ball at lr (1 - b), fed the same "
          "gradients, is below {ema_tolerance:g}, while the control (heavy ball at lr, "
          "unscaled) differs by more than 100x that.",
    "C12": "On every seed: the median coherence of heavy ball's summed gradient steps is below "
           "1/2 in the steep eigen-direction and above 1/2 in the shallow one.",
}


def ravine_setup(kappa, cfg: Config, what: str) -> str:
    return (f"{what} on f(x) = (kappa z1^2 + z2^2) / 2, z = Q^T x, per seed a random rotation "
            f"Q, a random start on the unit circle and kappa log-uniform in {report.listing(kappa)}"
            f"; {cfg.seeds} seeds; {cfg.steps} steps (one compile with every other quadratic "
            "check). Rates: least squares of log distance (its upper envelope, with a log t "
            "term for double roots) while it falls from 1e-2 to 1e-25 of the start.")


def tables(n: dict, cfg: Config) -> dict[str, list[dict]]:
    m, t, c = np.asarray(cfg.lr_multiples), n["tuned"], n["C3"]
    best3 = best_rates(c["rate"])
    return {
        "C1": [{"lr x L": m[j], "steps to tolerance": spread(n["C1"]["steps"][:, j]),
                "diverged (seeds)": int(n["C1"]["diverged"][:, j].sum()),
                "sign-change fraction, 10 steps": spread(n["C1"]["flips"][:, j]),
                "loss rises": spread(n["C1"]["rises"][:, j])} for j in range(len(m))],
        "C2": [{"method": name, "measured rate": spread(t["rate"][:, i]),
                "theory": spread(t["theory"][:, i]), "steps to tolerance": spread(t["steps"][:, i])}
               for i, name in enumerate(METHODS)],
        "C4": [{"method": name, "measured rate": spread(t["rate"][:, i]),
                "theory": spread(t["theory"][:, i])} for i, name in enumerate(METHODS[1:], 1)],
        "C3": [{"beta": spread(c["betas"][:, j]), "best measured rate": spread(best3[:, j]),
                "sqrt(beta)": spread(np.sqrt(c["betas"][:, j]))}
               for j in range(best3.shape[1])],
        "C12": [{"direction": name, "median coherence": spread(np.median(
                    n["C12"]["coherence"][:, i, 2:], -1))} for i, name in enumerate(("steep", "shallow"))],
        "C7": [{"b": b, "vs heavy ball at lr (1 - b), same gradients": spread(n["C7"][i, :, 0]),
                "control: vs heavy ball at lr": spread(n["C7"][i, :, 1]),
                "vs heavy ball at lr (1 - b), own gradients": spread(n["C7"][i, :, 2])}
               for i, b in enumerate(cfg.ema_betas)],
    }


def describe(n: dict, judged: dict[str, verdicts.Verdict], plots: dict[str, str],
             cfg: Config) -> list[report.Finding]:
    t, rows = n["tuned"], tables(n, cfg)
    setup = {
        "C1": ravine_setup(cfg.lr_kappa, cfg, f"Gradient descent at lr in "
                           f"{report.listing(cfg.lr_multiples)} / L") + f" Tolerance: distance "
              f"{cfg.tolerance:g} of the start; diverged: the last distance exceeds the first.",
        "C2": ravine_setup(cfg.rate_kappa, cfg, "GD at 2/(L+mu), heavy ball at Polyak's "
                           "parameters (mo.tuning.heavy_ball), Nesterov at mo.tuning.nesterov's"),
        "C3": ravine_setup(cfg.rate_kappa, cfg, f"Heavy ball at beta = {report.listing(cfg.below_polyak)}"
                           f" x Polyak's and 1 - (1 - Polyak's) / {report.listing(cfg.beyond_polyak)}"
                           f", each at lr {report.listing(cfg.beta_lrs)} x 2(1+beta)/(L+mu); "
                           "best = lowest rate over these lrs"),
        "C12": ravine_setup(cfg.ravine_kappa, cfg, f"Heavy ball (momentum "
                            f"{cfg.ravine_momentum:g}) at lr {cfg.ravine_lr:g}/L, first "
                            f"{cfg.ravine_steps} steps") + " In this range lr mu < (1 - sqrt b)^2: "
               "the shallow direction is overdamped, the steep one oscillates (the regime of "
               "the source's picture).",
        "C7": f"MNIST-1D 40-100-100-10 MLP, {cfg.ema_steps} steps of batch {cfg.ema_batch}, "
              f"lr {cfg.ema_lr:g}, b in {report.listing(cfg.ema_betas)}, {cfg.seeds} seeds; the "
              "runs share the initialisation and the batches (one compile). The heavy balls compared "
              "are fed the EMA run's gradients; a heavy ball at lr (1 - b) on its own gradients "
              "is reported beside them (not judged: a network can amplify rounding).",
    }
    setup["C4"] = setup["C2"]
    heads = {
        "C1": "smallest lr / best lr steps " + str(judged["C1"].primary[0].estimate)
              + "; every run above 2/L diverges, none below",
        "C2": "; ".join(f"{name} rate {spread(t['rate'][:, i])} (theory {spread(t['theory'][:, i])})"
                        for i, name in enumerate(METHODS)),
        "C3": "best rate at Polyak's beta vs beyond: " + ", ".join(
            str(spread(r)) for r in best_rates(n["C3"]["rate"]).T[len(cfg.below_polyak):]),
        "C4": f"heavy ball {spread(t['rate'][:, 1])} vs Nesterov {spread(t['rate'][:, 2])} "
              f"(theory {spread(t['theory'][:, 1])} vs {spread(t['theory'][:, 2])})",
        "C7": f"max relative difference {spread(n['C7'][..., 0])} (control "
              f"{spread(n['C7'][..., 1])}; own gradients {spread(n['C7'][..., 2])})",
        "C12": "median coherence steep " + str(judged["C12"].primary[0].estimate) + ", shallow "
               + str(judged["C12"].primary[1].estimate),
    }
    metrics = {"C1": {"steps": n["C1"]["steps"], "kappa": n["C1"]["kappa"]},
               "C2": {k: t[k] for k in ("kappa", "rate", "theory", "steps")},
               "C3": {k: n["C3"][k] for k in ("kappa", "betas", "rate")},
               "C4": {k: t[k] for k in ("kappa", "rate", "theory")},
               "C7": {"differences": n["C7"]}, "C12": {"kappa": n["C12"]["kappa"]}}
    fields = dataclasses.asdict(cfg)
    return [report.Finding(id=i, reading=READING[i], primary=PRIMARY[i].format(**fields),
                           setup=setup[i], budget="", headline=heads[i], table=rows[i],
                           plots=[plots[i]], verdict=judged[i], metrics=metrics[i],
                           notes="A textbook check: conditions are judged on the range over "
                                 "seeds (every seed must meet them), not on a bootstrap "
                                 "interval.") for i in CLAIMS]


def run(cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
        ) -> list[report.Finding]:
    n = measure(cfg, key, status)
    c1, t, c3 = n["C1"], n["tuned"], n["C3"]
    judged = {"C1": judge_c1(c1["steps"], c1["rises"], c1["flips"], c1["diverged"],
                             cfg.lr_multiples),
              "C2": judge_c2(t["rate"], t["theory"], t["steps"], t["kappa"], cfg),
              "C3": judge_c3(c3["betas"], c3["rate"], cfg),
              "C4": judge_c4(t["rate"], t["theory"], cfg),
              "C7": judge_c7(n["C7"], cfg), "C12": judge_c12(n["C12"]["coherence"])}
    return describe(n, judged, figures(n, cfg, out), cfg)
