"""Momentum restarts every k steps on the ravine and on the digits MLP (claim C9)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable, Sequence

import jax
import numpy as np
import optax

import momentum_optax as mo
from experiments import descent
from experiments import measures
from experiments import plotting
from experiments import problems
from experiments import report
from experiments import sweeps
from experiments import training

NAME = "restart"


@dataclasses.dataclass(frozen=True)
class Config:
    momenta: tuple[float, ...] = (0.9, 0.99)
    kappa: float = 1000.0
    ravine_lr: float = 1.0  # in units of 1/L
    steps: int = 4000
    tolerance: float = 1e-6  # distance to the minimum, relative to the start
    ravine_periods: tuple[int, ...] = (10, 30, 100, 300)
    lr: float = 0.01  # the MLP's
    epochs: int = 30
    batch_size: int = 32
    mlp_periods: tuple[int, ...] = (10, 30, 100, 300)
    margin: float = 0.8  # "helps" on the MLP: final training loss below this times no restart's


FULL = Config(epochs=50)
QUICK = Config(epochs=20)


def restarted_sgd(periods: Sequence[int],
                  total: int) -> Callable[[dict], optax.GradientTransformation]:
    """``row -> mo.sgd(lr, momentum)`` restarted every ``k = periods[row["period"]]`` steps
    (a traced index); the last option, ``total + 1``, never restarts. With a constant
    learning rate this is ``mo.sgd(lr, momentum, reset_every=k)`` step for step."""
    return sweeps.periodic(lambda row: mo.sgd(row["lr"], row["momentum"]), periods, total)


def restarts(cfg: Config, out: pathlib.Path, key: jax.Array, status) -> report.Claim:
    nb = len(cfg.momenta)
    status(f"{NAME}: C9 ravine")
    table = sweeps.grid(momentum=cfg.momenta, period=range(len(cfg.ravine_periods) + 1))
    table |= {"period": table["period"].astype(np.int32),
              "kappa": np.full_like(table["momentum"], cfg.kappa),
              "lr": np.full_like(table["momentum"], cfg.ravine_lr / cfg.kappa)}
    path = descent.sweep_paths(descent.ravine_loss, restarted_sgd(cfg.ravine_periods, cfg.steps),
                               table, problems.RAVINE_START, cfg.steps)
    err = measures.distance(path.x, np.zeros(2)) / np.linalg.norm(problems.RAVINE_START)
    steps = measures.steps_to(err, cfg.tolerance).reshape(nb, -1)
    status(f"{NAME}: C9 digits MLP")
    start = training.setup("digits", key)
    total = cfg.epochs * (start.split.x_train.shape[0] // cfg.batch_size)
    table = sweeps.grid(momentum=cfg.momenta, period=range(len(cfg.mlp_periods) + 1))
    table |= {"period": table["period"].astype(np.int32),
              "lr": np.full_like(table["momentum"], cfg.lr)}
    result = training.sweep_train(restarted_sgd(cfg.mlp_periods, total), start, table,
                                  epochs=cfg.epochs, batch_size=cfg.batch_size)
    loss = np.nan_to_num(result.epoch_loss, nan=np.inf)
    final = loss[:, -1].reshape(nb, -1)
    accuracy = result.test_accuracy.reshape(nb, -1)
    conditions = {}
    for i, b in enumerate(cfg.momenta):
        conditions[f"ravine, momentum {b:g}: some period k reaches the tolerance in fewer steps "
                   "than no restart"] = bool(steps[i, :-1].min() < steps[i, -1])
    for i, b in enumerate(cfg.momenta):
        conditions[f"MLP, momentum {b:g}: some period k ends with a training loss below "
                   f"{cfg.margin:g} x no restart's"] = bool(final[i, :-1].min()
                                                           < cfg.margin * final[i, -1])
    verdict = report.rule(conditions)
    fig, (ax, ax2, ax3) = plotting.figure(3, title="C9: momentum restart every k steps")
    labels = [f"k = {k}" for k in cfg.ravine_periods] + ["never"]
    b = len(cfg.momenta) - 1
    plotting.series(ax, dict(zip(labels, err.reshape(nb, len(labels), -1)[b])), logy=True,
                    ylabel="distance / start", lw=0.9,
                    title=f"ravine kappa={cfg.kappa:g}, momentum {cfg.momenta[b]:g}")
    ax.set_ylim(cfg.tolerance / 100, 10)
    mlp_labels = [f"k = {k}" for k in cfg.mlp_periods] + ["never"]
    plotting.series(ax2, dict(zip(mlp_labels, loss.reshape(nb, len(mlp_labels), -1)[b])),
                    logy=True, xlabel="epoch", ylabel="training loss",
                    title=f"digits MLP, momentum {cfg.momenta[b]:g}")
    pos = np.arange(len(mlp_labels))
    for i, m in enumerate(cfg.momenta):
        ax3.bar(pos + 0.4 * i - 0.2, final[i], 0.4, label=f"momentum {m:g}")
    ax3.set(xticks=pos, xticklabels=mlp_labels, yscale="log", ylabel="final training loss",
            title="MLP, by restart period")
    ax3.legend(fontsize=7)
    rows = [{"problem": "ravine", "momentum": m, "k": k, "steps to tol": steps[i, j],
             "final loss": "-", "test accuracy": "-"}
            for i, m in enumerate(cfg.momenta) for j, k in enumerate(labels)]
    rows += [{"problem": "MLP", "momentum": m, "k": k, "steps to tol": "-",
              "final loss": final[i, j], "test accuracy": accuracy[i, j]}
             for i, m in enumerate(cfg.momenta) for j, k in enumerate(mlp_labels)]
    return report.claim(
        "C9",
        setup=f"mo.sgd(lr, momentum, reset_every=k) (mo.periodic_reset around the momentum), "
              f"momentum {report.listing(cfg.momenta)}. Ravine kappa {cfg.kappa:g}, lr "
              f"{cfg.ravine_lr:g}/L, k in {report.listing(cfg.ravine_periods)} or never, "
              f"{cfg.steps} steps, tolerance {cfg.tolerance:g} of the start distance. Digits MLP, "
              "lr "
              f"{cfg.lr:g}, batch {cfg.batch_size}, {cfg.epochs} epochs ({total} steps), k in "
              f"{report.listing(cfg.mlp_periods)} steps or never. The period is chosen by a "
              "traced index (experiments.sweeps.select), so each problem is one vmapped compile.",
        headline="; ".join(
            f"momentum {m:g}: ravine steps {report.fmt(steps[i, :-1].min())} (best k) vs "
            f"{report.fmt(steps[i, -1])} (never), MLP loss {final[i, :-1].min():.3g} vs "
            f"{final[i, -1]:.3g}" for i, m in enumerate(cfg.momenta)),
        table=rows, plots=[plotting.save(fig, out, "c9_restart.png")], verdict=verdict,
        metrics={"ravine_steps": steps, "mlp_final_loss": final, "mlp_accuracy": accuracy})


def run(cfg: Config, key: jax.Array, out: pathlib.Path,
        status: Callable[[str], None] = lambda _: None) -> list[report.Claim]:
    return [restarts(cfg, out, key, status)]
