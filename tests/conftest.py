"""Global test configuration: the only place where JAX and hypothesis settings change."""

import os
import pathlib
import re
import shutil
import tempfile

import hypothesis
import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

# XLA compiles the same program for many tests (a table's rows, the same step in several
# files): a compilation cache of this run, shared by its pytest-xdist workers, reuses them.
# It starts empty in every run and is removed at its end; JAX keys an entry by the program,
# the compile options and the XLA flags, so a cached executable is the one XLA would
# compile. Without a size limit JAX takes no lock (a lock would serialise every read and
# write of both workers): an entry read while the other worker writes it is truncated, fails
# to decompress, and JAX compiles the program instead.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
_COMPILATION_CACHE = pathlib.Path(tempfile.gettempdir()) / f"momentum_optax-xla-{_RUN}"
jax.config.update("jax_compilation_cache_dir", str(_COMPILATION_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

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


def pytest_sessionfinish(session, exitstatus):
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller ends after its workers
        shutil.rmtree(_COMPILATION_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """The ``docs`` tests need the built site and chromium: deselected unless asked for."""
    if _docs_requested(config):
        return
    deselected = [item for item in items if item.get_closest_marker("docs")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("docs")]
