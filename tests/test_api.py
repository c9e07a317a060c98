"""The public API: names, docstrings, and the README's usage example run as a test."""

import inspect
import pathlib
import re

import momentum_optax as mo

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_all_lists_exactly_the_public_names():
    # implementation modules are not public: their names are re-exported one by one
    public = {
        name
        for name, value in vars(mo).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(mo.__all__) - {"schedules", "tuning"} == public


def test_every_public_name_has_a_docstring():
    for name in mo.__all__:
        assert inspect.getdoc(getattr(mo, name)), name
    for module in (mo.schedules, mo.tuning):
        for name, value in vars(module).items():
            if (
                inspect.isfunction(value)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                assert inspect.getdoc(value), f"{module.__name__}.{name}"


def test_signatures_follow_the_design_contract():
    params = lambda f: list(inspect.signature(f).parameters)
    assert params(mo.trace) == ["decay", "nesterov", "accumulator_dtype"]
    assert params(mo.ema) == ["decay", "debias", "nesterov", "accumulator_dtype"]
    assert params(mo.delta_momentum) == ["momentum"]
    assert params(mo.periodic_reset) == ["inner", "every"]
    assert params(mo.sgd) == ["learning_rate", "momentum", "nesterov", "ema", "reset_every"]
    assert params(mo.schedules.linear_to_one) == ["start", "total_steps"]
    assert params(mo.schedules.anneal) == ["start", "end", "steps"]
    assert params(mo.torch_sgd) == [
        "learning_rate",
        "momentum",
        "dampening",
        "nesterov",
        "weight_decay",
        "maximize",
    ]
    assert params(mo.adaptive_restart) == ["inner", "scheme"]
    assert params(mo.qhm) == ["nu", "decay"]
    assert params(mo.aggmo) == ["decays"]
    assert params(mo.sma) == ["window"]
    assert params(mo.schedules.sutskever) == ["max_momentum", "period"]
    assert params(mo.schedules.demon) == ["start", "total_steps"]
    assert (
        params(mo.tuning.gradient_descent)
        == params(mo.tuning.heavy_ball)
        == params(mo.tuning.nesterov)
        == ["L", "mu"]
    )


def _readme_python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_usage_example_runs_and_converges():
    namespace = {}
    exec(compile(_readme_python_blocks()[0], "README.md", "exec"), namespace)
    assert float(namespace["loss"](namespace["w"])) < 1e-6


def test_readme_table_lists_every_transformation():
    text = README.read_text(encoding="utf-8")
    for name in (
        "trace",
        "ema",
        "delta_momentum",
        "periodic_reset",
        "sgd",
        "schedules.linear_to_one",
        "schedules.anneal",
        "torch_sgd",
        "adaptive_restart",
        "qhm",
        "qhadam",
        "aggmo",
        "sma",
        "schedules.sutskever",
        "schedules.demon",
        "schedules.inverse_cycle",
        "tuning.heavy_ball",
        "tuning.nesterov",
    ):
        assert f"`mo.{name}(" in text, name
