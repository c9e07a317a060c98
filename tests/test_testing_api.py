"""The kit as a package: what it imports, and its public API, documented function by function."""

import inspect
import pathlib
import re
import subprocess
import sys
import typing

import pytest

from momentum_optax import testing
from momentum_optax.testing import invariants
from momentum_optax.testing import oracles
from momentum_optax.testing import strategies

API_PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "api" / "testing.md"

# --- what it imports ---


def test_without_hypothesis_the_import_error_says_how_to_install_the_kit(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("momentum_optax.testing")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(ImportError, match=r"hypothesis is missing.*momentum_optax\[testing\]"):
        __import__("momentum_optax.testing")


@pytest.mark.slow
def test_the_package_does_not_import_the_kit():
    code = (
        "import sys, momentum_optax; "
        "print(any(m.startswith('momentum_optax.testing') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_the_kit_does_not_import_chex():
    # the testing extra installs chex for the tests written with the kit; the kit needs none
    code = "import sys, momentum_optax.testing; print('chex' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the public API is documented ---


def _public_functions():
    for module in (testing, invariants, strategies, oracles):
        for name, value in vars(module).items():
            if inspect.isfunction(value) and not name.startswith("_"):
                if value.__module__.startswith("momentum_optax.testing"):
                    yield f"{module.__name__}.{name}", value


FUNCTIONS = dict(_public_functions())


def test_the_kit_has_the_public_functions_it_documents():
    names = {name.rsplit(".", 1)[1] for name in FUNCTIONS}
    assert {"check_transformation", "assert_trajectories_close", "gradient_sequence"} <= names
    assert set(invariants.NAMES) <= names
    assert {"trace", "ema", "delta_momentum", "nesterov_lookahead", "coefficient_values"} <= names
    assert {"params", "leaves", "gradient_sequences", "coefficients", "schedules"} <= names


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_public_function_documents_args_returns_and_an_example(name):
    doc = inspect.getdoc(FUNCTIONS[name]) or ""
    positions = [
        re.search(rf"^{s}:[ \t]*$", doc, flags=re.M) for s in ("Args", "Returns", "Example")
    ]
    assert all(positions), f"{name}: a section is missing"
    assert positions[0].start() < positions[1].start() < positions[2].start(), name
    assert doc.splitlines()[0].strip(), f"{name}: no summary line"
    assert ">>>" in doc[positions[2].start() :], f"{name}: the Example has no doctest"
    assert ".. math::" in doc, f"{name}: no formula"


@pytest.mark.parametrize("cls", [testing.Battery, oracles.LookAhead, strategies.Pair], ids=repr)
def test_public_classes_have_their_own_docstring(cls):
    assert cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}(")


@pytest.mark.parametrize("name", invariants.NAMES)
def test_each_invariant_is_a_function_of_its_own_taking_the_batterys_arguments(name):
    check = getattr(invariants, name)
    assert inspect.isfunction(check)
    module = "momentum_optax.testing.invariants"
    assert (check.__name__, check.__qualname__, check.__module__) == (name, name, module)
    signature = inspect.signature(check)
    assert signature.parameters == inspect.signature(testing.Battery).parameters
    assert list(signature.parameters) == "tx params steps seed extra_args rtol atol".split()
    assert typing.get_type_hints(check)["steps"] is int  # resolvable, as Sphinx needs
    assert f"naming ``{name}`` if it breaks" in inspect.getdoc(check)
    assert f".. autofunction:: {module}.{name}\n" in API_PAGE.read_text()


def test_the_invariants_are_the_public_functions_of_their_module_each_with_its_summary():
    public = [n for n, v in vars(invariants).items() if inspect.isfunction(v) and n[0] != "_"]
    assert tuple(public) == invariants.NAMES
    summaries = {inspect.getdoc(getattr(invariants, n)).splitlines()[0] for n in public}
    assert len(summaries) == len(public), summaries
