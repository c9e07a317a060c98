"""``momentum-optax`` (``momentum_optax._cli``): its commands, and a missing requirement
named before the experiments are imported."""

import importlib.util

import pytest

from momentum_optax import _cli


def test_a_missing_requirement_is_named_with_the_extra_that_installs_it(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a)
    )
    with pytest.raises(SystemExit) as exit_:
        _cli.main(["compare", "--help"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "scikit-learn is not installed" in err
    assert "pip install 'momentum_optax[experiments]'" in err


@pytest.mark.parametrize("argv", [["textbook"], []], ids=["unknown", "none"])
def test_a_command_other_than_compare_or_bench_is_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        _cli.main(argv)
    assert exit_.value.code == 2
    assert "a command is needed" in capsys.readouterr().err


def test_compare_help_names_the_console_script(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["/venv/bin/momentum-optax", "compare", "--help"])
    with pytest.raises(SystemExit) as exit_:
        _cli.main()
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: momentum-optax compare")
