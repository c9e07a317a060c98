"""The public API: names, docstrings, and the README's usage example run as a test."""

import inspect
import pathlib
import re

import jax
import jax.numpy as jnp
import optax
import pytest

import momentum_optax as mo

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_all_lists_exactly_the_public_names():
    # implementation modules are not public: their names are re-exported one by one
    public = {
        name
        for name, value in vars(mo).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(mo.__all__) - {"checkpoints", "schedules", "tuning"} == public


def _public_objects():
    """(name, object) for every name of ``mo.__all__``, and for the public functions and
    classes defined in its public modules (``checkpoints``, ``schedules``, ``tuning``) and
    not exported by name (``mo.check_restored`` is ``mo.checkpoints.check_restored``)."""
    for name in mo.__all__:
        value = getattr(mo, name)
        if not inspect.ismodule(value):
            yield name, value
            continue
        for inner, member in vars(value).items():
            if (
                (inspect.isfunction(member) or inspect.isclass(member))
                and member.__module__ == value.__name__
                and not inner.startswith("_")
                and not any(member is getattr(mo, top) for top in mo.__all__)  # listed above
            ):
                yield f"{name}.{inner}", member


PUBLIC = dict(_public_objects())
FUNCTIONS = {name: value for name, value in PUBLIC.items() if inspect.isfunction(value)}
CLASSES = {name: value for name, value in PUBLIC.items() if inspect.isclass(value)}
SECTIONS = ("Args", "Returns", "Example")


def test_the_public_modules_hold_functions_and_classes():
    assert {"trace", "sgd", "fused_sgd", "train_step", "check_restored"} <= set(FUNCTIONS)
    assert {"schedules.anneal", "tuning.nesterov"} <= set(FUNCTIONS)
    assert {"TraceState", "FusedSGDState", "tuning.Tuning"} <= set(CLASSES)
    assert set(PUBLIC) == set(FUNCTIONS) | set(CLASSES)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_public_function_documents_args_returns_and_an_example(name):
    # the docstring order: summary, Args, Returns, Example (a doctest), References
    doc = inspect.getdoc(FUNCTIONS[name]) or ""
    positions = {}
    for section in SECTIONS:
        found = re.search(rf"^{section}:[ \t]*$", doc, flags=re.M)
        assert found, f"{name}: no {section} section"
        positions[section] = found.start()
    assert positions["Args"] < positions["Returns"] < positions["Example"], name
    assert doc.splitlines()[0].strip() and positions["Args"] > 0, f"{name}: no summary line"
    assert ">>>" in doc[positions["Example"] :], f"{name}: the Example has no doctest"


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_public_class_has_its_own_docstring(name):
    cls = CLASSES[name]
    doc = cls.__doc__ or ""
    # a NamedTuple without a docstring gets "Name(field, ...)": that is not documentation
    assert doc.strip() and not doc.startswith(f"{cls.__name__}("), name


STATES = {
    "TraceState": (lambda: mo.trace(0.9), ("trace",)),
    "ScheduledTraceState": (
        lambda: mo.trace(optax.linear_schedule(0.5, 0.9, 3)),
        ("trace", "count"),
    ),
    "SmaState": (lambda: mo.sma(3), ("buffer", "index", "filled")),
    "QhAdamState": (lambda: mo.scale_by_qhadam(), ("first_moment", "second_moment", "correction")),
    "FusedSGDState": (lambda: mo.fused_sgd(0.1, 0.9), ("trace", "count")),
    "TorchMomentumState": (lambda: mo.torch_sgd(0.1, 0.9), ("momentum_buffer", "count")),
}


@pytest.mark.parametrize("name", sorted(STATES))
def test_init_returns_the_public_state_with_its_named_fields(name):
    # a checkpoint names these fields: renaming one breaks every saved state
    (make, fields), cls = STATES[name], getattr(mo, name)
    state = make().init({"w": jnp.zeros(3)})
    found = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, cls))
    assert sum(isinstance(x, cls) for x in found) == 1, state
    assert cls._fields == fields


def test_a_constant_traces_state_is_optaxs_own_class():
    # a constant trace's state is optax.TraceState itself: states and checkpoints move across
    assert mo.TraceState is optax.TraceState


def test_signatures_follow_the_design_contract():
    params = lambda f: list(inspect.signature(f).parameters)
    assert params(mo.trace) == ["decay", "nesterov", "accumulator_dtype"]
    assert params(mo.ema) == ["decay", "debias", "nesterov", "accumulator_dtype"]
    assert params(mo.delta_momentum) == ["momentum"]
    assert params(mo.periodic_reset) == ["inner", "every"]
    assert params(mo.sgd) == [
        "learning_rate",
        "momentum",
        "nesterov",
        "accumulator_dtype",
        "ema",
        "reset_every",
    ]
    assert inspect.signature(mo.sgd).parameters["momentum"].default is None  # as optax.sgd
    assert params(mo.schedules.linear_to_one) == ["start", "total_steps"]
    assert params(mo.schedules.anneal) == ["start", "end", "steps"]
    steps = inspect.signature(mo.schedules.anneal).parameters["steps"]
    assert steps.kind is inspect.Parameter.KEYWORD_ONLY and steps.default is inspect.Parameter.empty
    flip_sign = inspect.signature(mo.scale_by_learning_rate).parameters["flip_sign"]
    assert flip_sign.kind is inspect.Parameter.KEYWORD_ONLY and flip_sign.default is True
    assert params(mo.scale_by_learning_rate) == ["learning_rate", "flip_sign"]
    assert params(mo.fused_sgd) == [
        "learning_rate",
        "momentum",
        "nesterov",
        "accumulator_dtype",
        "chunk_size",
    ]
    assert params(mo.train_step) == ["loss_fn", "optimizer", "has_aux", "donate", "metrics"]
    assert params(mo.check_restored) == ["restored", "target"]
    assert params(mo.srsgd) == ["learning_rate", "restart_every", "accumulator_dtype"]
    assert params(mo.cautious) == ["inner", "flip_sign", "mask_decay"]
    assert inspect.signature(mo.cautious).parameters["flip_sign"].default is None  # read
    assert params(mo.scale_by_yellowfin) == [
        "beta",
        "curvature_window",
        "eps",
        "scale_invariant",
        "log_curvature",
        "smooth_tuned",
        "slow_start",
        "adaptive_clip",
        "stat_protect_factor",
        "max_move",
        "sparsity_debias",
        "non_increasing_step",
        "accumulator_dtype",
    ]
    assert params(mo.yellowfin) == ["learning_rate", *params(mo.scale_by_yellowfin)]
    assert params(mo.schedules.nesterov_sequence) == ["r"]
    assert params(mo.scale_by_qhadam) == ["b1", "b2", "nu1", "nu2", "eps"]
    assert params(mo.qhadam) == ["learning_rate", "b1", "b2", "nu1", "nu2", "eps"]
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


@pytest.mark.slow
def test_readme_testing_example_runs_and_catches_a_dropped_decay():
    block = next(b for b in _readme_python_blocks() if "check_transformation" in b)
    exec(compile(block, "README.md", "exec"), {})
    broken = block.replace("g + decay * m", "g + m")
    assert broken != block
    with pytest.raises(AssertionError, match="step"):
        exec(compile(broken, "README.md", "exec"), {})


def test_readme_table_lists_every_public_function():
    text = README.read_text(encoding="utf-8")
    missing = [name for name in sorted(FUNCTIONS) if f"`mo.{name}(" not in text]
    assert not missing, f"README.md does not list: {missing}"
