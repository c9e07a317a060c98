"""python -m experiments NAME [--quick] [--out DIR] [--seed N]: measure the momentum claims.

``python -m experiments compare ...`` runs a comparison of your own under the same
protocol (``compare --help``); ``python -m experiments bench [--quick]`` measures speed
and memory instead (not a test).
"""

from __future__ import annotations

import argparse
import pathlib
import shlex
import sys

from . import arguments
from . import outputs
from . import registry
from . import runner


def main(argv: list[str] | None = None) -> None:
    """``python -m experiments ARGV``; Ctrl-C ends it with status 130 and writes nothing."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _main(argv)
    except KeyboardInterrupt:
        if argv[:1] == ["bench"]:  # the bench writes as it goes
            raise
        print(
            "interrupted: nothing of this run was written; its output folder is as it was",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


def _main(argv: list[str]) -> None:
    if argv[:1] == ["compare"]:
        from . import compare

        compare.main(argv[1:])
        return
    modules = registry.experiments()
    listing = "\n".join(
        f"  {name:<17} {module.__doc__.strip().splitlines()[0]}" for name, module in modules.items()
    )
    parser = argparse.ArgumentParser(
        prog=arguments.program(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Measures the claims of the three source documents about momentum under a "
        "fixed protocol (seeds, equal tuning budgets, intervals, pre-registered "
        "conditions); writes metrics.json and plots per experiment and, for `all`, "
        "OUT/REPORT.md.",
        epilog=f"experiments:\n{listing}\n  {'all':<17} every experiment above, and the report\n"
        f"  {'compare':<17} your own comparison under the same protocol "
        "(compare --help)\n"
        f"  {'bench':<17} speed and memory against optax, PyTorch and the bandwidth "
        "limit",
    )
    parser.add_argument(
        "name",
        choices=[*modules, "all", "bench"],
        metavar="name",
        help="an experiment (listed below), all, compare or bench",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the smaller configuration (all --quick: under 3 minutes on 2 CPUs)",
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=pathlib.Path("results"),
        help="output folder (default: results/); a run replaces OUT/NAME/ (and, for all, "
        "OUT/REPORT.md) only when it has finished, and refuses a folder another run is "
        "writing (docs/experiments.md, Outputs)",
    )
    parser.add_argument(
        "--seed",
        type=arguments.seed,
        default=0,
        help=f"the root of every random key, 0..{arguments.SEED_MAX} (default 0)",
    )
    args = parser.parse_args(argv)
    try:
        outputs.check_writable(args.out)  # before any compute
        if args.name == "bench":
            from . import bench  # heavier imports (PyTorch, when installed)

            bench.run(quick=args.quick, out=args.out, seed=args.seed)
            return
        runner.run(
            list(modules) if args.name == "all" else [args.name],
            quick=args.quick,
            out=args.out,
            seed=args.seed,
            command=shlex.join([*arguments.program().split(), *argv]),
        )
    except outputs.OutputError as error:  # raised before any compute
        parser.error(f"argument --out: {error}")


if __name__ == "__main__":
    main()
