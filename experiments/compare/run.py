"""The runs of a comparison and their summary: every optimizer's trials (one compile per
group of optimizers that share a state structure; the noisy quadratic served as a task of
its own) and the selected trials' numbers against the first optimizer (``Summary``).

``plan`` builds and checks every optimizer before any compute; ``measure`` runs them, and an
optimizer that fails while running (its factory or update raising under ``jit``, an error
in a callback) is reported as failed, in one line, while the others go on."""

from __future__ import annotations

import contextlib
import logging
import pathlib
import re
import traceback
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import comparison
from .. import loop
from .. import noisy_quadratic as nqm
from .. import optimizers
from .. import tasks
from ..compare.options import NQM_DIM
from ..compare.options import Options
from ..protocol import race
from ..protocol import stats
from ..protocol import tuning

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
    """Each ``--optimizer`` as a ``comparison.Method`` with its search space; an import path
    that cannot be imported (whatever the module raises) is an ``optimizers.OptionError``."""
    out = []
    for name in args.optimizer:
        try:
            c = optimizers.choice(name)
        except optimizers.OptionError:
            raise
        except Exception as error:  # the module itself failed to import
            raise optimizers.OptionError(
                f"--optimizer {name!r}: importing it failed ({brief(error)})"
            ) from None
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


def brief(error: BaseException) -> str:
    """An exception in one line: its type, its message's first line (the last line for a
    message that carries a traceback, as an error inside a JAX callback does) and where it
    was raised (the innermost frame outside JAX and ``experiments``)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    carried = re.findall(r'File "([^"]+)", line (\d+)', str(error))
    text = (lines[-1] if carried else lines[0]) if lines else ""
    frames = carried or [
        (f.filename, str(f.lineno)) for f in traceback.extract_tb(error.__traceback__)
    ]
    own = [str(pathlib.Path(str(jax.__file__)).parent), str(pathlib.Path(__file__).parents[1])]
    mine = [(f, n) for f, n in frames if not any(f.startswith(o) for o in own)]
    at = f" (raised at {mine[-1][0]}:{mine[-1][1]})" if mine else ""
    return f"{type(error).__name__}{': ' if text else ''}{text}{at}"


@contextlib.contextmanager
def _callbacks_quiet() -> Iterator[None]:
    """JAX logs a failing callback's traceback before raising; ``brief`` has its line."""
    loggers = [logging.getLogger(f"jax._src.{name}") for name in ("debugging", "callback")]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, was in zip(loggers, before):
            logger.disabled = was


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


class Plan(NamedTuple):
    """What ``measure`` runs: the task, its training loop and the optimizers grouped by
    compile (built and checked by ``plan``, before any compute)."""

    chosen: list[comparison.Method]
    task: Any
    train: Callable
    key: jax.Array
    schedule: loop.Schedule
    groups: list[list[comparison.Method]]


def plan(args: Options, chosen: list[comparison.Method]) -> Plan:
    """The task and the optimizers grouped by state structure (``structure``: an optimizer
    that does not build or update raises ``optimizers.OptionError`` here)."""
    key = jax.random.key(args.seed)
    quadratic = args.problem == "noisy-quadratic"
    task = nqm.problem(NQM_DIM) if quadratic else tasks.TASKS[args.problem]()
    params = (
        jax.ShapeDtypeStruct((NQM_DIM,), jnp.float32)
        if quadratic
        else jax.eval_shape(task.init, key)
    )
    groups: dict[tuple, list[comparison.Method]] = {}
    for method in chosen:
        groups.setdefault(structure(method, params), []).append(method)
    return Plan(
        chosen,
        task,
        nqm.train if quadratic else loop.train,
        key,
        loop.Schedule(args.steps, args.batch_size, args.eval_every),
        list(groups.values()),
    )


def measure(
    args: Options, planned: Plan, status: Callable[[str], object] = print
) -> tuple[list[comparison.Trials], dict[str, str]]:
    """Every optimizer's trials, in the order given (one compile per group of optimizers
    that share a state structure), and the optimizers that failed while running, with the
    error in one line: a group that fails runs again one optimizer at a time, so that only
    the failing one drops out and the comparison goes on with the others."""

    def run(group: list[comparison.Method]) -> list[comparison.Trials]:
        with _callbacks_quiet():
            got = comparison.run(
                group,
                planned.task,
                trials=args.trials,
                seeds=args.seeds,
                key=planned.key,
                schedule=planned.schedule,
                train=planned.train,
            )
        assert isinstance(got, list)  # a list of methods gives a list of Trials
        return got

    runs: dict[str, comparison.Trials] = {}
    failed: dict[str, str] = {}

    def fail(method: comparison.Method, error: Exception) -> None:
        failed[method.name] = f"failed while running: {brief(error)}"
        status(f"--optimizer {method.name!r}: {failed[method.name]}; not compared")

    for group in planned.groups:
        status(
            f"{', '.join(m.name for m in group)}: {args.trials} trials x {args.seeds} "
            f"seeds, {args.steps} steps of batch {args.batch_size} (one compile)"
        )
        try:
            got = run(group)
        except Exception as error:
            got = []
            if len(group) == 1:
                fail(group[0], error)
            else:
                status(f"they failed together ({brief(error)}); running each alone")
                for method in group:
                    try:
                        got += run([method])
                    except Exception as alone:
                        fail(method, alone)
        runs |= {t.method: t for t in got}
    return [runs[m.name] for m in planned.chosen if m.name in runs], failed


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
