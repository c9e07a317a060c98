"""C13: does adding momentum reduce the risk of oscillating? Sign changes, stable range, speed.

Measure: on randomised ravines (per seed a random rotation, start and condition number),
gradient descent and heavy ball (beta 0.5, McCaffrey's example, and 0.9) over one grid of
learning rates, every seed x method x lr in one compile: sign changes of the steep
eigen-coordinate in the first steps, divergence, steps to a tolerance. On the MNIST-1D
MLP, GD and heavy ball 0.9 each tuned (one compile): how often the training-subset loss rises.
Judge: one primary condition per regime of the learning rate, since what gradient descent
can do differs in each (McCaffrey adds momentum to a loop as it stands): below 1/L GD
cannot change sign (heavy ball 0.5 must not add sign changes), between 1/L and 2/L GD
oscillates and converges, above 2/L it diverges; in the last two the paired ratio of sign
changes, heavy ball 0.5 / GD. "depends" names the regimes where it holds. The stable
range, the speed and the MNIST-1D rises are secondary.
"""

from __future__ import annotations

import dataclasses
import pathlib
import warnings
from typing import NamedTuple

import jax
import numpy as np

from .. import comparison
from .. import loop
from .. import measures
from .. import plotting
from .. import report
from .. import tasks
from ..parts import ravines
from ..protocol import race
from ..protocol import stats
from ..protocol import tuning
from ..protocol import verdicts

NAME = "oscillation"
CLAIMS = ("C13",)


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    kappa: tuple[float, float] = (30.0, 300.0)  # condition numbers, log-uniform per seed
    lrs: int = 41  # learning rates x L, log-spaced over `lr_range`
    lr_range: tuple[float, float] = (0.05, 5.0)
    momenta: tuple[float, ...] = (0.0, 0.5, 0.9)  # GD, McCaffrey's 0.5, the common 0.9
    window: int = 50  # steps in which sign changes are counted
    floor: float = 1e-3  # sign changes of |z1| below this (start distance 1) are not counted
    steps: int = 3000  # ravine runs: divergence and steps to tolerance
    tolerance: float = 1e-6  # distance to the minimum, relative to the start
    threshold: float = 0.8  # primary (1/L..2/L and above 2/L): ratio of sign changes below this
    added: float = 0.5  # primary (below 1/L): sign changes added per lr, heavy ball - GD, below
    speedup: float = 0.8  # secondary: steps ratio (heavy ball / GD) below this
    trials: int = 8  # MNIST-1D: learning rates per method
    schedule: loop.Schedule = loop.Schedule(steps=2000, batch_size=32, eval_every=20)
    gd_lr: tuple[float, float] = (1e-2, 3.0)
    hb_lr: tuple[float, float] = (1e-3, 0.3)  # GD's range x (1 - 0.9)
    hb_momentum: float = 0.9


QUICK = Config(seeds=5, schedule=loop.Schedule(steps=800, batch_size=32, eval_every=20))
REGIMES = {"below 1/L": (0.0, 1.0), "1/L to 2/L": (1.0, 2.0), "above 2/L": (2.0, np.inf)}
FULL = Config()

PRIMARY = (
    "Heavy ball with beta 0.5 (McCaffrey's example value) at the same learning rates as "
    "gradient descent changes the sign of the steep eigen-coordinate less often in the "
    "first {window} steps, judged per regime of the learning rate: below 1/L, where GD "
    "cannot change sign and so has no risk to reduce, 'reduced risk' can only mean no "
    "added risk: the paired difference of sign changes per learning rate (heavy ball - "
    "GD) lies below {added:g}; between 1/L and 2/L, and above 2/L (GD diverges), "
    "the 95% interval of the paired ratio of sign changes (heavy ball / GD, summed over "
    "the regime's grid points) lies below {threshold}. All three supported: supported; "
    "some supported and some not: depends."
)
READING = (
    "McCaffrey's code adds momentum to an existing gradient-descent loop and keeps its "
    "learning rate, so 'a reduced risk of oscillating' is read as: at the learning rates "
    "at which gradient descent is used (its convergent range, log-spaced as learning "
    "rates are searched), adding momentum makes the steep coordinate of a ravine swing "
    "across the valley less often. Oscillating is counted as sign changes of that "
    "coordinate while it exceeds {floor:g} of the starting distance (smaller swings are "
    "no risk). The other readings - momentum tolerates larger learning rates before "
    "diverging; it reaches the minimum sooner at each method's own tuned lr ('speed up'); "
    "the training loss of a real network rises less often - are secondary."
)


def grid(cfg: Config) -> np.ndarray:
    return np.geomspace(*cfg.lr_range, cfg.lrs)


class Measured(NamedTuple):
    """Per seed, method and learning rate on the ravines: the sign changes (``flips``), their
    sums per regime and the learning rates in each, the largest stable lr, the steps to the
    tolerance (inf: never) and, per method, the tuned lr's index and arrivals; and the MNIST-1D
    arm's selected trials (GD, heavy ball)."""

    kappa: np.ndarray
    flips: np.ndarray
    regimes: dict[str, np.ndarray]
    points: dict[str, int]
    stable: np.ndarray
    steps: np.ndarray
    chosen: np.ndarray
    tuned: race.Arrival
    mnist: list[comparison.Selected]


def measure_ravines(cfg: Config, key: jax.Array) -> dict:
    """Every seed x method x learning rate on the ravines (one compile); per-seed numbers
    (``Measured``'s fields but the MNIST-1D arm's)."""
    draw = ravines.ravines(key, cfg.seeds, cfg.kappa)
    m = grid(cfg)
    rows = ravines.block(draw, lambda k: [(x / k, b, 0) for b in cfg.momenta for x in m])
    run = ravines.run_blocks({"C13": rows}, cfg.steps, cfg.seeds)["C13"]
    shape = (cfg.seeds, len(cfg.momenta), cfg.lrs)
    steep = np.asarray(run.z[:, :, : cfg.window + 1, 0]).reshape(*shape, -1)
    dist = ravines.distance(run).reshape(*shape, -1)
    flips = measures.sign_changes(steep, cfg.floor)
    diverged = measures.diverged(dist)
    first = np.where(diverged.any(-1), diverged.argmax(-1), cfg.lrs)  # first diverging lr
    stable = np.where(first > 0, m[np.maximum(first - 1, 0)], 0.0)
    arrived = race.arrival(dist, cfg.tolerance, np.arange(dist.shape[-1]), higher_is_better=False)
    chosen = tuning_index(arrived)  # fewest censored seeds, then fewest mean steps
    take = lambda a: np.take_along_axis(a, chosen[None, :, None], -1)[..., 0]
    return {
        "kappa": draw["kappa"],
        "flips": flips,
        "regimes": {
            name: flips[..., (m >= lo) & (m < hi)].sum(-1) for name, (lo, hi) in REGIMES.items()
        },
        "points": {name: int(((m >= lo) & (m < hi)).sum()) for name, (lo, hi) in REGIMES.items()},
        "stable": stable,
        "steps": np.where(arrived.censored, np.inf, arrived.steps),
        "chosen": chosen,
        "tuned": race.Arrival(take(arrived.steps), take(arrived.censored), arrived.horizon),
    }


def tuning_index(arrived: race.Arrival) -> np.ndarray:
    """Per method, the learning rate with the fewest censored seeds, then the fewest mean
    steps (the race's rule; ``arrived`` holds ``(seeds, methods, lrs)`` arrays)."""
    steps, censored = arrived.steps, arrived.censored
    return np.asarray(
        [race.best(steps[:, j].T, censored[:, j].T, steps[:, j].T) for j in range(steps.shape[1])]
    )


def methods(cfg: Config) -> list[comparison.Method]:
    """GD (traced momentum 0) and heavy ball, each over its own log-lr range, equal trials."""
    return [
        comparison.Method("GD", comparison.heavy_ball, tuning.Space(lr=cfg.gd_lr)),
        comparison.Method(
            "heavy ball",
            comparison.heavy_ball,
            tuning.Space(lr=cfg.hb_lr, momentum=cfg.hb_momentum),
        ),
    ]


def rises(train_loss: np.ndarray) -> np.ndarray:
    """Fraction of evaluation intervals in which the training-subset loss went up (per seed)."""
    return measures.increases(train_loss) / (np.shape(train_loss)[-1] - 1)


def measure_mnist(cfg: Config, key: jax.Array) -> list[comparison.Selected]:
    """GD and heavy ball on MNIST-1D in one compile, each selected on its training loss."""
    runs = comparison.run(
        methods(cfg),
        tasks.mnist1d_mlp(),
        trials=cfg.trials,
        seeds=cfg.seeds,
        key=key,
        schedule=cfg.schedule,
    )
    return [comparison.select_by_train_loss(r) for r in runs]


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> Measured:
    status("ravines: every seed x method x lr (one compile)")
    numbers = measure_ravines(cfg, key)
    status(f"MNIST-1D: GD and heavy ball, {cfg.trials} trials x {cfg.seeds} seeds")
    return Measured(**numbers, mnist=measure_mnist(cfg, key))


def label(beta: float) -> str:
    return "GD" if beta == 0 else f"heavy ball {beta:g}"


def judge(
    regimes: dict[str, np.ndarray],
    points: dict[str, int],
    stable: np.ndarray,
    tuned: race.Arrival,
    rises_hb: np.ndarray,
    rises_gd: np.ndarray,
    cfg: Config,
) -> verdicts.Verdict:
    """C13's verdict. ``regimes[name]``: sign changes summed over the regime's grid points,
    ``(seeds, methods)`` in the order of ``cfg.momenta`` (GD first), ``points[name]`` how
    many grid points it has; ``stable``: ``(seeds, methods)``; ``tuned``: per seed and
    method the steps to tolerance at each method's tuned lr; ``rises_*``: MNIST-1D."""
    floor = cfg.lr_range[0] / 2  # a stable lr below the grid: half its first value
    ratio = lambda values, j: stats.paired_ratio(
        np.maximum(values[:, j], floor), np.maximum(values[:, 0], floor)
    )
    one = [j for j, b in enumerate(cfg.momenta) if b > 0]
    j = one[0]
    named = {}
    for name, flips in regimes.items():
        if name == "below 1/L":
            named[name] = verdicts.Condition(
                f"{name}: sign changes added per lr, {label(cfg.momenta[j])} - GD",
                stats.paired_difference(
                    flips[:, j] / max(points[name], 1), flips[:, 0] / max(points[name], 1)
                ),
                cfg.added,
                verdicts.BELOW,
            )
        else:
            named[name] = verdicts.Condition(
                f"{name}: sign changes, {label(cfg.momenta[j])} / GD",
                stats.paired_ratio(np.maximum(flips[:, j], 0.5), np.maximum(flips[:, 0], 0.5)),
                cfg.threshold,
                verdicts.BELOW,
            )
    secondary = [
        verdicts.Condition(
            f"{name}: sign changes, {label(cfg.momenta[k])} / GD",
            stats.paired_ratio(np.maximum(flips[:, k], 0.5), np.maximum(flips[:, 0], 0.5)),
            cfg.threshold,
            verdicts.BELOW,
        )
        for name, flips in regimes.items()
        for k in one[1:]
    ]
    secondary += [
        verdicts.Condition(
            f"largest stable lr, {label(cfg.momenta[k])} / GD",
            ratio(stable, k),
            1.0,
            verdicts.ABOVE,
        )
        for k in one
    ]
    secondary += [
        verdicts.Condition(
            f"steps to tolerance at own tuned lr, {label(cfg.momenta[k])} / GD",
            stats.paired_ratio(
                np.maximum(tuned.steps[:, k], 1),
                np.maximum(tuned.steps[:, 0], 1),
                censored_a=tuned.censored[:, k],
                censored_b=tuned.censored[:, 0],
            ),
            cfg.speedup,
            verdicts.BELOW,
        )
        for k in one
    ]
    secondary.append(
        verdicts.Condition(
            f"MNIST-1D: fraction of evaluations at which the training loss rose, heavy ball "
            f"{cfg.hb_momentum:g} - GD",
            stats.paired_difference(rises_hb, rises_gd),
            0.0,
            verdicts.BELOW,
        )
    )
    return verdicts.judge_depends(named, secondary)


def figure(n: Measured, cfg: Config, out: pathlib.Path) -> list[str]:
    with warnings.catch_warnings():  # all seeds diverged at some lrs: empty bands there
        warnings.simplefilter("ignore", RuntimeWarning)
        return _figure(n, cfg, out)


def _figure(n: Measured, cfg: Config, out: pathlib.Path) -> list[str]:
    m, colors = grid(cfg), plotting.ordered_colors(cfg.momenta, "plasma")
    fig, (a, b, c) = plotting.figure(
        3,
        title="C13: momentum and oscillation - ravines "
        f"(kappa in {report.listing(cfg.kappa)}) and MNIST-1D",
    )
    labels = [label(beta) for beta in cfg.momenta]
    plotting.seed_bands(
        a,
        m,
        {lab: n.flips[:, j] for j, lab in enumerate(labels)},
        xlabel="learning rate x L",
        ylabel=f"sign changes of the steep coordinate in {cfg.window} steps",
        colors=dict(zip(labels, colors)),
        title="same learning rate (dotted: GD's limit 2/L)",
    )
    steps = np.where(np.isfinite(n.steps), n.steps, np.nan)
    plotting.seed_bands(
        b,
        m,
        {lab: steps[:, j] for j, lab in enumerate(labels)},
        xlabel="learning rate x L",
        ylabel=f"steps to {cfg.tolerance:g} of the start distance",
        logy=True,
        colors=dict(zip(labels, colors)),
        title="gaps: not within the budget or diverged",
    )
    for ax in (a, b):
        ax.set_xscale("log")
        ax.axvline(2, color="k", ls=":", lw=0.8)
    plotting.seed_bands(
        c,
        cfg.schedule.eval_steps,
        {f"{s.method} (lr {s.setting['lr']:.3g})": s.curves.train_loss for s in n.mnist},
        ylabel="loss on the training subset",
        logy=True,
        title="MNIST-1D MLP, each at its tuned lr",
        colors={
            f"{s.method} (lr {s.setting['lr']:.3g})": plotting.COLORS[s.method] for s in n.mnist
        },
    )
    return [plotting.save(fig, out, "c13_oscillation.png")]


def describe(
    n: Measured, verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    m = grid(cfg)
    rows = [
        {
            "method": label(b),
            **{
                f"sign changes, {name} (sum of {n.points[name]} lrs)": stats.mean(f[:, j])
                for name, f in n.regimes.items()
            },
            "largest stable lr x L": stats.mean(n.stable[:, j]),
            "theory": 2 * (1 + b),
            "tuned lr x L": m[n.chosen[j]],
            "steps to tolerance, tuned": race.Arrival(
                n.tuned.steps[:, j], n.tuned.censored[:, j], n.tuned.horizon
            ).cell(),
        }
        for j, b in enumerate(cfg.momenta)
    ]
    rows += [
        {
            "method": f"MNIST-1D {s.method}",
            "tuned lr": s.setting["lr"],
            "loss rises (fraction)": stats.mean(rises(s.curves.train_loss)),
            "final training loss": stats.mean(s.curves.train_loss[:, -1]),
        }
        for s in n.mnist
    ]
    edges = [f"{s.method}: {', '.join(s.edge)}" for s in n.mnist if s.edge]
    edges += [
        f"{label(b)} on the ravine: lr"
        for j, b in enumerate(cfg.momenta)
        if n.chosen[j] in (0, cfg.lrs - 1)
    ]
    return report.Finding(
        id="C13",
        reading=READING.format(floor=cfg.floor),
        primary=PRIMARY.format(window=cfg.window, threshold=cfg.threshold, added=cfg.added),
        setup=f"Ravines f(x) = (kappa z1^2 + z2^2)/2, z = Q^T x, per seed a random rotation, "
        f"a random start on the unit circle and kappa log-uniform in "
        f"{report.listing(cfg.kappa)}; {cfg.seeds} seeds. GD and heavy ball (mo.sgd, "
        f"momentum {report.listing(cfg.momenta[1:])}) at {cfg.lrs} learning rates "
        f"log-spaced over {report.listing(cfg.lr_range)} / L, {cfg.steps} steps (one "
        f"compile). Largest stable lr: the grid value below the first that diverges (last "
        f"distance above the first). MNIST-1D 40-100-100-10 MLP, {cfg.schedule.steps} "
        f"steps of batch {cfg.schedule.batch_size}, training-subset loss every "
        f"{cfg.schedule.eval_every} steps; GD vs heavy ball {cfg.hb_momentum:g}.",
        budget=f"Ravines: every method on the same {cfg.lrs}-point lr grid (the primary splits "
        "it into the three regimes; sign counts are floored at 0.5 so that a ratio exists; "
        "the speed comparison takes each method's best grid point by mean steps, censored "
        f"runs ranked last). MNIST-1D: {cfg.trials} log-spaced lrs per method, GD over "
        f"{report.listing(cfg.gd_lr)}, heavy ball over {report.listing(cfg.hb_lr)} "
        "(shifted by 1 - beta), selected on the final training-subset loss.",
        headline="; ".join(f"{c.text}: {c.estimate}" for c in verdict.primary),
        table=rows,
        plots=plots,
        verdict=verdict,
        metrics={
            **{k: getattr(n, k) for k in ("kappa", "regimes", "points", "stable", "chosen")},
            "tuned_steps": n.tuned.steps,
            "tuned_censored": n.tuned.censored,
        },
        notes=report.edge_note(edges),
    )


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    n = measure(cfg, key, status)
    hb, gd = (rises(s.curves.train_loss) for s in n.mnist[::-1])
    verdict = judge(n.regimes, n.points, n.stable, n.tuned, hb, gd, cfg)
    return [describe(n, verdict, figure(n, cfg, out), cfg)]
