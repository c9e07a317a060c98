"""C4 and C15: Nesterov against heavy ball, and the cost of tuning the momentum, on MNIST-1D.

Measure: SGD (lr tuned), heavy ball and Nesterov (lr and beta tuned over log lr x
log(1 - beta)), the same number of trials each, every trial on every seed, in one
compiled function (the three share one state structure; SGD is traced momentum 0).
C4 judges Nesterov against heavy ball: steps to a validation-accuracy target set by
tuned heavy ball (AlgoPerf's time-to-result), each method at its own fastest trial,
with robustness (the share of trials near the best) and diverged trials beside it, and
(where the configuration asks for it) the same comparison on the 1-D CNN as a secondary.
C15 judges the cost of the free momentum factor: Dodge et al.'s expected best
validation accuracy against the number of trials, per seed, and the trials each
method needs to come within a tolerance of its own best.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import numpy as np

from experiments import comparison
from experiments import loop
from experiments import plotting
from experiments import report
from experiments import tasks
from experiments.protocol import stats
from experiments.protocol import tuning
from experiments.protocol import verdicts

NAME = "nesterov"
CLAIMS = ("C4", "C15")
METHODS = ("SGD", "heavy ball", "Nesterov")
EVAL_UNITS = 250  # the brief's cost of one evaluation pass, in batch-32 steps
COMPILES = 1


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 5
    trials: int = 13  # per method
    schedule: loop.Schedule = loop.Schedule(steps=1000, batch_size=32, eval_every=200)
    lr: tuple[float, float] = (1e-3, 1.0)
    one_minus_beta: tuple[float, float] = (0.01, 0.5)  # beta in [0.5, 0.99]
    target_at: float = 0.6  # C4: target = tuned heavy ball's accuracy at this share of the run
    speedup: float = 0.8  # C4 primary: steps ratio Nesterov / heavy ball below this
    near: float = 0.1  # C4 robustness: final val loss within 10% of the seed's best trial
    tolerance: float = 0.02  # C15: expected best within 2 points of accuracy of the best
    extra: float = 1.0  # C15 primary: heavy ball needs more than this many extra trials
    budgets: int = 400  # C15: resolution of the real-valued budget k
    # C4 on the 1-D CNN (secondary; 0 trials: not run): heavy ball and Nesterov only
    cnn_trials: int = 4
    cnn_seeds: int = 3
    cnn_schedule: loop.Schedule = loop.Schedule(steps=600, batch_size=32, eval_every=100)


QUICK = Config(
    seeds=3,
    trials=5,
    schedule=loop.Schedule(steps=500, batch_size=32, eval_every=100),
    cnn_trials=0,
)
FULL = Config()

PRIMARY_C4 = (
    "Nesterov, at its own fastest trial, reaches the validation-accuracy target "
    "(the mean validation accuracy of heavy ball's validation-selected trial at "
    "{target_at:.0%} of the run) "
    "at least 20% sooner than heavy ball at its own fastest trial: the 95% interval "
    "of the paired ratio of steps (Nesterov / heavy ball) lies below {speedup:g}."
)
READING_C4 = (
    "'Faster' is read as time-to-result (AlgoPerf): steps until the validation "
    "accuracy reaches a target set by tuned heavy ball, each method tuned over the "
    "same space with the same trials. The target is what tuned heavy ball has "
    "reached part-way through the run, so a faster or a slower method is measured "
    "rather than censored at the end. 'More stable' is read as robustness to the "
    "hyper-parameters: the share of a method's trials whose final validation loss "
    "lies within {near:.0%} of its best trial on that seed, and the number of "
    "diverged trials; both are secondary, since one claim gets one primary condition "
    "and speed is the one the source states first."
)
PRIMARY_C15 = (
    "With momentum as a second free parameter, tuning takes more trials: the number "
    "of trials k at which heavy ball's expected best validation accuracy (Dodge et "
    "al. 2019) comes within {tolerance:g} of its own best trial exceeds SGD's (lr "
    "only, same number of trials) by more than {extra:g}: the 95% interval of the "
    "paired difference over seeds (heavy ball - SGD) lies above {extra:g}."
)
READING_C15 = (
    "The downside McCaffrey names is a cost: a second parameter found by trial and "
    "error. It is measured as the tuning budget needed, not as the final result: "
    "with the same number of trials for every method, the expected best of k "
    "trials drawn from them (k real, as Dodge et al.'s formula allows) is computed "
    "per seed, and k is the smallest budget whose expected best is within the "
    "tolerance of the method's best observed trial. The expected best at k = 1 (an "
    "untuned draw) is reported beside it. The verdict is relative to the declared "
    "spaces: SGD searches log lr alone, momentum the same lr range times log(1 - "
    "beta) for beta in [0.5, 0.99], the range a user would try."
)


def methods(cfg: Config) -> list[comparison.Method]:
    """SGD over lr; heavy ball and Nesterov over lr x (1 - beta): same trials each."""
    both = tuning.Space(lr=cfg.lr, one_minus_beta=cfg.one_minus_beta)
    return [
        comparison.Method("SGD", comparison.heavy_ball, tuning.Space(lr=cfg.lr)),
        comparison.Method("heavy ball", comparison.heavy_ball, both),
        comparison.Method("Nesterov", comparison.nesterov, both),
    ]


def units(cfg: Config) -> int:
    """Budget of ``measure`` in batch-32 MNIST-1D MLP steps (evaluations included)."""
    s = cfg.schedule
    runs = len(METHODS) * cfg.trials * cfg.seeds
    return runs * (s.steps * max(1, s.batch_size // 32) + len(s.eval_steps) * EVAL_UNITS)


def censored(steps: np.ndarray, schedule: loop.Schedule) -> np.ndarray:
    """Steps to target with "never" counted as one evaluation past the end."""
    return np.where(np.isfinite(steps), steps, schedule.steps + schedule.eval_every)


def robustness(val: np.ndarray, near: float) -> np.ndarray:
    """Per seed, the share of trials whose final loss is within ``near`` (relative) of the
    seed's best trial; ``val`` is (trials, seeds), non-finite counts as never near."""
    val = np.where(np.isfinite(val), val, np.inf)
    return (val <= (1 + near) * val.min(0)).mean(0)


def diverged(trials: comparison.Trials) -> np.ndarray:
    """Per seed, the trials whose final validation loss is non-finite or above its start."""
    loss = np.asarray(trials.curves.val_loss, np.float64)
    return (~np.isfinite(loss[..., -1]) | (loss[..., -1] > loss[..., 0])).sum(0)


def trials_needed(accuracy: np.ndarray, cfg: Config) -> np.ndarray:
    """Per seed, the smallest real budget k whose expected best (Dodge et al.) of the
    trials' final accuracies ``(trials, seeds)`` is within ``cfg.tolerance`` of the best."""
    k = np.geomspace(1, 10 * accuracy.shape[0], cfg.budgets)
    out = []
    for seed in np.asarray(accuracy, np.float64).T:
        curve = tuning.expected_best(seed, k, lower_is_better=False)
        out.append(
            k[
                np.argmax(
                    curve >= np.nanmax(np.where(np.isfinite(seed), seed, np.nan)) - cfg.tolerance
                )
            ]
        )
    return np.asarray(out)


def expected_curves(accuracy: np.ndarray, n: int) -> np.ndarray:
    """Per seed, the expected best final accuracy of k = 1..n trials: (seeds, n)."""
    return np.stack(
        [
            tuning.expected_best(seed, np.arange(1, n + 1), lower_is_better=False)
            for seed in np.asarray(accuracy, np.float64).T
        ]
    )


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> dict:
    """The three methods' trials (one compile); C4's target, choices and steps; C15's
    per-seed expected-best curves and trials needed."""
    status(f"{len(METHODS)} methods x {cfg.trials} trials x {cfg.seeds} seeds")
    runs = dict(
        zip(
            METHODS,
            comparison.run(
                methods(cfg),
                tasks.mnist1d_mlp(),
                trials=cfg.trials,
                seeds=cfg.seeds,
                key=key,
                schedule=cfg.schedule,
            ),
        )
    )
    target, fastest, steps = time_to_result(runs, cfg.schedule, cfg)
    cnn = {}
    if cfg.cnn_trials:
        status(f"CNN: heavy ball and Nesterov x {cfg.cnn_trials} trials x {cfg.cnn_seeds} seeds")
        cnn_runs = dict(
            zip(
                METHODS[1:],
                comparison.run(
                    methods(cfg)[1:],
                    tasks.mnist1d_cnn(),
                    trials=cfg.cnn_trials,
                    seeds=cfg.cnn_seeds,
                    key=key,
                    schedule=cfg.cnn_schedule,
                ),
            )
        )
        cnn = dict(
            zip(("target", "fastest", "steps"), time_to_result(cnn_runs, cfg.cnn_schedule, cfg))
        )
    accuracy = {m: np.asarray(r.curves.val_accuracy[..., -1], np.float64) for m, r in runs.items()}
    return {
        "runs": runs,
        "target": target,
        "fastest": fastest,
        "steps": steps,
        "cnn": cnn,
        "robust": {
            m: robustness(comparison.final(r.curves.val_loss), cfg.near) for m, r in runs.items()
        },
        "diverged": {m: diverged(r) for m, r in runs.items()},
        "needed": {m: trials_needed(a, cfg) for m, a in accuracy.items()},
        "expected": {m: expected_curves(a, cfg.trials) for m, a in accuracy.items()},
    }


def time_to_result(
    runs: dict[str, comparison.Trials], schedule: loop.Schedule, cfg: Config
) -> tuple[float, dict, dict]:
    """The target (tuned heavy ball's mean validation accuracy at ``cfg.target_at`` of the
    run), and heavy ball's and Nesterov's fastest trials with their censored steps to it."""
    tuned = comparison.select_by_validation_loss(runs["heavy ball"])
    at = int(np.argmin(np.abs(schedule.eval_steps - cfg.target_at * schedule.steps)))
    target = float(np.mean(tuned.curves.val_accuracy[:, at]))
    fastest, steps = {}, {}
    for name in ("heavy ball", "Nesterov"):
        fastest[name] = comparison.select_by_steps_to(runs[name], target)
        reached = comparison.steps_to(
            fastest[name].curves.val_accuracy, target, schedule.eval_steps, higher_is_better=True
        )
        steps[name] = censored(reached, schedule)
    return target, fastest, steps


def judge_c4(
    steps: dict[str, np.ndarray],
    robust: dict[str, np.ndarray],
    diverged_: dict[str, np.ndarray],
    cfg: Config,
    cnn_steps: dict[str, np.ndarray] | None = None,
) -> verdicts.Verdict:
    """C4's verdict from per-seed (censored) steps to target, robustness and diverged counts
    of "heavy ball" and "Nesterov" (and, where run, their steps on the CNN: secondary)."""
    hb, nag = "heavy ball", "Nesterov"
    primary = verdicts.Condition(
        "steps to target, Nesterov / heavy ball",
        stats.paired_ratio(steps[nag], steps[hb]),
        cfg.speedup,
        verdicts.BELOW,
    )
    secondary = [
        verdicts.Condition(
            f"share of trials within {cfg.near:.0%} of the best, Nesterov - heavy ball",
            stats.paired_difference(robust[nag], robust[hb]),
            0.0,
            verdicts.ABOVE,
        ),
        verdicts.Condition(
            "diverged trials, heavy ball - Nesterov",
            stats.paired_difference(diverged_[hb], diverged_[nag]),
            0.0,
            verdicts.ABOVE,
        ),
    ]
    if cnn_steps:
        secondary.append(
            verdicts.Condition(
                "1-D CNN: steps to target, Nesterov / heavy ball",
                stats.paired_ratio(cnn_steps[nag], cnn_steps[hb]),
                cfg.speedup,
                verdicts.BELOW,
            )
        )
    return verdicts.judge(primary, secondary)


def judge_c15(
    needed: dict[str, np.ndarray], first: dict[str, np.ndarray], cfg: Config
) -> verdicts.Verdict:
    """C15's verdict from per-seed trials needed and expected best at k = 1 of "SGD",
    "heavy ball" and "Nesterov"."""
    primary = verdicts.Condition(
        "trials needed, heavy ball - SGD",
        stats.paired_difference(needed["heavy ball"], needed["SGD"]),
        cfg.extra,
        verdicts.ABOVE,
    )
    secondary = [
        verdicts.Condition(
            "trials needed, Nesterov - SGD",
            stats.paired_difference(needed["Nesterov"], needed["SGD"]),
            cfg.extra,
            verdicts.ABOVE,
        ),
        verdicts.Condition(
            "expected best validation accuracy at k = 1, heavy ball - SGD",
            stats.paired_difference(first["heavy ball"], first["SGD"]),
            0.0,
            verdicts.ABOVE,
        ),
    ]
    return verdicts.judge(primary, secondary)


def figure(numbers: dict, cfg: Config, out: pathlib.Path) -> list[str]:
    fig, (ax, ax2, ax3) = plotting.figure(
        3, title="C4 / C15: SGD, heavy ball and Nesterov, same trials each (MNIST-1D MLP)"
    )
    plotting.seed_bands(
        ax,
        cfg.schedule.eval_steps,
        {m: sel.curves.val_accuracy for m, sel in numbers["fastest"].items()},
        ylabel="validation accuracy",
        title=f"C4: fastest trial of each; target {numbers['target']:.3f} (dashed)",
    )
    ax.axhline(numbers["target"], color="k", ls="--", lw=0.8)
    for m in ("heavy ball", "Nesterov"):
        r = numbers["runs"][m]
        loss = comparison.final(r.curves.val_loss)
        mean = np.where(np.isfinite(loss).all(-1), loss.mean(-1), np.nan)
        step = r.table["lr"] / (1 - r.table["momentum"])
        ax2.plot(
            step, np.minimum(mean, np.log(10)), "o", mfc="none", label=m, color=plotting.COLORS[m]
        )
        bad = ~np.isfinite(mean)
        ax2.plot(step[bad], np.full(bad.sum(), np.log(10)), "x", color=plotting.COLORS[m])
    ax2.set(
        xscale="log",
        xlabel="effective step lr / (1 - beta)",
        ylabel="final validation loss (nats; capped at ln 10)",
        title="C4: every trial, mean of seeds (x: diverged)",
    )
    ax2.legend(fontsize=7)
    ax2.grid(alpha=0.3)
    k = np.arange(1, cfg.trials + 1)
    plotting.seed_bands(
        ax3,
        k,
        numbers["expected"],
        xlabel="number of trials k",
        ylabel="expected best validation accuracy",
        title="C15: expected best of k trials (Dodge et al.)",
        colors={"SGD": plotting.COLORS["GD"]},
    )
    return [plotting.save(fig, out, "c4_c15_nesterov.png")]


def describe(
    numbers: dict, v4: verdicts.Verdict, v15: verdicts.Verdict, plots: list[str], cfg: Config
) -> list[report.Finding]:
    setup = (
        f"MNIST-1D (8,000 train / 2,000 validation / 2,000 test), 40-100-100-10 ReLU MLP, "
        f"{cfg.schedule.steps} steps of batch {cfg.schedule.batch_size}, validation "
        f"every {cfg.schedule.eval_every} steps, {cfg.seeds} seeds (same initialisation "
        "and batches for every trial). SGD, heavy ball and Nesterov in one compile."
    )
    budget = (
        f"{cfg.trials} trials per method: SGD on a log grid of lr in "
        f"{report.listing(cfg.lr)}; heavy ball and Nesterov on the same scrambled Halton "
        f"points of log lr in {report.listing(cfg.lr)} x log(1 - beta) in "
        f"{report.listing(cfg.one_minus_beta)}."
    )
    rows4, edges = [], []
    for m, sel in numbers["fastest"].items():
        rows4.append(
            {
                "method": m,
                "lr": sel.setting["lr"],
                "beta": sel.setting["momentum"],
                "steps to target": stats.mean(numbers["steps"][m]),
                f"share within {cfg.near:.0%}": stats.mean(numbers["robust"][m]),
                "diverged trials": stats.mean(numbers["diverged"][m]),
                "test accuracy": stats.mean(sel.curves.test_accuracy),
            }
        )
        edges += [f"{m}: {', '.join(sel.edge)}"] if sel.edge else []
    for m, sel in numbers["cnn"].get("fastest", {}).items():
        rows4.append(
            {
                "method": f"{m} (1-D CNN)",
                "lr": sel.setting["lr"],
                "beta": sel.setting["momentum"],
                "steps to target": stats.mean(numbers["cnn"]["steps"][m]),
                "test accuracy": stats.mean(sel.curves.test_accuracy),
            }
        )
        edges += [f"{m} (CNN): {', '.join(sel.edge)}"] if sel.edge else []
    if numbers["cnn"]:
        c = cfg.cnn_schedule
        setup += (
            f" Secondary: heavy ball and Nesterov on MNIST-1D's 1-D CNN (three "
            f"convolutions of 16 channels, width 5, stride 2), {cfg.cnn_trials} trials "
            f"each over the same space, {c.steps} steps of batch {c.batch_size}, "
            f"{cfg.cnn_seeds} seeds, target {numbers['cnn']['target']:.3f} set the same "
            "way."
        )
    rows15 = [
        {
            "method": m,
            "expected best, k = 1": stats.mean(numbers["expected"][m][:, 0]),
            f"k = {cfg.trials}": stats.mean(numbers["expected"][m][:, -1]),
            "trials needed": stats.mean(numbers["needed"][m]),
        }
        for m in METHODS
    ]
    notes = "A run that never reaches the target counts as one evaluation past the end. " + (
        "Fastest trial on the edge of the space: " + "; ".join(edges) + "." if edges else ""
    )
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
        notes=notes,
        metrics={
            "target": numbers["target"],
            "steps": numbers["steps"],
            "robust": numbers["robust"],
            "diverged": numbers["diverged"],
            "units": units(cfg),
            "compiles": COMPILES,
        },
    )
    c15 = report.Finding(
        id="C15",
        reading=READING_C15,
        setup=setup,
        budget=budget,
        primary=PRIMARY_C15.format(tolerance=cfg.tolerance, extra=cfg.extra),
        headline=f"trials needed, heavy ball - SGD {v15.primary[0].estimate}",
        table=rows15,
        plots=plots,
        verdict=v15,
        notes="The same runs as C4 (one set of trials feeds both claims).",
        metrics={"needed": numbers["needed"], "expected": numbers["expected"]},
    )
    return [c4, c15]


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    numbers = measure(cfg, key, status)
    v4 = judge_c4(
        numbers["steps"], numbers["robust"], numbers["diverged"], cfg, numbers["cnn"].get("steps")
    )
    v15 = judge_c15(numbers["needed"], {m: e[:, 0] for m, e in numbers["expected"].items()}, cfg)
    return describe(numbers, v4, v15, figure(numbers, cfg, out), cfg)
