"""Sphinx configuration of the momentum_optax documentation site.

Build: ``.venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html``.
MathJax is served from the site itself (sphinx-mathjax-offline): nothing is
downloaded when a page is read.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
try:
    import momentum_optax
except ImportError:  # not installed: document the checkout's copy
    sys.path.insert(0, str(ROOT))
    import momentum_optax

project = "momentum_optax"
author = "the momentum_optax authors"
copyright = "the momentum_optax authors"
release = momentum_optax.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
]

# MathJax 3 is served from _static/mathjax: sphinx-mathjax-offline copies it there and sets
# mathjax_path to "mathjax/tex-chtml.js" (its setting wins over one made here).

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated"]

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_type_aliases = {"ScalarOrSchedule": "ScalarOrSchedule"}
add_module_names = False

html_theme = "furo"
html_title = f"momentum_optax {release}"
html_static_path: list[str] = []
html_copy_source = False
html_show_sphinx = False

# ---------------------------------------------------------------------------
# The experiments report: results/ is written by `python -m experiments all`
# and is not part of a clean checkout. Copy REPORT.md and its figures into
# _generated/results/ (the page includes them from there), or write a stub.

RESULTS = ROOT / "results"
GENERATED = pathlib.Path(__file__).resolve().parent / "_generated" / "results"

STUB = """\
# No report in this checkout

This checkout has no `results/REPORT.md`. Write it with

```bash
.venv/bin/python -m experiments all --quick
```

and build the documentation again. Three figures of the last full run:

![C3](../../figures/c3_momentum.png)

![C14](../../figures/c14_batch_size.png)

![C4 and C15](../../figures/c4_c15_nesterov.png)
"""


def copy_report(app) -> None:
    """Copies keep their sources' times, so an unchanged report is not read again."""
    if GENERATED.exists():
        shutil.rmtree(GENERATED)
    GENERATED.mkdir(parents=True)
    report = RESULTS / "REPORT.md"
    if not report.is_file():
        (GENERATED / "REPORT.md").write_text(STUB)
        return
    for path in [report, *RESULTS.glob("*/*.png")]:
        target = GENERATED / path.relative_to(RESULTS)
        target.parent.mkdir(exist_ok=True)
        shutil.copy2(path, target)


# ---------------------------------------------------------------------------
# Every public name must be on an API page: a new name in momentum_optax.__all__
# without a page fails the build (with -W).

FIELD_ALIAS = re.compile(r"^Alias for field number \d+$")


def drop_field_aliases(app, what, name, obj, options, lines) -> None:
    """NamedTuple fields: drop the generated 'Alias for field number N' text."""
    if len(lines) == 1 and FIELD_ALIAS.match(lines[0].strip()):
        lines.clear()


NAMESPACES = {"momentum_optax.schedules", "momentum_optax.tuning"}  # public as modules


def skip_unexported(app, what, name, obj, skip, options):
    """Module-level members are documented when the package exports them (mo.NAME),
    or when they live in a module that is public as a whole (mo.schedules, mo.tuning)."""
    module = getattr(obj, "__module__", None)
    if what != "module" or skip or module in NAMESPACES:
        return None
    if getattr(momentum_optax, name, None) is not obj or name not in momentum_optax.__all__:
        return True
    return None


def check_public_names(app, env) -> None:
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    domain = env.get_domain("py")
    documented = set(domain.objects) | set(domain.modules)
    package = pathlib.Path(momentum_optax.__file__).parent
    for module in sorted(package.glob("[!_]*.py")):
        if f"momentum_optax.{module.stem}" not in documented:
            logger.warning("momentum_optax.%s has no automodule in docs/api/", module.stem)
    for name in momentum_optax.__all__:
        obj = getattr(momentum_optax, name)
        if getattr(obj, "__module__", "").split(".")[0] == "optax":
            continue  # optax's own class, re-exported (mo.TraceState): optax documents it
        if isinstance(obj, type(momentum_optax)):
            target = obj.__name__
        else:
            target = f"{obj.__module__}.{obj.__qualname__}"
        if target not in documented:
            logger.warning(
                "momentum_optax.%s (%s) is on no API page: add its module to docs/api/",
                name,
                target,
            )


def setup(app):
    app.connect("builder-inited", copy_report)
    app.connect("autodoc-process-docstring", drop_field_aliases)
    app.connect("autodoc-skip-member", skip_unexported)
    app.connect("env-check-consistency", check_public_names)
    return {"parallel_read_safe": True}
