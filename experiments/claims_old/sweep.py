"""The momentum coefficient swept on the ravine and on the digits MLP (claim C3)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import jax
import numpy as np

from experiments import descent
from experiments import measures
from experiments import plotting
from experiments import problems
from experiments import report
from experiments import sweeps
from experiments import training

NAME = "sweep"


@dataclasses.dataclass(frozen=True)
class Config:
    momenta: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999)
    kappa: float = 100.0
    ravine_lr: float = 0.5  # in units of 1/L
    steps: int = 5000
    tolerance: float = 1e-6  # distance to the minimum, relative to the start
    lr: float = 0.01  # the MLP's
    epochs: int = 30
    batch_size: int = 32
    well: float = 0.01  # "works well": test accuracy within this of the best momentum's


FULL = Config(epochs=50, steps=10_000)
QUICK = Config(epochs=20)


def ravine(cfg: Config) -> dict[str, np.ndarray]:
    table = {"momentum": np.asarray(cfg.momenta, np.float32)}
    table["kappa"] = np.full_like(table["momentum"], cfg.kappa)
    table["lr"] = np.full_like(table["momentum"], cfg.ravine_lr / cfg.kappa)
    path = descent.sweep_paths(descent.ravine_loss, sweeps.momentum_sgd, table,
                               problems.RAVINE_START, cfg.steps)
    err = measures.distance(path.x, np.zeros(2)) / np.linalg.norm(problems.RAVINE_START)
    along = path.x[..., 1]  # the valley floor coordinate, starts at 1
    return {"error": err, "steps": measures.steps_to(err, cfg.tolerance),
            "crossings": measures.sign_changes(along, floor=cfg.tolerance),
            "overshoot": np.maximum(-along.min(-1), 0) / along[:, 0],
            "rises": measures.increases(path.loss), "final": err[:, -1]}


def mlp(cfg: Config, key: jax.Array) -> dict[str, np.ndarray]:
    start = training.setup("digits", key)
    table = {"momentum": np.asarray(cfg.momenta, np.float32)}
    table["lr"] = np.full_like(table["momentum"], cfg.lr)
    result = training.sweep_train(sweeps.momentum_sgd, start, table, epochs=cfg.epochs,
                                  batch_size=cfg.batch_size)
    loss = result.epoch_loss
    return {"loss": loss, "final": loss[:, -1], "accuracy": result.test_accuracy,
            "rises": measures.increases(loss),
            "max_rise": np.nan_to_num(np.max(np.diff(loss, axis=-1), -1), nan=np.inf)}


def momentum_sweep(cfg: Config, key: jax.Array, out: pathlib.Path, status) -> report.Claim:
    status(f"{NAME}: C3 ravine")
    q = ravine(cfg)
    status(f"{NAME}: C3 digits MLP")
    m = mlp(cfg, key)
    b = list(cfg.momenta)
    i9, top = b.index(0.9), len(b) - 1
    best_acc = np.nanmax(m["accuracy"])
    verdict = report.rule({
        "0.9 is fast on the ravine: within 2x of the best momentum's steps to tolerance":
            bool(q["steps"][i9] <= 2 * np.min(q["steps"])),
        f"0.9 is good on the MLP: test accuracy within {cfg.well:.0%} of the best momentum's":
            bool(m["accuracy"][i9] >= best_acc - cfg.well),
        f"{b[top]:g} overshoots on the ravine: it crosses the valley's minimum more often than "
        "0.9 and ends farther from it": bool(q["crossings"][top] > q["crossings"][i9]
                                             and q["final"][top] > q["final"][i9]),
        f"{b[top]:g} overshoots on the MLP: its epoch loss rises more often than 0.9's and ends "
        "higher": bool(m["rises"][top] > m["rises"][i9] and m["final"][top] > m["final"][i9]),
    })
    fig, (ax, ax2, ax3) = plotting.figure(3, title="C3: the momentum coefficient")
    shown = {f"{v:g}": q["error"][i] for i, v in enumerate(b)}
    plotting.series(ax, shown, logy=True, ylabel="distance to the minimum / start",
                    title=f"ravine kappa = {cfg.kappa:g}, lr = {cfg.ravine_lr:g}/L", lw=0.9)
    ax.set_ylim(1e-9, 10)
    plotting.series(ax2, {f"{v:g}": m["loss"][i] for i, v in enumerate(b)}, logy=True,
                    xlabel="epoch", ylabel="training loss",
                    title=f"digits MLP, lr {cfg.lr:g}, batch {cfg.batch_size}")
    pos = np.arange(len(b))
    bars = ax3.bar(pos - 0.2, m["accuracy"], 0.4, label="MLP test accuracy")
    ax3.set(xticks=pos, xticklabels=[f"{v:g}" for v in b], xlabel="momentum",
            ylabel="test accuracy", ylim=(0, 1.3), yticks=np.linspace(0, 1, 6))
    twin = ax3.twinx()
    crossings = twin.bar(pos + 0.2, q["crossings"], 0.4, color="tab:orange",
                         label="ravine: crossings of the minimum")
    twin.set(ylabel="crossings", ylim=(0, 1.3 * max(1, q["crossings"].max())))
    ax3.legend(handles=[bars, crossings], loc="upper left", fontsize=7)
    rows = [{"momentum": v, "ravine steps to tol": q["steps"][i],
             "ravine crossings": q["crossings"][i], "ravine overshoot": q["overshoot"][i],
             "ravine final distance": q["final"][i], "MLP final loss": m["final"][i],
             "MLP test accuracy": m["accuracy"][i], "MLP loss rises (epochs)": m["rises"][i]}
            for i, v in enumerate(b)]
    return report.claim(
        "C3",
        setup=f"Heavy ball with momentum {report.listing(b)}. Ravine kappa {cfg.kappa:g}: lr "
              f"{cfg.ravine_lr:g}/L, {cfg.steps} steps from (1, 1); crossings = sign changes of "
              f"the coordinate along the valley (passing its minimum by more than "
              f"{cfg.tolerance:g}), overshoot = how far past "
              f"it, relative to the start. Digits MLP 64-64-10: lr {cfg.lr:g}, batch "
              f"{cfg.batch_size}, {cfg.epochs} epochs, the same initialisation and batches for "
              "every momentum; each problem's sweep is one vmapped compile.",
        headline=f"ravine steps to tol: {report.fmt(q['steps'][i9])} at 0.9, best "
                 f"{report.fmt(np.min(q['steps']))}, {report.fmt(q['steps'][top])} at "
                 f"{b[top]:g}; MLP accuracy {m['accuracy'][i9]:.3f} at 0.9, best "
                 f"{best_acc:.3f}, {m['accuracy'][top]:.3f} at {b[top]:g}",
        table=rows, plots=[plotting.save(fig, out, "c3_momentum_sweep.png")], verdict=verdict,
        metrics={"ravine": q, "mlp": m, "momenta": b})


def run(cfg: Config, key: jax.Array, out: pathlib.Path,
        status: Callable[[str], None] = lambda _: None) -> list[report.Claim]:
    return [momentum_sweep(cfg, key, out, status)]
