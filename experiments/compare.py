"""``python -m experiments compare``: your own comparison of optimizers, under the protocol.

Every optimizer gets the same number of trials (``--trials``) over its declared search
space (log learning rate; log(1 - beta) with ``--tune-momentum``; log eps for Adam and
RMSprop), every trial runs on every seed (same initialisation and batches for every
optimizer), optimizers whose states share one structure run in one compiled function
(``experiments.comparison``), and each is represented by its trial with the best mean
final validation (or training) loss. Writes to ``--out``: ``curves.png`` (mean and 95%
bootstrap band over seeds), ``tuning.png`` (every trial), ``REPORT.md`` (tuned settings
with edge-of-space flags, means with 95% intervals, paired differences against the first
optimizer) and ``results.json`` (the numbers).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import comparison
from experiments import loop
from experiments import noisy_quadratic as nqm
from experiments import optimizers
from experiments import plotting
from experiments import report
from experiments import runner
from experiments import sweeps
from experiments import tasks
from experiments.protocol import race
from experiments.protocol import stats
from experiments.protocol import tuning

TARGET_AT = 0.5  # the target: the first optimizer's mean objective at this share of its run
NQM_DIM = 100  # the noisy quadratic: h_i = 1 / i, i = 1..100, gradient noise C = H / B
PROBLEMS = (*tasks.TASKS, "noisy-quadratic")


def methods(args: argparse.Namespace) -> list[comparison.Method]:
    out = []
    for name in args.optimizer:
        c = optimizers.choice(name)
        tuned = args.tune_momentum and c.tunable and c.momentum is not None
        dims = 1 + bool(tuned) + bool(c.eps)
        per = round(args.trials ** (1 / dims))
        out.append(
            comparison.Method(
                name,
                c.make,
                tuning.Space(
                    lr=tuple(args.lr_range or c.lr),
                    momentum=c.momentum or 0.0,
                    one_minus_beta=optimizers.ONE_MINUS_BETA if tuned else None,
                    eps=optimizers.EPS if c.eps else None,
                    # a grid where the trials make one (k**dims), else independent draws
                    grid=per**dims == args.trials,
                ),
            )
        )
    return out


def structure(method: comparison.Method, params) -> tuple:
    """What decides whether methods share a compile: their columns and state structure
    (abstractly evaluated, which also checks that the optimizer builds and updates)."""
    columns = tuple(sorted(tuning.trials(method.space, 1)))
    row = {c: jnp.float32(0.5) for c in columns}

    def state(row, params):
        opt = method.make(row)
        if not isinstance(opt, optax.GradientTransformation):
            raise TypeError(f"it returned {opt!r}, not an optax.GradientTransformation")
        opt = optax.with_extra_args_support(opt)
        return opt.update(params, opt.init(params), params, value=jnp.float32(0))[1]

    try:
        shape = jax.eval_shape(state, row, params)
    except Exception as error:
        raise optimizers.OptionError(
            f"--optimizer {method.name!r}: building or updating it "
            f"failed ({type(error).__name__}: {error})"
        ) from None
    leaves, treedef = jax.tree.flatten(shape)
    return columns, str(treedef), tuple((leaf.shape, str(leaf.dtype)) for leaf in leaves)


def nqm_run(
    group: list[comparison.Method],
    *,
    trials: int,
    seeds: int,
    key: jax.Array,
    schedule: loop.Schedule,
) -> list[comparison.Trials]:
    """``comparison.run`` for the noisy quadratic: seed ``s`` draws the start and the
    gradient noise; the loss is both the "training" and the "validation" curve."""
    tables = [tuning.trials(m.space, trials) for m in group]
    table = {c: np.concatenate([t[c] for t in tables]) for c in tables[0]}
    table["method"] = np.repeat(np.arange(len(group), dtype=np.int32), trials)
    h = nqm.curvatures(NQM_DIM)

    def one(row, key_data):
        k = comparison.seed_key(jax.random.wrap_key_data(key_data), row["seed"])
        opt = sweeps.select([m.make(row) for m in group], row["method"])
        losses = nqm.sample(
            opt,
            h,
            nqm.start(jax.random.fold_in(k, 0), NQM_DIM),
            jax.random.fold_in(k, 1),
            schedule.batch_size,
            schedule.steps,
            every=schedule.eval_every,
        )
        return loop.Curves(losses, losses, losses * jnp.nan, losses[-1], losses[-1] * jnp.nan)

    curves = sweeps.sweep(one, sweeps.with_seeds(table, seeds), jax.random.key_data(key))
    return [
        comparison.Trials(
            m.name,
            m.space,
            t,
            jax.tree.map(
                lambda a, i=i: a.reshape(len(group), trials, seeds, *a.shape[1:])[i], curves
            ),
            schedule,
        )
        for i, (m, t) in enumerate(zip(group, tables))
    ]


def measure(
    args: argparse.Namespace, chosen: list[comparison.Method], status=print
) -> list[comparison.Trials]:
    """Every optimizer's trials, in the order given: one compile per group of optimizers
    that share a state structure."""
    schedule = loop.Schedule(args.steps, args.batch_size, args.eval_every)
    key = jax.random.key(args.seed)
    task = None if args.problem == "noisy-quadratic" else tasks.TASKS[args.problem]()
    params = (
        jax.ShapeDtypeStruct((NQM_DIM,), jnp.float32)
        if task is None
        else jax.eval_shape(task.init, key)
    )
    groups: dict[tuple, list[comparison.Method]] = {}
    for method in chosen:
        groups.setdefault(structure(method, params), []).append(method)
    runs = {}
    for group in groups.values():
        status(
            f"{', '.join(m.name for m in group)}: {args.trials} trials x {args.seeds} "
            f"seeds, {args.steps} steps of batch {args.batch_size} (one compile)"
        )
        got = (
            nqm_run(group, trials=args.trials, seeds=args.seeds, key=key, schedule=schedule)
            if task is None
            else comparison.run(
                group, task, trials=args.trials, seeds=args.seeds, key=key, schedule=schedule
            )
        )
        runs |= {t.method: t for t in got}
    return [runs[m.name] for m in chosen]


def fields(problem: str) -> dict[str, str]:
    """The curves reported (at their last evaluation) and plotted, with their names."""
    if problem == "noisy-quadratic":
        return {"train_loss": "loss"}
    return {
        "train_loss": "training loss (full set)",
        "val_loss": "validation loss",
        "val_accuracy": "validation accuracy",
        "test_accuracy": "test accuracy",
    }


def head(field: str, name: str) -> str:
    return name if field == "test_accuracy" else f"final {name}"


def last(selected: comparison.Selected, field: str) -> np.ndarray:
    """Per seed, the last evaluation of ``field`` (a diverged run's loss counts as inf)."""
    values = np.asarray(getattr(selected.curves, field), np.float64)
    return (
        values
        if field == "test_accuracy"
        else (values[..., -1] if "accuracy" in field else comparison.final(values))
    )


def summarise(args: argparse.Namespace, runs: list[comparison.Trials]) -> dict:
    """The selected trial of each optimizer and its numbers: means with intervals over
    seeds, paired differences against the first optimizer, steps to the first's target."""
    objective = "val_loss" if args.select == "validation" else "train_loss"
    pick = (
        comparison.select_by_validation_loss
        if objective == "val_loss"
        else comparison.select_by_train_loss
    )
    chosen = [pick(t) for t in runs]
    target = race.target_at(
        getattr(chosen[0].curves, objective), runs[0].schedule.eval_steps, TARGET_AT
    )
    steps = [
        race.arrival(
            getattr(s.curves, objective),
            target,
            runs[0].schedule.eval_steps,
            higher_is_better=False,
        )
        for s in chosen
    ]
    rows, paired = [], []
    for sel, n in zip(chosen, steps):
        rows.append(
            {
                "optimizer": sel.method,
                **{
                    head(f, name): stats.mean(last(sel, f))
                    for f, name in fields(args.problem).items()
                },
                f"steps to {target:.4g}": n.cell(),
            }
        )
        if sel is not chosen[0]:
            paired.append(
                {
                    "optimizer": f"{sel.method} - {chosen[0].method}",
                    **{
                        head(f, name): stats.paired_difference(last(sel, f), last(chosen[0], f))
                        for f, name in fields(args.problem).items()
                    },
                    "steps to target, ratio": race.ratio(n, steps[0]),
                }
            )
    settings = [
        {
            "optimizer": s.method,
            "lr": s.setting["lr"],
            "momentum": "-"
            if optimizers.choice(s.method).momentum is None
            else s.setting["momentum"],
            "eps": s.setting.get("eps", "-"),
            "trial": s.index,
            "on the edge of the space": ", ".join(s.edge) or "no",
        }
        for s in chosen
    ]
    return {
        "selected": chosen,
        "objective": objective,
        "target": target,
        "rows": rows,
        "paired": paired,
        "settings": settings,
        "steps": steps,
        "objective_name": "loss"
        if args.problem == "noisy-quadratic"
        else "validation loss"
        if objective == "val_loss"
        else "training loss",
    }


def figures(
    args: argparse.Namespace, runs: list[comparison.Trials], numbers: dict, out: pathlib.Path
) -> list[str]:
    curves = {f: name for f, name in fields(args.problem).items() if f != "test_accuracy"}
    fig, axes = plotting.figure(
        len(curves),
        title=f"{args.problem}: each optimizer at its "
        f"selected trial, mean and 95% band over {args.seeds} seeds",
    )
    for ax, (field, label) in zip(axes, curves.items()):
        plotting.seed_bands(
            ax,
            runs[0].schedule.eval_steps,
            {s.method: getattr(s.curves, field) for s in numbers["selected"]},
            ylabel=label,
            logy=field != "val_accuracy",
        )
    names = [plotting.save(fig, out, "curves.png")]
    fig, (ax,) = plotting.figure(
        title=f"every trial: final {numbers['objective_name']}, mean over seeds (x: diverged)"
    )
    for i, t in enumerate(runs):
        score = comparison.final(getattr(t.curves, numbers["objective"])).mean(-1)
        bad = ~np.isfinite(score)
        top = np.nanmax(np.where(bad, np.nan, score)) if (~bad).any() else 1.0
        ax.plot(t.table["lr"][~bad], score[~bad], "o", color=f"C{i}", label=t.method)
        ax.plot(t.table["lr"][bad], np.full(bad.sum(), top), "x", color=f"C{i}")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate",
        ylabel=f"final {numbers['objective_name']}",
    )
    ax.legend(fontsize=7)
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
    args: argparse.Namespace,
    argv: list[str],
    runs: list[comparison.Trials],
    numbers: dict,
    plots: list[str],
    seconds: float,
) -> None:
    env = runner.environment()
    out = args.out
    spaces = "; ".join(space_text(t.method, t.space) for t in runs)
    edges = [
        f"{s['optimizer']} ({s['on the edge of the space']})"
        for s in numbers["settings"]
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
    if args.seeds < 3:
        notes.append(f"{args.seeds} seed(s): the protocol asks for at least 3.")
    if args.problem == "noisy-quadratic":
        notes.append(
            f"Noisy quadratic model (Zhang et al. 2019): dimension {NQM_DIM}, "
            "curvatures h_i = 1/i, gradient noise of covariance H / batch size, a "
            "random start per seed; its loss is the population loss, so training and "
            "validation loss are one curve and there is no accuracy."
        )
    base = runs[0].method
    text = [
        f"# Comparison on {args.problem}: {', '.join(t.method for t in runs)}",
        "",
        f"Written by `python -m experiments compare {' '.join(argv)}` in {seconds:.0f} s "
        f"with JAX {env['jax']} on {env['backend']} ({env['devices']} device(s), "
        f"{env['processes']} process(es)). Intervals: 95% Student-t over seeds.",
        "",
        f"**Setup.** {args.steps} steps of batch {args.batch_size}, losses on the full "
        f"sets every {args.eval_every} steps, {args.seeds} seeds (seed s: the same "
        "initialisation and batch order for every optimizer).",
        "",
        f"**Search space and budget.** {args.trials} trials per optimizer; {spaces}. "
        f"Each optimizer is represented by its trial with the lowest mean final "
        f"{numbers['objective_name']}; the test split is reported for that trial only.",
        "",
        "**Tuned settings.**",
        "",
        report.markdown_table(numbers["settings"]),
        "",
        "**Results** (the selected trials; steps to the target: the step at which the "
        f"{numbers['objective_name']} reaches {base}'s mean value at {TARGET_AT:.0%} of its "
        f"run, {numbers['target']:.4g}, interpolated between evaluations; a run that never "
        "does is censored at the last evaluation, counted, and makes the ratio a bound).",
        "",
        report.markdown_table(numbers["rows"]),
        "",
    ]
    if numbers["paired"]:
        text += [
            f"**Paired against {base}** (per-seed differences; the steps ratio is the "
            "geometric mean of the per-seed ratios, its interval a t-interval of the logs).",
            "",
            report.markdown_table(numbers["paired"]),
            "",
        ]
    text += [f"![{p}]({p})" for p in plots] + [""] + [f"**Note.** {n}" for n in notes]
    (out / "REPORT.md").write_text("\n".join(text) + "\n")
    payload = {
        "command": ["python", "-m", "experiments", "compare", *argv],
        "seconds": seconds,
        "environment": env,
        "options": {**vars(args), "out": str(out)},
        "target": numbers["target"],
        "objective": numbers["objective"],
        "settings": numbers["settings"],
        "results": numbers["rows"],
        "paired": numbers["paired"],
        "trials": {
            t.method: {
                **t.table,
                "space": t.space,
                "final_objective": getattr(t.curves, numbers["objective"])[..., -1],
            }
            for t in runs
        },
        "selected": {
            s.method: {
                "index": s.index,
                "setting": s.setting,
                "edge": s.edge,
                "curves": s.curves._asdict(),
                "steps_to_target": n.steps,
                "censored": n.censored,
            }
            for s, n in zip(numbers["selected"], numbers["steps"])
        },
        "eval_steps": runs[0].schedule.eval_steps,
    }
    (out / "results.json").write_text(json.dumps(report.jsonable(payload), indent=1) + "\n")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    listing = "\n".join(
        f"  {name:<11} {c.about}; lr in {report.listing(c.lr)}"
        + (f", beta {c.momentum:g}" if c.momentum is not None else "")
        + (f", eps in {report.listing(optimizers.EPS)}" if c.eps else "")
        for name, c in optimizers.OPTIMIZERS.items()
    )
    p = argparse.ArgumentParser(
        prog="python -m experiments compare",
        description=__doc__.split("\n\n")[1].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"optimizers (default search spaces; log scales):\n{listing}\n\nexample:\n"
        "  python -m experiments compare --optimizer sgd --optimizer heavy-ball "
        "--problem mnist1d-mlp --trials 8 --seeds 3",
    )
    p.add_argument(
        "--optimizer",
        action="append",
        metavar="NAME",
        help=(
            "an optimizer to compare (repeat the option for several; default: sgd and "
            "heavy-ball); the first is the baseline of the paired differences. A name listed "
            "below, or an import path package.module:factory to a factory that takes `row` (a "
            "dict of traced scalars lr, momentum (0.9 unless tuned) and eps (1e-8)) or takes "
            "`learning_rate`, and returns an optax transformation; its lr range is (0.0001, 1)"
        ),
    )
    p.add_argument(
        "--problem",
        choices=PROBLEMS,
        default="mnist1d-mlp",
        help=(
            "mnist1d-mlp (40-100-100-10 MLP on MNIST-1D, 8,000/2,000/2,000), mnist1d-cnn (a 1-D "
            "CNN, about 10x costlier per step), digits-mlp (scikit-learn's digits; saturates), "
            f"noisy-quadratic (Zhang et al. 2019, dimension {NQM_DIM}); default mnist1d-mlp"
        ),
    )
    p.add_argument(
        "--trials",
        type=_positive,
        default=8,
        help="trials per optimizer: the equal tuning budget (default 8)",
    )
    p.add_argument(
        "--seeds",
        type=_positive,
        default=3,
        help="seeds per trial (initialisation and batch order; default 3)",
    )
    p.add_argument(
        "--batch-size",
        type=_positive,
        default=32,
        help="examples per step (the noise scale for noisy-quadratic; default 32)",
    )
    p.add_argument("--steps", type=_positive, default=1000, help="steps per run (default 1000)")
    p.add_argument(
        "--eval-every",
        type=_positive,
        default=100,
        help=(
            "evaluate the training-subset and validation losses every this many steps; must "
            "divide --steps (default 100)"
        ),
    )
    p.add_argument(
        "--tune-momentum",
        action="store_true",
        help=(
            f"also tune log(1 - beta) in {report.listing(optimizers.ONE_MINUS_BETA)} for the "
            "optimizers that have a momentum (not sgd, aggmo or a learning_rate factory)"
        ),
    )
    p.add_argument(
        "--lr-range",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="the learning-rate range of every optimizer (default: each its own)",
    )
    p.add_argument(
        "--select",
        choices=("validation", "training"),
        default="validation",
        help="choose each optimizer's trial by its final validation loss (default) "
        "or its final training-subset loss",
    )
    p.add_argument(
        "--out",
        type=pathlib.Path,
        default=pathlib.Path("results/compare"),
        help="output folder (default results/compare)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help=(
            "the root key: seed s of every optimizer starts from fold_in(key(SEED), s) (default 0)"
        ),
    )
    return p


def check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Errors naming the option, the value and what was expected (argparse exits with 2)."""
    args.optimizer = args.optimizer or ["sgd", "heavy-ball"]
    for name in args.optimizer:
        if name not in optimizers.OPTIMIZERS and ":" not in name:
            p.error(
                f"--optimizer {name!r}: not a known optimizer; expected one of "
                f"{', '.join(optimizers.OPTIMIZERS)} or an import path "
                "package.module:factory"
            )
    twice = sorted({n for n in args.optimizer if args.optimizer.count(n) > 1})
    if twice:
        p.error(f"--optimizer {', '.join(twice)}: given more than once; expected each once")
    if args.steps % args.eval_every:
        p.error(f"--steps {args.steps} is not a multiple of --eval-every {args.eval_every}")
    if args.lr_range and not 0 < args.lr_range[0] <= args.lr_range[1] < float("inf"):
        p.error(f"--lr-range {args.lr_range[0]:g} {args.lr_range[1]:g}: expected 0 < LOW <= HIGH")
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out}: is a file; expected a folder")


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    args = p.parse_args(argv)
    check(p, args)
    start = time.perf_counter()
    writer = jax.process_index() == 0
    try:
        runs = measure(args, methods(args), status=print if writer else lambda _: None)
    except optimizers.OptionError as error:
        p.error(str(error))
    numbers = summarise(args, runs)
    if writer:
        args.out.mkdir(parents=True, exist_ok=True)
        plots = figures(args, runs, numbers, args.out)
        write(args, argv, runs, numbers, plots, time.perf_counter() - start)
        print(report.markdown_table(numbers["rows"]))
        print(f"results in {args.out}/ (REPORT.md, results.json, {', '.join(plots)})")
    return numbers
