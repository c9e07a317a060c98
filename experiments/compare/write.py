"""What a comparison writes: ``curves.png``, ``tuning.png``, ``REPORT.md`` and
``results.json`` (``FILES``), and how a later run knows them as a comparison's (``ours``).

Numbers in ``results.json`` that JSON cannot hold are the strings ``"inf"``, ``"-inf"`` and
``"nan"`` (``report.jsonable``): a diverged run's final loss reads ``"inf"``, as in
``REPORT.md``."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
from matplotlib.lines import Line2D

from .. import arguments
from .. import comparison
from .. import optimizers
from .. import outputs
from .. import plotting
from .. import report
from ..compare.options import NQM_DIM
from ..compare.options import Options
from ..compare.run import TARGET_AT
from ..compare.run import Summary
from ..compare.run import fields
from ..protocol import tuning

FILES = ("REPORT.md", "results.json", "curves.png", "tuning.png")
# how a comparison's results.json records its command: any of these, then the options
COMMANDS = (
    ["python", "-m", "experiments", "compare"],
    ["python", "-m", "momentum_optax.experiments", "compare"],
    ["momentum-optax", "compare"],
)
TITLE = "# Comparison on "  # REPORT.md's first line starts so


def command() -> list[str]:
    """This run's command, as ``results.json`` records it (one of ``COMMANDS``)."""
    return [*arguments.program().split(), "compare"]


def _by_compare(folder: pathlib.Path) -> bool:
    """``folder`` holds a comparison's results.json or REPORT.md."""
    command = outputs.json_field(folder / "results.json", "command")
    known = isinstance(command, list) and any(command[: len(c)] == c for c in COMMANDS)
    return known or outputs.first_line(folder / "REPORT.md").startswith(TITLE)


def ours() -> dict:
    """For each of ``FILES``: whether an existing file is a comparison's, which a new one
    may replace (a plot: where the folder holds a comparison's results.json or REPORT.md)."""
    return {name: lambda path: _by_compare(path.parent) for name in FILES}


def figures(
    args: Options, runs: list[comparison.Trials], numbers: Summary, out: pathlib.Path
) -> list[str]:
    curves = {f: name for f, name in fields(args.problem).items() if f != "test_accuracy"}
    colors = dict(zip((t.method for t in runs), plotting.distinct_colors(len(runs))))
    fig, axes = plotting.figure(
        len(curves),
        title=f"{args.problem}: each optimizer at its "
        f"selected trial, mean and 95% band over {args.seeds} seeds",
    )
    for ax, (field, label) in zip(axes, curves.items()):
        plotting.seed_bands(
            ax,
            runs[0].schedule.eval_steps,
            {s.method: getattr(s.curves, field) for s in numbers.selected},
            ylabel=label,
            logy=field != "val_accuracy",
            colors=colors,
        )
    names = [plotting.save(fig, out, "curves.png")]
    fig, (ax,) = plotting.figure(
        width=6.4, title=f"every trial: final {numbers.objective_name}, mean over seeds"
    )
    picks = {s.method: s.index for s in numbers.selected}
    for t in runs:
        color = colors[t.method]
        score = t.final_mean(numbers.objective)
        bad = ~np.isfinite(score)
        top = np.nanmax(np.where(bad, np.nan, score)) if (~bad).any() else 1.0
        ax.plot(t.table["lr"][~bad], score[~bad], "o", color=color, label=t.method)
        ax.plot(t.table["lr"][bad], np.full(bad.sum(), top), "x", color=color)
        pick = picks.get(t.method)
        if pick is not None and not bad[pick]:
            ax.plot(t.table["lr"][pick], score[pick], "*", ms=14, color=color, mec="k")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate",
        ylabel=f"final {numbers.objective_name}",
    )
    ax.grid(alpha=0.3)
    marks = [
        Line2D([], [], ls="", marker="*", ms=10, color="0.6", mec="k", label="selected trial"),
        Line2D([], [], ls="", marker="x", color="0.4", label="diverged (drawn at the top)"),
    ]
    plotting.legend_outside(ax, marks)
    return [*names, plotting.save(fig, out, "tuning.png")]


def space_text(name: str, space: tuning.Space) -> str:
    about = (
        optimizers.OPTIMIZERS[name].about
        if name in optimizers.OPTIMIZERS
        else "an imported factory"
    )
    dims = ", ".join(f"log {k} in {report.listing(v)}" for k, v in space.dims.items())
    fixed = (
        ""
        if space.one_minus_beta or optimizers.choice(name).momentum is None
        else f", momentum {space.momentum:g}"
    )
    return f"{name} ({about}): {dims}{fixed}"


def write(
    args: Options,
    argv: list[str],
    runs: list[comparison.Trials],
    numbers: Summary,
    plots: list[str],
    seconds: float,
    *,
    failed: dict[str, str] | None = None,
    folder: pathlib.Path | None = None,
) -> None:
    """``REPORT.md`` and ``results.json`` into ``folder`` (default ``args.out``);
    ``failed`` names the optimizers that failed while running, with the error."""
    env = report.environment()
    out = args.out if folder is None else folder
    failed = failed or {}
    spaces = "; ".join(space_text(t.method, t.space) for t in runs)
    edges = [
        f"{s['optimizer']} ({s['on the edge of the space']})"
        for s in numbers.settings
        if s["on the edge of the space"] != "no"
    ]
    notes = (
        [
            f"Selections on the edge of the space: {'; '.join(edges)}: widen the space "
            "(--lr-range) and rerun."
        ]
        if edges
        else []
    )
    if args.seeds < 5:
        notes.append(f"{args.seeds} seed(s): the protocol asks for at least 5.")
    if args.problem == "noisy-quadratic":
        notes.append(
            f"Noisy quadratic model (Zhang et al. 2019): dimension {NQM_DIM}, "
            "curvatures h_i = 1/i, gradient noise of covariance H / batch size, a "
            "random start per seed; its loss is the population loss, so training and "
            "validation loss are one curve and there is no accuracy."
        )
    base = runs[0].method
    if failed:
        notes.insert(
            0,
            "Failed while running, not compared: "
            + "; ".join(f"{name}: {error}" for name, error in failed.items())
            + (
                f". The first optimizer given, {args.optimizer[0]}, is one of them: the "
                f"paired differences are against {base}, the first that ran."
                if args.optimizer[0] in failed
                else "."
            ),
        )
    code = report.source()
    text = [
        f"# Comparison on {args.problem}: {', '.join(t.method for t in runs)}",
        "",
        f"Written by `{' '.join([*command(), *argv])}` in {seconds:.0f} s "
        f"at commit {code['commit'][:12]}{' (with local changes)' if code['modified'] else ''} "
        f"with JAX {env['jax']} on {env['backend']} ({env['devices']} device(s), "
        f"{env['processes']} process(es)). Intervals: 95% Student-t over seeds.",
        "",
        f"**Setup.** {args.steps} steps of batch {args.batch_size}, losses on the full "
        f"sets every {args.eval_every} steps, {args.seeds} seeds (seed s: the same "
        "initialisation and batch order for every optimizer).",
        "",
        f"**Search space and budget.** {args.trials} trials per optimizer; {spaces}. "
        f"Each optimizer is represented by its trial with the lowest mean final "
        f"{numbers.objective_name}; the test split is reported for that trial only.",
        "",
        "**Tuned settings.**",
        "",
        report.markdown_table(numbers.settings),
        "",
        "**Results** (the selected trials; steps to the target: the step at which the "
        f"{numbers.objective_name} reaches {base}'s mean value at {TARGET_AT:.0%} of its "
        f"run, {numbers.target:.4g}, interpolated between evaluations; a run that never "
        "does is censored at the last evaluation, counted, and makes the ratio a bound).",
        "",
        report.markdown_table(numbers.rows),
        "",
    ]
    if numbers.paired:
        text += [
            f"**Paired against {base}** (per-seed differences; the steps ratio is the "
            "geometric mean of the per-seed ratios, its interval a t-interval of the logs).",
            "",
            report.markdown_table(numbers.paired),
            "",
        ]
    text += [f"![{p}]({p})" for p in plots] + [""] + [f"**Note.** {n}" for n in notes]
    (out / "REPORT.md").write_text("\n".join(text) + "\n")
    payload = {
        "command": [*command(), *argv],
        "seed": args.seed,
        "commit": code["commit"],
        "modified": code["modified"],
        "seconds": seconds,
        "environment": env,
        "options": {**dataclasses.asdict(args), "out": str(out)},
        "target": numbers.target,
        "objective": numbers.objective,
        "settings": numbers.settings,
        "results": numbers.rows,
        "paired": numbers.paired,
        "failed": failed,
        "trials": {
            t.method: {
                **t.table,
                "space": t.space,
                "final_objective": getattr(t.curves, numbers.objective)[..., -1],
            }
            for t in runs
        },
        "selected": {
            s.method: {
                "index": s.index,
                "chosen_per_seed": s.chosen,
                "setting": s.setting,
                "edge": s.edge,
                "curves": s.curves._asdict(),
                "steps_to_target": n.steps,
                "censored": n.censored,
            }
            for s, n in zip(numbers.selected, numbers.steps)
        },
        "eval_steps": runs[0].schedule.eval_steps,
    }
    (out / "results.json").write_text(json.dumps(report.jsonable(payload), indent=1) + "\n")
