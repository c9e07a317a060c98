"""The options of ``python -m experiments compare``: the parser and the checks that name the
option, the value and what was expected."""

from __future__ import annotations

import argparse
import dataclasses
import pathlib

from .. import arguments
from .. import optimizers
from .. import outputs
from .. import report
from .. import tasks

NQM_DIM = 100  # the noisy quadratic: h_i = 1 / i, i = 1..100, gradient noise C = H / B
PROBLEMS = (*tasks.TASKS, "noisy-quadratic")
DESCRIPTION = (
    "Every optimizer gets the same number of trials (--trials) over its declared search "
    "space (log learning rate; log(1 - beta) with --tune-momentum; log eps for Adam and "
    "RMSprop), every trial runs on every seed (same initialisation and batches for every "
    "optimizer), and each is represented by its trial with the best mean final validation "
    "(or training) loss, each seed scored by the trial chosen on the other seeds."
)


@dataclasses.dataclass(frozen=True)
class Options:
    """A comparison's options, checked (``check``): what ``run`` and ``write`` take."""

    optimizer: tuple[str, ...] = ("sgd", "heavy-ball")  # the first is the baseline
    problem: str = "mnist1d-mlp"
    trials: int = 8
    seeds: int = 5
    batch_size: int = 32
    steps: int = 1000
    eval_every: int = 20
    tune_momentum: bool = False
    lr_range: tuple[float, float] | None = None
    select: str = "validation"  # or "training"
    out: pathlib.Path = pathlib.Path("results/compare")
    seed: int = 0


def import_path(name: str) -> bool:
    """``package.module:factory``: dotted identifiers, a colon, an identifier (no relative
    import, no empty part)."""
    module, colon, factory = name.partition(":")
    return (
        bool(colon)
        and factory.isidentifier()
        and all(part.isidentifier() for part in module.split("."))
    )


def parser() -> argparse.ArgumentParser:
    width = max(map(len, optimizers.OPTIMIZERS))
    fixed = [n for n, c in optimizers.OPTIMIZERS.items() if c.momentum is None or not c.tunable]
    listing = "\n".join(
        f"  {name:<{width}} {c.about}; lr in {report.listing(c.lr)}"
        + (f", beta {c.momentum:g}" if c.momentum is not None else "")
        + (f", eps in {report.listing(optimizers.EPS)}" if c.eps else "")
        for name, c in optimizers.OPTIMIZERS.items()
    )
    p = argparse.ArgumentParser(
        prog=f"{arguments.program()} compare",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"optimizers (default search spaces; log scales):\n{listing}\n\nexample:\n"
        f"  {arguments.program()} compare --optimizer sgd --optimizer heavy-ball "
        "--problem mnist1d-mlp --trials 8 --seeds 5",
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
        type=arguments.positive,
        default=8,
        help="trials per optimizer: the equal tuning budget (default 8)",
    )
    p.add_argument(
        "--seeds",
        type=arguments.positive,
        default=5,
        help="seeds per trial (initialisation and batch order; default 5, the protocol's least)",
    )
    p.add_argument(
        "--batch-size",
        type=arguments.positive,
        default=32,
        help="examples per step (the noise scale for noisy-quadratic; default 32)",
    )
    p.add_argument(
        "--steps", type=arguments.positive, default=1000, help="steps per run (default 1000)"
    )
    p.add_argument(
        "--eval-every",
        type=arguments.positive,
        default=20,
        help=(
            "evaluate the training-subset and validation losses every this many steps; must "
            "divide --steps (default 20: fine enough for the interpolated steps to target)"
        ),
    )
    p.add_argument(
        "--tune-momentum",
        action="store_true",
        help=(
            f"also tune log(1 - beta) in {report.listing(optimizers.ONE_MINUS_BETA)} for the "
            f"optimizers that have a momentum (not {', '.join(fixed)} or a learning_rate "
            "factory)"
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
        help=(
            "output folder (default results/compare): checked before any compute; its "
            "REPORT.md, results.json and plots are replaced together when the comparison has "
            "finished, and a folder another run is writing is refused"
        ),
    )
    p.add_argument(
        "--seed",
        type=arguments.seed,
        default=0,
        help=(
            "the root key: seed s of every optimizer starts from fold_in(key(SEED), s); "
            f"0..{arguments.SEED_MAX} (default 0)"
        ),
    )
    return p


def check(p: argparse.ArgumentParser, args: argparse.Namespace) -> Options:
    """The parsed ``args`` as ``Options``, or an error naming the option, the value and what
    was expected (argparse exits with 2)."""
    args.optimizer = args.optimizer or list(Options.optimizer)
    for name in args.optimizer:
        if name not in optimizers.OPTIMIZERS and ":" not in name:
            p.error(
                f"--optimizer {name!r}: not a known optimizer; expected one of "
                f"{', '.join(optimizers.OPTIMIZERS)} or an import path "
                "package.module:factory"
            )
        if name not in optimizers.OPTIMIZERS and not import_path(name):
            p.error(
                f"--optimizer {name!r}: not an import path; expected package.module:factory "
                "(dotted Python names, no leading dot, then a colon and the factory's name)"
            )
    twice = sorted({n for n in args.optimizer if args.optimizer.count(n) > 1})
    if twice:
        p.error(f"--optimizer {', '.join(twice)}: given more than once; expected each once")
    if args.steps % args.eval_every:
        p.error(f"--steps {args.steps} is not a multiple of --eval-every {args.eval_every}")
    if args.lr_range and not 0 < args.lr_range[0] <= args.lr_range[1] < float("inf"):
        p.error(f"--lr-range {args.lr_range[0]:g} {args.lr_range[1]:g}: expected 0 < LOW <= HIGH")
    try:
        outputs.check_writable(args.out)  # before any compute
    except outputs.OutputError as error:
        p.error(f"argument --out: {error}")
    return Options(
        **{
            **vars(args),
            "optimizer": tuple(args.optimizer),
            "lr_range": tuple(args.lr_range) if args.lr_range else None,
        }
    )
