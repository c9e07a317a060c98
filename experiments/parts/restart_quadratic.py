"""E1: adaptive restart on randomised ill-conditioned quadratics (part of the ``restart``
experiment; its ``run`` calls ``measure`` / ``judge`` / ``figure`` / ``describe`` here).

Measure: per seed a quadratic ``f(x) = |D^(1/2) R x|^2 / 2`` with a random rotation R, a
condition number drawn log-uniformly, curvatures spread log-uniformly between mu = 1 and
L = kappa (both ends included) and a random unit start. On it, every optimizer of
``OPTIONS``: gradient descent at its optimal step and Polyak-tuned heavy ball (both
knowing mu), heavy ball with too much momentum, Nesterov's accelerated gradient with the
momentum sequence t / (t + 3) (which rises to 1), each without and with adaptive restart
(gradient and function schemes), and Nesterov with the known-mu constant momentum. All
(seed, optimizer) rows are one compile: the rows' optimizers differ in state structure,
so ``union`` keeps every option's state and advances the chosen one.
Judge: per restart scheme (the claim names both), the paired ratio of steps to a
tolerance, restarted Nesterov / Polyak-tuned heavy ball.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import momentum_optax as mo

from .. import measures
from .. import plotting
from .. import report
from .. import sweeps
from ..protocol import stats
from ..protocol import verdicts

GD, POLYAK, HB, NAG, NAG_MU = (
    "GD, step 2/(L + mu)",
    "heavy ball, Polyak-tuned (knows mu)",
    "heavy ball, too much momentum",
    "Nesterov t/(t+3)",
    "Nesterov, known-mu momentum",
)
SCHEMES = ("gradient", "function")


def restarted(name: str, scheme: str) -> str:
    return f"{name} + {scheme} restart"


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 10
    dim: int = 20
    kappa: tuple[float, float] = (1e3, 1e4)  # condition number, log-uniform per seed
    steps: int = 60_000
    tolerance: float = 1e-10  # on f(x_t) / f(x_0)
    momentum: float = 0.9999  # heavy ball's "too much" (Polyak's optimum <= 0.94 here)
    factor: float = 4.0  # primary: steps ratio (restarted / Polyak-tuned) below this


QUICK = Config(seeds=5, kappa=(300.0, 3000.0), steps=20_000)
FULL = Config()

PRIMARY = (
    "For each restart scheme the claim names (the function value rises; the momentum "
    "points against the gradient), separately: Nesterov's accelerated gradient with the "
    "momentum sequence t/(t+3), adaptively restarted, reaches f(x)/f(x0) <= {tol:g} "
    "within {factor:g}x the steps of heavy ball with Polyak's optimal parameters, which "
    "know mu: the 95% interval of the paired ratio of steps (restarted / Polyak) lies "
    "below {factor:g}. Both schemes: supported; neither: not supported; one: depends."
)
READING = (
    "'Recovers the optimal linear rate' is read as: steps to a tight tolerance within a "
    "constant factor of the optimally tuned method, which must know mu. The factor: "
    "Polyak's heavy ball contracts by 1 - 2/sqrt(kappa) per step, Nesterov's best "
    "constant momentum by 1 - 1/sqrt(kappa), so the optimal rate of the accelerated "
    "method costs 2x Polyak's steps; {factor:g} allows another 2x for restart transients, "
    "while gradient descent (rate 1 - 2/kappa) needs about sqrt(kappa)/2 >= 8x as many. "
    "The claim (O'Donoghue and Candes) is about accelerated gradient schemes whose "
    "momentum restarts from 0 on each restart: that is the primary arm. Heavy ball with "
    "a constant momentum of {momentum:g} (restarted, its momentum is back at full "
    "strength after one step) is reported as secondary."
)


def nesterov_sequence(count: jax.Array) -> jax.Array:
    """Nesterov's momentum sequence ``t / (t + 3)``; it starts again at 0 when a restart
    re-initialises the state (O'Donoghue & Candes' scheme with q = 0)."""
    count = jnp.asarray(count, jnp.float32)
    return count / (count + 3.0)


def options(cfg: Config) -> dict[str, Callable[[dict], optax.GradientTransformation]]:
    """Every optimizer compared, ``name -> make(row)`` (``row["lr"]``, ``row["momentum"]``
    are the row's traced values for that optimizer)."""
    hb = lambda row: mo.sgd(row["lr"], row["momentum"])
    nag = lambda row: mo.sgd(row["lr"], nesterov_sequence, nesterov=True)
    out = {
        GD: hb,
        POLYAK: hb,
        HB: hb,
        NAG: nag,
        NAG_MU: lambda row: mo.sgd(row["lr"], row["momentum"], nesterov=True),
    }
    for name, make in ((HB, hb), (NAG, nag)):
        for scheme in SCHEMES:
            out[restarted(name, scheme)] = lambda row, make=make, scheme=scheme: (
                mo.adaptive_restart(make(row), scheme)
            )
    return out


def settings(cfg: Config, kappa: float) -> dict[str, tuple[float, float]]:
    """``name -> (lr, momentum)`` for a quadratic with mu = 1, L = kappa. Only GD, Polyak's
    heavy ball and the known-mu Nesterov use mu; the others know L alone (lr 1/L)."""
    gd, polyak, nag = (
        mo.tuning.gradient_descent(kappa, 1.0),
        mo.tuning.heavy_ball(kappa, 1.0),
        mo.tuning.nesterov(kappa, 1.0),
    )
    known = {GD: gd[:2], POLYAK: polyak[:2], NAG_MU: nag[:2]}
    return {name: known.get(name, (1.0 / kappa, cfg.momentum)) for name in options(cfg)}


def problem(cfg: Config, key: jax.Array, seed: int) -> dict[str, np.ndarray]:
    """Seed ``seed``'s quadratic: condition number, curvatures, rotation and start."""
    k_kappa, k_curv, k_rot, k_x0 = jax.random.split(jax.random.fold_in(key, seed), 4)
    lo, hi = np.log(cfg.kappa)
    kappa = float(np.exp(jax.random.uniform(k_kappa, minval=lo, maxval=hi)))
    inner = kappa ** np.asarray(jax.random.uniform(k_curv, (cfg.dim - 2,)), np.float64)
    rotation, _ = np.linalg.qr(np.asarray(jax.random.normal(k_rot, (cfg.dim, cfg.dim))))
    x0 = np.asarray(jax.random.normal(k_x0, (cfg.dim,)), np.float64)
    return {
        "kappa": kappa,
        "curvatures": np.float32(np.sort(np.r_[1.0, inner, kappa])),
        "rotation": np.float32(rotation),
        "x0": np.float32(x0 / np.linalg.norm(x0)),
    }


def union(
    opts: Sequence[optax.GradientTransformation], index: jax.Array
) -> optax.GradientTransformationExtraArgs:
    """``opts[index]`` (traced index) for options whose states differ in structure: the
    state holds every option's state; an update advances the chosen one only."""
    opts = [optax.with_extra_args_support(o) for o in opts]

    def init_fn(params):
        return tuple(o.init(params) for o in opts)

    def update_fn(updates, state, params=None, **extra_args):
        def branch(i):
            def apply(u, s, p):
                new_u, new_s = opts[i].update(u, s[i], p, **extra_args)
                return new_u, (*s[:i], new_s, *s[i + 1 :])

            return apply

        return jax.lax.switch(index, [branch(i) for i in range(len(opts))], updates, state, params)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def descend(
    row: dict, quadratics: dict, makers: Sequence[Callable], steps: int
) -> tuple[jax.Array, jax.Array]:
    """One row's run on quadratic ``row["seed"]`` of ``quadratics`` (stacked ``problem``s):
    ``f(x_t) / f(x_0)`` for t = 0..steps, and its restart count. The loss is passed as
    ``value=`` (the function scheme reads it)."""
    q = jax.tree.map(lambda a: a[row["seed"]], quadratics)
    loss = lambda x: 0.5 * jnp.sum(q["curvatures"] * (q["rotation"] @ x) ** 2)
    opt = union([make(row) for make in makers], row["option"])

    def step(carry, _):
        x, state = carry
        value, grad = jax.value_and_grad(loss)(x)
        update, state = opt.update(grad, state, x, value=value)
        return (x + update, state), value

    (x, state), values = jax.lax.scan(step, (q["x0"], opt.init(q["x0"])), length=steps)
    counts = jnp.stack(
        [
            s.restarts if isinstance(s, mo.AdaptiveRestartState) else jnp.zeros([], jnp.int32)
            for s in state
        ]
    )
    return jnp.append(values, loss(x)) / values[0], counts[row["option"]]


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> dict:
    """Every optimizer on every seed's quadratic, one compile; steps to the tolerance."""
    names = list(options(cfg))
    problems = [problem(cfg, key, s) for s in range(cfg.seeds)]
    quadratics = {k: np.stack([p[k] for p in problems]) for k in ("curvatures", "rotation", "x0")}
    rows = [
        (s, i, *settings(cfg, p["kappa"])[n])
        for s, p in enumerate(problems)
        for i, n in enumerate(names)
    ]
    table = {
        "seed": np.int32([r[0] for r in rows]),
        "option": np.int32([r[1] for r in rows]),
        "lr": np.float32([r[2] for r in rows]),
        "momentum": np.float32([r[3] for r in rows]),
    }
    status(f"E1: {len(names)} optimizers x {cfg.seeds} quadratics, {cfg.steps} steps")
    makers = list(options(cfg).values())
    loss, counts = sweeps.sweep(
        lambda row, q: descend(row, q, makers, cfg.steps), table, quadratics
    )
    shape = (cfg.seeds, len(names))
    steps = measures.steps_to(loss, cfg.tolerance).reshape(shape)
    thin = np.unique(np.geomspace(1, cfg.steps + 1, 300).astype(int)) - 1
    return {
        "names": names,
        "kappa": np.asarray([p["kappa"] for p in problems]),
        "steps": {n: steps[:, i] for i, n in enumerate(names)},
        "restarts": {n: counts.reshape(shape)[:, i] for i, n in enumerate(names)},
        "at": thin,
        "loss": {n: loss.reshape(*shape, -1)[:, i, thin] for i, n in enumerate(names)},
    }


def censored(steps: np.ndarray, cfg: Config) -> np.ndarray:
    """Steps to tolerance with "never" counted as one step past the end."""
    return np.where(np.isfinite(steps), steps, cfg.steps + 1)


def judge(steps: dict[str, np.ndarray], cfg: Config) -> verdicts.Verdict:
    """E1's verdict from per-seed steps to the tolerance of each optimizer."""
    ratio = lambda name, base=POLYAK: stats.paired_ratio(
        censored(steps[name], cfg), censored(steps[base], cfg)
    )
    named = {
        f"{scheme} scheme": verdicts.Condition(
            f"{restarted(NAG, scheme)}: steps / Polyak-tuned heavy ball's",
            ratio(restarted(NAG, scheme)),
            cfg.factor,
            verdicts.BELOW,
        )
        for scheme in SCHEMES
    }
    secondary = [
        verdicts.Condition(
            f"{restarted(HB, s)}: steps / Polyak-tuned heavy ball's",
            ratio(restarted(HB, s)),
            cfg.factor,
            verdicts.BELOW,
        )
        for s in SCHEMES
    ]
    secondary += [
        verdicts.Condition(
            f"{n}: steps / Polyak-tuned heavy ball's (slow down)",
            ratio(n),
            cfg.factor,
            verdicts.ABOVE,
        )
        for n in (NAG, HB, GD)
    ]
    secondary += [
        verdicts.Condition(
            f"{restarted(NAG, s)}: steps / {NAG_MU}'s",
            ratio(restarted(NAG, s), NAG_MU),
            cfg.factor / 2,
            verdicts.BELOW,
        )
        for s in SCHEMES
    ]
    return verdicts.judge_depends(named, secondary)


def figure(numbers: dict, cfg: Config, out: pathlib.Path) -> list[str]:
    fig, axes = plotting.figure(
        3,
        height=4.4,
        title=f"E1: adaptive restart on {cfg.seeds} "
        f"random quadratics (condition number {cfg.kappa[0]:g} to "
        f"{cfg.kappa[1]:g})",
    )
    names = numbers["names"]
    colors = {n: f"C{i}" for i, n in enumerate(names)}
    families = {
        "heavy ball": [GD, POLYAK, HB] + [restarted(HB, s) for s in SCHEMES],
        "Nesterov": [POLYAK, NAG_MU, NAG] + [restarted(NAG, s) for s in SCHEMES],
    }
    for ax, (family, shown) in zip(axes, families.items()):
        best = {n: np.minimum.accumulate(numbers["loss"][n], axis=-1) for n in shown}
        plotting.seed_bands(
            ax,
            numbers["at"] + 1,
            best,
            xlabel="step + 1",
            ylabel="lowest f(x) / f(x0) so far",
            logy=True,
            colors=colors,
            title=f"{family} (bands: seeds)",
        )
        ax.set(xscale="log", ylim=(cfg.tolerance * 1e-3, 10))
        ax.axhline(cfg.tolerance, color="k", ls=":", lw=0.8)
    ax = axes[2]
    for i, n in enumerate(names):
        s = numbers["steps"][n]
        ax.plot(censored(s, cfg), np.full(s.shape, i), "o", ms=4, color=colors[n])
    ax.axvline(cfg.steps + 1, color="0.5", ls="--", lw=0.8, label="never (censored)")
    ax.set(
        xscale="log",
        yticks=range(len(names)),
        xlabel=f"steps to f/f0 <= {cfg.tolerance:g}",
        title="per seed",
    )
    ax.set_yticklabels(names, fontsize=6)
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return [plotting.save(fig, out, "e1_adaptive_restart.png")]


def describe(
    numbers: dict, verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    rows = [
        {
            "optimizer": n,
            f"steps to {cfg.tolerance:g}": stats.mean(censored(s, cfg)),
            "seeds that never arrive": int(np.isinf(s).sum()),
            "restarts": stats.mean(numbers["restarts"][n]),
        }
        for n, s in numbers["steps"].items()
    ]
    return report.Finding(
        id="E1",
        reading=READING.format(factor=cfg.factor, momentum=cfg.momentum),
        primary=PRIMARY.format(tol=cfg.tolerance, factor=cfg.factor),
        setup=f"{cfg.seeds} seeds, each its own quadratic f(x) = sum_i c_i (R x)_i^2 / 2 in "
        f"{cfg.dim} dimensions: R a random rotation, kappa log-uniform in "
        f"{report.listing(cfg.kappa)} (drawn: {report.listing(np.round(numbers['kappa']))}"
        f"), curvatures c log-uniform between mu = 1 and L = kappa (both included), a "
        f"random unit start; {cfg.steps} steps. Without knowing mu: heavy ball with "
        f"momentum {cfg.momentum:g} and Nesterov with t/(t+3) (mo.sgd(1/L, schedule, "
        "nesterov=True)), each plain and wrapped in mo.adaptive_restart (gradient scheme: "
        "restart when the carried step points against the fresh one; function scheme: "
        "when the loss, passed as value=, rose; a restart re-initialises the whole state, "
        "so t/(t+3) starts again at 0). Knowing mu (mo.tuning): gradient descent at "
        "2/(L + mu), heavy ball with Polyak's parameters, Nesterov with its optimal "
        "constant momentum. All rows in one compile. A run that never reaches the "
        "tolerance counts as steps + 1.",
        budget="No tuning: each method's parameters follow from L (and mu where stated).",
        headline="; ".join(
            f"{name}: restarted Nesterov / Polyak steps {c.estimate}"
            for name, c in zip(SCHEMES, verdict.primary)
        ),
        table=rows,
        plots=plots,
        verdict=verdict,
        metrics={
            "kappa": numbers["kappa"],
            "steps": numbers["steps"],
            "restarts": numbers["restarts"],
        },
    )
