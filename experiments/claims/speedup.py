"""Steps to a training-loss target set by a tuned reference: the measure, judge and figure
panels that E2 (momentum variants), E4 (SRSGD) and E5 (cautious momentum) share.

Measure: every method's trials on every seed (one compile per group of methods whose
states share one structure); each method's target is the mean final full-training-set
loss of its reference method at the reference's best trial (lowest final training
loss); each method is then selected by its steps to that target (AlgoPerf's
time-to-result) and its per-seed steps kept. Judge: per pair of methods (method,
reference), the paired ratio of censored steps against a speed-up threshold, with the
test-accuracy difference beside it (secondary).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from collections.abc import Sequence
from typing import NamedTuple
from typing import Protocol

import jax
import numpy as np

from experiments import comparison
from experiments import loop
from experiments import plotting
from experiments import tasks as tasks_lib
from experiments.protocol import stats
from experiments.protocol import verdicts

Pairs = Mapping[str, tuple[str, str]]  # condition name -> (method, reference)


class Budget(Protocol):
    """What a claim's ``Config`` gives this module: trials per method, seeds, the schedule
    and the speed-up threshold of the steps ratio."""

    @property
    def trials(self) -> int: ...
    @property
    def seeds(self) -> int: ...
    @property
    def schedule(self) -> loop.Schedule: ...
    @property
    def speedup(self) -> float: ...


class Race(NamedTuple):
    """Every method's trials, its target, its trial that reaches the target soonest and that
    trial's per-seed steps to the target (``inf`` where a seed never reaches it)."""

    trials: dict[str, comparison.Trials]
    targets: dict[str, float]
    selected: dict[str, comparison.Selected]
    steps: dict[str, np.ndarray]

    @property
    def test(self) -> dict[str, np.ndarray]:
        """Per method, the selected trial's test accuracy per seed."""
        return {name: sel.curves.test_accuracy for name, sel in self.selected.items()}


def censored(steps: np.ndarray, schedule: loop.Schedule) -> np.ndarray:
    """Steps to target with "never" counted as one evaluation past the end."""
    return np.where(np.isfinite(steps), steps, schedule.steps + schedule.eval_every)


def tuned_loss(trials: comparison.Trials) -> float:
    """The mean final training loss of the trial with the lowest one: a method's target."""
    best = comparison.select_by_train_loss(trials)
    return float(comparison.final(best.curves.train_loss).mean())


def measure(
    groups: Sequence[Sequence[comparison.Method]],
    task: tasks_lib.Task,
    reference: str | Mapping[str, str],
    cfg: Budget,
    key: jax.Array,
    *,
    label: str,
    status=lambda _: None,
) -> Race:
    """Runs each group of methods in one compile (``cfg.trials`` each, every trial on every
    seed); ``reference`` names the method whose tuned final training loss is every
    method's target, or maps each method to its own reference."""
    runs: dict[str, comparison.Trials] = {}
    for group in groups:
        names = ", ".join(m.name for m in group)
        status(f"{label}: {names}: {cfg.trials} trials x {cfg.seeds} seeds each")
        out = comparison.run(
            list(group), task, trials=cfg.trials, seeds=cfg.seeds, key=key, schedule=cfg.schedule
        )
        runs.update({m.name: t for m, t in zip(group, out)})
    of = {n: reference for n in runs} if isinstance(reference, str) else dict(reference)
    tuned = {ref: tuned_loss(runs[ref]) for ref in set(of.values())}
    targets = {name: tuned[of[name]] for name in runs}
    selected = {
        name: comparison.select_by_steps_to(
            t, targets[name], metric="train_loss", higher_is_better=False
        )
        for name, t in runs.items()
    }
    steps = {
        name: comparison.steps_to(
            sel.curves.train_loss, targets[name], cfg.schedule.eval_steps, higher_is_better=False
        )
        for name, sel in selected.items()
    }
    return Race(runs, targets, selected, steps)


def ratio(
    steps: Mapping[str, np.ndarray], method: str, reference: str, cfg: Budget
) -> verdicts.Condition:
    """The paired ratio of censored steps (method / reference), wanted below ``cfg.speedup``."""
    method_steps, reference_steps = (censored(steps[n], cfg.schedule) for n in (method, reference))
    return verdicts.Condition(
        f"steps to target, {method} / {reference}",
        stats.paired_ratio(method_steps, reference_steps),
        cfg.speedup,
        verdicts.BELOW,
    )


def judge(
    steps: Mapping[str, np.ndarray],
    test: Mapping[str, np.ndarray],
    cfg: Budget,
    primary: Pairs,
    secondary: Pairs | None = None,
) -> verdicts.Verdict:
    """Per-seed steps to target and test accuracies -> verdict: one primary condition per
    pair in ``primary`` (several: ``judge_depends``), the steps ratios of ``secondary``
    and the test-accuracy difference of every pair reported beside them."""
    secondary = dict(secondary or {})
    named = {k: ratio(steps, a, b, cfg) for k, (a, b) in primary.items()}
    extra = [ratio(steps, a, b, cfg) for a, b in secondary.values()]
    extra += [
        verdicts.Condition(
            f"test accuracy, {a} - {b}",
            stats.paired_difference(test[a], test[b]),
            0.0,
            verdicts.ABOVE,
        )
        for a, b in {**primary, **secondary}.values()
    ]
    if len(named) == 1:
        return verdicts.judge(next(iter(named.values())), extra)
    return verdicts.judge_depends(named, extra)


def ratios(conditions: Sequence[verdicts.Condition]) -> str:
    """``"A / B 0.8 [0.7, 0.9]; ..."``: the steps ratios of a verdict, for its headline."""
    return "; ".join(f"{c.text.split(', ')[1]} {c.estimate}" for c in conditions)


def table(
    race: Race, schedule: loop.Schedule, momentum: Mapping[str, str] | None = None
) -> tuple[list[dict], list[str]]:
    """One row per method (its selected setting, target, steps, final training loss, test
    accuracy; ``momentum`` overrides the momentum cell of a method without a tuned one)
    and the selections on the edge of their space."""
    momentum = momentum or {}
    rows, edges = [], []
    for name, sel in race.selected.items():
        rows.append(
            {
                "method": name,
                "lr": sel.setting["lr"],
                "momentum": momentum.get(name, sel.setting["momentum"]),
                "target": race.targets[name],
                "steps to target": stats.mean(censored(race.steps[name], schedule)),
                "final training loss": stats.mean(sel.curves.train_loss[:, -1]),
                "test accuracy": stats.mean(sel.curves.test_accuracy),
            }
        )
        edges += [f"{name}: {', '.join(sel.edge)}"] if sel.edge else []
    return rows, edges


def curves_panel(
    ax, race: Race, schedule: loop.Schedule, names: Sequence[str], title: str = ""
) -> None:
    """The selected trials' full training loss over steps (seed bands), the targets dashed."""
    plotting.seed_bands(
        ax,
        schedule.eval_steps,
        {n: race.selected[n].curves.train_loss for n in names},
        ylabel="loss on the full training set",
        logy=True,
        title=title or "selected trials; target dashed",
    )
    for target in sorted({race.targets[n] for n in names}):
        ax.axhline(target, color="k", ls="--", lw=0.8)


def figure(
    race: Race, cfg: Budget, out: pathlib.Path, *, title: str, name: str, reference: str
) -> list[str]:
    """The selected trials' training curves (``reference``'s target dashed) beside every
    trial's final training loss; saved as ``out/name``."""
    fig, (ax, ax2) = plotting.figure(2, title=title)
    target = race.targets[reference]
    curves_panel(
        ax,
        race,
        cfg.schedule,
        list(race.selected),
        f"selected trials; target {target:.3g} (dashed)",
    )
    trials_panel(ax2, race)
    return [plotting.save(fig, out, name)]


def metrics(race: Race) -> dict:
    """What ``metrics.json`` keeps of a race: targets, per-seed steps, selected settings."""
    return {
        "targets": race.targets,
        "steps": race.steps,
        "settings": {n: s.setting for n, s in race.selected.items()},
    }


def trials_panel(ax, race: Race) -> None:
    """Every trial's mean final training loss against its learning rate (*: selected, x at
    the top: diverged)."""
    for name, trials in race.trials.items():
        lr = trials.table["lr"]
        loss = comparison.final(trials.curves.train_loss).mean(-1)
        color = plotting.COLORS.get(name)
        ax.plot(lr, np.where(np.isfinite(loss), loss, np.nan), "o", color=color, label=name)
        ax.plot(lr[~np.isfinite(loss)], np.full((~np.isfinite(loss)).sum(), 2.5), "x", color=color)
        pick = race.selected[name].index
        ax.plot(lr[pick], loss[pick], "*", ms=13, color=color, mec="k")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate",
        ylabel="final training loss (mean over seeds)",
        title="every trial (*: selected, x at top: diverged)",
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
