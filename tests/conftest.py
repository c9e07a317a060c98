"""Global test configuration: the only place where JAX and hypothesis settings change."""

import pathlib
import re

import hypothesis
import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

# derandomised: the same examples in every run and on every pytest-xdist worker
hypothesis.settings.register_profile(
    "ci",
    max_examples=10,
    derandomize=True,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("ci")

# the fixture generator needs PyTorch, which the tests do not depend on
collect_ignore = ["fixtures/make_torch_fixtures.py"]


def _docs_requested(config) -> bool:
    """Whether the run asks for the ``docs`` tests: ``-m docs`` or the file named."""
    if re.search(r"(?<!not )\bdocs\b", config.getoption("markexpr") or ""):
        return True
    site_test = pathlib.Path(__file__).with_name("test_docs_site.py").resolve()
    return any(pathlib.Path(arg.split("::")[0]).resolve() == site_test for arg in config.args)


def pytest_collection_modifyitems(config, items):
    """The ``docs`` tests need the built site and chromium: deselected unless asked for."""
    if _docs_requested(config):
        return
    deselected = [item for item in items if item.get_closest_marker("docs")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("docs")]
