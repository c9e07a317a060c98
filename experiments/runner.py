"""Runs experiments: progress bar, per-experiment ``metrics.json``, the report, a summary table."""

from __future__ import annotations

import json
import pathlib
import time
import zlib
from collections.abc import Sequence

import jax
from rich.console import Console
from rich.progress import BarColumn
from rich.progress import MofNCompleteColumn
from rich.progress import Progress
from rich.progress import SpinnerColumn
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn
from rich.table import Table

from experiments import registry
from experiments import report
from experiments.protocol import verdicts

STYLE = {
    verdicts.SUPPORTED: "green",
    verdicts.NOT_SUPPORTED: "red",
    verdicts.INCONCLUSIVE: "yellow",
    verdicts.DEPENDS: "yellow",
    verdicts.CHECK_PASSED: "green",
    verdicts.CHECK_FAILED: "red",
}


LAST_FULL = pathlib.Path(__file__).resolve().parent.parent / "results" / "last-full.json"


def last_full(path: pathlib.Path = LAST_FULL) -> dict[str, str]:
    """The statuses of the last full run (committed as data): ``{"experiment/claim":
    status}`` (a claim id alone is not unique: the textbook checks reuse C3 and C4); empty
    where there is none (an installed package without the repository's results/)."""
    if not path.exists():
        return {}
    return {k: v["status"] for k, v in json.loads(path.read_text())["claims"].items()}


def write_last_full(
    path: pathlib.Path,
    entries: Sequence[tuple[str, report.Finding]],
    *,
    seed: int,
    seconds: dict,
) -> None:
    """``path``: every claim's status and headline after a full run of all experiments
    (``(folder, finding)`` pairs, keyed ``"experiment/claim"``), with the seed and the wall
    times: what a later quick run is compared with."""
    payload = {
        "command": f"python -m experiments all --seed {seed}",
        "environment": report.environment(),
        "seconds": seconds,
        "claims": {
            f"{folder}{f.id}": {"status": f.verdict.status, "headline": f.headline}
            for folder, f in entries
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.jsonable(payload), indent=1) + "\n")


def experiment_key(seed: int, name: str) -> jax.Array:
    """The experiment's own key: the seed's key folded with a stable hash of its name."""
    return jax.random.fold_in(jax.random.key(seed), zlib.crc32(name.encode()))


def run(
    names: Sequence[str],
    *,
    quick: bool,
    out: pathlib.Path,
    seed: int,
    console: Console | None = None,
    modules: dict | None = None,
    last_full_path: pathlib.Path = LAST_FULL,
) -> list[report.Finding]:
    """Runs the named experiments; writes ``out/NAME/{metrics.json, *.png, REPORT.md}`` and,
    for more than one experiment, ``out/REPORT.md`` with every claim. Returns the findings.

    Under ``jax.distributed`` every process computes (the sweeps are sharded over all
    devices) and only process 0 writes. ``modules`` (default: ``registry.experiments()``)
    maps names to experiment modules. A quick run labels its statuses provisional beside
    those of the last full run in ``last_full_path``; a full run of every experiment writes
    ``out/last-full.json`` (the repository keeps the last one in ``results/``).
    """
    modules = registry.experiments() if modules is None else modules
    writer = jax.process_index() == 0
    console = console or Console(quiet=not writer)
    env = report.environment()
    console.print(
        f"JAX {env['jax']}, backend [bold]{env['backend']}[/], {env['devices']} "
        f"device(s) ({env['device_kind']}), {env['processes']} process(es)"
    )
    mode = "quick" if quick else "full"
    previous = last_full(last_full_path) if quick else {}
    entries: list[tuple[str, report.Finding]] = []
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("starting", total=len(names))
        for name in names:
            module = modules[name]
            cfg = module.QUICK if quick else module.FULL
            folder = out / name
            status = lambda text, name=name: progress.update(task, description=f"{name}: {text}")
            began = time.perf_counter()
            findings = module.run(cfg, experiment_key(seed, name), folder, status)
            for f in findings:
                f.last_full = previous.get(f"{name}/{f.id}", "")
            seconds[name] = time.perf_counter() - began
            if writer:
                report.write_metrics(
                    folder, name, cfg, findings, seconds=seconds[name], environment=env
                )
                report.write_report(
                    folder / "REPORT.md",
                    [("", f) for f in findings],
                    header(
                        names=[name],
                        mode=mode,
                        seed=seed,
                        env=env,
                        seconds={name: seconds[name]},
                        modules=modules,
                    ),
                    registry.STATEMENTS,
                )
            entries += [(f"{name}/", f) for f in findings]
            progress.advance(task)
        progress.update(task, description="done")
    total = time.perf_counter() - start
    if not quick and set(names) == set(modules) and writer:
        write_last_full(out / "last-full.json", entries, seed=seed, seconds=seconds)
    if len(names) > 1 and writer:
        report.write_report(
            out / "REPORT.md",
            entries,
            header(
                names=names,
                mode=mode,
                seed=seed,
                env=env,
                seconds=seconds,
                modules=modules,
                total=total,
            ),
            registry.STATEMENTS,
        )
    print_table(console, entries, f"{len(entries)} claims, {mode} run, seed {seed}, {total:.0f} s")
    console.print(f"results in {out}/")
    return [f for _, f in entries]


def header(
    *,
    names: Sequence[str],
    mode: str,
    seed: int,
    env: dict,
    seconds: dict,
    modules: dict,
    total: float | None = None,
) -> str:
    flag = " --quick" if mode == "quick" else ""
    which = "all" if len(names) == len(modules) else " ".join(names)
    took = f" in {total:.0f} s" if total is not None else ""
    times = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
    return (
        f"Written by `python -m experiments {which}{flag} --seed {seed}` ({mode} "
        f"configuration{took}) with JAX {env['jax']} on {env['backend']} "
        f"({env['devices']} {env['device_kind']} device(s), {env['processes']} process(es), "
        f"{env['cpus']} CPUs, Python {env['python']}). Wall time per experiment: {times}. "
        "Every status follows from the numbers below by the judge function of the claim's "
        "module in `experiments/claims/`; intervals are 95% Student-t intervals over seeds "
        "(a ratio's: of the per-seed logs)."
    )


def print_table(console: Console, entries: list[tuple[str, report.Finding]], title: str) -> None:
    table = Table(title=title)
    for column in ("claim", "experiment", "measurement", "status"):
        table.add_column(column, overflow="fold")
    for folder, finding in sorted(entries, key=lambda e: report.order(e[1].id)):
        statement = registry.STATEMENTS[finding.id]
        style = STYLE[finding.verdict.status]
        status = f"[{style}]{finding.verdict.status}[/]"
        if finding.provisional:
            flag = "[bold red]differs[/]" if finding.differs else "same"
            status += f" (provisional; last full run: {finding.last_full}, {flag})"
        table.add_row(
            f"{finding.id}. {statement.title}", folder.rstrip("/"), finding.headline, status
        )
    console.print(table)
