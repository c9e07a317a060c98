"""C4 and C15: Nesterov against heavy ball, and whether the momentum factor must be tuned.

Measure: heavy ball and Nesterov on a grid of effective step ``lr / (1 - beta)`` x beta,
heavy ball at the default beta 0.9 on a grid of effective step alone (the same number of
trials), and the same two heavy-ball spaces again as independent random draws (for the
expected best against the number of trials): every trial on every seed, in one compiled
function (every method is ``mo.sgd``). C4 races Nesterov against heavy ball to tuned
heavy ball's training loss at half its run (``protocol.race``), on the MLP and, in the
full run, on the 1-D CNN. C15 compares beta 0.9 at a tuned learning rate with beta tuned
at a tuned learning rate, each chosen on the other seeds' validation accuracy, and draws
Dodge et al.'s expected-best curves from the random draws, with bands over trials and seeds.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import NamedTuple

import jax
import numpy as np

from .. import comparison
from .. import loop
from .. import plotting
from .. import report
from .. import tasks
from ..parts import budget as budget_lib
from ..protocol import horizon
from ..protocol import race
from ..protocol import stats
from ..protocol import tuning
from ..protocol import verdicts

NAME = "nesterov"
CLAIMS = ("C4", "C15")
HB, NAG, DEFAULT = "heavy ball", "Nesterov", "heavy ball, beta 0.9"
RANDOM = {DEFAULT: f"{DEFAULT} (random lr)", HB: f"{HB} (random lr x beta)"}
COMPILES = 1


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    trials: int = 16  # per method: a 4 x 4 grid in 2-D, 16 values in 1-D, 16 random draws
    schedule: loop.Schedule = loop.Schedule(steps=2000, batch_size=32, eval_every=20)
    effective: tuple[float, float] = (0.03, 3.0)  # lr / (1 - beta)
    one_minus_beta: tuple[float, float] = (0.01, 0.5)  # beta in [0.5, 0.99]
    default: float = 0.9  # C15: the default a user starts from
    target_at: float = 0.5  # C4: tuned heavy ball's training loss at this share of its run
    speedup: float = 0.8  # C4 primary: steps ratio Nesterov / heavy ball below this
    near: float = 0.1  # C4 robustness: final val loss within 10% of the seed's best trial
    gain: float = 0.01  # C15 primary: tuning beta buys more than this validation accuracy
    budget: int = 4  # C15 secondary: the expected best at this many random trials
    resamples: int = 200  # C15 bands: bootstrap draws over trials and seeds
    # C4 on the 1-D CNN (secondary; 0 trials: not run)
    cnn_trials: int = 16
    cnn_seeds: int = 8
    cnn_schedule: loop.Schedule = loop.Schedule(steps=600, batch_size=32, eval_every=20)


QUICK = Config(
    seeds=5, schedule=loop.Schedule(steps=400, batch_size=32, eval_every=20), cnn_trials=0
)
FULL = Config()

PRIMARY_C4 = (
    "Nesterov reaches the training-loss target (tuned heavy ball's mean training-subset "
    "loss at {target_at:.0%} of its run) at least 20% sooner than heavy ball, each seed "
    "scored by the trial chosen on the other seeds: the 95% interval of the paired ratio "
    "of steps (Nesterov / heavy ball) lies below {speedup:g}."
)
READING_C4 = (
    "'Faster' is read as training speed, AlgoPerf's time-to-result on the training loss, "
    "both methods tuned on the same grid of effective step x beta. 'More stable' is read "
    "as robustness to the hyper-parameters: the share of a method's trials whose final "
    "validation loss lies within {near:.0%} of its best trial on that seed, and the "
    "diverged runs; both are secondary, since one claim gets one primary condition and "
    "speed is the one the source states first."
)
PRIMARY_C15 = (
    "Tuning the momentum factor pays: heavy ball with beta tuned (a 4 x 4 grid of "
    "effective step x beta) ends with a higher validation accuracy than heavy ball at the "
    "default beta {default:g} with its learning rate tuned (16 effective steps), the same "
    "16 trials each, each seed scored by the trial chosen on the other seeds: the 95% "
    "interval of the paired difference (tuned beta - beta {default:g}) lies above {gain:g}."
)
READING_C15 = (
    "The downside McCaffrey names is that beta is a free parameter that 'you have to use "
    "trial and error to find'. That is false in practice if the usual default, tuned "
    "learning rate and all, does as well as a tuned beta under the same budget; it is "
    "true if tuning beta buys a result the default cannot reach. The secondary "
    "conditions measure the budget itself: Dodge et al.'s expected best validation "
    "accuracy against the number of random trials, for the default and for tuned beta, "
    "from independent random draws (bands: bootstrap over trials and seeds)."
)


def methods(cfg: Config) -> list[comparison.Method]:
    """Heavy ball and Nesterov on the 2-D grid, beta 0.9 on the 1-D grid, and the two
    heavy-ball spaces again as random draws: the same number of trials each."""
    both = tuning.Space(effective=cfg.effective, one_minus_beta=cfg.one_minus_beta)
    fixed = tuning.Space(effective=cfg.effective, momentum=cfg.default)
    return [
        comparison.Method(HB, comparison.heavy_ball, both),
        comparison.Method(NAG, comparison.nesterov, both),
        comparison.Method(DEFAULT, comparison.heavy_ball, fixed),
        comparison.Method(
            RANDOM[DEFAULT],
            comparison.heavy_ball,
            dataclasses.replace(fixed, grid=False, draw_seed=1),
        ),
        comparison.Method(
            RANDOM[HB], comparison.heavy_ball, dataclasses.replace(both, grid=False, draw_seed=2)
        ),
    ]


def robustness(val: np.ndarray, near: float) -> np.ndarray:
    """Per seed, the share of trials whose final loss is within ``near`` (relative) of the
    seed's best trial; ``val`` is (trials, seeds), non-finite counts as never near."""
    val = np.where(np.isfinite(val), val, np.inf)
    return (val <= (1 + near) * val.min(0)).mean(0)


def diverged_per_seed(trials: comparison.Trials) -> np.ndarray:
    """Per seed, the trials whose training loss diverged (``race.diverged_runs``)."""
    return race.diverged_runs(trials.curves.train_loss).sum(0)


class Arm(NamedTuple):
    """One task's trials of every method and the C4 race (heavy ball and Nesterov)."""

    runs: dict[str, comparison.Trials]
    race: dict[str, race.Entry]


class Measured(NamedTuple):
    """The MLP arm, the CNN arm (``None`` if not run) and C15's numbers: per method the
    robustness share and diverged trials per seed, the cross-fitted validation accuracies,
    the expected-best curves with their bands and the expected best at the budget per seed."""

    mlp: Arm
    cnn: Arm | None
    robust: dict[str, np.ndarray]
    diverged: dict[str, np.ndarray]
    accuracy: dict[str, np.ndarray]
    expected: dict[str, tuple]
    at_budget: dict[str, np.ndarray]


def arm(cfg: Config, task: tasks.Task, trials: int, seeds: int, schedule, key, ms) -> Arm:
    """One task's trials of ``ms`` (one compile) and the C4 race between heavy ball and
    Nesterov to heavy ball's target."""
    runs = dict(
        zip(
            [m.name for m in ms],
            comparison.run(ms, task, trials=trials, seeds=seeds, key=key, schedule=schedule),
        )
    )
    entries = race.race({n: runs[n] for n in (HB, NAG)}, HB, fraction=cfg.target_at)
    return Arm(runs, entries)


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> Measured:
    """Every method's trials (one compile), C4's race, C15's cross-fitted accuracies and
    expected-best curves; the CNN race where the configuration asks for it."""
    ms = methods(cfg)
    status(f"{len(ms)} methods x {cfg.trials} trials x {cfg.seeds} seeds")
    mlp = arm(cfg, tasks.mnist1d_mlp(), cfg.trials, cfg.seeds, cfg.schedule, key, ms)
    cnn = None
    if cfg.cnn_trials:
        status(f"CNN: heavy ball and Nesterov x {cfg.cnn_trials} trials x {cfg.cnn_seeds} seeds")
        cnn = arm(
            cfg, tasks.mnist1d_cnn(), cfg.cnn_trials, cfg.cnn_seeds, cfg.cnn_schedule, key, ms[:2]
        )
    runs = mlp.runs
    k = np.arange(1, cfg.trials + 1)
    drawn = {  # the random draws' final validation accuracies, (trials, seeds)
        name: np.asarray(runs[RANDOM[name]].curves.val_accuracy[..., -1], np.float64)
        for name in RANDOM
    }
    return Measured(
        mlp,
        cnn,
        robust={
            m: robustness(comparison.final(runs[m].curves.val_loss), cfg.near) for m in (HB, NAG)
        },
        diverged={m: diverged_per_seed(runs[m]) for m in (HB, NAG)},
        accuracy={m: budget_lib.crossfit_accuracy(runs[m]) for m in (HB, DEFAULT)},
        expected={m: budget_lib.expected_band(a, k, cfg.resamples) for m, a in drawn.items()},
        at_budget={m: budget_lib.per_seed_expected(a, cfg.budget) for m, a in drawn.items()},
    )


def judge_c4(
    steps: dict[str, race.Arrival],
    robust: dict[str, np.ndarray],
    diverged: dict[str, np.ndarray],
    cfg: Config,
    cnn_steps: dict[str, race.Arrival] | None = None,
) -> verdicts.Verdict:
    """C4's verdict from per-seed arrivals, robustness and diverged counts of heavy ball
    and Nesterov (and, where run, their arrivals on the CNN: secondary)."""
    primary = verdicts.Condition(
        "steps to target, Nesterov / heavy ball",
        race.ratio(steps[NAG], steps[HB]),
        cfg.speedup,
        verdicts.BELOW,
    )
    secondary = [
        verdicts.Condition(
            f"share of trials within {cfg.near:.0%} of the best, Nesterov - heavy ball",
            stats.paired_difference(robust[NAG], robust[HB]),
            0.0,
            verdicts.ABOVE,
        ),
        verdicts.Condition(
            "diverged trials, heavy ball - Nesterov",
            stats.paired_difference(diverged[HB], diverged[NAG]),
            0.0,
            verdicts.ABOVE,
        ),
    ]
    if cnn_steps:
        secondary.append(
            verdicts.Condition(
                "1-D CNN: steps to target, Nesterov / heavy ball",
                race.ratio(cnn_steps[NAG], cnn_steps[HB]),
                cfg.speedup,
                verdicts.BELOW,
            )
        )
    return verdicts.judge(primary, secondary)


def judge_c15(
    accuracy: dict[str, np.ndarray], at_budget: dict[str, np.ndarray], cfg: Config
) -> verdicts.Verdict:
    """C15's verdict from per-seed cross-fitted validation accuracies of tuned beta and the
    default (``HB``, ``DEFAULT``) and their per-seed expected best at ``cfg.budget``
    random trials."""
    primary = verdicts.Condition(
        f"validation accuracy, tuned beta - beta {cfg.default:g} (lr tuned in both)",
        stats.paired_difference(accuracy[HB], accuracy[DEFAULT]),
        cfg.gain,
        verdicts.ABOVE,
    )
    secondary = [
        verdicts.Condition(
            f"expected best validation accuracy of {cfg.budget} random trials, tuned beta - "
            f"beta {cfg.default:g}",
            stats.paired_difference(at_budget[HB], at_budget[DEFAULT]),
            0.0,
            verdicts.ABOVE,
        )
    ]
    return verdicts.judge(primary, secondary)


def figure(numbers: Measured, cfg: Config, out: pathlib.Path) -> list[str]:
    fig, (ax, ax2, ax3) = plotting.figure(
        3, title="C4 / C15: heavy ball, Nesterov and the default beta (MNIST-1D MLP)"
    )
    entries, runs = numbers.mlp.race, numbers.mlp.runs
    target = entries[HB].target
    plotting.seed_bands(
        ax,
        cfg.schedule.eval_steps,
        {m: e.curves.train_loss for m, e in entries.items()},
        ylabel="loss on the training subset",
        logy=True,
        title=f"C4: scored trials; target {target:.3g} (dashed)",
    )
    ax.axhline(target, color="k", ls="--", lw=0.8)
    plotting.trials_by_step(
        ax2,
        {m: (runs[m].effective, runs[m].final_mean("val_loss")) for m in (HB, NAG)},
        ylabel="final validation loss (seed mean)",
        title="C4: every trial, mean of seeds (x: diverged)",
    )
    k = np.arange(1, cfg.trials + 1)
    for i, (name, (mean, low, high)) in enumerate(numbers.expected.items()):
        ax3.plot(k, mean, color=f"C{i}", label=RANDOM[name])
        ax3.fill_between(k, low, high, color=f"C{i}", alpha=0.25, lw=0)
    ax3.set(
        xscale="log",
        xlabel="number of random trials k",
        ylabel="expected best validation accuracy",
        title="C15: expected best of k trials (band: trials, seeds)",
    )
    ax3.legend(fontsize=7)
    ax3.grid(alpha=0.3)
    return [plotting.save(fig, out, "c4_c15_nesterov.png")]


def c4_rows(one: Arm, key: str = "") -> tuple[list[dict], list[str]]:
    """C4's table rows of one arm (``key``: "" the MLP, "cnn") and its edge picks."""
    rows, edges = [], []
    for m, e in one.race.items():
        sel = one.runs[m].pick(e.overall)
        label = f"{m} (1-D CNN)" if key else m
        rows.append(
            {
                "method": label,
                "lr": sel.setting["lr"],
                "beta": sel.setting["momentum"],
                "lr / (1 - beta)": sel.setting["lr"] / (1 - sel.setting["momentum"]),
                "steps to target": e.arrival.cell(),
                "final training loss": stats.mean(comparison.final(e.curves.train_loss)),
                "test accuracy": stats.mean(np.asarray(e.curves.test_accuracy)),
                "diverged runs": e.diverged,
            }
        )
        edges += [f"{label}: {', '.join(sel.edge)}"] if sel.edge else []
    return rows, edges


def describe(
    numbers: Measured, v4: verdicts.Verdict, v15: verdicts.Verdict, plots: list[str], cfg: Config
) -> list[report.Finding]:
    setup = (
        f"MNIST-1D (8,000 train / 2,000 validation / 2,000 test), 40-100-100-10 ReLU MLP, "
        f"{cfg.schedule.steps} steps of batch {cfg.schedule.batch_size}, evaluations every "
        f"{cfg.schedule.eval_every} steps, {cfg.seeds} seeds (same initialisation and "
        "batches for every trial). All five methods in one compile. " + race.rule(cfg.target_at)
    )
    budget = (
        f"{cfg.trials} trials per method: heavy ball and Nesterov on "
        f"{race.grid(cfg.trials, cfg.effective, cfg.one_minus_beta)}; beta {cfg.default:g} "
        f"on {cfg.trials} log-spaced effective steps in {report.listing(cfg.effective)}; "
        f"the random arms draw {cfg.trials} points uniformly in the same log spaces."
    )
    rows4, edges = c4_rows(numbers.mlp)
    if numbers.cnn:
        more, more_edges = c4_rows(numbers.cnn, "cnn")
        rows4, edges = rows4 + more, edges + more_edges
        c = cfg.cnn_schedule
        setup += (
            f" 1-D CNN arm (three convolutions of 16 channels, width 5, stride 2): heavy "
            f"ball and Nesterov on the same grid, {c.steps} steps, {cfg.cnn_seeds} seeds."
        )
    for row, m in zip(rows4, (HB, NAG)):
        row[f"share within {cfg.near:.0%}"] = stats.mean(numbers.robust[m])
    rows15 = [
        {
            "method": m,
            "validation accuracy (cross-fitted pick)": stats.mean(numbers.accuracy[m]),
            "expected best, 1 random trial": float(numbers.expected[m][0][0]),
            f"{cfg.budget} random trials": stats.mean(numbers.at_budget[m]),
            f"{cfg.trials} random trials": float(numbers.expected[m][0][-1]),
        }
        for m in (DEFAULT, HB)
    ]
    c4 = report.Finding(
        id="C4",
        reading=READING_C4.format(near=cfg.near),
        setup=setup,
        budget=budget,
        primary=PRIMARY_C4.format(speedup=cfg.speedup, target_at=cfg.target_at),
        headline=f"steps ratio Nesterov / heavy ball {v4.primary[0].estimate}",
        table=rows4,
        plots=plots,
        verdict=v4,
        notes=report.edge_note(edges),
        horizon=horizon.describe(
            numbers.mlp.race[HB].curves.val_loss,
            cfg.schedule,
            tasks.mnist1d_mlp().data.x_train.shape[0],
            HB,
        ),
        metrics={
            "target": numbers.mlp.race[HB].target,
            "steps": {m: e.arrival.steps for m, e in numbers.mlp.race.items()},
            "censored": {m: e.arrival.censored for m, e in numbers.mlp.race.items()},
            "robust": numbers.robust,
            "diverged": numbers.diverged,
            "compiles": COMPILES,
        },
    )
    c15 = report.Finding(
        id="C15",
        reading=READING_C15,
        setup=setup,
        budget=budget,
        primary=PRIMARY_C15.format(default=cfg.default, gain=cfg.gain),
        headline=f"validation accuracy, tuned beta - beta {cfg.default:g}: "
        f"{v15.primary[0].estimate}",
        table=rows15,
        plots=plots,
        verdict=v15,
        notes="The same runs as C4 (one compile feeds both claims).",
        metrics={
            "accuracy": numbers.accuracy,
            "expected": {m: e[0] for m, e in numbers.expected.items()},
            "at_budget": numbers.at_budget,
        },
    )
    return [c4, c15]


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    numbers = measure(cfg, key, status)
    cnn = numbers.cnn
    v4 = judge_c4(
        {m: e.arrival for m, e in numbers.mlp.race.items()},
        numbers.robust,
        numbers.diverged,
        cfg,
        {m: e.arrival for m, e in cnn.race.items()} if cnn else None,
    )
    v15 = judge_c15(numbers.accuracy, numbers.at_budget, cfg)
    return describe(numbers, v4, v15, figure(numbers, cfg, out), cfg)
