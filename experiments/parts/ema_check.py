"""C7, a textbook check: EMA momentum == heavy ball at lr (1 - b), an identity of the update rule.

Measure: trains the MNIST-1D MLP with EMA momentum, heavy ball at lr (1 - b) and (as a
control) heavy ball at lr on the same batches, every seed and b in one compile. Judge: an
identity, so it must hold on every seed and b, up to float32 rounding
(``every_seed.check``), while the control must differ.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

import momentum_optax as mo

from .. import plotting
from .. import report
from .. import sweeps
from .. import tasks
from ..parts import every_seed
from ..parts.every_seed import check
from ..parts.every_seed import spread
from ..parts.textbook_config import Config
from ..protocol import verdicts

CLAIM = "C7"
READING = (
    "An identity of the update rule: with a constant b and the same gradients, EMA "
    "momentum at lr gives the iterates of heavy ball at lr (1 - b), up to float32 "
    "rounding; tested on the gradients of a real network's mini-batches."
)
PRIMARY = (
    "On every seed and b: the largest relative parameter difference (global norm, over "
    "all steps) between EMA momentum at lr and heavy ball at lr (1 - b), fed the same "
    "gradients, is below {ema_tolerance:g}, while the control (heavy ball at lr, "
    "unscaled) differs by more than 100x that."
)


def ema_differences(
    row: dict, row_key: jax.Array, data, task: tasks.Task, steps: int, batch: int
) -> jax.Array:
    """EMA momentum at ``lr`` against heavy ball at ``lr (1 - b)`` and, as a control, at ``lr``,
    from one initialisation on the same batches. The two heavy balls are driven by the EMA
    run's gradients (the identity is about the update rule: same gradients, same iterates);
    a heavy ball at ``lr (1 - b)`` also runs freely on its own gradients, where rounding can
    be amplified by the network. Returns the largest relative parameter difference over the
    steps, ``(driven, control, free)``."""
    init_key, batch_key = jax.random.split(row_key)
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
    table = sweeps.with_seeds(
        {
            "lr": np.full(len(cfg.ema_betas), cfg.ema_lr, np.float32),
            "momentum": np.asarray(cfg.ema_betas, np.float32),
        },
        cfg.seeds,
    )
    fn = lambda row, k, d: ema_differences(row, k, d, task, cfg.ema_steps, cfg.ema_batch)
    out = sweeps.sweep(fn, table, task.data, key=key)
    return out.reshape(len(cfg.ema_betas), cfg.seeds, 3)


def judge_c7(differences, cfg: Config) -> verdicts.Verdict:
    """``differences`` ``(betas, seeds, 2 or 3)``: EMA vs heavy ball at lr (1 - b) and vs heavy
    ball at lr, both fed the same gradients (a third column, free-running, is not judged)."""
    return verdicts.judge_check(
        [
            check(
                "EMA at lr vs heavy ball at lr (1 - b), same gradients: max relative parameter "
                "difference",
                differences[..., 0],
                cfg.ema_tolerance,
                verdicts.BELOW,
            ),
            check(
                "control, EMA at lr vs heavy ball at lr: the same",
                differences[..., 1],
                100 * cfg.ema_tolerance,
                verdicts.ABOVE,
            ),
        ]
    )


def figure(differences: np.ndarray, cfg: Config, out: pathlib.Path) -> str:
    """The PNG of C7: every seed and b, the two heavy balls and the control."""
    fig, (a,) = plotting.figure(1, title="C7: EMA momentum vs heavy ball, MNIST-1D MLP")
    for j, (label, mark) in enumerate(
        (
            ("heavy ball at lr (1 - b), same gradients", "o"),
            ("control: heavy ball at lr", "s"),
            ("heavy ball at lr (1 - b), own gradients", "^"),
        )
    ):
        for i, beta in enumerate(cfg.ema_betas):
            v = differences[i, :, j]
            a.plot(
                np.full(v.size, beta),
                np.where(np.isfinite(v), v, 1e3),
                mark,
                mfc="none",
                color=f"C{j}",
                label=label if i == 0 else None,
            )
    a.axhline(cfg.ema_tolerance, color="k", ls="--", lw=0.8, label="tolerance")
    a.set(
        yscale="log",
        xlabel="b",
        ylabel="max relative parameter difference",
        title="diverged control drawn at 1e3",
    )
    a.legend(fontsize=7)
    return plotting.save(fig, out, "c7_ema.png")


def describe(
    differences: np.ndarray, verdict: verdicts.Verdict, plot: str, cfg: Config
) -> report.Finding:
    """C7's Finding: the differences' range over seeds, per b."""
    table = [
        {
            "b": b,
            "vs heavy ball at lr (1 - b), same gradients": spread(differences[i, :, 0]),
            "control: vs heavy ball at lr": spread(differences[i, :, 1]),
            "vs heavy ball at lr (1 - b), own gradients": spread(differences[i, :, 2]),
        }
        for i, b in enumerate(cfg.ema_betas)
    ]
    setup = (
        f"MNIST-1D 40-100-100-10 MLP, {cfg.ema_steps} steps of batch {cfg.ema_batch}, "
        f"lr {cfg.ema_lr:g}, b in {report.listing(cfg.ema_betas)}, {cfg.seeds} seeds; the "
        "runs share the initialisation and the batches (one compile). The heavy balls "
        "compared are fed the EMA run's gradients; a heavy ball at lr (1 - b) on its own "
        "gradients is reported beside them (not judged: a network can amplify rounding)."
    )
    headline = (
        f"max relative difference {spread(differences[..., 0])} (control "
        f"{spread(differences[..., 1])}; own gradients {spread(differences[..., 2])})"
    )
    return every_seed.finding(
        CLAIM,
        READING,
        PRIMARY.format(**dataclasses.asdict(cfg)),
        setup,
        headline,
        table,
        plot,
        verdict,
        {"differences": differences},
    )
