"""The report: findings joined with their statements, the three parts, metrics.json, the CLI."""

import dataclasses
import json
import types

import numpy as np
import pytest
from rich.console import Console

from experiments import __main__ as cli
from experiments import registry
from experiments import report
from experiments import runner
from experiments.protocol import stats
from experiments.protocol import verdicts


def _finding(claim_id, interval, *, check=False):
    condition = verdicts.Condition("paired ratio", interval, 0.8, verdicts.BELOW)
    verdict = verdicts.judge_check([condition]) if check else verdicts.judge(condition)
    return report.Finding(
        id=claim_id,
        reading="the reading",
        primary="ratio below 0.8",
        setup="the setup",
        budget="8 trials",
        headline=f"ratio {interval}",
        table=[{"arm": "a", "steps": interval}],
        plots=["p.png"],
        verdict=verdict,
        metrics={"curve": np.array([1.0, np.inf])},
    )


@dataclasses.dataclass(frozen=True)
class _Config:
    size: int = 1


def _module(name, findings):
    def run(cfg, key, out, status):
        status("working")
        out.mkdir(parents=True, exist_ok=True)
        return findings

    return types.SimpleNamespace(
        NAME=name, QUICK=_Config(), FULL=_Config(2), run=run, __doc__="A fake experiment."
    )


def test_runner_writes_each_part_with_sources_conditions_and_environment(tmp_path):
    claims = [
        _finding("C4", stats.Interval(0.9, 0.85, 0.95, 3)),
        _finding("E2", stats.Interval(0.5, 0.4, 0.6, 3)),
        _finding("C2", stats.Interval(0.1, 0.1, 0.1, 1), check=True),
    ]
    modules = {"one": _module("one", claims[:2]), "two": _module("two", claims[2:])}
    found = runner.run(
        ["one", "two"],
        quick=True,
        out=tmp_path,
        seed=3,
        console=Console(file=open(tmp_path / "log.txt", "w")),
        modules=modules,
        last_full_path=tmp_path / "none.json",  # no full run yet: nothing is provisional
    )
    assert [f.id for f in found] == ["C4", "E2", "C2"]
    text = (tmp_path / "REPORT.md").read_text()
    parts = [text.index(f"# {title}") for title, _, _ in report.PARTS]
    assert parts == sorted(parts)  # claims, beyond, checks
    assert text.index("## C4.") < parts[1] < text.index("## E2.") < parts[2] < text.index("## C2.")
    assert "**Verdict: not supported.**" in text and "**Verdict: supported.**" in text
    assert "**Check: check passed.**" in text
    assert "James D. McCaffrey" not in text  # C4, E2 and C2 do not cite him
    assert "*Understanding Momentum in Neural Network Optimization*" in text
    assert "J. Ma and D. Yarats" in text and ".txt" not in text
    assert "Primary condition (pre-registered).** ratio below 0.8" in text
    assert "0.9 [0.85, 0.95]" in text and "--quick --seed 3" in text
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert metrics["environment"]["backend"] == "cpu" and metrics["seconds"] >= 0
    assert metrics["claims"]["C4"]["status"] == "not supported"
    assert metrics["claims"]["C4"]["metrics"]["curve"] == [1.0, "inf"]  # JSON has no inf
    assert metrics["claims"]["C4"]["conditions"][0]["estimate"]["high"] == 0.95
    assert (tmp_path / "two" / "REPORT.md").exists()


def test_a_quick_run_is_provisional_beside_the_last_full_run_and_flags_what_differs(tmp_path):
    full = [
        _finding("C4", stats.Interval(0.5, 0.4, 0.6, 8)),  # supported
        _finding("C2", stats.Interval(0.1, 0.1, 0.1, 1), check=True),
    ]
    quick = [
        _finding("C4", stats.Interval(0.9, 0.85, 0.95, 5)),  # not supported
        _finding("C4", stats.Interval(0.1, 0.1, 0.1, 1), check=True),  # C4 reused by a check
    ]
    log = Console(file=open(tmp_path / "log.txt", "w"))
    names = ["one", "two"]
    runner.run(
        names,
        quick=False,
        out=tmp_path / "full",
        seed=0,
        console=log,
        modules={"one": _module("one", full[:1]), "two": _module("two", full[1:])},
    )
    saved = tmp_path / "full" / "last-full.json"
    assert runner.last_full(saved) == {"one/C4": "supported", "two/C2": "check passed"}
    found = runner.run(
        names,
        quick=True,
        out=tmp_path / "quick",
        seed=0,
        console=log,
        modules={"one": _module("one", quick[:1]), "two": _module("two", quick[1:])},
        last_full_path=saved,
    )
    c4, check = found
    assert c4.provisional and c4.last_full == "supported" and c4.differs
    assert not check.provisional  # keyed by experiment and claim: two/C4 was not in the full run
    text = (tmp_path / "quick" / "REPORT.md").read_text()
    assert "not supported (provisional) | supported | **differs**" in text
    assert "**Verdict (provisional: quick run): not supported.**" in text
    assert "**Last full run: supported** (differs from this quick run)." in text
    assert "primary conditions of empirical claims" in text  # the multiplicity statement
    # a quick run never overwrites the full run's statuses
    assert not (tmp_path / "quick" / "last-full.json").exists()


def test_every_statement_cites_known_sources_and_titles_are_unique():
    titles = [s.title for s in registry.STATEMENTS.values()]
    assert len(set(titles)) == len(titles)
    for claim_id, statement in registry.STATEMENTS.items():
        assert statement.sources and all(s in registry.SOURCES for s in statement.sources)
        assert statement.quote and claim_id[0] in "CE"
    assert set(registry.STATEMENTS) >= {f"C{i}" for i in range(1, 16)} | {"E1", "E2"}


def test_non_finite_numbers_are_json_strings_that_read_back():
    value = {"loss": np.array([1.0, np.inf, -np.inf]), "gap": np.float32("nan"), "n": 3}
    encoded = json.loads(json.dumps(report.jsonable(value), allow_nan=False))
    assert encoded == {"loss": [1.0, "inf", "-inf"], "gap": "nan", "n": 3}
    back = report.from_json(encoded)
    assert back["loss"] == [1.0, np.inf, -np.inf] and np.isnan(back["gap"])
    # an interval's ends as the report prints them
    interval = report.jsonable(stats.Interval(np.inf, 0.5, np.inf, 3))
    assert f"{interval['mean']} [{interval['low']}, {interval['high']}]" == str(
        stats.Interval(np.inf, 0.5, np.inf, 3)
    )


def test_fmt_spells_out_never_and_intervals():
    assert report.fmt(np.inf) == "never" and report.fmt(float("nan")) == "n/a"
    assert report.fmt(stats.Interval(1.0, 0.5, np.inf, 3)) == "1 [0.5, inf]"
    assert report.fmt(True) == "yes" and report.fmt(3.0) == "3"


def test_help_lists_every_experiment_and_compare(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in registry.experiments():
        assert name in out
    assert "compare" in out and "bench" in out


def test_edge_note_names_each_choice_or_says_nothing():
    assert report.edge_note([]) == ""
    assert report.edge_note(["SGD: lr", "Adam: eps"]) == (
        "Selections on the edge of the space: SGD: lr; Adam: eps."
    )


def test_a_section_states_the_horizon_after_the_setup_and_only_when_given():
    statement = registry.STATEMENTS["C3"]
    plain = report.section(_finding("C3", stats.Interval(0.5, 0.4, 0.6, n=5)), statement, "c/")
    assert "**Horizon.**" not in plain
    finding = dataclasses.replace(
        _finding("C3", stats.Interval(0.5, 0.4, 0.6, n=5)), horizon="2000 steps = 8.0 epochs"
    )
    text = report.section(finding, statement, "c/")
    assert text.index("**Setup.**") < text.index("**Horizon.** 2000 steps = 8.0 epochs")
    assert text.index("**Horizon.**") < text.index("**Search space and budget.**")
