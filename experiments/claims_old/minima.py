"""A bowl with small dips: does momentum roll through them, or past the global minimum? (C6)"""

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

NAME = "minima"


@dataclasses.dataclass(frozen=True)
class Config:
    starts: int = 2048  # random starting points, uniform in [-5, 5]
    momenta: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
    lr: float = 0.1
    steps: int = 3000
    helps_factor: float = 2.0  # "helps": ends in the global basin at least this much more often
    rolls_past: float = 0.05  # "can roll past": at least this fraction crosses 0 and ends elsewhere


FULL = Config(starts=4096, steps=5000)
QUICK = Config(starts=512)


def starts(cfg: Config, key: jax.Array) -> np.ndarray:
    """The random starting points, uniform in [-DIPS_RANGE, DIPS_RANGE]."""
    return np.asarray(jax.random.uniform(key, (cfg.starts,), minval=-problems.DIPS_RANGE,
                                         maxval=problems.DIPS_RANGE))


def roll(cfg: Config, key: jax.Array) -> np.ndarray:
    """Every (momentum, start) pair as one compiled sweep; returns (momentum, start, step) paths."""
    table = sweeps.grid(momentum=cfg.momenta, start=starts(cfg, key))
    table["lr"] = np.full_like(table["momentum"], cfg.lr)
    path = sweeps.sweep(lambda row: descent.descend(problems.dips, sweeps.momentum_sgd(row),
                                                    row["start"][None], cfg.steps), table)
    return path.x[..., 0].reshape(len(cfg.momenta), cfg.starts, -1)


def dips(cfg: Config, key: jax.Array, out: pathlib.Path) -> report.Claim:
    x = roll(cfg, key)
    final = x[..., -1]
    in_basin = np.abs(final) < problems.DIPS_BASIN
    passed = measures.sign_changes(x) > 0  # crossed the global minimum at least once
    rolled_past = passed & ~in_basin
    found, past = in_basin.mean(1), rolled_past.mean(1)
    gd = found[0]
    best = int(np.argmax(found))
    verdict = report.rule({
        f"momentum rolls through the dips: with momentum {cfg.momenta[best]:g}, "
        f"{found[best]:.0%} of the starts end in the global basin, vs {gd:.0%} without "
        f"(at least {cfg.helps_factor:g}x needed)": bool(found[best] >= cfg.helps_factor * gd),
        f"momentum can roll past the global minimum: at some momentum at least "
        f"{cfg.rolls_past:.0%} of the runs cross it and settle in another dip (at most "
        f"{past.max():.0%})": bool(past.max() >= cfg.rolls_past),
    })
    fig, (ax, ax2, ax3) = plotting.figure(3, title="C6: rolling through small dips")
    grid = np.linspace(-problems.DIPS_RANGE, problems.DIPS_RANGE, 801)
    ax.plot(grid, np.asarray(jax.vmap(problems.dips)(grid[:, None])), "k", lw=1)
    ax.axvspan(-problems.DIPS_BASIN, problems.DIPS_BASIN, color="tab:green", alpha=0.15,
               label="global basin")
    for i in sorted({0, best, len(cfg.momenta) - 1}):
        ax.hist(final[i], bins=np.arange(-5.25, 5.3, 0.5), weights=np.full(cfg.starts, 1.0 /
                cfg.starts), histtype="step", label=f"final x, momentum {cfg.momenta[i]:g}")
    ax.set(xlabel="x", ylabel="f(x) / fraction of runs", title="landscape and where runs end")
    ax.legend(fontsize=7)
    start = int(np.argmax(np.abs(x[0, :, 0]) > 3))  # one start far out in the dips
    for i in sorted({0, best, len(cfg.momenta) - 1}):
        ax2.plot(x[i, start, :300], label=f"momentum {cfg.momenta[i]:g}")
    ax2.axhspan(-problems.DIPS_BASIN, problems.DIPS_BASIN, color="tab:green", alpha=0.15)
    ax2.set(xlabel="step", ylabel="x", title=f"one run from x0 = {x[0, start, 0]:.2f}")
    ax2.legend(fontsize=7)
    ax3.plot(cfg.momenta, found, "o-", label="ends in the global basin")
    ax3.plot(cfg.momenta, past, "s-", label="crossed 0, ended in another dip")
    ax3.set(xlabel="momentum", ylabel="fraction of runs", title=f"{cfg.starts} random starts")
    ax3.legend(fontsize=7)
    ax3.grid(alpha=0.3)
    rows = [{"momentum": b, "in global basin": found[i], "crossed 0": passed[i].mean(),
             "rolled past": past[i], "final |x| (median)": np.median(np.abs(final[i]))}
            for i, b in enumerate(cfg.momenta)]
    return report.claim(
        "C6",
        setup=f"f(x) = 0.05 x^2 + 0.05 (1 - cos 2 pi x): global minimum 0, small dips at +-1, "
              f"+-2, +-3. {cfg.starts} starts uniform in [-5, 5] (from --seed), heavy ball "
              f"lr {cfg.lr:g}, momentum {report.listing(cfg.momenta)}, {cfg.steps} steps; all "
              f"runs one vmapped compile. Global basin: |x| < {problems.DIPS_BASIN:g}.",
        headline=f"in the global basin: {gd:.0%} without momentum, {found[best]:.0%} with "
                 f"{cfg.momenta[best]:g}; rolled past the minimum: up to {past.max():.0%} "
                 f"(momentum {cfg.momenta[int(np.argmax(past))]:g})",
        table=rows, plots=[plotting.save(fig, out, "c6_dips.png")], verdict=verdict,
        metrics={"in_basin": found, "rolled_past": past, "momenta": cfg.momenta})


def run(cfg: Config, key: jax.Array, out: pathlib.Path,
        status: Callable[[str], None] = lambda _: None) -> list[report.Claim]:
    status(f"{NAME}: C6 random starts")
    return [dips(cfg, key, out)]
