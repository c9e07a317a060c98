"""Packaging: every imported package is declared where it is used; the PyPI description works."""

import ast
import doctest
import importlib.metadata
import pathlib
import re
import sys

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

# which requirements a file's imports must be covered by
SCOPES = {
    "momentum_optax": ("dependencies",),
    "momentum_optax/testing": ("dependencies", "testing"),  # pip install momentum_optax[testing]
    "momentum_optax/_fused_numba.py": ("dependencies", "fused"),  # imported by the kernel only
    "experiments": ("dependencies", "experiments", "torch"),
    "tests": ("dependencies", "test", "experiments", "torch"),
}
SELF = re.compile(r"^momentum_optax\[(?P<extras>[^\]]+)\]")  # an extra that includes others


def _requirement_names(extras):
    names = set()
    for extra in extras:
        entries = (
            PROJECT[extra] if extra == "dependencies" else PROJECT["optional-dependencies"][extra]
        )
        for entry in entries:
            if included := SELF.match(entry):
                names |= _requirement_names(x.strip() for x in included["extras"].split(","))
            else:
                names.add(re.split(r"[<>=!~\[; ]", entry, maxsplit=1)[0].lower())
    return names


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def _packages_distributions():
    """Top-level module -> distributions, read from each wheel's files where it has no
    ``top_level.txt`` (as Python 3.11's ``packages_distributions`` does; 3.10's does not)."""
    found = importlib.metadata.packages_distributions()
    for dist in importlib.metadata.distributions():
        tops = {file.parts[0] if len(file.parts) > 1 else file.stem for file in dist.files or ()}
        for top in filter(str.isidentifier, tops):
            found.setdefault(top, []).append(dist.metadata["Name"])
    return found


def _third_party(module):
    # tomllib is the standard library's from Python 3.11 (tomli before it, declared)
    return module not in sys.stdlib_module_names | {"tomllib"} and module not in (
        "momentum_optax",
        "experiments",
        "tests",
    )


@pytest.mark.parametrize("folder", sorted(SCOPES))
def test_every_imported_package_is_declared_in_the_extra_that_installs_it(folder):
    distributions = _packages_distributions()
    declared = _requirement_names(SCOPES[folder])
    missing = set()
    nested = [ROOT / other for other in SCOPES if other.startswith(f"{folder}/")]
    scope = ROOT / folder
    for path in [scope] if scope.is_file() else sorted(scope.rglob("*.py")):
        if any(path.is_relative_to(inner) for inner in nested):
            continue  # a sub-package with its own scope
        for module in filter(_third_party, _imports(path)):
            if module == "torch" and "torch" in declared:
                continue  # optional: may not be installed here
            names = {d.lower() for d in distributions.get(module, [module])}
            if not names & declared:
                missing.add(f"{module} ({path.relative_to(ROOT)})")
    assert not missing, f"imported but not declared for {folder}: {sorted(missing)}"


def test_long_description_runs_and_has_no_relative_links():
    readme = PROJECT["readme"]
    text = (ROOT / readme).read_text()
    links = re.findall(r"\]\(([^)]+)\)|<img[^>]+src=\"([^\"]+)\"", text)
    relative = [link for pair in links for link in pair if link and "://" not in link]
    assert not relative, f"{readme} links to relative paths, which PyPI cannot show: {relative}"
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, readme, readme, 0)
    assert test.examples, f"{readme} has no example to run"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_license_file_matches_the_declared_license():
    assert PROJECT["license"] == "Apache-2.0"
    assert (
        "Apache License\n                           Version 2.0" in (ROOT / "LICENSE").read_text()
    )


def test_the_version_is_one_in_the_metadata_the_package_and_the_changelog():
    """The newest section of the changelog is this version's (breaking changes are never
    listed under the version they break), with a section on migrating from the previous."""
    import momentum_optax

    assert momentum_optax.__version__ == PROJECT["version"]
    sections = re.split(r"^## ", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)[1:]
    newest, previous = sections[0], sections[1]
    assert newest.split()[0] == PROJECT["version"], newest.splitlines()[0]
    if "### Breaking" in newest:
        major_minor = ".".join(previous.split()[0].split(".")[:2])
        assert f"### Migrating from {major_minor}" in newest


def test_the_package_list_names_every_package_of_the_library_and_the_experiments():
    """``[tool.setuptools] packages`` is explicit (``experiments/`` is mapped to
    ``momentum_optax.experiments``): a new subpackage missing from it would be left out of
    the wheel."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    mapped = {"momentum_optax": "momentum_optax", **setuptools["package-dir"]}
    found = set()
    for name, folder in mapped.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" not in parts:
                found.add(".".join((name, *parts)))
    assert set(setuptools["packages"]) == found


def test_the_console_script_checks_for_exactly_the_experiments_extra():
    """``momentum-optax`` names a missing requirement of the experiments extra before
    importing the experiments: its list is the extra's (less what the library requires)."""
    from momentum_optax import _cli

    extra = _requirement_names(["experiments"]) - _requirement_names(["dependencies"])
    assert set(_cli.NEEDS.values()) == extra
