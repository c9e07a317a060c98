"""Findings, ``metrics.json`` and ``REPORT.md``.

A claim module returns ``Finding``s (what it measured and the verdict its judge
gave); the report joins each with its statement from ``experiments.registry`` (the
quote and its sources) and writes one section per claim: the quote and source, the
reading tested, the setup, the search space and budget, the pre-registered primary
condition, the numbers with their intervals, the plots and the status with its reason.
Textbook checks (verdicts with ``check=True``) get their own part of the report.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import subprocess
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from .protocol.stats import Interval
from .protocol.verdicts import Verdict


@dataclasses.dataclass
class Finding:
    """One claim, measured: what was tested, how, the numbers and the verdict."""

    id: str  # "C3"; its statement is experiments.registry.STATEMENTS[id]
    reading: str  # the reading of the claim that is tested, and why
    primary: str  # the pre-registered primary condition, with its threshold
    setup: str  # problem, model, steps, batch size, seeds
    budget: str  # search space and trials per method ("" for seed-free checks)
    headline: str  # the measurement in one line (terminal table, README)
    table: list[dict]  # the numbers, one dict per row (intervals as Interval)
    plots: list[str]  # PNG paths relative to the experiment's folder
    verdict: Verdict
    metrics: dict = dataclasses.field(default_factory=dict)  # raw numbers for metrics.json
    notes: str = ""  # edge-of-space flags, caveats
    horizon: str = ""  # the run's length in epochs and whether validation stopped improving
    last_full: str = ""  # in a quick run: the status of the last full run ("" if none)

    @property
    def provisional(self) -> bool:
        """A quick run's status: a smoke test, shown beside the last full run's."""
        return bool(self.last_full)

    @property
    def differs(self) -> bool:
        return self.provisional and self.last_full != self.verdict.status

    @property
    def check(self) -> bool:
        """A textbook check of the implementation rather than empirical evidence."""
        return self.verdict.check


def environment() -> dict:
    """What the numbers were measured on (the report header and every ``metrics.json``)."""
    devices = jax.devices()
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "devices": len(devices),
        "processes": jax.process_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "versions": versions(),
    }


VERSIONED = ("momentum_optax", "jax", "jaxlib", "optax", "numpy", "flax", "matplotlib")


def versions() -> dict[str, str]:
    """The installed versions of the libraries the numbers depend on ("not installed")."""
    out = {}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@functools.cache
def source() -> dict:
    """The git commit of the code that ran, ``{"commit": sha, "modified": bool}`` (tracked
    files changed since it); ``"unknown"`` and None outside a git checkout of this
    repository or without git."""
    root = pathlib.Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
        )
        if done.returncode:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    try:
        if pathlib.Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            raise OSError("the package is not at the top of this checkout")
        return {
            "commit": git("rev-parse", "HEAD"),
            "modified": bool(git("status", "--porcelain", "--untracked-files=no")),
        }
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "modified": None}


NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def jsonable(value: Any) -> Any:
    """NumPy/JAX values as JSON: arrays to lists; non-finite floats, which JSON lacks, to the
    strings ``"inf"``, ``"-inf"`` and ``"nan"`` (what ``fmt`` and the report print for an
    interval; ``float(s)`` reads them back, and so does ``from_json``)."""
    if isinstance(value, Interval):
        return {
            "mean": jsonable(value.mean),
            "low": jsonable(value.low),
            "high": jsonable(value.high),
            "n": value.n,
        }
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return jsonable(np.asarray(value).tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else str(float(value))
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def from_json(value: Any) -> Any:
    """``jsonable``'s inverse for numbers: the strings ``"inf"``, ``"-inf"`` and ``"nan"``
    back to floats, in nested lists and dicts."""
    if isinstance(value, dict):
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return NON_FINITE.get(value, value) if isinstance(value, str) else value


def fmt(value: Any) -> str:
    """A number as a table cell: 4 significant digits, ``never``/``n/a`` spelled out;
    an interval as ``mean [low, high]``."""
    if isinstance(value, Interval):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isinf(value):
            return "never" if value > 0 else "-inf"
        if math.isnan(value):
            return "n/a"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def listing(values) -> str:
    """``(10, 100, 1000)``: a tuple of numbers as a setup sentence shows it."""
    return "(" + ", ".join(fmt(v) for v in values) + ")"


def edge_note(edges: Sequence[str]) -> str:
    """The report's note on choices at the edge of their search space ("" when none)."""
    return ("Selections on the edge of the space: " + "; ".join(edges) + ".") if edges else ""


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    head = list(dict.fromkeys(k for row in rows for k in row))  # every column, in order
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(row.get(h, "")) for h in head) + " |" for row in rows]
    return "\n".join(lines)


def write_metrics(
    directory: pathlib.Path,
    name: str,
    config: Any,
    findings: list[Finding],
    *,
    seconds: float,
    environment: dict,
    run: dict | None = None,
) -> None:
    """``directory/metrics.json``: the run (command, seed, quick or full, git commit),
    environment (library versions included), wall time, configuration, every finding."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "experiment": name,
        "run": run or {},
        "seconds": seconds,
        "environment": environment,
        "config": jsonable(config),
        "claims": {
            f.id: jsonable(
                {
                    "status": f.verdict.status,
                    "check": f.check,
                    "reason": f.verdict.reason,
                    "primary": f.primary,
                    "conditions": f.verdict.primary,
                    "secondary": f.verdict.secondary,
                    "headline": f.headline,
                    "horizon": f.horizon,
                    "table": f.table,
                    "metrics": f.metrics,
                }
            )
            for f in findings
        },
    }
    (directory / "metrics.json").write_text(json.dumps(payload, indent=1) + "\n")


def order(claim_id: str) -> tuple[bool, int]:
    """Sort key: the sources' claims C1.. first, then those beyond them, E1, E2, ..."""
    return claim_id.startswith("E"), int(claim_id[1:])


def section(finding: Finding, statement: Any, folder: str) -> str:
    """A finding's section of the report; plot paths are prefixed by ``folder``."""
    plots = "\n".join(f"![{finding.id}]({folder}{p})" for p in finding.plots)
    secondary = ""
    if finding.verdict.secondary:
        secondary = (
            "**Secondary (reported, not voting).** "
            + "; ".join(f"{c.sentence()} -> {c.status}" for c in finding.verdict.secondary)
            + "\n\n"
        )
    budget = f"**Search space and budget.** {finding.budget}\n\n" if finding.budget else ""
    horizon = f"**Horizon.** {finding.horizon}\n\n" if finding.horizon else ""
    notes = f"**Notes.** {finding.notes}\n\n" if finding.notes else ""
    label = "Check" if finding.check else "Verdict"
    if finding.provisional:
        label += " (provisional: quick run)"
        notes += (
            f"**Last full run: {finding.last_full}**"
            + (" (differs from this quick run)." if finding.differs else " (the same).")
            + "\n\n"
        )
    return (
        f"## {finding.id}. {statement.title}\n\n"
        f"> {statement.quote}\n>\n> — {statement.cited}\n\n"
        f"**Reading tested.** {finding.reading}\n\n"
        f"**Setup.** {finding.setup}\n\n{horizon}{budget}"
        f"**Primary condition (pre-registered).** {finding.primary}\n\n"
        f"**Numbers.** {finding.headline}\n\n{markdown_table(finding.table)}\n\n"
        f"{plots}\n\n{secondary}{notes}"
        f"**{label}: {finding.verdict.status}.** {finding.verdict.reason}\n"
    )


def summary_rows(entries: Sequence[tuple[str, Finding]], statements: dict) -> list[dict]:
    """One row per claim; in a quick run the status is provisional, with the last full
    run's beside it and a flag where they differ."""
    rows = []
    for _, f in entries:
        row = {
            "claim": f"{f.id}. {statements[f.id].title}",
            "source": statements[f.id].short,
            "measurement": f.headline,
            "status": f.verdict.status + (" (provisional)" if f.provisional else ""),
        }
        if f.provisional:
            row["last full run"] = f.last_full
            row["differs"] = "**differs**" if f.differs else "same"
        rows.append(row)
    return rows


def multiplicity(entries: Sequence[tuple[str, Finding]]) -> str:
    """The report's multiplicity statement: how many primary conditions are judged and how
    many wrong decisions chance alone would give."""
    n = sum(len(f.verdict.primary) for _, f in entries if not f.check)
    return (
        f"**Multiplicity.** This report judges {n} primary conditions of empirical claims, "
        "each on its own 95% interval (no family-wise correction: each claim is a separate "
        "question). A one-sided decision against a threshold is wrong with probability at "
        "most 2.5% when the truth sits at the threshold, so up to about "
        f"{0.025 * n:.1f} wrong 'supported' / 'not supported' decisions are expected by "
        "chance among them; a status whose interval ends close to its threshold is the "
        "likeliest to be one. Secondary conditions are descriptive and do not vote."
    )


PARTS = (
    (
        "Claims of the source documents",
        lambda f: not f.check and not f.id.startswith("E"),
        "Each claim below is judged on its primary condition, written before the run, with "
        "95% Student-t intervals over seeds and equal tuning budgets for the methods compared.",
    ),
    (
        "Beyond the source documents",
        lambda f: not f.check and f.id.startswith("E"),
        "Claims of the papers behind methods the library adds beyond the three sources, "
        "paraphrased, measured under the same protocol.",
    ),
    (
        "Textbook checks of the implementation",
        lambda f: f.check,
        "These statements are theorems on quadratics or algebraic identities: they cannot fail "
        "unless the code is wrong, so they test the implementation and are not counted as "
        "evidence for the claims.",
    ),
)


TITLE = "# Momentum claims, measured"  # REPORT.md's first line: how a later run knows it


def write_report(
    path: pathlib.Path, entries: list[tuple[str, Finding]], header: str, statements: dict
) -> None:
    """``REPORT.md``: a summary table per part (claims, beyond, checks), then one section
    per finding (``(folder, finding)`` pairs, folder prefixing its plots)."""
    ordered = sorted(entries, key=lambda e: order(e[1].id))
    parts = [f"{TITLE}\n\n{header}\n"]
    if any(not f.check for _, f in entries):
        parts.append(multiplicity(entries) + "\n")
    for title, belongs, _ in PARTS:
        chosen = [e for e in ordered if belongs(e[1])]
        if chosen:
            parts.append(
                f"**{title}.**\n\n" + markdown_table(summary_rows(chosen, statements)) + "\n"
            )
    for title, belongs, intro in PARTS:
        chosen = [e for e in ordered if belongs(e[1])]
        if chosen:
            parts.append(f"---\n\n# {title}\n\n{intro}\n")
            parts += [section(f, statements[f.id], folder) for folder, f in chosen]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
