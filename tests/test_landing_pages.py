"""The landing pages, the documentation site's (``docs/index.md``) and PyPI's
(``DESCRIPTION.md``), list every method the package exports and every momentum schedule,
each with what it does and its reference: a factory added to ``momentum_optax.__all__``
fails these tests until both pages list it."""

import inspect
import pathlib
import re

import pytest

import momentum_optax as mo

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = ("docs/index.md", "DESCRIPTION.md")

# Exported callables that are not methods, with why each is left out.
NOT_METHODS = {
    "check_restored": "checks a restored checkpoint against its target, for any optimizer",
    "train_step": "builds a jitted training step around any optimizer",
}

# A name cell: `mo.NAME`, or on the docs site {py:func}`mo.NAME <module.NAME>` (a link)
NAME_CELL = re.compile(r"^(?:\{py:func\})?`mo\.(?P<name>[\w.]+?)(?: <(?P<target>[\w.]+)>)?`$")


def methods() -> set[str]:
    """The method factories: the exported callables that are not classes (the states, the
    ``FusedSGD`` that ``fused_sgd`` returns) nor modules (``schedules``, ``tuning``, which
    are not callable), less ``NOT_METHODS``."""
    exported = {name: getattr(mo, name) for name in mo.__all__}
    factories = {n for n, obj in exported.items() if callable(obj) and not inspect.isclass(obj)}
    return factories - set(NOT_METHODS)


def schedules() -> set[str]:
    """The public functions defined in ``mo.schedules``, as ``schedules.NAME``."""
    return {
        f"schedules.{name}"
        for name, fn in inspect.getmembers(mo.schedules, inspect.isfunction)
        if fn.__module__ == mo.schedules.__name__ and not name.startswith("_")
    }


def tables(text: str) -> dict[str, list[list[str]]]:
    """Each Markdown table of ``text`` by its first header cell: its body rows, as cells."""
    blocks, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    out = {}
    for block in blocks:
        cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in block]
        out[cells[0][0]] = cells[2:]  # past the header and its |---| line
    return out


def listed(text: str, table: str) -> dict[str, tuple[str | None, str, str]]:
    """``table``'s rows by name: (link target or None, what it does, reference)."""
    rows = tables(text)[table]
    out = {}
    for row in rows:
        assert len(row) == 3, row
        match = NAME_CELL.match(row[0])
        assert match, f"not a name cell: {row[0]!r}"
        assert match["name"] not in out, f"{match['name']} listed twice"
        out[match["name"]] = (match["target"], row[1], row[2])
    return out


def test_the_rule_finds_the_factories_and_leaves_out_states_modules_and_helpers():
    found = methods()
    assert {"trace", "sgd", "fused_sgd", "yellowfin", "cautious"} <= found
    assert not found & {"TraceState", "FusedSGD", "schedules", "tuning", *NOT_METHODS}
    assert set(NOT_METHODS) <= set(mo.__all__)  # an exclusion of a name gone is stale


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(
    "table, expected", [("method", methods), ("schedule", schedules)], ids=["methods", "schedules"]
)
def test_a_landing_page_lists_every_method_and_schedule_with_a_reference(page, table, expected):
    rows = listed((ROOT / page).read_text(), table)
    assert set(rows) == expected(), (
        f"{page}: not listed {sorted(expected() - set(rows))}, "
        f"listed but not exported {sorted(set(rows) - expected())}"
    )
    for name, (_, does, reference) in rows.items():
        assert does, f"{page}: {name} says nothing about what it does"
        assert reference, f"{page}: {name} has no reference"


def test_the_docs_landing_page_links_each_name_to_its_api_entry():
    text = (ROOT / "docs/index.md").read_text()
    for table in ("method", "schedule"):
        for name, (target, _, _) in listed(text, table).items():
            obj = mo
            for part in name.split("."):
                obj = getattr(obj, part)
            assert target == f"{obj.__module__}.{obj.__qualname__}", name


def test_the_pypi_description_has_only_absolute_links_and_no_sphinx_roles():
    text = (ROOT / "DESCRIPTION.md").read_text()
    links = re.findall(r"\]\(([^)]*)\)", text)
    assert all(link.startswith("https://") for link in links), links
    assert "{py:" not in text and "{doc}" not in text
