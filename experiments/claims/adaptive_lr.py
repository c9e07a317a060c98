"""C5: momentum as a per-weight adaptive learning rate, measured along MNIST-1D training.

Measure: the MNIST-1D MLP trained by heavy ball and by McCaffrey's delta momentum, each over
the same log grid of learning rates, every trial on every seed, in one compiled vmap (a
traced index picks the method of a row). A small scan of its own (``experiments.loop``
does not return per-weight quantities) sums, per weight ``i`` and per window of steps,
``|u_i|`` (the update applied) and ``|g_i|`` (the mini-batch gradient). The effective
learning rate of weight ``i`` in a window is ``sum |u_i| / (lr sum |g_i|)``: exactly 1 for
every weight under plain SGD. Each method's learning rate is selected on the final loss on
the training subset.
Judge: the spread of the effective rate across weights (p90 / p10) in the last window,
for McCaffrey's momentum, above a threshold.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import momentum_optax as mo

from .. import plotting
from .. import report
from .. import sweeps
from .. import tasks
from ..protocol import stats
from ..protocol import tuning
from ..protocol import verdicts

NAME = "adaptive"
CLAIMS = ("C5",)
METHODS = ("delta momentum", "heavy ball")  # the source's technique first: the primary


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    trials: int = 12  # per method, a log grid of learning rates
    steps: int = 3000
    batch_size: int = 32
    windows: int = 6  # the run cut into this many equal windows: the first early, the last late
    lr: tuple[float, float] = (3e-3, 1.0)
    delta_momentum: float = 0.5  # McCaffrey's worked example
    heavy_ball: float = 0.9  # the usual heavy-ball momentum
    spread: float = 2.0  # primary: p90 / p10 of the effective rate above this
    faster: float = 1.0  # secondary: the early median effective rate above this


QUICK = Config(seeds=5, trials=8, steps=1000, windows=4)
FULL = Config()

PRIMARY = (
    "With McCaffrey's delta momentum (momentum {mu:g}) at its tuned learning rate, the "
    "effective learning rate sum|u_i| / (lr sum|g_i|) differs across the weights: in the "
    "last {window} steps, the ratio of its 90th to its 10th percentile over the weights "
    "has a 95% interval over seeds above {spread:g}. The statistic has a ceiling: for "
    "gradients of steady size each weight's rate lies between 1 - mu and 1 + mu, so the "
    "ratio cannot much exceed (1 + mu) / (1 - mu) = {ceiling:.3g}; the threshold sits at "
    "{share:.0%} of it, so 'not supported' means the weights' rates are close together."
)
READING = (
    "'An adaptive learning rate ... that varies for different weights' is read as: for "
    "the same gradient, momentum moves some weights much further than others, and by "
    "amounts that change during training. It is measured as each weight's step per unit "
    "of learning rate and of gradient (1 for every weight under plain SGD). The primary "
    "is on the technique the quote describes, McCaffrey's delta momentum (the update plus "
    "a fraction of the previous delta); heavy ball is reported beside it. 'Early ... "
    "moves you faster' is read as an early median effective rate above 1, and the rate "
    "becoming smaller later as the early median above the late one (secondary)."
)


def ceiling(mu: float) -> float:
    """The spread statistic's ceiling for delta momentum ``mu``: (1 + mu) / (1 - mu)."""
    return (1 + mu) / (1 - mu)


NOISE = (
    "For reference: a gradient constant in time gives effective rates of 1 + mu (delta "
    "momentum) and 1 / (1 - beta) (heavy ball); a gradient uncorrelated from step to step "
    "about sqrt(1 + mu^2) and 1 / sqrt(1 - beta^2) ({white_delta:.3g} and "
    "{white_hb:.3g} at the momenta used): "
    "the spread across weights measures how differently their gradients persist."
)


def either(
    first: optax.GradientTransformation, second: optax.GradientTransformation, index: jax.Array
) -> optax.GradientTransformation:
    """``first`` where the traced ``index`` is 0, else ``second``: both states are kept (they
    differ in structure, so ``sweeps.select`` cannot switch between them), both see the
    same gradients, and the chosen one's update is applied."""

    def init_fn(params):
        return first.init(params), second.init(params)

    def update_fn(updates, state, params=None):
        u_first, s_first = first.update(updates, state[0], params)
        u_second, s_second = second.update(updates, state[1], params)
        pick = jnp.asarray(index) == 0
        return (
            jax.tree.map(lambda a, b: jnp.where(pick, a, b), u_first, u_second),
            (s_first, s_second),
        )

    return optax.GradientTransformation(init_fn, update_fn)


def optimizer(row: dict) -> optax.GradientTransformation:
    """Row ``method`` 0: delta momentum, 1: heavy ball, at ``row["lr"]`` and ``row["momentum"]``."""
    delta = optax.chain(optax.scale_by_learning_rate(row["lr"]), mo.delta_momentum(row["momentum"]))
    return either(delta, mo.sgd(row["lr"], row["momentum"]), row["method"])


def probe(
    opt: optax.GradientTransformation, task: tasks.Task, key: jax.Array, cfg: Config, data
) -> dict:
    """Trains like ``loop.train`` (same initialisation and batches for a key) and returns, per
    window, the per-weight sums of ``|update|`` and ``|gradient|``, and the final loss on the
    training subset."""
    init_key, batch_key = jax.random.split(key)
    params = task.init(init_key)
    size = ravel_pytree(params)[0].size
    n = data.x_train.shape[0]
    flat = lambda tree: jnp.abs(ravel_pytree(tree)[0])

    def step(carry, t):
        params, state, sum_u, sum_g = carry
        idx = jax.random.randint(jax.random.fold_in(batch_key, t), (cfg.batch_size,), 0, n)
        grads = jax.grad(lambda p: tasks.loss(task, p, data.x_train[idx], data.y_train[idx]))(
            params
        )
        updates, state = opt.update(grads, state, params)
        return (
            optax.apply_updates(params, updates),
            state,
            sum_u + flat(updates),
            sum_g + flat(grads),
        ), None

    def window(carry, first):
        zeros = jnp.zeros(size, jnp.float32)
        (params, state, sum_u, sum_g), _ = jax.lax.scan(
            step, (*carry, zeros, zeros), first + jnp.arange(cfg.steps // cfg.windows)
        )
        return (params, state), (sum_u, sum_g)

    starts = jnp.arange(0, cfg.steps, cfg.steps // cfg.windows, dtype=jnp.int32)
    (params, _), (sum_u, sum_g) = jax.lax.scan(window, (params, opt.init(params)), starts)
    return {
        "sum_u": sum_u,
        "sum_g": sum_g,
        "train_loss": tasks.loss(task, params, data.x_train, data.y_train),
    }


def rates(sum_u: np.ndarray, sum_g: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """Effective learning rates ``sum|u| / (lr sum|g|)``; NaN where a weight had no gradient.
    ``lr`` broadcasts against the leading axes (one value per row)."""
    lr = np.asarray(lr, np.float64).reshape(lr.shape + (1,) * (sum_u.ndim - np.ndim(lr)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sum_g > 0, sum_u / (lr * sum_g), np.nan)


def summary(rate: np.ndarray) -> dict[str, np.ndarray]:
    """Over the last axis (weights): p10, median, p90 and the spread p90 / p10."""
    p10, p50, p90 = np.nanpercentile(rate, [10, 50, 90], axis=-1)
    return {"p10": p10, "median": p50, "p90": p90, "spread": p90 / p10}


class Arm(NamedTuple):
    """One method's learning-rate trials and, at the selected one, the effective rate's
    per-seed, per-window percentiles (``summary``) and seed 0's rates, first and last window."""

    momentum: float
    lr: np.ndarray
    train_loss: np.ndarray  # (trials, seeds)
    best: int
    edge: list[str]
    summary: dict[str, np.ndarray]
    seed0: np.ndarray


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> dict[str, Arm]:
    """Per method: the lr grid, final training losses (trials, seeds), the selected trial and
    its per-seed, per-window percentiles of the effective rate (and seed 0's rates)."""
    if cfg.steps % cfg.windows:
        raise ValueError(f"steps ({cfg.steps}) must be a multiple of windows ({cfg.windows}).")
    task = tasks.mnist1d_mlp()
    lr = tuning.trials(tuning.Space(lr=cfg.lr), cfg.trials)["lr"]
    momenta = (cfg.delta_momentum, cfg.heavy_ball)
    table = {
        "lr": np.tile(lr, 2),
        "method": np.repeat(np.arange(2, dtype=np.int32), cfg.trials),
        "momentum": np.repeat(np.asarray(momenta, np.float32), cfg.trials),
    }
    status(f"{NAME}: 2 methods x {cfg.trials} learning rates x {cfg.seeds} seeds")

    def one(row, row_key, data):
        return probe(optimizer(row), task, row_key, cfg, data)

    out = sweeps.sweep(one, sweeps.with_seeds(table, cfg.seeds), task.data, key=key)
    shape = (2, cfg.trials, cfg.seeds)
    loss = np.asarray(out["train_loss"], np.float64).reshape(shape)
    sum_u, sum_g = (
        np.asarray(out[k]).reshape(shape + out[k].shape[1:]) for k in ("sum_u", "sum_g")
    )
    numbers = {}
    for i, (name, mu) in enumerate(zip(METHODS, momenta)):
        best = tuning.select(np.where(np.isfinite(loss[i]), loss[i], np.inf))
        rate = rates(sum_u[i, best], sum_g[i, best], np.float64(lr[best]))  # (seed, window, w)
        numbers[name] = Arm(
            mu,
            lr,
            loss[i],
            best,
            tuning.on_edge(tuning.Space(lr=cfg.lr), {"lr": lr}, best),
            summary(rate),
            rate[0][[0, -1]],
        )
    return numbers


def judge(
    spread_delta: np.ndarray,
    spread_hb: np.ndarray,
    early: dict[str, np.ndarray],
    late: dict[str, np.ndarray],
    cfg: Config,
) -> verdicts.Verdict:
    """C5's verdict from per-seed numbers: late-window spreads p90/p10 of delta momentum
    (primary) and heavy ball, and per method the early and late median effective rates."""
    primary = verdicts.Condition(
        "delta momentum: p90/p10 of the effective rate, last window",
        stats.mean(spread_delta),
        cfg.spread,
        verdicts.ABOVE,
    )
    secondary = [
        verdicts.Condition(
            "heavy ball: p90/p10 of the effective rate, last window",
            stats.mean(spread_hb),
            cfg.spread,
            verdicts.ABOVE,
        )
    ]
    for name in early:
        secondary.append(
            verdicts.Condition(
                f"{name}: median effective rate, first window",
                stats.mean(early[name]),
                cfg.faster,
                verdicts.ABOVE,
            )
        )
        secondary.append(
            verdicts.Condition(
                f"{name}: median effective rate, first / last window",
                stats.paired_ratio(early[name], late[name]),
                1.0,
                verdicts.ABOVE,
            )
        )
    return verdicts.judge(primary, secondary)


def figure(numbers: dict[str, Arm], cfg: Config, out: pathlib.Path) -> list[str]:
    fig, axes = plotting.figure(
        4,
        title="C5: effective learning rate sum|u_i| / (lr sum|g_i|) "
        "per weight, MNIST-1D MLP, tuned lr",
    )
    bins = np.geomspace(0.3, 30, 61)
    window = cfg.steps // cfg.windows
    for ax, name in zip(axes, METHODS):
        for rate, label in zip(
            numbers[name].seed0, (f"steps 0-{window}", f"steps {cfg.steps - window}-{cfg.steps}")
        ):
            ax.hist(rate[np.isfinite(rate)], bins=bins, histtype="step", lw=1.5, label=label)
        ax.axvline(1, color="k", ls="--", lw=0.8)
        ax.set(
            xscale="log",
            xlabel="effective rate (plain SGD: 1, dashed)",
            ylabel="weights",
            title=f"{name} {numbers[name].momentum:g}, seed 0",
        )
        ax.legend(fontsize=7)
    mid = (np.arange(cfg.windows) + 0.5) * window
    for ax, key, label in (
        (axes[2], "spread", "p90 / p10 of the effective rate"),
        (axes[3], "median", "median effective rate"),
    ):
        plotting.seed_bands(
            ax,
            mid,
            {n: numbers[n].summary[key] for n in METHODS},
            xlabel="step (middle of the window)",
            ylabel=label,
            title=f"mean, 95% band over {cfg.seeds} seeds",
        )
    axes[2].axhline(cfg.spread, color="k", ls="--", lw=0.8)
    return [plotting.save(fig, out, "c5_effective_rate.png")]


def describe(
    numbers: dict[str, Arm], verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    rows = []
    for name in METHODS:
        n = numbers[name]
        s = n.summary
        for w, label in ((0, "first"), (-1, "last")):
            rows.append(
                {
                    "method": name,
                    "momentum": n.momentum,
                    "lr": float(n.lr[n.best]),
                    "window": label,
                    "p10": stats.mean(s["p10"][:, w]),
                    "median": stats.mean(s["median"][:, w]),
                    "p90": stats.mean(s["p90"][:, w]),
                    "p90 / p10": stats.mean(s["spread"][:, w]),
                }
            )
    edges = [f"{m}: lr" for m in METHODS if numbers[m].edge]
    spread = lambda m: stats.mean(numbers[m].summary["spread"][:, -1])
    return report.Finding(
        id="C5",
        reading=READING,
        primary=PRIMARY.format(
            mu=cfg.delta_momentum,
            window=cfg.steps // cfg.windows,
            spread=cfg.spread,
            ceiling=ceiling(cfg.delta_momentum),
            share=cfg.spread / ceiling(cfg.delta_momentum),
        ),
        setup=f"MNIST-1D (8,000 training examples), 40-100-100-10 ReLU MLP, {cfg.steps} steps of "
        f"batch {cfg.batch_size}, {cfg.seeds} seeds (same initialisation and batches for "
        f"both methods). Delta momentum: chain(scale_by_learning_rate(lr), "
        f"mo.delta_momentum({cfg.delta_momentum:g})); heavy ball: mo.sgd(lr, "
        f"{cfg.heavy_ball:g}). Sums of |u_i| and |g_i| per weight over {cfg.windows} "
        f"windows of {cfg.steps // cfg.windows} steps; weights without gradient left out.",
        budget=f"{cfg.trials} learning rates per method, log-spaced in {report.listing(cfg.lr)}; "
        "each selected on the final loss on the training subset.",
        headline=f"p90/p10 of the effective rate, last window: delta momentum "
        f"{spread('delta momentum')}, heavy ball {spread('heavy ball')}",
        table=rows,
        plots=plots,
        verdict=verdict,
        metrics={
            n: {
                "lr": numbers[n].lr,
                "train_loss": numbers[n].train_loss,
                "selected_lr": float(numbers[n].lr[numbers[n].best]),
                "summary": numbers[n].summary,
            }
            for n in METHODS
        },
        notes=NOISE.format(
            white_delta=np.sqrt(1 + cfg.delta_momentum**2),
            white_hb=1 / np.sqrt(1 - cfg.heavy_ball**2),
        )
        + (" " + report.edge_note(edges) if edges else ""),
    )


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    numbers = measure(cfg, key, status)
    s = {n: numbers[n].summary for n in METHODS}
    verdict = judge(
        s["delta momentum"]["spread"][:, -1],
        s["heavy ball"]["spread"][:, -1],
        {n: s[n]["median"][:, 0] for n in METHODS},
        {n: s[n]["median"][:, -1] for n in METHODS},
        cfg,
    )
    return [describe(numbers, verdict, figure(numbers, cfg, out), cfg)]
