"""Momentum schedules on the ravine and on the digits MLP (claim C8)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import jax
import jax.numpy as jnp
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

NAME = "schedules"


@dataclasses.dataclass(frozen=True)
class Config:
    kappa: float = 1000.0
    ravine_lr: float = 0.5  # in units of 1/L
    steps: int = 3000
    lr: float = 0.01  # the MLP's
    epochs: int = 30
    batch_size: int = 32
    start: float = 0.5  # where the rising schedules start
    cap: float = 0.95
    anneal_fraction: float = 0.25  # anneal 0.5 -> 0.9 over this fraction of the run
    ramp_fraction: float = 0.5  # linear-to-one reaches 1 at this fraction of the run
    slack: float = 2.0  # "works as well": final distance / loss within this factor of constant
    # 0.9's, and (MLP) test accuracy at most 1 point lower


FULL = Config(epochs=50)
QUICK = Config(epochs=20)


def schedules(cfg: Config, total: int) -> dict[str, optax.Schedule]:
    """The compared momentum schedules for a run of ``total`` steps."""
    ramp = mo.schedules.linear_to_one(cfg.start, max(1, int(cfg.ramp_fraction * total)))
    return {"constant 0.9": optax.constant_schedule(0.9),
            "anneal 0.5 -> 0.9": mo.schedules.anneal(cfg.start, 0.9,
                                                     max(1, int(cfg.anneal_fraction * total))),
            "linear to one": ramp,
            f"linear, capped at {cfg.cap:g}": lambda t: jnp.minimum(ramp(t), cfg.cap)}


def scheduled_sgd(cfg: Config, total: int) -> Callable[[dict], optax.GradientTransformation]:
    """``row -> mo.sgd(row["lr"], schedule number row["schedule"])`` (a traced choice)."""
    options = list(schedules(cfg, total).values())
    return lambda row: sweeps.select([mo.sgd(row["lr"], s) for s in options], row["schedule"])


def compare(cfg: Config, key: jax.Array, status) -> dict[str, dict]:
    names = list(schedules(cfg, 1))
    table = {"schedule": np.arange(len(names), dtype=np.int32)}
    status(f"{NAME}: C8 ravine")
    ravine_table = table | {"kappa": np.full(len(names), cfg.kappa, np.float32),
                            "lr": np.full(len(names), cfg.ravine_lr / cfg.kappa, np.float32)}
    path = descent.sweep_paths(descent.ravine_loss, scheduled_sgd(cfg, cfg.steps),
                               ravine_table, problems.RAVINE_START, cfg.steps)
    err = measures.distance(path.x, np.zeros(2)) / np.linalg.norm(problems.RAVINE_START)
    status(f"{NAME}: C8 digits MLP")
    start = training.setup("digits", key)
    per_epoch = start.split.x_train.shape[0] // cfg.batch_size
    result = training.sweep_train(scheduled_sgd(cfg, cfg.epochs * per_epoch), start,
                                  table | {"lr": np.full(len(names), cfg.lr, np.float32)},
                                  epochs=cfg.epochs, batch_size=cfg.batch_size)
    loss = np.nan_to_num(result.epoch_loss, nan=np.inf)
    at_one = {"ravine": int(cfg.ramp_fraction * cfg.steps),
              "MLP": max(0, int(cfg.ramp_fraction * cfg.epochs) - 1)}
    tail = lambda c: c[:, -max(1, c.shape[1] // 10):].max(1)  # the last 10%, worst point
    return {"ravine": {"curve": err, "final": err[:, -1], "tail": tail(err),
                       "at_one": err[:, at_one["ravine"]]},
            "MLP": {"curve": loss, "final": loss[:, -1], "tail": tail(loss),
                    "at_one": loss[:, at_one["MLP"]], "accuracy": result.test_accuracy},
            "names": names, "at_one": at_one}


def momentum_schedules(cfg: Config, key: jax.Array, out: pathlib.Path, status) -> report.Claim:
    r = compare(cfg, key, status)
    names = r.pop("names")
    at_one = r.pop("at_one")
    const, anneal, to_one, capped = range(4)
    def as_good(i, p):  # final value within `slack` of constant 0.9's (and MLP accuracy)
        ok = r[p]["final"][i] <= cfg.slack * r[p]["final"][const]
        return bool(ok and (p == "ravine" or r[p]["accuracy"][i] >= r[p]["accuracy"][const] - 0.01))

    conditions = {}
    for p in r:
        conditions[f"{p}: annealing 0.5 -> 0.9 (seed 002) works as well as constant 0.9"] = \
            as_good(anneal, p)
        conditions[f"{p}: seed 001's linear-to-one keeps improving once momentum reaches 1 "
                   "(every value in the last 10% of the run at most half the value at that "
                   "point)"] = bool(r[p]["tail"][to_one] <= 0.5 * r[p]["at_one"][to_one])
        conditions[f"{p}: the same ramp capped at {cfg.cap:g} works as well as constant 0.9"] = \
            as_good(capped, p)
    verdict = report.rule(conditions)
    fig, axes = plotting.figure(3, title="C8: momentum schedules")
    steps = np.arange(cfg.steps)
    for name, s in schedules(cfg, cfg.steps).items():
        axes[0].plot(steps, np.asarray(jax.vmap(s)(steps)), label=name)
    axes[0].set(xlabel="step (ravine run)", ylabel="momentum", title="schedules")
    axes[0].legend(fontsize=7)
    for ax, (p, ylabel, xlabel) in zip(axes[1:], (("ravine", "distance / start", "step"),
                                                   ("MLP", "training loss", "epoch"))):
        plotting.series(ax, dict(zip(names, r[p]["curve"])), logy=True, xlabel=xlabel,
                        ylabel=ylabel, title=p if p == "MLP" else f"ravine kappa={cfg.kappa:g}")
        ax.axvline(at_one[p], color="k", ls=":", lw=0.8)
    axes[1].set_ylim(1e-12, 10)
    rows = [{"schedule": n, "ravine final distance": r["ravine"]["final"][i],
             "ravine distance when linear reaches 1": r["ravine"]["at_one"][i],
             "MLP final loss": r["MLP"]["final"][i],
             "MLP loss when linear reaches 1": r["MLP"]["at_one"][i],
             "MLP test accuracy": r["MLP"]["accuracy"][i]} for i, n in enumerate(names)]
    return report.claim(
        "C8",
        setup=f"Heavy ball (mo.sgd) with: constant 0.9; mo.schedules.anneal(0.5, 0.9) over the "
              f"first {cfg.anneal_fraction:.0%} of the run; mo.schedules.linear_to_one(0.5, T) "
              f"with T = {cfg.ramp_fraction:.0%} of the run (momentum 1 afterwards); the same "
              f"ramp capped at {cfg.cap:g}. Ravine kappa {cfg.kappa:g}, lr {cfg.ravine_lr:g}/L, "
              f"{cfg.steps} steps; digits MLP, lr {cfg.lr:g}, batch {cfg.batch_size}, "
              f"{cfg.epochs} epochs. The schedule is chosen by a traced index "
              "(experiments.sweeps.select), so each problem is one vmapped compile.",
        headline=f"MLP final loss: constant {r['MLP']['final'][const]:.3g}, anneal "
                 f"{r['MLP']['final'][anneal]:.3g}, linear-to-one "
                 f"{r['MLP']['final'][to_one]:.3g} (was {r['MLP']['at_one'][to_one]:.3g} when "
                 f"it reached 1), capped {r['MLP']['final'][capped]:.3g}",
        table=rows, plots=[plotting.save(fig, out, "c8_schedules.png")], verdict=verdict,
        metrics={p: {k: v for k, v in m.items() if k != "curve"} for p, m in r.items()})


def run(cfg: Config, key: jax.Array, out: pathlib.Path,
        status: Callable[[str], None] = lambda _: None) -> list[report.Claim]:
    return [momentum_schedules(cfg, key, out, status)]
