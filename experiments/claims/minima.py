"""C6: does momentum roll through small dips, or past the global minimum? A bumpy bowl.

Measure: ``f(x) = 0.05 x^2 + a (1 - cos 2 pi x)`` (``experiments.problems.dips`` with the
ripple amplitude ``a`` drawn per seed), from random starts drawn per seed; gradient
descent over a log grid of learning rates and heavy ball over a grid of the same size in
learning rate x log(1 - beta), all (method, trial, seed, start) runs in one compiled
vmap (gradient descent is heavy ball with a traced momentum of 0). Each method's setting
is chosen on one half of every seed's starts (the tuning starts) and judged on the other
half (the evaluation starts).
Judge: both halves of the claim (``verdicts.judge_all``): the paired difference (heavy ball
- gradient descent), over seeds, of the fraction of evaluation starts that settle in the
global basin, and the fraction of heavy ball's evaluation runs that cross the minimum and
come to rest in another dip.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

import momentum_optax as mo

from .. import plotting
from .. import problems
from .. import report
from .. import sweeps
from ..protocol import stats
from ..protocol import tuning
from ..protocol import verdicts

NAME = "minima"
CLAIMS = ("C6",)
METHODS = ("GD", "heavy ball")


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    starts: int = 128  # per seed and per half (tuning / evaluation), uniform in +-DIPS_RANGE
    trials: int = 36  # per method: GD a log grid of lr, heavy ball a 6 x 6 grid lr x (1 - beta)
    steps: int = 3000
    lr: tuple[float, float] = (2e-4, 2.0)
    one_minus_beta: tuple[float, float] = (3e-3, 0.5)
    amplitude: tuple[float, float] = (0.035, 0.065)  # ripple amplitude, uniform per seed
    settled: float = 1e-3  # |f'(x_T)| below this: the run has come to rest
    helps: float = 0.1  # primary: heavy ball ends in the basin >= 10 points more often
    rolls_past: float = 0.05  # primary, second half: >= 5% of heavy ball's runs jump it


QUICK = Config(seeds=5, trials=25, steps=2000)
FULL = Config()

PRIMARY = (
    "Heavy ball, at the setting (learning rate, momentum) that puts the most tuning "
    "starts in the global basin, settles in the global basin |x| < {basin:g} from more "
    "evaluation starts than gradient descent at its own best learning rate: the 95% "
    "interval of the paired difference of the fractions (heavy ball - GD) lies above "
    "{helps:g}. And it can roll past the global minimum: the mean fraction of heavy "
    "ball's evaluation runs that cross the minimum and come to rest in another dip has a "
    "95% interval above {past:g}. Both halves are judged; the claim holds if both do."
)
READING = (
    "'Help avoid getting stuck in small dips' is read as: from a random start on a "
    "bowl with ripples, momentum comes to rest in the global minimum's basin more often "
    "than gradient descent, each method at its own best setting over a grid of the same "
    "size (a shared step size would compare step sizes). 'Jump over the global minimum' "
    "is read as a run that crosses the minimum and comes to rest in another dip. A run "
    "counts as in the basin only once it has come to rest (|f'| small): a step size "
    "beyond the stability limit that leaves the iterate bouncing does not count."
)


def bumpy(amplitude: jax.Array):
    """``problems.dips`` with ripple amplitude ``amplitude`` (traced); ``x`` has shape (1,)."""

    def loss(x: jax.Array) -> jax.Array:
        x = x[0]
        return 0.5 * problems.DIPS_BOWL * x**2 + amplitude * (1.0 - jnp.cos(2.0 * jnp.pi * x))

    return loss


def spaces(cfg: Config) -> dict[str, tuning.Space]:
    return {
        "GD": tuning.Space(lr=cfg.lr, momentum=0.0),
        "heavy ball": tuning.Space(lr=cfg.lr, one_minus_beta=cfg.one_minus_beta, grid=True),
    }


def problem(cfg: Config, key: jax.Array, seed: int) -> tuple[np.ndarray, float]:
    """Seed ``seed``'s ``2 * starts`` starting points (tuning half first) and amplitude."""
    k = jax.random.fold_in(key, seed)
    starts = jax.random.uniform(
        k, (2 * cfg.starts,), minval=-problems.DIPS_RANGE, maxval=problems.DIPS_RANGE
    )
    amplitude = jax.random.uniform(
        jax.random.fold_in(k, 1), (), minval=cfg.amplitude[0], maxval=cfg.amplitude[1]
    )
    return np.asarray(starts, np.float32), float(amplitude)


def roll(cfg: Config):
    """One run, ``row -> {"x", "grad", "crossed"}``: where it ends, the slope there, and
    whether it ever crossed the global minimum 0."""

    def one(row):
        loss = bumpy(row["amplitude"])
        opt = mo.sgd(row["lr"], row["momentum"])
        x0 = row["start"][None]

        def step(carry, _):
            x, state, crossed = carry
            update, state = opt.update(jax.grad(loss)(x), state, x)
            new = x + update
            return (new, state, crossed | (new[0] * x[0] < 0)), None

        (x, _, crossed), _ = jax.lax.scan(
            step, (x0, opt.init(x0), jnp.zeros([], bool)), None, length=cfg.steps
        )
        return {"x": x[0], "grad": jax.grad(loss)(x)[0], "crossed": crossed}

    return one


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> dict:
    """Per method: the trial table, per-(trial, seed) fractions on both halves, the selected
    trial and the final positions of its evaluation runs."""
    tables = {m: tuning.trials(s, cfg.trials) for m, s in spaces(cfg).items()}
    seeds = [problem(cfg, key, s) for s in range(cfg.seeds)]
    n = 2 * cfg.starts
    table = {
        c: np.concatenate([np.repeat(t[c], cfg.seeds * n) for t in tables.values()])
        for c in ("lr", "momentum")
    }
    per_trial = lambda v: np.tile(np.asarray(v, np.float32), len(tables) * cfg.trials)
    table["start"] = per_trial(np.concatenate([s for s, _ in seeds]))
    table["amplitude"] = per_trial(np.repeat([a for _, a in seeds], n))
    status(f"{NAME}: {table['lr'].size} runs of {cfg.steps} steps")
    out = sweeps.sweep(roll(cfg), table)
    shape = (len(tables), cfg.trials, cfg.seeds, n)
    x, grad, crossed = (np.asarray(out[k]).reshape(shape) for k in ("x", "grad", "crossed"))
    rest = np.isfinite(x) & (np.abs(np.nan_to_num(grad, nan=np.inf)) < cfg.settled)
    basin = rest & (np.abs(x) < problems.DIPS_BASIN)
    past = crossed & rest & ~basin  # crossed the minimum and came to rest in another dip
    numbers = {"amplitudes": np.array([a for _, a in seeds])}
    for i, (name, t) in enumerate(tables.items()):
        tune, held = basin[i, ..., : cfg.starts].mean(-1), basin[i, ..., cfg.starts :].mean(-1)
        best = tuning.select(tune, lower_is_better=False)
        numbers[name] = {
            "table": t,
            "tuning": tune,
            "evaluation": held,
            "best": best,
            "setting": {k: float(v[best]) for k, v in t.items()},
            "edge": tuning.on_edge(spaces(cfg)[name], t, best),
            "in_basin": held[best],
            "rolled_past": past[i, best, :, cfg.starts :].mean(-1),
            "at_rest": rest[i, best, :, cfg.starts :].mean(-1),
            "final_x": x[i, best, :, cfg.starts :],
        }
    return numbers


def judge(
    basin_momentum: np.ndarray, basin_gd: np.ndarray, past_momentum: np.ndarray, cfg: Config
) -> verdicts.Verdict:
    """C6's verdict from per-seed fractions: in the global basin (heavy ball, GD) and
    rolled past the minimum (heavy ball)."""
    dips = verdicts.Condition(
        "fraction in the global basin, heavy ball - gradient descent",
        stats.paired_difference(basin_momentum, basin_gd),
        cfg.helps,
        verdicts.ABOVE,
    )
    past = verdicts.Condition(
        "fraction of heavy ball's runs that cross the minimum and come to rest elsewhere",
        stats.mean(past_momentum),
        cfg.rolls_past,
        verdicts.ABOVE,
    )
    return verdicts.judge_all({"rolls through small dips": dips, "can roll past": past})


def figure(numbers: dict, cfg: Config, out: pathlib.Path) -> list[str]:
    fig, (ax, ax2, ax3) = plotting.figure(
        3, title=f"C6: rolling through small dips ({cfg.seeds} seeds)"
    )
    grid = np.linspace(-problems.DIPS_RANGE, problems.DIPS_RANGE, 801, dtype=np.float32)
    for a in (cfg.amplitude[0], cfg.amplitude[1]):
        ax.plot(
            grid,
            np.asarray(jax.vmap(bumpy(a))(grid[:, None])),
            lw=1,
            label=f"ripple amplitude {a:g}",
        )
    ax.axvspan(
        -problems.DIPS_BASIN,
        problems.DIPS_BASIN,
        color="tab:green",
        alpha=0.15,
        label="global basin",
    )
    ax.set(xlabel="x", ylabel="f(x)", title="the bumpy bowl (amplitude drawn per seed)")
    ax.legend(fontsize=7)
    gd, hb = numbers["GD"], numbers["heavy ball"]
    curves = {"GD": (gd["table"]["lr"], gd["evaluation"])}
    betas = np.unique(hb["table"]["momentum"])
    for beta in betas:
        rows = np.flatnonzero(hb["table"]["momentum"] == beta)
        curves[f"heavy ball, beta {beta:.3g}"] = (hb["table"]["lr"][rows], hb["evaluation"][rows])
    colors = dict(zip(list(curves)[1:], plotting.ordered_colors(-np.log10(1 - betas))))
    for label, (lr, frac) in curves.items():
        order = np.argsort(lr)
        plotting.seed_bands(
            ax2, lr[order], {label: frac[order].T}, colors={label: colors.get(label, "k")}
        )
    ax2.set(
        xscale="log",
        xlabel="learning rate",
        ylabel="fraction of starts in the global basin",
        title="evaluation starts: mean and 95% band over seeds",
    )
    bins = np.arange(-5.25, 5.3, 0.5)
    for name in METHODS:
        x = numbers[name]["final_x"].ravel()
        ax3.hist(
            x[np.isfinite(x)],
            bins=bins,
            weights=np.full(np.isfinite(x).sum(), 1 / x.size),
            histtype="step",
            lw=1.5,
            color=plotting.COLORS[name],
            label=f"{name}, selected",
        )
    ax3.set(xlabel="final x", ylabel="fraction of runs", title="where the runs end")
    ax3.legend(fontsize=7)
    return [plotting.save(fig, out, "c6_dips.png")]


def describe(
    numbers: dict, verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    rows = [
        {
            "method": name,
            "lr": numbers[name]["setting"]["lr"],
            "momentum": numbers[name]["setting"]["momentum"],
            "in global basin": stats.mean(numbers[name]["in_basin"]),
            "rolled past the minimum": stats.mean(numbers[name]["rolled_past"]),
            "at rest": stats.mean(numbers[name]["at_rest"]),
        }
        for name in METHODS
    ]
    edges = [f"{m}: {', '.join(numbers[m]['edge'])}" for m in METHODS if numbers[m]["edge"]]
    diff = verdict.primary[0].estimate
    return report.Finding(
        id="C6",
        reading=READING,
        primary=PRIMARY.format(basin=problems.DIPS_BASIN, helps=cfg.helps, past=cfg.rolls_past),
        setup=f"f(x) = 0.05 x^2 + a (1 - cos 2 pi x), a uniform in {report.listing(cfg.amplitude)} "
        f"per seed (dips at the integers out to |x| ~ 2-4), {cfg.seeds} seeds; per seed "
        f"{cfg.starts} tuning and {cfg.starts} evaluation starts uniform in "
        f"[-{problems.DIPS_RANGE:g}, {problems.DIPS_RANGE:g}]; {cfg.steps} steps of GD or "
        f"heavy ball (mo.sgd); a run is in the global basin when |x| < "
        f"{problems.DIPS_BASIN:g} and |f'(x)| < {cfg.settled:g} at the end.",
        budget=f"{cfg.trials} trials per method: GD over log lr in {report.listing(cfg.lr)}; "
        f"heavy ball over a grid of lr in {report.listing(cfg.lr)} x log(1 - beta) in "
        f"{report.listing(cfg.one_minus_beta)}; each selected on its tuning starts "
        "(mean fraction in the basin over the seeds), reported on the evaluation starts.",
        headline=f"in the global basin: GD {stats.mean(numbers['GD']['in_basin'])}, heavy ball "
        f"{stats.mean(numbers['heavy ball']['in_basin'])} (difference {diff}); heavy "
        f"ball rolled past the minimum {stats.mean(numbers['heavy ball']['rolled_past'])}",
        table=rows,
        plots=plots,
        verdict=verdict,
        metrics={
            "amplitudes": numbers["amplitudes"],
            **{
                m: {k: numbers[m][k] for k in ("setting", "in_basin", "rolled_past", "evaluation")}
                for m in METHODS
            },
        },
        notes=report.edge_note(edges),
    )


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    numbers = measure(cfg, key, status)
    hb, gd = numbers["heavy ball"], numbers["GD"]
    verdict = judge(hb["in_basin"], gd["in_basin"], hb["rolled_past"], cfg)
    return [describe(numbers, verdict, figure(numbers, cfg, out), cfg)]
