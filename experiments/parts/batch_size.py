"""C14's two arms: SGD and heavy ball tuned per batch size, on MNIST-1D and on the NQM.

Per batch size (``Arm``: its own ``loop.Schedule`` and learning-rate range), SGD and heavy
ball run in ONE compile (``comparison.heavy_ball``: the momentum is a traced column, 0 for
SGD), each with the same number of trials on a log grid that is the same in the effective
step size ``lr / (1 - beta)`` (heavy ball's learning rates are SGD's times ``1 - beta``).
Every trial is scored by its steps to a fixed validation-accuracy target (AlgoPerf's
time-to-result; Shallue et al. 2019's steps to a fixed goal across batch sizes) under the
race's rule (``protocol.race.fastest``: interpolated crossings, censored runs flagged,
each seed scored by the trial chosen on the other seeds). The NQM arm
(``measure_nqm``) does the same on the noisy quadratic model's exact expected loss. Also:
the panels and report pieces C14 draws for both arms, and the MNIST-1D arm's cost in units.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import numpy as np

from .. import comparison
from .. import loop
from .. import noisy_quadratic as nqm
from .. import plotting
from .. import report
from .. import sweeps
from .. import tasks
from ..protocol import race
from ..protocol import stats
from ..protocol import tuning

METHODS = ("SGD", "heavy ball")
EVAL_UNITS = 40  # one evaluation (2,000 + 2,000 examples), in batch-32 MNIST-1D steps


@dataclasses.dataclass(frozen=True)
class Arm:
    """One batch size: its schedule and SGD's learning-rate range (= heavy ball's range of
    ``lr / (1 - beta)``)."""

    schedule: loop.Schedule
    lr: tuple[float, float]

    @property
    def batch(self) -> int:
        return self.schedule.batch_size


def methods(arm: Arm, momentum: float) -> list[comparison.Method]:
    """SGD and heavy ball over the same log grid of effective step sizes."""
    low, high = arm.lr
    return [
        comparison.Method("SGD", comparison.heavy_ball, tuning.Space(lr=(low, high), momentum=0.0)),
        comparison.Method(
            "heavy ball",
            comparison.heavy_ball,
            tuning.Space(lr=(low * (1 - momentum), high * (1 - momentum)), momentum=momentum),
        ),
    ]


class Pick(NamedTuple):
    """One (method, batch size) cell of the race: the lr picked on all seeds, the per-seed
    arrivals (``race.Arrival``), whether the pick sits on the edge of the grid, the scored
    runs' curves ``(seeds, evaluations)`` and, on MNIST-1D, their test accuracies."""

    lr: float
    steps: race.Arrival
    edge: bool
    curve: np.ndarray
    test: np.ndarray | None = None


class Batches(NamedTuple):
    """Every (method, batch size) cell's ``Pick`` and the evaluation steps per batch size."""

    selected: dict[tuple[str, int], Pick]
    eval_steps: dict[int, np.ndarray]

    def steps(self, method: str) -> dict[int, race.Arrival]:
        """Per batch size, ``method``'s per-seed arrivals."""
        return {b: s.steps for (m, b), s in self.selected.items() if m == method}


def select(trials: comparison.Trials, target: float) -> tuple[comparison.Selected, race.Fastest]:
    """The race to ``target`` in validation accuracy over a method's trials: the trial
    picked on all seeds (its settings) and the per-seed cross-fitted arrivals."""
    acc = np.asarray(trials.curves.val_accuracy, np.float64)
    pick = race.fastest(acc, target, trials.schedule.eval_steps, higher_is_better=True)
    return trials.pick(pick.overall), pick


def measure(
    arms: tuple[Arm, ...],
    *,
    trials: int,
    seeds: int,
    momentum: float,
    target: float,
    key: jax.Array,
    status=lambda _: None,
) -> Batches:
    """Per batch size and method: the trial picked on all seeds (its lr) and the per-seed
    arrivals at ``target`` (``race.Arrival``, censored seeds flagged), each seed scored by
    the trial chosen on the other seeds. One compile per batch size."""
    task = tasks.mnist1d_mlp()
    selected = {}
    for arm in arms:
        status(f"C14 MNIST-1D, batch {arm.batch}: {2 * trials} trials x {seeds} seeds")
        runs = comparison.run(
            methods(arm, momentum), task, trials=trials, seeds=seeds, key=key, schedule=arm.schedule
        )
        for method, trial in zip(METHODS, runs):
            sel, pick = select(trial, target)
            seed = np.arange(seeds)
            selected[method, arm.batch] = Pick(
                sel.setting["lr"],
                pick.arrival,
                bool(sel.edge),
                np.asarray(trial.curves.val_accuracy)[pick.chosen, seed],
                np.asarray(trial.curves.test_accuracy)[pick.chosen, seed],
            )
    return Batches(selected, {a.batch: a.schedule.eval_steps for a in arms})


def units(arms: tuple[Arm, ...], *, trials: int, seeds: int) -> int:
    """The arm's cost in the brief's units (batch-32 MNIST-1D MLP steps, evaluations
    included): both methods, every trial and seed."""
    per_run = [
        a.schedule.steps * step_units(a.batch) + len(a.schedule.eval_steps) * EVAL_UNITS
        for a in arms
    ]
    return round(2 * trials * seeds * sum(per_run))


def step_units(batch: int) -> float:
    """One step's cost in units: the brief's 1 / 3 / 20 at batch 32 / 256 / 2048,
    interpolated log-log between them."""
    return float(np.exp(np.interp(np.log(batch), np.log([32, 256, 2048]), np.log([1, 3, 20]))))


# ------------------------------------------------------------------------- the NQM arm


def nqm_table(cfg) -> dict[str, np.ndarray]:
    """C14's table: each method's ``trials`` learning rates x batch sizes, ``method`` 0/1."""
    lrs = tuning.trials(tuning.Space(lr=cfg.lr), cfg.trials)["lr"]
    table = sweeps.grid(method=[0, 1], batch=cfg.batch_sizes, lr=lrs)
    table["momentum"] = table["method"] * np.float32(cfg.momentum)
    return table


def measure_nqm(cfg, key: jax.Array) -> Batches:
    """C14 on the NQM (``cfg``: ``noise.Config``): expected-loss curves of every (method,
    batch, lr, seed) in one compile; per (method, batch) the lr reaching the target soonest
    under the race's rule (``race.fastest``: cross-fitted) and its per-seed arrivals."""
    h = nqm.curvatures(cfg.dim)
    table = nqm_table(cfg)

    def one(row, row_key):
        x0 = nqm.start(row_key, cfg.dim)
        return nqm.expected_loss(
            row["lr"],
            row["momentum"],
            h,
            x0,
            row["batch"],
            cfg.steps,
            noise=cfg.noise,
            every=cfg.every,
        )

    curves = sweeps.sweep(one, sweeps.with_seeds(table, cfg.seeds), key=key)
    shape = (2, len(cfg.batch_sizes), cfg.trials, cfg.seeds)
    curves = curves.reshape(*shape, -1)
    eval_steps = np.arange(0, cfg.steps + 1, cfg.every)
    lrs = table["lr"].reshape(shape[:3])
    selected = {}
    for m, method in enumerate(METHODS):
        for b, batch in enumerate(cfg.batch_sizes):
            pick = race.fastest(curves[m, b], cfg.target, eval_steps, higher_is_better=False)
            selected[method, batch] = Pick(
                float(lrs[m, b, pick.overall]),
                pick.arrival,
                pick.overall in (0, cfg.trials - 1),
                curves[m, b][pick.chosen, np.arange(cfg.seeds)],
            )
    return Batches(selected, {b: eval_steps for b in cfg.batch_sizes})


# -------------------------------------------------------------------------------- panels


def steps_panel(ax, selected: dict, batches: tuple[int, ...], *, ylabel: str, title: str) -> None:
    """Tuned steps to target against batch size, both methods, with 95% intervals over
    seeds, on log-log axes."""
    sizes = np.asarray(batches)
    for method in METHODS:
        ints = [selected[method, b].steps.mean() for b in batches]
        mean = np.array([i.mean for i in ints])
        err = np.abs(np.array([[i.low, i.high] for i in ints]).T - mean)
        ax.errorbar(
            sizes,
            mean,
            yerr=err,
            marker="o",
            capsize=3,
            label=method,
            color=plotting.COLORS["GD" if method == "SGD" else method],
        )
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel=ylabel, title=title)
    ax.set_xticks(sizes, [str(b) for b in batches])
    ax.minorticks_off()
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def curves_panel(
    ax, selected: dict, eval_steps: dict, *, ylabel: str, title: str, target: float, logy: bool
) -> None:
    """The tuned runs' curves (mean and 95% band over seeds) per batch size (color) and
    method (dashed: SGD), against step + 1 on a log axis; the target dotted."""
    batches = sorted({b for _, b in selected})
    for b, color in zip(batches, plotting.ordered_colors(np.log(batches))):
        for method, ls in zip(METHODS, ("--", "-")):
            mean, low, high = stats.band(selected[method, b].curve)
            x = np.asarray(eval_steps[b]) + 1
            ax.plot(x, mean, ls, color=color, label=f"{method}, batch {b}")
            ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)
    ax.axhline(target, color="k", lw=0.8, ls=":")
    ax.set(
        xscale="log",
        yscale="log" if logy else "linear",
        xlabel="step + 1",
        ylabel=ylabel,
        title=title,
    )
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)


# ------------------------------------------------------------------------ report pieces


def rows(problem: str, selected: dict, batches: tuple[int, ...]) -> list[dict]:
    """Table rows per batch size and method: tuned lr, steps to target with the censored
    seeds counted (and, where measured, the test accuracy)."""
    out = []
    for b in batches:
        for m in METHODS:
            s = selected[m, b]
            row = {
                "problem": problem,
                "batch": b,
                "method": m,
                "lr": s.lr,
                "steps to target": s.steps.cell(),
            }
            if s.test is not None:
                row["test accuracy"] = stats.mean(s.test)
            out.append(row)
    return out


def ratios(selected: dict, batches: tuple[int, ...]) -> dict[int, stats.Interval]:
    """Per batch size, the paired ratio of steps to target, heavy ball / SGD."""
    return {
        b: race.ratio(selected["heavy ball", b].steps, selected["SGD", b].steps) for b in batches
    }


def edges(problem: str, selected: dict) -> list[str]:
    """The selections on the edge of their learning-rate grid."""
    return [f"{problem}, {m}, batch {b}" for (m, b), s in selected.items() if s.edge]


def setup(arms: tuple[Arm, ...], *, momentum: float, seeds: int, accuracy: float) -> str:
    """The arm's setup sentence for the report."""
    runs = "; ".join(
        f"batch {a.batch}: {a.schedule.steps} steps, evaluated every {a.schedule.eval_every}"
        for a in arms
    )
    full = max(a.batch for a in arms) >= 2048
    return (
        f"MNIST-1D (8,000 train / 2,000 validation / 2,000 test), 40-100-100-10 ReLU MLP; "
        f"{runs}; heavy ball momentum {momentum:g}; {seeds} seeds (same initialisation "
        f"and batches for both methods). Steps to validation accuracy {accuracy:g} (the "
        "same target at every batch size, below what tuned SGD reaches at each within "
        "its steps), interpolated between evaluations; each seed scored by the trial "
        "chosen on the other seeds; a run that never arrives is censored at its horizon "
        "and counted in the table."
        + (
            ""
            if full
            else " This is the quick run's smaller arm (no batch 2048, fewer "
            "trials, a lower target): the full run tests batch 2048."
        )
    )


def budget(arms: tuple[Arm, ...], trials: int) -> str:
    return (
        f"MNIST-1D: {trials} log-spaced learning rates per method and batch size over "
        "the same range of the effective step lr / (1 - beta) (SGD's lr: "
        + ", ".join(f"batch {a.batch} {report.listing(a.lr)}" for a in arms)
        + ")"
    )
