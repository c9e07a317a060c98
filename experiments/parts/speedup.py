"""Steps to a training-loss target set by a tuned reference: the measure, judge and figure
panels that E2 (momentum variants), E4 (SRSGD) and E5 (cautious momentum) share.

Measure: every method's trials on every seed (one compile per group of methods whose
states share one structure), then the race (``protocol.race``): each reference's target is
its tuned trial's mean training-subset loss at ``cfg.target_at`` of the run, each
method's steps to it are interpolated between evaluations, every seed is scored by the
trial chosen on the other seeds, and runs that never arrive are censored at the horizon.
Judge: per pair of methods (method, reference), the paired ratio of steps against a
speed-up threshold (a bound where runs are censored), with the final-training-loss ratio
and the test-accuracy difference beside it (secondary).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from collections.abc import Sequence
from typing import NamedTuple
from typing import Protocol

import jax
import numpy as np

from .. import comparison
from .. import loop
from .. import plotting
from .. import tasks as tasks_lib
from ..parts import practice
from ..protocol import horizon as horizon_lib
from ..protocol import race as race_lib
from ..protocol import stats
from ..protocol import verdicts

Pairs = Mapping[str, tuple[str, str]]  # condition name -> (method, reference)


class Budget(Protocol):
    """What a claim's ``Config`` gives this module: trials per method, seeds, the schedule,
    the share of the reference's run that sets the target and the speed-up threshold."""

    @property
    def trials(self) -> int: ...
    @property
    def seeds(self) -> int: ...
    @property
    def schedule(self) -> loop.Schedule: ...
    @property
    def target_at(self) -> float: ...
    @property
    def speedup(self) -> float: ...
    @property
    def practice(self) -> bool: ...


class Race(NamedTuple):
    """Every method's trials and its entry in the race (``protocol.race.Entry``)."""

    trials: dict[str, comparison.Trials]
    entries: dict[str, race_lib.Entry]

    @property
    def targets(self) -> dict[str, float]:
        return {name: e.target for name, e in self.entries.items()}

    @property
    def steps(self) -> dict[str, race_lib.Arrival]:
        """Per method, its per-seed arrival at its target (censored seeds flagged)."""
        return {name: e.arrival for name, e in self.entries.items()}

    @property
    def test(self) -> dict[str, np.ndarray]:
        """Per method, the test accuracy per seed of the trial scored on that seed."""
        return {name: np.asarray(e.curves.test_accuracy) for name, e in self.entries.items()}

    @property
    def final_loss(self) -> dict[str, np.ndarray]:
        """Per method, the final training-subset loss per seed of its scored trial."""
        return {name: comparison.final(e.curves.train_loss) for name, e in self.entries.items()}


def measure(
    groups: Sequence[Sequence[comparison.Method]],
    task: tasks_lib.Task,
    reference: str | Mapping[str, str],
    cfg: Budget,
    key: jax.Array,
    *,
    label: str,
    practiced: Sequence[str] = (),
    decoupled: bool = False,
    status=lambda _: None,
) -> Race:
    """Runs each group of methods in one compile (``cfg.trials`` each, every trial on every
    seed) and races them; ``reference`` names the method whose tuned run sets every
    method's target, or maps each method to its own reference. With ``cfg.practice`` the
    methods named in ``practiced`` run again under the practice arm (``parts.practice``:
    warm-up + cosine, weight decay), named with its suffix, each raced to the target of
    its reference's practice arm (``decoupled``: the weight decay after the method,
    ``practice.wrap``)."""
    every = [m.name for group in groups for m in group]
    of = {n: reference for n in every} if isinstance(reference, str) else dict(reference)
    groups = [list(group) for group in groups]
    if cfg.practice and practiced:
        steps = cfg.schedule.steps
        missing = sorted({of[n] for n in practiced} - set(practiced))
        if missing:
            raise ValueError(
                f"practiced={sorted(practiced)} races each to its reference's practice arm, "
                f"but the references {missing} are not practiced; add them."
            )
        groups += [
            practice.arm([m for m in group if m.name in practiced], steps, decoupled=decoupled)
            for group in groups
        ]
        of.update({n + practice.SUFFIX: of[n] + practice.SUFFIX for n in practiced})
    runs: dict[str, comparison.Trials] = {}
    for group in filter(None, groups):
        names = ", ".join(m.name for m in group)
        status(f"{label}: {names}: {cfg.trials} trials x {cfg.seeds} seeds each")
        out = comparison.run(
            group, task, trials=cfg.trials, seeds=cfg.seeds, key=key, schedule=cfg.schedule
        )
        runs.update({m.name: t for m, t in zip(group, out)})
    return Race(runs, race_lib.race(runs, {n: of[n] for n in runs}, fraction=cfg.target_at))


def ratio(
    steps: Mapping[str, race_lib.Arrival], method: str, reference: str, cfg: Budget
) -> verdicts.Condition:
    """The paired ratio of steps (method / reference), wanted below ``cfg.speedup``."""
    return verdicts.Condition(
        f"steps to target, {method} / {reference}",
        race_lib.ratio(steps[method], steps[reference]),
        cfg.speedup,
        verdicts.BELOW,
    )


def judge(
    steps: Mapping[str, race_lib.Arrival],
    final_loss: Mapping[str, np.ndarray],
    test: Mapping[str, np.ndarray],
    cfg: Budget,
    primary: Pairs,
    secondary: Pairs | None = None,
) -> verdicts.Verdict:
    """Per-seed arrivals, final training losses and test accuracies -> verdict: one primary
    condition per pair in ``primary`` (several: ``judge_depends``); the steps ratios of
    ``secondary``, and every pair's final-loss ratio and test-accuracy difference, beside."""
    secondary = dict(secondary or {})
    secondary.update(
        {
            k + practice.SUFFIX: (a + practice.SUFFIX, b + practice.SUFFIX)
            for k, (a, b) in primary.items()
            if a + practice.SUFFIX in steps and b + practice.SUFFIX in steps
        }
    )
    named = {k: ratio(steps, a, b, cfg) for k, (a, b) in primary.items()}
    extra = [ratio(steps, a, b, cfg) for a, b in secondary.values()]
    pairs = {**primary, **secondary}.values()
    extra += [
        verdicts.Condition(
            f"final training loss, {a} / {b}",
            stats.paired_ratio(final_loss[a], final_loss[b]),
            1.0,
            verdicts.BELOW,
        )
        for a, b in pairs
    ]
    extra += [
        verdicts.Condition(
            f"test accuracy, {a} - {b}",
            stats.paired_difference(test[a], test[b]),
            0.0,
            verdicts.ABOVE,
        )
        for a, b in pairs
    ]
    if len(named) == 1:
        return verdicts.judge(next(iter(named.values())), extra)
    return verdicts.judge_depends(named, extra)


def ratios(conditions: Sequence[verdicts.Condition]) -> str:
    """``"A / B 0.8 [0.7, 0.9]; ..."``: the steps ratios of a verdict, for its headline."""
    return "; ".join(f"{c.text.split(', ')[1]} {c.estimate}" for c in conditions)


def table(race: Race, momentum: Mapping[str, str] | None = None) -> tuple[list[dict], list[str]]:
    """One row per method (the setting its rule picks on all seeds, target, steps with the
    censored seeds, final training loss, test accuracy, diverged runs; ``momentum``
    overrides the momentum cell of a method without a tuned one) and the picks on the
    edge of their space (in effective step too)."""
    momentum = momentum or {}
    rows, edges = [], []
    for name, entry in race.entries.items():
        trials = race.trials[name]
        sel = trials.pick(entry.overall)
        beta = sel.setting["momentum"]
        rows.append(
            {
                "method": name,
                "lr": sel.setting["lr"],
                "momentum": momentum.get(name, beta),
                "lr / (1 - beta)": sel.setting["lr"] / (1 - beta),
                "target": entry.target,
                "steps to target": entry.arrival.cell(),
                "final training loss": stats.mean(race.final_loss[name]),
                "test accuracy": stats.mean(race.test[name]),
                "diverged runs": f"{entry.diverged}/{trials.table['lr'].size * trials.seeds}",
            }
        )
        edges += [f"{name}: {', '.join(sel.edge)}"] if sel.edge else []
    return rows, edges


def curves_panel(
    ax, race: Race, schedule: loop.Schedule, names: Sequence[str], title: str = ""
) -> None:
    """The selected trials' training-subset loss over steps (seed bands), the targets dashed."""
    plotting.seed_bands(
        ax,
        schedule.eval_steps,
        {n: race.entries[n].curves.train_loss for n in names},
        ylabel="loss on the training subset",
        logy=True,
        title=title or "scored trials; target dashed",
    )
    for target in sorted({race.targets[n] for n in names}):
        ax.axhline(target, color="k", ls="--", lw=0.8)


def figure(
    race: Race, cfg: Budget, out: pathlib.Path, *, title: str, name: str, reference: str
) -> list[str]:
    """The selected trials' training curves (``reference``'s target dashed) beside every
    trial's final training loss; saved as ``out/name``."""
    practiced = [n for n in race.entries if n not in practice.main(race.entries)]
    fig, axes = plotting.figure(3 if practiced else 2, title=title)
    target = race.targets[reference]
    curves_panel(
        axes[0],
        race,
        cfg.schedule,
        practice.main(race.entries),
        f"scored trials; target {target:.3g} (dashed)",
    )
    if practiced:
        curves_panel(axes[2], race, cfg.schedule, practiced, "practice arm: scored trials")
    trials_panel(axes[1], race)
    return [plotting.save(fig, out, name)]


def horizon(race: Race, cfg: Budget, reference: str, task: tasks_lib.Task) -> str:
    """The horizon sentence (``protocol.horizon``) of ``reference``'s scored trials."""
    curves = race.entries[reference].curves.val_loss
    return horizon_lib.describe(curves, cfg.schedule, task.data.x_train.shape[0], reference)


def metrics(race: Race) -> dict:
    """What ``metrics.json`` keeps of a race: targets, per-seed steps and censoring, the
    trials scored on each seed, diverged runs, the settings picked on all seeds."""
    return {
        "targets": race.targets,
        "steps": {n: e.arrival.steps for n, e in race.entries.items()},
        "censored": {n: e.arrival.censored for n, e in race.entries.items()},
        "chosen": {n: e.chosen for n, e in race.entries.items()},
        "diverged": {n: e.diverged for n, e in race.entries.items()},
        "settings": {n: race.trials[n].pick(e.overall).setting for n, e in race.entries.items()},
    }


def trials_panel(ax, race: Race) -> None:
    """Every trial's mean final training loss against its effective step (*: picked on all
    seeds, x at the cap: diverged)."""
    main = practice.main(race.trials)
    plotting.trials_by_step(
        ax,
        {n: (race.trials[n].effective, race.trials[n].final_mean("train_loss")) for n in main},
        ylabel="final training loss (seed mean)",
        title="every trial (*: picked, x: diverged)",
        picks={n: race.entries[n].overall for n in main},
    )
    ax.set_yscale("log")
