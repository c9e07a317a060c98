"""C11's measurement, judge and report, a part of the ``noise`` experiment: along heavy-ball
trajectories on the sampled noisy quadratic model (at C14's tuned learning rate and at a
fraction of it, small and large batch), the relative error to the true gradient of (a) the
mini-batch gradient, (b) the EMA of the mini-batch gradients (what momentum follows) and
(c) the EMA of the *true* gradients along the same trajectory (its lag alone, no noise).
``cfg`` is ``claims.noise.Config``."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from .. import noisy_quadratic as nqm
from .. import plotting
from .. import report
from .. import sweeps
from ..protocol import stats
from ..protocol import verdicts

PRIMARY_C11 = (
    "At batch 32 and heavy ball's tuned learning rate, the EMA of the mini-batch "
    "gradients is closer to the true gradient than the mini-batch gradient: the 95% "
    "interval of the paired ratio of their mean relative errors (EMA / raw) lies "
    "below {gain}."
)
READING_C11 = (
    "'Closer to the actual derivative' is read as a smaller relative error "
    "||estimate - grad L(x_t)|| / ||grad L(x_t)|| at the current point of the "
    "trajectory the optimizer follows. The EMA averages noise away but also "
    "averages gradients of past points (lag); the EMA of true gradients along "
    "the same trajectory isolates the lag. The claim is read as unconditional, "
    "so one regime (small batch, tuned lr) is primary and the others secondary."
)


def errors(lr: jax.Array, batch: jax.Array, h: jax.Array, key: jax.Array, cfg) -> jax.Array:
    """One heavy-ball trajectory on the sampled NQM; at every checkpoint the relative errors
    to the true gradient of (a) the mini-batch gradient, (b) its EMA, (c) the EMA of the
    true gradients. Returns shape (checkpoints, 3)."""
    beta = cfg.momentum
    rel = lambda est, true: jnp.linalg.norm(est - true) / jnp.linalg.norm(true)

    def step(carry, t):
        x, m, f = carry
        true = h * x
        g = nqm.gradient(h, x, batch, jax.random.fold_in(key, t), cfg.noise)
        m, f = beta * m + (1 - beta) * g, beta * f + (1 - beta) * true
        x = x - lr / (1 - beta) * m  # heavy ball at lr: its velocity is m / (1 - beta)
        return (x, m, f), jnp.stack([rel(g, true), rel(m, true), rel(f, true)])

    start_key, key = jax.random.split(key)
    x0 = nqm.start(start_key, cfg.dim)
    zeros = jnp.zeros_like(x0)
    _, errs = jax.lax.scan(step, (x0, zeros, zeros), jnp.arange(cfg.ema_steps))
    return errs[cfg.ema_burn :: cfg.ema_every]


def regimes(lrs: dict[int, float], cfg) -> dict[str, tuple[int, float]]:
    """Small / large batch at the tuned heavy-ball lr ("fast") and a fraction of it ("slow")."""
    small, large = min(cfg.batch_sizes), max(cfg.batch_sizes)
    return {
        f"batch {b}, {speed} lr": (b, lrs[b] * scale)
        for b in (small, large)
        for speed, scale in (("tuned", 1.0), ("slow", cfg.ema_slow))
    }


def measure_c11(lrs: dict[int, float], cfg, key: jax.Array) -> dict:
    """Per regime, the errors of (a), (b), (c) with shape (seeds, checkpoints, 3)."""
    h = nqm.curvatures(cfg.dim)
    named = regimes(lrs, cfg)
    table = sweeps.with_seeds(
        {
            "lr": np.asarray([v[1] for v in named.values()], np.float32),
            "batch": np.asarray([v[0] for v in named.values()], np.float32),
        },
        cfg.seeds,
    )

    def one(row, row_key):
        return errors(row["lr"], row["batch"], h, row_key, cfg)

    errs = sweeps.sweep(one, table, key=jax.random.fold_in(key, 11))
    errs = errs.reshape(len(named), cfg.seeds, *errs.shape[1:])
    return {
        "errors": dict(zip(named, errs)),
        "lr": {k: v[1] for k, v in named.items()},
        "checkpoints": np.arange(cfg.ema_burn, cfg.ema_steps, cfg.ema_every),
    }


def judge_c11(raw: dict[str, np.ndarray], ema: dict[str, np.ndarray], cfg) -> verdicts.Verdict:
    """C11's verdict from per-seed mean relative errors per regime; the first regime
    (small batch, tuned lr) is primary, the others secondary."""
    cond = [
        verdicts.Condition(
            f"{name}: relative error, EMA / mini-batch gradient",
            stats.paired_ratio(ema[name], raw[name]),
            cfg.ema_gain,
            verdicts.BELOW,
        )
        for name in raw
    ]
    return verdicts.judge(cond[0], cond[1:])


def figure_c11(numbers: dict, cfg, out: pathlib.Path) -> list[str]:
    errs = numbers["errors"]
    fig, axes = plotting.figure(
        2,
        (len(errs) + 1) // 2,
        title="C11: relative error to the "
        "true gradient along heavy-ball trajectories (NQM; bands: 95% "
        "over seeds)",
    )
    labels = (
        "(a) mini-batch gradient",
        "(b) EMA of mini-batch gradients",
        "(c) EMA of true gradients (lag only)",
    )
    for ax, (name, e) in zip(axes, errs.items()):
        plotting.seed_bands(
            ax,
            numbers["checkpoints"],
            {l: e[..., k] for k, l in enumerate(labels)},
            ylabel="||estimate - grad|| / ||grad||",
            logy=True,
            title=f"{name} ({numbers['lr'][name]:.3g})",
        )
    return [plotting.save(fig, out, "c11_ema_error.png")]


def per_seed(numbers: dict) -> tuple[dict, dict, dict]:
    """C11: the per-seed mean over checkpoints of the errors (a), (b), (c), per regime."""
    means = {name: e.mean(1) for name, e in numbers["errors"].items()}
    return tuple({name: m[:, k] for name, m in means.items()} for k in range(3))


def describe_c11(numbers: dict, verdict: verdicts.Verdict, plots: list[str], cfg) -> report.Finding:
    raw, ema, lag = per_seed(numbers)
    table = [
        {
            "regime": name,
            "lr": numbers["lr"][name],
            "(a) mini-batch": stats.mean(raw[name]),
            "(b) EMA": stats.mean(ema[name]),
            "(c) lag only": stats.mean(lag[name]),
            "(b) / (a)": stats.paired_ratio(ema[name], raw[name]),
        }
        for name in raw
    ]
    return report.Finding(
        id="C11",
        reading=READING_C11,
        primary=PRIMARY_C11.format(gain=cfg.ema_gain),
        setup=f"Noisy quadratic model (Zhang et al. 2019): {cfg.dim} dimensions, h_i = 1/i, "
        f"sampled gradients with noise covariance {cfg.noise:g} H / B. Heavy ball "
        f"(momentum {cfg.momentum:g}, whose velocity is the EMA of the gradients times "
        f"1 / (1 - momentum)) for {cfg.ema_steps} steps at C14's tuned learning rate "
        f"per batch size and at {cfg.ema_slow:g} of it; relative errors every "
        f"{cfg.ema_every} steps from step {cfg.ema_burn}, averaged per seed; "
        f"{cfg.seeds} seeds (start and noise).",
        budget="",
        headline="; ".join(f"{r['regime']}: EMA/raw error {r['(b) / (a)']}" for r in table),
        table=table,
        plots=plots,
        verdict=verdict,
        metrics={"raw": raw, "ema": ema, "lag": lag, "lr": numbers["lr"]},
    )
