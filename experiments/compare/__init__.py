"""``python -m experiments compare``: your own comparison of optimizers, under the protocol.

Every optimizer gets the same number of trials (``--trials``) over its declared search
space (log learning rate; log(1 - beta) with ``--tune-momentum``; log eps for Adam and
RMSprop), every trial runs on every seed (same initialisation and batches for every
optimizer), optimizers whose states share one structure run in one compiled function
(``experiments.comparison``), and each is represented by its trial with the best mean
final validation (or training) loss, each seed scored by the trial chosen on the other
seeds. Writes to ``--out``: ``curves.png`` (mean and 95% t-band over seeds),
``tuning.png`` (every trial), ``REPORT.md`` (tuned settings with edge-of-space flags, means
with 95% intervals, paired differences against the first optimizer, steps to a target
under the race's rule) and ``results.json`` (the numbers).

Before any compute: every option is checked, every optimizer built and updated once
(abstractly), ``--out`` checked writable and its lock taken (a second comparison on the same
folder is refused, naming the first one's pid). The four files are written into a partial
folder and replace the previous ones together at the end: an interrupted comparison leaves
the folder as it was. An optimizer that fails while running is reported as failed, in one
line, and the comparison goes on with the others (it stops, exit status 1, when none is
left).

``options`` holds the parser and its checks, ``run`` the runs and their ``Summary``,
``write`` the figures and files.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import time

import jax

from .. import optimizers
from .. import outputs
from .. import report
from ..compare.options import NQM_DIM
from ..compare.options import PROBLEMS
from ..compare.options import Options
from ..compare.options import check
from ..compare.options import parser
from ..compare.run import Plan
from ..compare.run import Summary
from ..compare.run import measure
from ..compare.run import methods
from ..compare.run import plan
from ..compare.run import structure
from ..compare.run import summarise
from ..compare.write import command
from ..compare.write import figures
from ..compare.write import ours
from ..compare.write import write

__all__ = [
    "NQM_DIM",
    "PROBLEMS",
    "Options",
    "Plan",
    "Summary",
    "check",
    "main",
    "measure",
    "methods",
    "parser",
    "plan",
    "structure",
    "summarise",
]


def main(argv: list[str] | None = None) -> Summary:
    """Parses ``argv``, checks everything that can be checked before any compute (option
    errors exit with status 2), runs the comparison and writes ``--out``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    args = check(p, p.parse_args(argv))
    start = time.perf_counter()
    writer = jax.process_index() == 0
    status = print if writer else lambda _: None
    with contextlib.ExitStack() as stack:
        if writer:
            try:
                stack.enter_context(outputs.lock(args.out, shlex.join([*command(), *argv])))
                outputs.remove_leftovers(args.out)
                outputs.refuse_foreign(args.out, ours(), " ".join(command()))
            except outputs.OutputError as error:
                p.error(f"argument --out: {error}")
        try:
            planned = plan(args, methods(args))
        except optimizers.OptionError as error:
            p.error(str(error))
        if writer:
            stage = stack.enter_context(outputs.staged(args.out))
        runs, failed = measure(args, planned, status=status)
        if not runs:
            p.exit(
                1,
                f"{p.prog}: error: every optimizer failed while running: "
                + "; ".join(f"{name}: {e}" for name, e in failed.items())
                + f"; nothing written to {args.out}\n",
            )
        numbers = summarise(args, runs)
        if writer:
            plots = figures(args, runs, numbers, stage)
            seconds = time.perf_counter() - start
            write(args, argv, runs, numbers, plots, seconds, failed=failed, folder=stage)
            written = ["REPORT.md", "results.json", *plots]
            outputs.commit(stage, args.out, written)
            print(report.markdown_table(numbers.rows))
            print(f"results in {args.out}/ ({', '.join(written)})")
            if failed:
                print(f"failed, not compared: {', '.join(failed)} (see REPORT.md)")
            others = outputs.others(args.out, written)
            if others:
                print(f"also in {args.out}/, not written by this run: {', '.join(others)}")
    return numbers
