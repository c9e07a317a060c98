"""Claims, verdicts, ``metrics.json`` and ``REPORT.md``."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any

import numpy as np

from experiments.claims import STATEMENTS

SEEDS = {
    "000": "000_1a21b5a144fe4da5.txt",  # "Neural Network Momentum"
    "001": "001_ec733c47fdfc6e1c.txt",  # "Understanding Momentum in Neural Network Optimization"
    "002": "002_96713eb8431134a1.txt",  # "Momentum" (exponential moving averages)
}

SUPPORTED, NOT_SUPPORTED, DEPENDS = "supported", "not supported", "depends"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the data say about a claim, and why (``status`` is one of the three above)."""

    status: str
    reason: str
    conditions: tuple[tuple[str, bool], ...] = ()  # (sentence, whether the data make it true)


def rule(conditions: dict[str, bool]) -> Verdict:
    """The verdict rule shared by all claims: each condition is a sentence that the
    data make true or false. All true: supported; none: not supported; else
    depends, naming what holds and what does not. No conditions is an error: a verdict
    needs at least one sentence to judge."""
    if not conditions:
        raise ValueError("a verdict needs at least one condition")
    conditions = {c: bool(ok) for c, ok in conditions.items()}
    held = [c for c, ok in conditions.items() if ok]
    failed = [c for c, ok in conditions.items() if not ok]
    holds = "Holds: " + "; ".join(held) + "." if held else ""
    fails = "Does not hold: " + "; ".join(failed) + "." if failed else ""
    status = SUPPORTED if not failed else NOT_SUPPORTED if not held else DEPENDS
    return Verdict(status, " ".join(part for part in (holds, fails) if part),
                   tuple(conditions.items()))


@dataclasses.dataclass
class Claim:
    """One claim of a seed document, measured."""

    id: str  # "C1"
    title: str
    seed: str  # key of SEEDS (several joined by "+")
    quote: str
    setup: str
    headline: str  # the measurement in one line (terminal table, README)
    table: list[dict]  # the numbers, one dict per row
    plots: list[str]  # PNG paths relative to the experiment's folder
    verdict: Verdict
    metrics: dict = dataclasses.field(default_factory=dict)  # raw series for metrics.json
    source: str = ""  # beyond the seeds (seed ""): the papers, short form
    references: tuple[str, ...] = ()  # beyond the seeds: the papers, in full

    @property
    def beyond(self) -> bool:
        """Whether the claim comes from papers beyond the seed documents (E1, E2, ...)."""
        return not self.seed


def claim(claim_id: str, **measured: Any) -> Claim:
    """The measured claim ``claim_id``: its statement (``experiments.claims.STATEMENTS``)
    with the measurement (setup, headline, table, plots, verdict, metrics)."""
    statement = STATEMENTS[claim_id]
    return Claim(id=claim_id, title=statement.title, seed=statement.seed, quote=statement.quote,
                 source=statement.source, references=statement.references, **measured)


def order(claim: Claim) -> tuple[bool, int]:
    """Sort key: the seeds' claims C1..C12 first, then those beyond them, E1, E2, ..."""
    return claim.beyond, int(claim.id[1:])


def jsonable(value: Any) -> Any:
    """NumPy/JAX values as JSON: arrays to lists, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value):
        return jsonable(dataclasses.asdict(value))
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return jsonable(np.asarray(value).tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def fmt(value: Any) -> str:
    """A number as a table cell: 4 significant digits, ``never``/``nan`` spelled out."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isinf(value):
            return "never"
        if math.isnan(value):
            return "n/a"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def listing(values) -> str:
    """``(10, 100, 1000)``: a tuple of numbers as a setup sentence shows it."""
    return "(" + ", ".join(fmt(v) for v in values) + ")"


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(row[h]) for h in head) + " |" for row in rows]
    return "\n".join(lines)


def write_metrics(directory: pathlib.Path, name: str, config: Any, claims: list[Claim]) -> None:
    """``directory/metrics.json``: the configuration and every claim's numbers and verdict."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"experiment": name, "config": jsonable(config),
               "claims": {c.id: jsonable({"title": c.title, "verdict": c.verdict, "headline":
                                          c.headline, "table": c.table, "metrics": c.metrics})
                          for c in claims}}
    (directory / "metrics.json").write_text(json.dumps(payload, indent=1) + "\n")


def section(claim: Claim, folder: str) -> str:
    """A claim's section of the report; plot paths are prefixed by ``folder``."""
    if claim.beyond:
        attribution = f"{claim.source} (paraphrased)"
        references = "**References.** " + " ".join(claim.references) + "\n\n"
    else:
        attribution = "seed " + ", ".join(f"`{SEEDS[s]}`" for s in claim.seed.split("+"))
        references = ""
    plots = "\n".join(f"![{claim.id}]({folder}{p})" for p in claim.plots)
    return (f"## {claim.id}. {claim.title}\n\n"
            f"> {claim.quote}\n>\n> — {attribution}\n\n{references}"
            f"**Setup.** {claim.setup}\n\n"
            f"**Numbers.** {claim.headline}\n\n{markdown_table(claim.table)}\n\n"
            f"{plots}\n\n"
            f"**Verdict: {claim.verdict.status}.** {claim.verdict.reason}\n")


BEYOND = ("Beyond the source documents", "The claims below are not in the three seed "
          "documents: they come from the papers behind methods the library adds (adaptive "
          "restart, quasi-hyperbolic and aggregated momentum, decaying momentum), paraphrased, "
          "and are measured with the same machinery and judged by the same kind of rule.")


def write_report(path: pathlib.Path, claims: list[tuple[str, Claim]], header: str) -> None:
    """``REPORT.md``: a summary table, then one section per claim (``(folder, claim)`` pairs);
    the claims beyond the seed documents come after, under their own heading."""
    ordered = sorted(claims, key=lambda fc: order(fc[1]))
    seeds = [(f, c) for f, c in ordered if not c.beyond]
    beyond = [(f, c) for f, c in ordered if c.beyond]
    parts = [f"# Momentum claims, measured\n\n{header}\n"]
    if seeds:
        parts.append(markdown_table([{"claim": f"{c.id}. {c.title}", "seed": c.seed,
                                      "measurement": c.headline, "verdict": c.verdict.status}
                                     for _, c in seeds]) + "\n")
    if beyond:
        parts.append(f"**{BEYOND[0]}.**\n\n" + markdown_table(
            [{"claim": f"{c.id}. {c.title}", "source": c.source, "measurement": c.headline,
              "verdict": c.verdict.status} for _, c in beyond]) + "\n")
    parts += [section(c, folder) for folder, c in seeds]
    if beyond:
        parts.append(f"---\n\n# {BEYOND[0]}\n\n{BEYOND[1]}\n")
        parts += [section(c, folder) for folder, c in beyond]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
