"""Runs experiments: progress bar, per-experiment ``metrics.json``, the report, a summary table."""

from __future__ import annotations

import pathlib
import time
import zlib
from typing import Sequence

import jax
from rich.console import Console
from rich.progress import BarColumn
from rich.progress import MofNCompleteColumn
from rich.progress import Progress
from rich.progress import SpinnerColumn
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn
from rich.table import Table

from experiments import report
from experiments.claims import minima
from experiments.claims import mlp
from experiments.claims import ravine
from experiments.claims import restart
from experiments.claims import rosenbrock
from experiments.claims import schedules
from experiments.claims import sweep
from experiments.claims import variants

EXPERIMENTS = {m.NAME: m for m in (ravine, rosenbrock, minima, mlp, sweep, schedules, restart,
                                    variants)}
VERDICT_STYLE = {report.SUPPORTED: "green", report.NOT_SUPPORTED: "red", report.DEPENDS: "yellow"}


def experiment_key(seed: int, name: str) -> jax.Array:
    """The experiment's own key: the seed's key folded with a stable hash of its name."""
    return jax.random.fold_in(jax.random.key(seed), zlib.crc32(name.encode()))


def run(names: Sequence[str], *, quick: bool, out: pathlib.Path, seed: int,
        console: Console | None = None) -> list[report.Claim]:
    """Runs the named experiments; writes ``out/NAME/{metrics.json, *.png, REPORT.md}`` and,
    for more than one experiment, ``out/REPORT.md`` with every claim. Returns the claims."""
    console = console or Console()
    console.print(f"JAX {jax.__version__}, backend [bold]{jax.default_backend()}[/], "
                  f"devices {jax.devices()}")
    mode = "quick" if quick else "full"
    results: list[tuple[str, report.Claim]] = []
    start = time.perf_counter()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("starting", total=len(names))
        for name in names:
            module = EXPERIMENTS[name]
            cfg = module.QUICK if quick else module.FULL
            folder = out / name
            status = lambda text: progress.update(task, description=text)
            claims = module.run(cfg, experiment_key(seed, name), folder, status)
            report.write_metrics(folder, name, cfg, claims)
            header = _header(names=[name], mode=mode, seed=seed, seconds=None)
            report.write_report(folder / "REPORT.md", [("", c) for c in claims], header)
            results += [(f"{name}/", c) for c in claims]
            progress.advance(task)
        progress.update(task, description="done")
    seconds = time.perf_counter() - start
    if len(names) > 1:
        report.write_report(out / "REPORT.md", results,
                            _header(names=names, mode=mode, seed=seed, seconds=seconds))
    _print_table(console, results, f"{len(results)} claims, {mode} run, seed {seed}, "
                                   f"{seconds:.0f} s")
    console.print(f"results in {out}/")
    return [c for _, c in results]


def _header(*, names: Sequence[str], mode: str, seed: int, seconds: float | None) -> str:
    flag = " --quick" if mode == "quick" else ""
    which = "all" if len(names) == len(EXPERIMENTS) else " ".join(names)
    took = f", {seconds:.0f} s" if seconds is not None else ""
    return (f"Written by `python -m experiments {which}{flag} --seed {seed}` ({mode} "
            f"configuration; JAX {jax.__version__} on {jax.default_backend()}, "
            f"{jax.device_count()} device(s){took}). Every verdict is computed from the numbers "
            "below by the rule in the experiment's module (`experiments/claims/`).")


def _print_table(console: Console, results: list[tuple[str, report.Claim]], title: str) -> None:
    table = Table(title=title)
    for column in ("claim", "experiment", "measurement", "verdict"):
        table.add_column(column, overflow="fold")
    for folder, claim in sorted(results, key=lambda fc: report.order(fc[1])):
        style = VERDICT_STYLE[claim.verdict.status]
        table.add_row(f"{claim.id}. {claim.title}", folder.rstrip("/"), claim.headline,
                      f"[{style}]{claim.verdict.status}[/]")
    console.print(table)
