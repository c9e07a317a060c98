"""Where the experiments write: all or nothing, one run per folder, checked before any compute,
with the run recorded (``experiments.outputs`` through ``experiments.runner`` and the CLI).

The experiments here are fakes that write a plot or two (and may be interrupted after the
first): each test takes well under a second."""

import dataclasses
import io
import json
import os
import re
import subprocess
import types

import jax
import pytest
from rich.console import Console

from experiments import __main__ as cli
from experiments import arguments
from experiments import outputs
from experiments import registry
from experiments import report
from experiments import runner
from experiments.protocol import stats
from tests.test_report import _Config
from tests.test_report import _finding


def _module(name, plots, *, tag="first", interrupt=False, calls=None):
    """A fake experiment: writes ``plots`` (their bytes name the run), then either returns a
    finding or, with ``interrupt``, raises KeyboardInterrupt as Ctrl-C would."""

    def run(cfg, key, out, status):
        if calls is not None:
            calls.append(name)
        out.mkdir(parents=True, exist_ok=True)
        for i, plot in enumerate(plots):
            (out / plot).write_text(f"{tag} {plot}")
            if interrupt and i == 0:
                raise KeyboardInterrupt
        finding = _finding("C4", stats.Interval(0.9, 0.85, 0.95, 3))
        return [dataclasses.replace(finding, plots=list(plots))]

    return types.SimpleNamespace(
        NAME=name, QUICK=_Config(), FULL=_Config(2), run=run, __doc__="A fake experiment."
    )


def _run(out, modules, names=None, **kwargs):
    """The runner on fake modules; returns what it printed."""
    log = io.StringIO()
    runner.run(
        names or list(modules),
        quick=True,
        out=out,
        seed=kwargs.pop("seed", 0),
        console=Console(file=log, width=300),
        modules=modules,
        last_full_path=out.parent / "no-full-run.json",
        **kwargs,
    )
    return log.getvalue()


def _files(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_an_interrupted_run_leaves_the_previous_outputs_as_they_were(tmp_path):
    out = tmp_path / "out"
    _run(out, {"one": _module("one", ["a.png"])})
    before = _files(out)
    assert set(before) == {"one/a.png", "one/metrics.json", "one/REPORT.md"}
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after its first new plot
        _run(out, {"one": _module("one", ["b.png", "a.png"], tag="second", interrupt=True)})
    assert _files(out) == before  # no b.png beside the old plots, nothing half-replaced
    assert sorted(os.listdir(out)) == ["one"]  # no partial folder, no lock left


def test_an_interrupted_first_run_leaves_no_folder(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "new", {"one": _module("one", ["a.png"], interrupt=True)})
    assert not (tmp_path / "new").exists()


def test_a_rerun_replaces_the_experiment_folder_whole(tmp_path):
    out = tmp_path / "out"
    _run(out, {"one": _module("one", ["old.png"])})
    _run(out, {"one": _module("one", ["new.png"], tag="second")})
    assert sorted(os.listdir(out / "one")) == ["REPORT.md", "metrics.json", "new.png"]
    assert (out / "one" / "new.png").read_text() == "second new.png"


def test_a_rerun_of_one_experiment_marks_the_combined_report_out_of_date(tmp_path):
    out = tmp_path / "out"
    both = {"one": _module("one", ["a.png"]), "two": _module("two", ["b.png"])}
    _run(out, both)
    assert runner.STALE not in (out / "REPORT.md").read_text()
    log = _run(out, {"one": _module("one", ["a.png"], tag="second")}, command="rerun one")
    _run(out, {"one": _module("one", ["a.png"], tag="third")}, command="rerun one again")
    lines = (out / "REPORT.md").read_text().splitlines()
    assert lines[0] == report.TITLE and lines[2] == runner.STALE
    notices = [x for x in lines if x.startswith("> - ")]  # one line per folder, the latest
    assert len(notices) == 1 and notices[0].startswith("> - `one/`: by `rerun one again` on ")
    assert lines[3] == notices[0] and lines[4] == ""  # then the report as it was
    assert "](two/" in "\n".join(lines)  # the rest of the report is kept
    assert "left as they were: two/" in log  # what this run did not write is named


def test_a_second_run_on_the_same_folder_is_refused_naming_the_holder(tmp_path):
    out, calls = tmp_path / "out", []
    with outputs.lock(out, "python -m experiments one"):
        with pytest.raises(outputs.OutputError) as error:
            _run(out, {"one": _module("one", ["a.png"], calls=calls)})
        with pytest.raises(outputs.OutputError):  # a second acquisition, directly
            with outputs.lock(out, "another"):
                pass
    message = str(error.value)
    assert message.startswith(f"{out}: in use by another run (pid {os.getpid()} on ")
    assert "python -m experiments one" in message and calls == []
    _run(out, {"one": _module("one", ["a.png"], calls=calls)})  # released: the next run runs
    assert calls == ["one"] and not (out / outputs.LOCK).exists()


def test_a_lock_file_left_by_a_killed_run_does_not_block(tmp_path):
    if outputs.fcntl is None:
        pytest.skip("without flock a left lock file blocks until removed (the message says so)")
    (tmp_path / outputs.LOCK).write_text("pid 1 on host since then: killed\n")
    with outputs.lock(tmp_path, "next"):
        assert (tmp_path / outputs.LOCK).read_text().startswith(f"pid {os.getpid()} ")


def test_a_partial_folder_of_a_killed_run_is_removed_by_the_next(tmp_path):
    left = tmp_path / f"{outputs.PARTIAL}999-x" / "one"
    left.mkdir(parents=True)
    (left / "a.png").write_text("killed")
    log = _run(tmp_path, {"one": _module("one", ["a.png"])})
    assert not left.parent.exists() and "left by a run that was killed" in log


def test_an_entry_the_experiments_did_not_write_is_never_replaced(tmp_path):
    calls = []
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "notes.txt").write_text("mine")
    with pytest.raises(outputs.OutputError, match="holds one, which `python -m experiments`"):
        _run(tmp_path, {"one": _module("one", ["a.png"], calls=calls)})
    other = tmp_path / "other"
    other.mkdir()
    (other / "REPORT.md").write_text("# My own report\n")
    modules = {"two": _module("two", ["b.png"], calls=calls), "one": _module("one", [])}
    with pytest.raises(outputs.OutputError, match=r"holds REPORT\.md, which"):
        _run(other, modules)
    assert calls == [] and (tmp_path / "one" / "notes.txt").read_text() == "mine"
    assert (other / "REPORT.md").read_text() == "# My own report\n"


def test_check_writable_names_the_file_in_the_way_and_creates_nothing(tmp_path):
    outputs.check_writable(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(outputs.OutputError) as error:
        outputs.check_writable(tmp_path / "file" / "sub")
    assert str(error.value) == (
        f"{tmp_path / 'file' / 'sub'}: its parent {tmp_path / 'file'} is a file; expected a folder"
    )


def test_metrics_json_records_the_seed_the_mode_the_command_and_the_commit(tmp_path):
    _run(tmp_path, {"one": _module("one", ["a.png"])}, seed=7, command="python -m x one")
    metrics = report.from_json(json.loads((tmp_path / "one/metrics.json").read_text()))
    run = metrics["run"]
    assert (run["seed"], run["mode"], run["command"]) == (7, "quick", "python -m x one")
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", run["commit"])
    assert metrics["environment"]["versions"]["jax"] == jax.__version__
    assert metrics["claims"]["C4"]["metrics"]["curve"] == [1.0, float("inf")]


@pytest.mark.parametrize("failure", ["no git", "not a checkout"])
def test_the_commit_is_unknown_outside_a_git_checkout(monkeypatch, failure):
    def git(*args, **kwargs):
        if failure == "no git":
            raise FileNotFoundError("git")
        return subprocess.CompletedProcess(args, 128, "", "not a git repository")

    monkeypatch.setattr(report.subprocess, "run", git)
    assert report.source.__wrapped__() == {"commit": "unknown", "modified": None}


def _cli(monkeypatch, capsys, *argv):
    """``python -m experiments one ARGV`` on a fake experiment: exit code, stderr, calls."""
    calls = []
    monkeypatch.setattr(registry, "experiments", lambda: {"one": _module("one", [], calls=calls)})
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["one", *argv])
    return exit_info.value.code, capsys.readouterr().err, calls


def test_ctrl_c_ends_the_command_with_status_130_saying_nothing_was_written(
    tmp_path, monkeypatch, capsys
):
    module = _module("one", ["a.png"], interrupt=True)
    monkeypatch.setattr(registry, "experiments", lambda: {"one": module})
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["one", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 130 and not (tmp_path / "out").exists()
    assert "interrupted: nothing of this run was written" in capsys.readouterr().err


def test_an_unwritable_out_is_an_argument_error_before_any_compute(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("")
    code, err, calls = _cli(monkeypatch, capsys, "--out", str(tmp_path / "file" / "sub"))
    assert code == 2 and calls == [] and err.startswith("usage: python -m experiments")
    assert f"error: argument --out: {tmp_path / 'file' / 'sub'}: its parent " in err


def test_a_busy_out_is_an_argument_error_naming_the_holder(tmp_path, monkeypatch, capsys):
    with outputs.lock(tmp_path, "the first run"):
        code, err, calls = _cli(monkeypatch, capsys, "--out", str(tmp_path))
    assert code == 2 and calls == []
    assert f"error: argument --out: {tmp_path}: in use by another run (pid {os.getpid()}" in err


@pytest.mark.parametrize("seed", ["-1", "4294967296", "9223372036854775808", "one"])
def test_a_seed_outside_what_jax_random_key_tells_apart_is_refused(seed, monkeypatch, capsys):
    code, err, calls = _cli(monkeypatch, capsys, "--seed", seed)
    assert code == 2 and calls == []
    assert "argument --seed: expected an integer in 0..4294967295 (2**32 - 1" in err
    assert f"got {seed!r}" in err


def test_the_largest_seed_gives_its_own_key():
    assert arguments.seed(str(arguments.SEED_MAX)) == 2**32 - 1
    keys = [jax.random.key_data(jax.random.key(s)) for s in (0, arguments.SEED_MAX)]
    assert (keys[0] != keys[1]).any()
