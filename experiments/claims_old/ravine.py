"""Ravines: ill-conditioned quadratics (claims C1, C2, C12; E1, adaptive restart).

C1, C2 and C12 use f(w) = (kappa w1^2 + w2^2) / 2; E1, beyond the seed documents, a
quadratic with curvatures spread from 1 to 10,000.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import jax.numpy as jnp
import numpy as np

import momentum_optax as mo
from experiments import descent
from experiments import measures
from experiments import plotting
from experiments import problems
from experiments import report
from experiments import sweeps

NAME = "ravine"


@dataclasses.dataclass(frozen=True)
class Config:
    kappas: tuple[float, ...] = (10.0, 100.0, 1000.0)
    lr_multiples: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3, 0.6, 1.0, 1.5, 1.9,
                                       2.02, 2.2, 3.0)  # learning rates, in units of 1/L
    lr_steps: int = 20_000
    tolerance: float = 1e-6  # distance to the minimum, relative to the start
    rate_steps: int = 8_000
    ravine_kappa: float = 100.0  # C12
    ravine_lr: float = 1.5  # in units of 1/L: plain gradient descent zigzags
    ravine_momentum: float = 0.9
    ravine_steps: int = 50
    # E1: adaptive restart, learning rate 1/L on curvatures spread from 1 to kappa
    restart_kappa: float = 10_000.0
    restart_dim: int = 10
    restart_momentum: float = 0.9999  # far above Polyak's 0.96 for this kappa
    restart_periods: tuple[int, ...] = (30, 100, 300, 1000, 3000)
    restart_steps: int = 20_000
    coarse: float = 1e-6  # tolerances on the loss, relative to the initial loss
    fine: float = 1e-12
    near: float = 1.25  # "the optimal rate": within this factor of the steps of tuned Nesterov
    speedup: float = 3.0  # restart's gain over the unrestarted sequence, at least


QUICK = Config()  # C1, C2, C12 take well under a second of compute
FULL = Config(restart_steps=100_000)


def relative_error(path: descent.Path) -> np.ndarray:
    """``||w_t - w*|| / ||w_0 - w*||`` on the ravine (minimum at the origin)."""
    err = measures.distance(path.x, np.zeros(2))
    return err / err[..., :1]


def learning_rates(cfg: Config, out: pathlib.Path) -> report.Claim:
    """C1: gradient descent over a learning-rate grid, for every condition number."""
    table = sweeps.grid(kappa=cfg.kappas, multiple=cfg.lr_multiples)
    table["lr"] = table["multiple"] / table["kappa"]
    table["momentum"] = np.zeros_like(table["lr"])
    path = descent.sweep_paths(descent.ravine_loss, sweeps.momentum_sgd, table,
                               problems.RAVINE_START, cfg.lr_steps)
    shape = (len(cfg.kappas), len(cfg.lr_multiples))
    err = relative_error(path)
    steps = measures.steps_to(err, cfg.tolerance).reshape(shape)
    diverged = measures.diverged(err).reshape(shape)
    flips = measures.sign_changes(path.x[:, :11, 0]).reshape(shape)  # steep coordinate
    rises = measures.increases(path.loss).reshape(shape)
    mult = np.asarray(cfg.lr_multiples)
    small, above, overshoot = mult == mult.min(), mult > 2, (mult > 1) & (mult < 2)
    best = np.where(diverged, np.inf, steps).min(1, keepdims=True)
    verdict = report.rule({
        "the smallest learning rate needs at least 10x the steps of the best one":
            bool(np.all(steps[:, small] >= 10 * best)),
        "its loss never rises (slow but sure)": bool(np.all(rises[:, small] == 0)),
        "between 1/L and 2/L the steep coordinate overshoots and flips sign at every step":
            bool(overshoot.any() and np.all(flips[:, overshoot] == 10)),
        "every learning rate above 2/L diverges":
            bool(above.any() and np.all(diverged[:, above])),
    })
    fig, (ax, ax2) = plotting.figure(2, title="C1: gradient descent on the ravine")
    for i, kappa in enumerate(cfg.kappas):
        shown = np.where(diverged[i] | ~np.isfinite(steps[i]), np.nan, steps[i])
        ax.plot(mult, shown, "o-", label=f"kappa = {kappa:g}")
        slow = ~diverged[i] & ~np.isfinite(steps[i])
        ax.plot(mult[diverged[i]], np.full(diverged[i].sum(), cfg.lr_steps), "rx")
        ax.plot(mult[slow], np.full(slow.sum(), cfg.lr_steps), "^", color="0.5")
    ax.axvline(2, color="k", ls="--", lw=0.8)
    ax.text(2.05, 2, "2/L", fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="learning rate x L",
           ylabel=f"steps to {cfg.tolerance:g} of the start",
           title=f"top row: x diverged, ^ not within {cfg.lr_steps} steps")
    ax.legend(fontsize=7)
    mid = list(cfg.kappas).index(100.0) if 100.0 in cfg.kappas else 0
    for m in (0.6, 1.5, 2.02):
        if m in cfg.lr_multiples:
            ax2.plot(path.x.reshape(*shape, -1, 2)[mid, list(cfg.lr_multiples).index(m), :31, 0],
                     ".-", label=f"lr = {m:g}/L")
    ax2.set(xlabel="step", ylabel="steep coordinate w1", title=f"kappa = {cfg.kappas[mid]:g}")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7)
    rows = [{"kappa": k, "lr x L": m, "steps to tol": steps[i, j], "diverged": diverged[i, j],
             "sign flips (10 steps)": flips[i, j], "loss rises": rises[i, j]}
            for i, k in enumerate(cfg.kappas) for j, m in enumerate(mult)]
    n_above, n_diverged = int(diverged[:, above].size), int(diverged[:, above].sum())
    diverging = (f"all {n_diverged} runs above 2/L diverge" if n_diverged == n_above > 0 else
                 f"{n_diverged} of {n_above} runs above 2/L diverge")
    return report.claim(
        "C1",
        setup=f"Gradient descent on (kappa w1^2 + w2^2)/2 from (1, 1), kappa in "
              f"{report.listing(cfg.kappas)}, learning rates {report.listing(cfg.lr_multiples)} x "
              f"1/L, {cfg.lr_steps} steps, all "
              f"{steps.size} runs in one vmapped compile. Tolerance: distance to the minimum "
              f"below {cfg.tolerance:g} of the start.",
        headline=f"kappa={cfg.kappas[mid]:g}, steps to tolerance: {report.fmt(steps[mid, 0])} "
                 f"(of {cfg.lr_steps}) at lr {mult.min():g}/L, {report.fmt(best[mid, 0])} at the "
                 f"best lr; {diverging}",
        table=rows, plots=[plotting.save(fig, out, "c1_learning_rates.png")], verdict=verdict,
        metrics={"steps_to_tolerance": steps, "diverged": diverged, "sign_flips": flips})


def rates(cfg: Config, out: pathlib.Path) -> report.Claim:
    """C2: GD, heavy ball and Nesterov with their optimal parameters, against theory."""
    tuned = []  # (kappa, method, lr, momentum, theoretical rate); L = kappa, mu = 1
    for kappa in cfg.kappas:
        tuned.append((kappa, 0, 2 / (kappa + 1), 0.0, (kappa - 1) / (kappa + 1)))  # GD
        tuned.append((kappa, 1, *mo.tuning.heavy_ball(kappa, 1.0)))  # Polyak
        tuned.append((kappa, 2, *mo.tuning.nesterov(kappa, 1.0)))
    k, method, lr, momentum, theory = map(np.asarray, zip(*tuned))
    table = {"kappa": k.astype(np.float32), "nesterov": (method == 2).astype(np.int32),
             "lr": lr.astype(np.float32), "momentum": momentum.astype(np.float32)}
    path = descent.sweep_paths(descent.ravine_loss, sweeps.momentum_sgd, table,
                               problems.RAVINE_START, cfg.rate_steps)
    err = relative_error(path)
    steps = measures.steps_to(err, cfg.tolerance)
    measured = measures.fitted_rate(err)
    exponent_ratio = np.log(measured) / np.log(theory)  # 1 = the theoretical speed
    names = ["GD", "heavy ball", "Nesterov"]
    by = steps.reshape(-1, 3)
    speedup = by[:, 0] / by[:, 1:].max(1)
    verdict = report.rule({
        "heavy ball and Nesterov need fewer steps than gradient descent at every kappa":
            bool(np.all(by[:, 1:] < by[:, :1])),
        "the speed-up grows with the condition number":
            bool(speedup.size > 1 and np.all(np.diff(speedup) > 0)),
        "every measured rate is within 10% of its theoretical rate (as -log rate)":
            bool(np.all(np.abs(exponent_ratio - 1) < 0.1)),
    })
    fig, axes = plotting.figure(len(cfg.kappas), title="C2: distance to the minimum, "
                                "optimal parameters (dashed: theory)")
    for i, ax in enumerate(axes):
        for j, name in enumerate(names):
            r = 3 * i + j
            t = np.arange(1, cfg.rate_steps + 2)  # step + 1, for the log axis
            ax.plot(t, err[r], label=name, color=plotting.COLORS[name])
            ax.plot(t, theory[r] ** (t - 1), "--", color=plotting.COLORS[name], lw=0.8)
        ax.set(xscale="log", yscale="log", ylim=(1e-14, 10), xlabel="step + 1",
               title=f"kappa = {cfg.kappas[i]:g}")
        ax.legend(fontsize=7)
    rows = [{"kappa": k[r], "method": names[method[r]], "lr": table["lr"][r],
             "momentum": table["momentum"][r], "steps to tol": steps[r],
             "measured rate": measured[r], "theory": theory[r], "-log ratio": exponent_ratio[r]}
            for r in range(len(k))]
    return report.claim(
        "C2",
        setup=f"The ravine for kappa in {report.listing(cfg.kappas)}, each method at its "
              "optimal constant parameters: GD lr 2/(L+mu); Polyak's heavy ball "
              "(mo.tuning.heavy_ball) lr 4/(sqrt L + sqrt mu)^2, momentum "
              "((sqrt k - 1)/(sqrt k + 1))^2; Nesterov (mo.tuning.nesterov) lr 1/L, momentum "
              f"(sqrt k - 1)/(sqrt k + 1). {cfg.rate_steps} steps. Rate: exp of the slope of "
              "log distance, fitted while it falls from 1e-2 to 1e-13. Theory: GD (k-1)/(k+1), "
              "heavy ball (sqrt k-1)/(sqrt k+1), Nesterov 1 - 1/sqrt k.",
        headline=f"steps to {cfg.tolerance:g}, kappa={cfg.kappas[-1]:g}: GD "
                 f"{report.fmt(by[-1, 0])}, heavy ball {report.fmt(by[-1, 1])}, Nesterov "
                 f"{report.fmt(by[-1, 2])}; rates within "
                 f"{100 * np.nanmax(np.abs(exponent_ratio - 1)):.0f}% of theory",
        table=rows, plots=[plotting.save(fig, out, "c2_rates.png")], verdict=verdict,
        metrics={"steps_to_tolerance": steps, "measured_rate": measured, "theory_rate": theory,
                 "kappa": k, "method": [names[m] for m in method]})


def components(cfg: Config, out: pathlib.Path) -> report.Claim:
    """C12: per-axis components of the steps in the ravine, with and without momentum."""
    lr = cfg.ravine_lr / cfg.ravine_kappa
    table = {"kappa": np.full(2, cfg.ravine_kappa, np.float32), "lr": np.full(2, lr, np.float32),
             "momentum": np.asarray([0.0, cfg.ravine_momentum], np.float32)}
    path = descent.sweep_paths(descent.ravine_loss, sweeps.momentum_sgd, table,
                               problems.RAVINE_START, cfg.ravine_steps)
    grads = np.moveaxis(path.grad[1], -1, 0)  # heavy ball's gradients, (axis, step)
    coh = np.median(measures.coherence(grads, cfg.ravine_momentum)[:, 2:], axis=-1)
    gain = np.abs(path.update[1]).sum(0) / (lr * np.abs(path.grad[1]).sum(0))
    progress = np.abs(path.x[:, -1, 1] - path.x[:, 0, 1])  # along the valley
    final = measures.distance(path.x[:, -1], np.zeros(2))  # GD, heavy ball
    verdict = report.rule({
        "across the ravine (w1) the recent gradients mostly cancel: median coherence below 1/2":
            bool(coh[0] < 0.5),
        "along it (w2) they mostly add up: median coherence above 1/2": bool(coh[1] > 0.5),
        "so the step along the valley is amplified (gain > 1) and the step across damped "
        "(gain < 1)": bool(gain[1] > 1 > gain[0]),
        f"and heavy ball ends closer to the minimum than GD after {cfg.ravine_steps} steps":
            bool(final[1] < final[0]),
    })
    fig, (ax, ax2, ax3) = plotting.figure(3, title=f"C12: the ravine, kappa = "
                                          f"{cfg.ravine_kappa:g}, lr = {cfg.ravine_lr:g}/L")
    plotting.landscape(ax, problems.quadratic(problems.ravine_curvatures(cfg.ravine_kappa)),
                       (-1.2, 1.2), (-0.2, 1.1))
    plotting.path(ax, path.x[0], "GD")
    plotting.path(ax, path.x[1], "heavy ball")
    ax.set(xlabel="w1 (steep)", ylabel="w2 (shallow)", title="first steps")
    ax.legend(fontsize=7)
    velocity = -path.update[1] / lr
    for a, i, name in ((ax2, 0, "w1, across the ravine"), (ax3, 1, "w2, along the ravine")):
        a.bar(np.arange(cfg.ravine_steps), path.grad[1, :, i], color="0.6", label="gradient")
        a.plot(velocity[:, i], "o-", ms=2.5, color=plotting.COLORS["heavy ball"],
               label=f"velocity (momentum {cfg.ravine_momentum:g})")
        a.set(xlabel="step", title=f"{name}: coherence {coh[i]:.2f}, gain {gain[i]:.2f}",
              ylabel="component")
        a.legend(fontsize=7)
    rows = [{"axis": name, "median coherence": coh[i], "gain |step| / (lr |grad|)": gain[i],
             "gradient sign flips": measures.sign_changes(grads[i])}
            for i, name in enumerate(["w1 (steep)", "w2 (shallow)"])]
    return report.claim(
        "C12",
        setup=f"Heavy ball (momentum {cfg.ravine_momentum:g}) and GD at lr {cfg.ravine_lr:g}/L "
              f"on the ravine with kappa = {cfg.ravine_kappa:g}, {cfg.ravine_steps} steps. "
              "Coherence of axis i at step t: |sum_k b^k g_i(t-k)| / sum_k b^k |g_i(t-k)| "
              "(1: the gradients in the velocity add up, 0: they cancel); gain: sum |step_i| / "
              "(lr sum |g_i|) (1 for GD).",
        headline=f"coherence across {coh[0]:.2f} vs along {coh[1]:.2f}; gain {gain[0]:.2f} vs "
                 f"{gain[1]:.2f}; distance to the minimum after {cfg.ravine_steps} steps: GD "
                 f"{final[0]:.2f}, heavy ball {final[1]:.2f}",
        table=rows, plots=[plotting.save(fig, out, "c12_components.png")], verdict=verdict,
        metrics={"coherence": coh, "gain": gain, "progress_along_valley": progress,
                 "final_distance": final})


def nesterov_sequence(count: jnp.ndarray) -> jnp.ndarray:
    """Nesterov's momentum sequence ``t / (t + 3)`` (as in O'Donoghue & Candès): a schedule
    whose count starts again at 0 whenever a restart wrapper re-initialises the state."""
    count = jnp.asarray(count, jnp.float32)
    return count / (count + 3.0)


def restart_runs(cfg: Config) -> dict[str, dict[str, dict]]:
    """E1's runs, ``family -> {"k = 30", ..., "no restart", "gradient", "function"} -> numbers``:
    each family's periods (and no restart) in one vmapped compile, each adaptive scheme in
    its own; plus Nesterov with the optimal constant momentum for the known mu."""
    kappa, steps = cfg.restart_kappa, cfg.restart_steps
    loss = problems.quadratic(problems.spectrum_curvatures(kappa, cfg.restart_dim))
    x0 = np.ones(cfg.restart_dim, np.float32)
    families = {"heavy ball": lambda row: mo.sgd(row["lr"], row["momentum"]),
                "Nesterov": lambda row: mo.sgd(row["lr"], nesterov_sequence, nesterov=True)}
    labels = [f"k = {k}" for k in cfg.restart_periods] + ["no restart"]

    def paths(make_opt, n=1, **columns) -> descent.Path:
        table = {"lr": np.full(n, 1 / kappa, np.float32),
                 "momentum": np.full(n, cfg.restart_momentum, np.float32), **columns}
        return descent.sweep_paths(lambda row: loss, make_opt, table, x0, steps)

    def numbers(path: descent.Path, restarts: np.ndarray) -> list[dict]:
        rel = path.loss / path.loss[:, :1]
        coarse, fine = (measures.steps_to(rel, tol) for tol in (cfg.coarse, cfg.fine))
        diverged = measures.diverged(rel)
        return [{"loss": rel[i], "coarse": float(coarse[i]), "fine": float(fine[i]),
                 "restarts": int(restarts[i]), "diverged": bool(diverged[i])}
                for i in range(len(rel))]

    runs = {}
    for name, make in families.items():
        periodic = paths(sweeps.periodic(make, cfg.restart_periods, steps), len(labels),
                         period=np.arange(len(labels), dtype=np.int32))
        resets = [(steps - 1) // k for k in cfg.restart_periods] + [0]
        runs[name] = dict(zip(labels, numbers(periodic, np.asarray(resets))))
        for scheme in ("gradient", "function"):
            path = paths(lambda row: mo.adaptive_restart(make(row), scheme=scheme))
            runs[name][scheme] = numbers(path, path.state.restarts)[0]
    lr, momentum, _ = mo.tuning.nesterov(kappa, 1.0)
    tuned = descent.sweep_paths(lambda row: loss, sweeps.momentum_sgd, {
        "lr": np.float32([lr]), "momentum": np.float32([momentum]),
        "nesterov": np.int32([1])}, x0, steps)
    runs["Nesterov"]["known mu"] = numbers(tuned, np.zeros(1))[0]
    return runs


def restart(cfg: Config, out: pathlib.Path) -> report.Claim:
    """E1: no restart, restart every k, and adaptive restart (both schemes) on a
    condition-10,000 quadratic, for heavy ball 0.9999 and Nesterov's t/(t+3)."""
    runs = restart_runs(cfg)
    hb, nag = runs["heavy ball"], runs["Nesterov"]
    periods = [f"k = {k}" for k in cfg.restart_periods]
    best = {fam: min(periods, key=lambda k: runs[fam][k]["fine"]) for fam in runs}
    slowest = lambda fam: max(runs[fam][s]["fine"] for s in ("gradient", "function"))
    fine, coarse, b = f"{cfg.fine:g}", f"{cfg.coarse:g}", f"{cfg.restart_momentum:g}"
    optimal = mo.tuning.nesterov(cfg.restart_kappa, 1.0).momentum
    polyak = mo.tuning.heavy_ball(cfg.restart_kappa, 1.0).momentum
    f = report.fmt
    verdict = report.rule({
        f"without restart, heavy ball with momentum {b} does not reach {coarse} of the initial "
        f"loss in {cfg.restart_steps} steps": not np.isfinite(hb["no restart"]["coarse"]),
        f"with adaptive restart it does, with the gradient scheme ({f(hb['gradient']['coarse'])} "
        f"steps) and the function scheme ({f(hb['function']['coarse'])})":
            bool(np.isfinite(hb["gradient"]["coarse"]) and np.isfinite(hb["function"]["coarse"])),
        f"Nesterov's t/(t+3) with adaptive restart reaches {fine} within {cfg.near:g}x the steps "
        f"of Nesterov tuned with the known mu ({f(nag['gradient']['fine'])} gradient, "
        f"{f(nag['function']['fine'])} function vs {f(nag['known mu']['fine'])})":
            bool(slowest("Nesterov") <= cfg.near * nag["known mu"]["fine"]),
        f"and in at most 1/{cfg.speedup:g} of the steps it needs without restart "
        f"({f(nag['no restart']['fine'])})":
            bool(cfg.speedup * slowest("Nesterov") <= nag["no restart"]["fine"]),
        **{f"{fam}: adaptive restart (both schemes) reaches {fine} no later than the best fixed "
           f"period ({f(slowest(fam))} vs {f(runs[fam][best[fam]]['fine'])} steps at "
           f"{best[fam]})": bool(slowest(fam) <= runs[fam][best[fam]]["fine"]) for fam in runs},
    })
    fig, axes = plotting.figure(3, title=f"E1: adaptive restart, quadratic with condition "
                                f"number {cfg.restart_kappa:g}, lr 1/L")
    shown = {"heavy ball": ["no restart", best["heavy ball"], "gradient", "function"],
             "Nesterov": ["no restart", best["Nesterov"], "gradient", "function", "known mu"]}
    titles = {"heavy ball": f"heavy ball, momentum {b}", "Nesterov": "Nesterov, t/(t+3)"}
    for ax, fam in zip(axes, runs):
        curves = {(s if s != "known mu" else "constant momentum, known mu"): runs[fam][s]["loss"]
                  for s in shown[fam]}
        plotting.bands(ax, curves, ylabel="loss / initial loss (range over windows)",
                       title=titles[fam], dashed=["function"])
        ax.set(ylim=(1e-16, 1e3))
        for tol in (cfg.coarse, cfg.fine):
            ax.axhline(tol, color="k", ls=":", lw=0.7)
    ax = axes[2]
    for fam, marker in (("heavy ball", "o"), ("Nesterov", "s")):
        color = plotting.COLORS[fam]
        reached = np.asarray([runs[fam][k]["fine"] for k in periods])
        ax.plot(cfg.restart_periods, np.where(np.isfinite(reached), reached, np.nan),
                marker + "-", color=color, label=f"{fam}, every k")
        ax.plot(np.asarray(cfg.restart_periods)[~np.isfinite(reached)],
                np.full((~np.isfinite(reached)).sum(), cfg.restart_steps), "x", color=color)
        ax.axhline(min(slowest(fam), cfg.restart_steps), color=color, ls="--", lw=1,
                   label=f"{fam}, adaptive ({report.fmt(slowest(fam))})")
    ax.set(xscale="log", yscale="log", xlabel="restart period k",
           ylabel=f"steps to {fine} of the initial loss",
           title=f"fixed periods (x: not within {cfg.restart_steps})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    rows = [{"method": fam, "restart": s, f"steps to {coarse}": r["coarse"],
             f"steps to {fine}": r["fine"], "restarts": r["restarts"], "diverged": r["diverged"]}
            for fam in runs for s, r in runs[fam].items()]
    return report.claim(
        "E1",
        setup=f"f(x) = sum_i c_i x_i^2 / 2 with {cfg.restart_dim} curvatures spread "
              f"geometrically from 1 to {cfg.restart_kappa:g} (condition number "
              f"{cfg.restart_kappa:g}), from x = (1, ..., 1), learning rate 1/L, "
              f"{cfg.restart_steps} steps. Heavy ball with momentum {b} (mo.sgd) and Nesterov "
              "with the momentum sequence t/(t+3) (mo.sgd(lr, schedule, nesterov=True)): without "
              f"restart, restarted every k in {report.listing(cfg.restart_periods)} steps "
              "(mo.periodic_reset; the periods and no restart of one family are one vmapped "
              "compile, the period chosen by a traced index), and wrapped in "
              "mo.adaptive_restart with the gradient scheme (restart when the last step went "
              "uphill, <grad f(x_t), x_t - x_(t-1)> > 0) or the function scheme (restart when "
              "the loss, passed as value=, rose). A restart re-initialises the whole state, so "
              "the sequence t/(t+3) starts again at 0; left alone it passes the optimal constant "
              f"momentum (sqrt k - 1)/(sqrt k + 1) = {optimal:.3g} after "
              f"{3 * optimal / (1 - optimal):.0f} steps and keeps rising to 1: too much "
              f"momentum, as {b} is for heavy ball (Polyak's optimum here: {polyak:.3g}). "
              "Reference: Nesterov with the optimal constant momentum for the known "
              "mu = 1 (mo.tuning.nesterov). Steps to a tolerance: first step at which the loss "
              f"is at most {coarse} or {fine} of the initial loss.",
        headline=f"heavy ball {b}, steps to {coarse}: {f(hb['no restart']['coarse'])} without "
                 f"restart, {f(hb['gradient']['coarse'])} with adaptive restart "
                 f"({f(hb['gradient']['restarts'])} restarts); Nesterov t/(t+3), steps to "
                 f"{fine}: {f(nag['no restart']['fine'])} without, "
                 f"{f(nag['gradient']['fine'])} with adaptive restart "
                 f"({f(nag['gradient']['restarts'])} restarts), "
                 f"{f(nag['known mu']['fine'])} tuned with the known mu",
        table=rows, plots=[plotting.save(fig, out, "e1_adaptive_restart.png")], verdict=verdict,
        metrics={fam: {s: {k: v for k, v in r.items() if k != "loss"} for s, r in runs[fam].items()}
                 for fam in runs})


def run(cfg: Config, key, out: pathlib.Path,
        status: Callable[[str], None] = lambda _: None) -> list[report.Claim]:
    del key  # deterministic: fixed start points
    claims = []
    for stage, fn in (("C1 learning rates", learning_rates), ("C2 rates", rates),
                      ("C12 components", components), ("E1 adaptive restart", restart)):
        status(f"{NAME}: {stage}")
        claims.append(fn(cfg, out))
    return claims
