"""The public API: names, docstrings, and the README's usage example run as a test."""

import inspect
import pathlib
import re

import momentum_optax as mo

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_all_lists_exactly_the_public_names():
    public = {name for name in vars(mo) if not name.startswith("_")}
    public -= {"accumulators", "aliases", "checkpoints", "restarts"}  # modules; their names are re-exported
    assert set(mo.__all__) == public


def test_every_public_name_has_a_docstring():
    for name in mo.__all__:
        assert inspect.getdoc(getattr(mo, name)), name
    for name in ("linear_to_one", "anneal"):
        assert inspect.getdoc(getattr(mo.schedules, name)), name


def test_signatures_follow_the_design_contract():
    params = lambda f: list(inspect.signature(f).parameters)
    assert params(mo.trace) == ["decay", "nesterov", "accumulator_dtype"]
    assert params(mo.ema) == ["decay", "debias", "nesterov", "accumulator_dtype"]
    assert params(mo.delta_momentum) == ["momentum"]
    assert params(mo.periodic_reset) == ["inner", "every"]
    assert params(mo.sgd) == ["learning_rate", "momentum", "nesterov", "ema", "reset_every"]
    assert params(mo.schedules.linear_to_one) == ["start", "total_steps"]
    assert params(mo.schedules.anneal) == ["start", "end", "steps"]


def _readme_python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_usage_example_runs_and_converges():
    namespace = {}
    exec(compile(_readme_python_blocks()[0], "README.md", "exec"), namespace)
    assert float(namespace["loss"](namespace["w"])) < 1e-6


def test_readme_table_lists_every_transformation():
    text = README.read_text(encoding="utf-8")
    for name in ("trace", "ema", "delta_momentum", "periodic_reset", "sgd",
                 "schedules.linear_to_one", "schedules.anneal"):
        assert f"`mo.{name}(" in text, name
