"""Runs experiments: progress bar, per-experiment ``metrics.json``, the report, a summary table."""

from __future__ import annotations

import contextlib
import json
import pathlib
import tempfile
import time
import zlib
from collections.abc import Callable
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

from . import outputs
from . import registry
from . import report
from .protocol import verdicts

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


REPORT = "REPORT.md"  # OUT/REPORT.md: every claim of a run of several experiments
FULL = "last-full.json"  # OUT/last-full.json: written by a full run of every experiment
STALE = (
    "> **Out of date.** Later runs rewrote these folders; their numbers and plots are no "
    "longer those below (rerun `python -m experiments all` for a report that agrees):"
)


def command_line(names: Sequence[str], *, quick: bool, seed: int, out: pathlib.Path) -> str:
    """The command that reruns a run of ``names`` (``all`` where they are every experiment
    is the caller's to say: ``__main__`` passes the command line it was given)."""
    flag = " --quick" if quick else ""
    return f"python -m experiments {' '.join(names)}{flag} --seed {seed} --out {out}"


def _experiment_folder(name: str) -> Callable[[pathlib.Path], bool]:
    """Whether a folder is experiment ``name``'s: empty, or with a metrics.json naming it."""

    def ours(path: pathlib.Path) -> bool:
        if not path.is_dir():
            return False
        named = outputs.json_field(path / "metrics.json", "experiment") == name
        return named or not any(path.iterdir())

    return ours


def _ours(names: Sequence[str], writes: Sequence[str]) -> dict[str, Callable[[pathlib.Path], bool]]:
    """For each entry of OUT a run replaces: how to tell that an earlier run wrote it."""
    ours = {name: _experiment_folder(name) for name in names}
    if REPORT in writes:
        ours[REPORT] = lambda path: outputs.first_line(path) == report.TITLE
    if FULL in writes:
        ours[FULL] = lambda path: outputs.json_field(path, "claims") is not None
    return ours


def mark_stale(text: str, names: Sequence[str], command: str, when: str) -> str:
    """An earlier run's ``REPORT.md`` with a notice after its title naming the folders that
    ``command`` rewrote (one line per folder; a folder rewritten again updates its line)."""
    lines = text.split("\n")
    rest, rewritten = lines[1:], {}
    if rest[1:2] == [STALE]:
        i = 2
        while i < len(rest) and rest[i].startswith("> - `"):
            rewritten[rest[i].split("`")[1]] = rest[i]
            i += 1
        rest = rest[i:]
    for name in names:
        rewritten[f"{name}/"] = f"> - `{name}/`: by `{command}` on {when}"
    return "\n".join([lines[0], "", STALE, *rewritten.values(), *rest])


def run(
    names: Sequence[str],
    *,
    quick: bool,
    out: pathlib.Path,
    seed: int,
    console: Console | None = None,
    modules: dict | None = None,
    last_full_path: pathlib.Path = LAST_FULL,
    command: str | None = None,
) -> list[report.Finding]:
    """Runs the named experiments; writes ``out/NAME/{metrics.json, *.png, REPORT.md}`` and,
    for more than one experiment, ``out/REPORT.md`` with every claim. Returns the findings.

    All or nothing: before any compute it checks that ``out`` can be written, takes its
    lock and checks that the entries it replaces were written by earlier runs (raising
    ``outputs.OutputError`` otherwise); everything is written into ``out/.partial-*`` and
    moved into place when every experiment has finished, so an interrupted run leaves
    ``out`` as it was (``experiments.outputs``). A combined ``out/REPORT.md`` of an earlier
    run that shows a folder this run rewrites gets a notice naming it.

    Under ``jax.distributed`` every process computes (the sweeps are sharded over all
    devices) and only process 0 writes. ``modules`` (default: ``registry.experiments()``)
    maps names to experiment modules. A quick run labels its statuses provisional beside
    those of the last full run in ``last_full_path``; a full run of every experiment writes
    ``out/last-full.json`` (the repository keeps the last one in ``results/``).
    ``command`` (the command line, for ``metrics.json``) defaults to ``command_line``.
    """
    modules = registry.experiments() if modules is None else modules
    writer = jax.process_index() == 0
    console = console or Console(quiet=not writer)
    mode = "quick" if quick else "full"
    command = command or command_line(names, quick=quick, seed=seed, out=out)
    full_all = not quick and set(names) == set(modules)
    writes = [*names, *([REPORT] if len(names) > 1 else []), *([FULL] if full_all else [])]
    with contextlib.ExitStack() as stack:
        if writer:
            outputs.check_writable(out)
            stack.enter_context(outputs.lock(out, command))
            for gone in outputs.remove_leftovers(out):
                console.print(f"removed {out / gone}/, left by a run that was killed")
            outputs.refuse_foreign(out, _ours(names, writes), "python -m experiments")
            root = stack.enter_context(outputs.staged(out))
        else:
            root = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory()))
        run_record = {
            "command": command,
            "seed": seed,
            "mode": mode,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **report.source(),
        }
        entries, seconds, total = _measure(
            names, quick, seed, root, console, modules, last_full_path, run_record, writer
        )
        if writer:
            if full_all:
                write_last_full(root / FULL, entries, seed=seed, seconds=seconds)
            if len(names) > 1:
                report.write_report(
                    root / REPORT,
                    entries,
                    header(
                        names=names,
                        mode=mode,
                        seed=seed,
                        env=report.environment(),
                        seconds=seconds,
                        modules=modules,
                        total=total,
                    ),
                    registry.STATEMENTS,
                )
            elif outputs.first_line(out / REPORT) == report.TITLE:
                old = (out / REPORT).read_text()
                if any(f"]({name}/" in old for name in names):
                    when = time.strftime("%Y-%m-%d %H:%M")
                    (root / REPORT).write_text(mark_stale(old, names, command, when))
                    writes.append(REPORT)
            outputs.commit(root, out, writes)
    print_table(console, entries, f"{len(entries)} claims, {mode} run, seed {seed}, {total:.0f} s")
    shown = [f"{w}/" if w in names else w for w in writes]
    console.print(f"results in {out}/: {', '.join(shown)} written by this run")
    earlier = outputs.others(out, writes) if writer else []
    if earlier:
        console.print(f"also in {out}/, from earlier runs, left as they were: {', '.join(earlier)}")
    return [f for _, f in entries]


def _measure(
    names: Sequence[str],
    quick: bool,
    seed: int,
    root: pathlib.Path,
    console: Console,
    modules: dict,
    last_full_path: pathlib.Path,
    run_record: dict,
    writer: bool,
) -> tuple[list[tuple[str, report.Finding]], dict[str, float], float]:
    """Every experiment into ``root/NAME`` (with its metrics.json and REPORT.md), under a
    progress bar: the ``(folder, finding)`` pairs, the wall time of each and in all."""
    env = report.environment()
    console.print(
        f"JAX {env['jax']}, backend [bold]{env['backend']}[/], {env['devices']} "
        f"device(s) ({env['device_kind']}), {env['processes']} process(es)"
    )
    mode = run_record["mode"]
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
            folder = root / name
            status = lambda text, name=name: progress.update(task, description=f"{name}: {text}")
            began = time.perf_counter()
            findings = module.run(cfg, experiment_key(seed, name), folder, status)
            for f in findings:
                f.last_full = previous.get(f"{name}/{f.id}", "")
            seconds[name] = time.perf_counter() - began
            if writer:
                report.write_metrics(
                    folder,
                    name,
                    cfg,
                    findings,
                    seconds=seconds[name],
                    environment=env,
                    run=run_record,
                )
                report.write_report(
                    folder / REPORT,
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
    return entries, seconds, time.perf_counter() - start


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
    code = report.source()
    at = "" if code["commit"] == "unknown" else f" at commit {code['commit'][:12]}"
    at += " (with local changes)" if code["modified"] else ""
    return (
        f"Written by `python -m experiments {which}{flag} --seed {seed}`{at} ({mode} "
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
