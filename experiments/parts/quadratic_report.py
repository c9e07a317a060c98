"""Figures and Findings of the quadratic textbook checks (C1, C2, C3 and C4 quadratic parts,
C12) from ``quadratic_checks``' numbers and verdicts: one PNG per check with every seed drawn,
the tables over seeds, and what each check reads, states and ran.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from .. import plotting
from .. import report
from ..parts import every_seed
from ..parts.every_seed import spread
from ..parts.quadratic_checks import CLAIMS
from ..parts.quadratic_checks import METHODS
from ..parts.quadratic_checks import best_rates
from ..parts.textbook_config import Config
from ..protocol import verdicts

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
    "C12": "The 'components' are those of the gradient steps that heavy ball's velocity sums, "
    "in the ravine's eigen-directions; 'cancel' / 'reinforce' is their coherence "
    "|sum b^k g(t-k)| / sum b^k |g(t-k)| (0: cancel, 1: add up).",
}

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
    "C12": "On every seed: the median coherence of heavy ball's summed gradient steps is below "
    "1/2 in the steep eigen-direction and above 1/2 in the shallow one.",
}


def _per_seed(ax, x, ys, color, label, **kw) -> None:
    """One line per seed (row of ``ys``), labelled once."""
    for i, y in enumerate(ys):
        ax.plot(x, y, color=color, lw=0.9, label=label if i == 0 else None, **kw)


def figures(n: dict, cfg: Config, out: pathlib.Path) -> dict[str, str]:
    """One PNG per check (C2 and C4 share one); every seed drawn (the toys are deterministic
    given the seed)."""
    names, m = {}, np.asarray(cfg.lr_multiples)
    fig, (a, b) = plotting.figure(2, title="C1: gradient descent on randomised ravines")
    for s, k in enumerate(n["C1"]["kappa"]):
        steps = n["C1"]["steps"][s]
        a.plot(m, np.where(np.isfinite(steps), steps, np.nan), "o-", label=f"kappa {k:.0f}")
        a.plot(m[n["C1"]["diverged"][s]], np.full(n["C1"]["diverged"][s].sum(), cfg.steps), "rx")
    a.axvline(2, color="k", ls="--", lw=0.8)
    a.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate x L",
        title="x: diverged",
        ylabel=f"steps to {cfg.tolerance:g} of the start distance",
    )
    a.legend(fontsize=7)
    for j, c in zip((2, 5, 7), plotting.ordered_colors([0, 1, 2])):
        b.plot(n["C1"]["steep"][0, j], ".-", color=c, label=f"lr {m[j]:g}/L")
    b.set(xlabel="step", ylabel="steep eigen-coordinate", title="seed 0")
    b.legend(fontsize=7)
    names["C1"] = plotting.save(fig, out, "c1_learning_rates.png")

    t = n["tuned"]
    fig, (a, b) = plotting.figure(
        2,
        title="C2: optimal constant parameters on ravines, "
        "kappa in " + report.listing(cfg.rate_kappa),
    )
    for i, name in enumerate(METHODS):
        _per_seed(
            a,
            np.arange(t["error"].shape[-1]),
            np.maximum(t["error"][:, i], 1e-30),
            plotting.COLORS[name],
            name,
        )
        b.plot(
            1 - t["theory"][:, i], 1 - t["rate"][:, i], "o", color=plotting.COLORS[name], label=name
        )
    a.set(
        xscale="log",
        yscale="log",
        xlabel="step",
        ylabel="distance to the minimum / start",
        ylim=(1e-25, 10),
        title="every seed",
    )
    lim = [1e-3, 1]
    b.plot(lim, lim, "k--", lw=0.8, label="measured = theory")
    b.set(
        xscale="log",
        yscale="log",
        xlabel="1 - theoretical rate",
        ylabel="1 - measured rate",
        title="per-step rate, every seed",
    )
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
    a.set(
        xscale="log",
        yscale="log",
        xlabel="1 - beta",
        ylabel="1 - best measured rate",
        title="star: Polyak's beta; higher = faster",
    )
    a.legend(fontsize=7)
    names["C3"] = plotting.save(fig, out, "c3_quadratic_rate.png")

    fig, (a,) = plotting.figure(
        1,
        title=f"C12: heavy ball {cfg.ravine_momentum:g}, lr "
        f"{cfg.ravine_lr:g}/L on randomised ravines",
    )
    for axis, name in enumerate(("steep", "shallow")):
        _per_seed(
            a,
            np.arange(cfg.ravine_steps),
            n["C12"]["coherence"][:, axis],
            f"C{axis}",
            f"{name} direction",
        )
    a.axhline(0.5, color="k", ls=":", lw=0.8)
    a.set(xlabel="step", ylabel="coherence of the summed gradient steps", ylim=(0, 1.05))
    a.legend(fontsize=7)
    names["C12"] = plotting.save(fig, out, "c12_coherence.png")
    return names


def ravine_setup(kappa, cfg: Config, what: str) -> str:
    """A check's setup: ``what`` ran on the randomised ravines with ``kappa`` in that range."""
    return (
        f"{what} on f(x) = (kappa z1^2 + z2^2) / 2, z = Q^T x, per seed a random rotation "
        f"Q, a random start on the unit circle and kappa log-uniform in {report.listing(kappa)}"
        f"; {cfg.seeds} seeds; {cfg.steps} steps (one compile with every other quadratic "
        "check). Rates: least squares of log distance (its upper envelope, with a log t "
        "term for double roots) while it falls from 1e-2 to 1e-25 of the start."
    )


def tables(n: dict, cfg: Config) -> dict[str, list[dict]]:
    """Each check's table: its numbers' range over seeds, per setting."""
    m, t, c = np.asarray(cfg.lr_multiples), n["tuned"], n["C3"]
    best3 = best_rates(c["rate"])
    return {
        "C1": [
            {
                "lr x L": m[j],
                "steps to tolerance": spread(n["C1"]["steps"][:, j]),
                "diverged (seeds)": int(n["C1"]["diverged"][:, j].sum()),
                "sign-change fraction, 10 steps": spread(n["C1"]["flips"][:, j]),
                "loss rises": spread(n["C1"]["rises"][:, j]),
            }
            for j in range(len(m))
        ],
        "C2": [
            {
                "method": name,
                "measured rate": spread(t["rate"][:, i]),
                "theory": spread(t["theory"][:, i]),
                "steps to tolerance": spread(t["steps"][:, i]),
            }
            for i, name in enumerate(METHODS)
        ],
        "C4": [
            {
                "method": name,
                "measured rate": spread(t["rate"][:, i]),
                "theory": spread(t["theory"][:, i]),
            }
            for i, name in enumerate(METHODS[1:], 1)
        ],
        "C3": [
            {
                "beta": spread(c["betas"][:, j]),
                "best measured rate": spread(best3[:, j]),
                "sqrt(beta)": spread(np.sqrt(c["betas"][:, j])),
            }
            for j in range(best3.shape[1])
        ],
        "C12": [
            {
                "direction": name,
                "median coherence": spread(np.median(n["C12"]["coherence"][:, i, 2:], -1)),
            }
            for i, name in enumerate(("steep", "shallow"))
        ],
    }


def describe(
    n: dict, judged: dict[str, verdicts.Verdict], plots: dict[str, str], cfg: Config
) -> list[report.Finding]:
    """The Findings of C1, C2, C3, C4 and C12 (in that order)."""
    t, rows = n["tuned"], tables(n, cfg)
    setup = {
        "C1": ravine_setup(
            cfg.lr_kappa, cfg, f"Gradient descent at lr in {report.listing(cfg.lr_multiples)} / L"
        )
        + f" Tolerance: distance "
        f"{cfg.tolerance:g} of the start; diverged: the last distance exceeds the first.",
        "C2": ravine_setup(
            cfg.rate_kappa,
            cfg,
            "GD at 2/(L+mu), heavy ball at Polyak's "
            "parameters (mo.tuning.heavy_ball), Nesterov at mo.tuning.nesterov's",
        ),
        "C3": ravine_setup(
            cfg.rate_kappa,
            cfg,
            f"Heavy ball at beta = {report.listing(cfg.below_polyak)}"
            f" x Polyak's and 1 - (1 - Polyak's) / {report.listing(cfg.beyond_polyak)}"
            f", each at lr {report.listing(cfg.beta_lrs)} x 2(1+beta)/(L+mu); "
            "best = lowest rate over these lrs",
        ),
        "C12": ravine_setup(
            cfg.ravine_kappa,
            cfg,
            f"Heavy ball (momentum "
            f"{cfg.ravine_momentum:g}) at lr {cfg.ravine_lr:g}/L, first "
            f"{cfg.ravine_steps} steps",
        )
        + " In this range lr mu < (1 - sqrt b)^2: "
        "the shallow direction is overdamped, the steep one oscillates (the regime of "
        "the source's picture).",
    }
    setup["C4"] = setup["C2"]
    heads = {
        "C1": "smallest lr / best lr steps "
        + str(judged["C1"].primary[0].estimate)
        + "; every run above 2/L diverges, none below",
        "C2": "; ".join(
            f"{name} rate {spread(t['rate'][:, i])} (theory {spread(t['theory'][:, i])})"
            for i, name in enumerate(METHODS)
        ),
        "C3": "best rate at Polyak's beta vs beyond: "
        + ", ".join(str(spread(r)) for r in best_rates(n["C3"]["rate"]).T[len(cfg.below_polyak) :]),
        "C4": f"heavy ball {spread(t['rate'][:, 1])} vs Nesterov {spread(t['rate'][:, 2])} "
        f"(theory {spread(t['theory'][:, 1])} vs {spread(t['theory'][:, 2])})",
        "C12": "median coherence steep "
        + str(judged["C12"].primary[0].estimate)
        + ", shallow "
        + str(judged["C12"].primary[1].estimate),
    }
    metrics = {
        "C1": {"steps": n["C1"]["steps"], "kappa": n["C1"]["kappa"]},
        "C2": {k: t[k] for k in ("kappa", "rate", "theory", "steps")},
        "C3": {k: n["C3"][k] for k in ("kappa", "betas", "rate")},
        "C4": {k: t[k] for k in ("kappa", "rate", "theory")},
        "C12": {"kappa": n["C12"]["kappa"]},
    }
    fields = dataclasses.asdict(cfg)
    return [
        every_seed.finding(
            i,
            READING[i],
            PRIMARY[i].format(**fields),
            setup[i],
            heads[i],
            rows[i],
            plots[i],
            judged[i],
            metrics[i],
        )
        for i in CLAIMS
    ]
