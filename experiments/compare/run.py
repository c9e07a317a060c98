"""The runs of a comparison and their summary: every optimizer's trials (one compile per
group of optimizers that share a state structure; the noisy quadratic served as a task of
its own) and the selected trials' numbers against the first optimizer (``Summary``)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import comparison
from experiments import loop
from experiments import noisy_quadratic as nqm
from experiments import optimizers
from experiments import tasks
from experiments.compare.options import NQM_DIM
from experiments.compare.options import Options
from experiments.protocol import race
from experiments.protocol import stats
from experiments.protocol import tuning

TARGET_AT = 0.5  # the target: the first optimizer's mean objective at this share of its run


class Summary(NamedTuple):
    """The selected trial of each optimizer and its numbers: table rows (means with
    intervals), paired rows against the first optimizer, settings, and the race's target and
    arrivals."""

    selected: list[comparison.Selected]
    objective: str  # the Curves field selected on: "val_loss" or "train_loss"
    objective_name: str
    target: float
    rows: list[dict]
    paired: list[dict]
    settings: list[dict]
    steps: list[race.Arrival]


def methods(args: Options) -> list[comparison.Method]:
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


def measure(
    args: Options, chosen: list[comparison.Method], status=print
) -> list[comparison.Trials]:
    """Every optimizer's trials, in the order given: one compile per group of optimizers
    that share a state structure."""
    schedule = loop.Schedule(args.steps, args.batch_size, args.eval_every)
    key = jax.random.key(args.seed)
    quadratic = args.problem == "noisy-quadratic"
    task = nqm.problem(NQM_DIM) if quadratic else tasks.TASKS[args.problem]()
    train = nqm.train if quadratic else loop.train
    params = (
        jax.ShapeDtypeStruct((NQM_DIM,), jnp.float32)
        if quadratic
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
        got = comparison.run(
            group,
            task,
            trials=args.trials,
            seeds=args.seeds,
            key=key,
            schedule=schedule,
            train=train,
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


def summarise(args: Options, runs: list[comparison.Trials]) -> Summary:
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
    return Summary(
        selected=chosen,
        objective=objective,
        objective_name="loss"
        if args.problem == "noisy-quadratic"
        else "validation loss"
        if objective == "val_loss"
        else "training loss",
        target=target,
        rows=rows,
        paired=paired,
        settings=settings,
        steps=steps,
    )
