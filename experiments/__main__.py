"""python -m experiments NAME [--quick] [--out DIR] [--seed N]: measure the momentum claims.

``python -m experiments compare ...`` runs a comparison of your own under the same
protocol (``compare --help``); ``python -m experiments bench [--quick]`` measures speed
and memory instead (not a test).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from experiments import registry
from experiments import runner


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["compare"]:
        from experiments import compare

        compare.main(argv[1:])
        return
    modules = registry.experiments()
    listing = "\n".join(
        f"  {name:<17} {module.__doc__.strip().splitlines()[0]}" for name, module in modules.items()
    )
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
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
        help="output folder (default: results/)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the root of every random key")
    args = parser.parse_args(argv)
    if args.name == "bench":
        from experiments import bench  # heavier imports (PyTorch, when installed)

        bench.run(quick=args.quick, out=args.out, seed=args.seed)
        return
    runner.run(
        list(modules) if args.name == "all" else [args.name],
        quick=args.quick,
        out=args.out,
        seed=args.seed,
    )


if __name__ == "__main__":
    main()
