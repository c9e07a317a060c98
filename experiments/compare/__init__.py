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

``options`` holds the parser and its checks, ``run`` the runs and their ``Summary``,
``write`` the figures and files.
"""

from __future__ import annotations

import sys
import time

import jax

from experiments import optimizers
from experiments import report
from experiments.compare.options import NQM_DIM
from experiments.compare.options import PROBLEMS
from experiments.compare.options import Options
from experiments.compare.options import check
from experiments.compare.options import parser
from experiments.compare.run import Summary
from experiments.compare.run import measure
from experiments.compare.run import methods
from experiments.compare.run import structure
from experiments.compare.run import summarise
from experiments.compare.write import figures
from experiments.compare.write import write

__all__ = [
    "NQM_DIM",
    "PROBLEMS",
    "Options",
    "Summary",
    "check",
    "main",
    "measure",
    "methods",
    "parser",
    "structure",
    "summarise",
]


def main(argv: list[str] | None = None) -> Summary:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    args = check(p, p.parse_args(argv))
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
        print(report.markdown_table(numbers.rows))
        print(f"results in {args.out}/ (REPORT.md, results.json, {', '.join(plots)})")
    return numbers
