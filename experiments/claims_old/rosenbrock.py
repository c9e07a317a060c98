"""Rosenbrock's banana valley and the ravine: Nesterov against classical momentum (claim C4)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import numpy as np

from experiments import descent
from experiments import measures
from experiments import plotting
from experiments import problems
from experiments import report
from experiments import sweeps

NAME = "rosenbrock"
ROSENBROCK_L = 1000.0  # top Hessian eigenvalue at the minimum (1001.6), for lr in units of 1/L


@dataclasses.dataclass(frozen=True)
class Config:
    lr_multiples: tuple[float, ...] = (0.1, 0.3, 1.0, 2.0)  # learning rates, in units of 1/L
    momenta: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99)
    ravine_kappa: float = 100.0
    steps: int = 20_000
    tolerance: float = 1e-4  # distance to the minimum, relative to the start
    example: tuple[float, float] = (1.0, 0.9)  # (lr x L, momentum) drawn on the banana


FULL = QUICK = Config()


def landscapes(cfg: Config) -> dict[str, tuple]:
    """``name -> (loss_of_row, start, minimum, L)`` for the two valleys."""
    ravine = lambda row: problems.quadratic(problems.ravine_curvatures(cfg.ravine_kappa))
    return {"Rosenbrock": (lambda row: problems.rosenbrock, problems.ROSENBROCK_START,
                           problems.ROSENBROCK_MINIMUM, ROSENBROCK_L),
            f"ravine kappa={cfg.ravine_kappa:g}": (ravine, problems.RAVINE_START, np.zeros(2),
                                                   cfg.ravine_kappa)}


def compare(cfg: Config, loss_of, start, minimum, lipschitz) -> dict[str, np.ndarray]:
    """Heavy ball and Nesterov over the (lr, momentum) grid, plus GD, in one compiled sweep.

    Returns arrays of shape (method, lr, momentum) (method 0 heavy ball, 1 Nesterov) and
    GD's, of shape (lr,), and the example paths.
    """
    parts = [sweeps.grid(nesterov=[0, 1], multiple=cfg.lr_multiples, momentum=cfg.momenta),
             sweeps.grid(nesterov=[0], multiple=cfg.lr_multiples, momentum=[0.0]),  # GD
             sweeps.grid(nesterov=[0, 1, 0], multiple=cfg.example[:1], momentum=[0.0])]
    parts[2]["momentum"] = np.float32([cfg.example[1], cfg.example[1], 0.0])  # the example
    table = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    table["nesterov"] = table["nesterov"].astype(np.int32)
    table["lr"] = table["multiple"] / lipschitz
    path = descent.sweep_paths(loss_of, sweeps.momentum_sgd, table, start, cfg.steps)
    err = measures.distance(path.x, minimum)
    err = err / err[:, :1]
    n, n_gd = sweeps.rows(parts[0]), sweeps.rows(parts[1])
    shape = (2, len(cfg.lr_multiples), len(cfg.momenta))
    steps = measures.steps_to(err, cfg.tolerance)
    diverged = measures.diverged(err)
    rises = np.where(diverged, np.inf, measures.increases(path.loss))  # diverging: least stable
    return {"steps": steps[:n].reshape(shape), "diverged": diverged[:n].reshape(shape),
            "rises": rises[:n].reshape(shape), "gd_steps": steps[n:n + n_gd],
            "example_x": path.x[n + n_gd:], "example_err": err[n + n_gd:]}


def nesterov_vs_heavy_ball(cfg: Config, out: pathlib.Path, status) -> report.Claim:
    results = {}
    for name, (loss_of, start, minimum, lipschitz) in landscapes(cfg).items():
        status(f"{NAME}: C4 {name}")
        results[name] = compare(cfg, loss_of, start, minimum, lipschitz)
    hb = np.concatenate([r["steps"][0].ravel() for r in results.values()])
    nag = np.concatenate([r["steps"][1].ravel() for r in results.values()])
    rises = np.stack([np.concatenate([r["rises"][i].ravel() for r in results.values()])
                      for i in (0, 1)])
    div = np.stack([sum(int(r["diverged"][i].sum()) for r in results.values()) for i in (0, 1)])
    both = np.isfinite(hb) & np.isfinite(nag)
    ratio = np.median(nag[both] / hb[both])
    high = np.tile(np.asarray(cfg.momenta) >= 0.95, len(results) * len(cfg.lr_multiples))
    settings = hb.size
    verdict = report.rule({
        f"Nesterov needs fewer steps than heavy ball where both reach the tolerance (median "
        f"ratio {ratio:.2f}, below 1 needed)": bool(ratio < 1),
        "with momentum >= 0.95 it is faster in most settings where both reach it":
            bool(np.sum((nag < hb)[both & high]) > np.sum(both & high) / 2),
        "it reaches the tolerance in at least as many settings":
            bool(np.isfinite(nag).sum() >= np.isfinite(hb).sum()),
        "its loss rises less often than heavy ball's in most settings":
            bool(np.sum(rises[1] < rises[0]) > settings / 2),
        "it diverges in no more settings than heavy ball": bool(div[1] <= div[0]),
    })
    fig, (ax, ax2, ax3) = plotting.figure(3, title="C4: Nesterov vs heavy ball")
    rb = results["Rosenbrock"]
    plotting.landscape(ax, problems.rosenbrock, (-1.6, 1.6), (-0.5, 2.2))
    order, names = [2, 0, 1], ["GD", "heavy ball", "Nesterov"]  # example rows: HB, NAG, GD
    for i, label in zip(order, names):
        plotting.path(ax, rb["example_x"][i, :2000], label)
    ax.plot(*problems.ROSENBROCK_MINIMUM, "k*", ms=9)
    ax.set(title=f"Rosenbrock, lr {cfg.example[0]:g}/L, momentum {cfg.example[1]:g}, "
                 "first 2000 steps", xlabel="x", ylabel="y")
    ax.legend(fontsize=7)
    shown = int(min(cfg.steps, 2 * measures.steps_to(rb["example_err"][:2], cfg.tolerance).max()))
    plotting.series(ax2, {n: rb["example_err"][i, :shown] for i, n in zip(order, names)},
                    logy=True, ylabel="distance to the minimum / start", title="same runs")
    top = 2 * cfg.steps
    for (name, r), marker in zip(results.items(), "os"):
        shown = np.where(np.isfinite(r["steps"]), r["steps"], top)
        ax3.scatter(shown[0].ravel(), shown[1].ravel(), marker=marker, label=name, alpha=0.7)
    ax3.plot([10, top], [10, top], "k--", lw=0.8)
    ax3.set(xscale="log", yscale="log", xlabel="heavy ball: steps to tolerance",
            ylabel="Nesterov: steps to tolerance",
            title=f"each (lr, momentum); {top}: never")
    ax3.legend(fontsize=7)
    rows = [{"problem": name, "lr x L": m, "momentum": b,
             "heavy ball steps": r["steps"][0, i, j], "Nesterov steps": r["steps"][1, i, j],
             "heavy ball rises": r["rises"][0, i, j], "Nesterov rises": r["rises"][1, i, j],
             "GD steps": r["gd_steps"][i]}
            for name, r in results.items() for i, m in enumerate(cfg.lr_multiples)
            for j, b in enumerate(cfg.momenta)]
    return report.claim(
        "C4",
        setup=f"Heavy ball and Nesterov (mo.sgd, nesterov flag) on Rosenbrock from (-1.2, 1) "
              f"and on the ravine (kappa {cfg.ravine_kappa:g}), learning rates "
              f"{report.listing(cfg.lr_multiples)} x 1/L (L = {ROSENBROCK_L:g} for Rosenbrock), "
              f"momentum {report.listing(cfg.momenta)}, plus GD at each lr, {cfg.steps} steps; "
              "all of a problem's runs are one vmapped compile. Speed: steps until the "
              f"distance to the minimum is below {cfg.tolerance:g} of the start; stability: how many steps raise the loss, "
              "and divergence.",
        headline=f"Nesterov/heavy-ball steps: median {ratio:.2f}, faster in "
                 f"{int(np.sum(nag[both] < hb[both]))}/{int(both.sum())} settings; fewer loss "
                 f"rises in {int(np.sum(rises[1] < rises[0]))}/{settings}; "
                 f"diverged: Nesterov {div[1]}, heavy ball {div[0]}",
        table=rows, plots=[plotting.save(fig, out, "c4_nesterov.png")], verdict=verdict,
        metrics={name: {k: v for k, v in r.items() if not k.startswith("example")}
                 for name, r in results.items()})


def run(cfg: Config, key, out: pathlib.Path,
        status: Callable[[str], None] = lambda _: None) -> list[report.Claim]:
    del key  # deterministic: fixed start points
    return [nesterov_vs_heavy_ball(cfg, out, status)]
