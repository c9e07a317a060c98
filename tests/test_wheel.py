"""The wheel, installed into a fresh virtual environment outside the checkout, gives a
working ``momentum-optax compare`` and no top-level ``experiments`` package.

The wheel is built from a copy of the sources (no build files land in the checkout) without
build isolation (no download: the ``test`` extra declares setuptools). The fresh
environment gets only the wheel (``--no-deps --no-index``); the requirements it declares are
read from this environment's site-packages through a ``.pth`` line, which adds the folder to
``sys.path`` without running its ``.pth`` files (so this checkout's editable install stays
out of it).
"""

import json
import pathlib
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile

import pytest

import momentum_optax

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = (
    "pyproject.toml",
    "README.md",
    "DESCRIPTION.md",
    "LICENSE",
    "momentum_optax",
    "experiments",
)
TINY_NQM = "--problem noisy-quadratic --trials 1 --seeds 2 --steps 20 --eval-every 10".split()

pytestmark = pytest.mark.slow


def _run(*args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(python, script, workdir)`` of a fresh venv holding only the built wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, src / name)
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(tmp / "dist"),
        str(src),
    )
    (wheel,) = (tmp / "dist").glob("momentum_optax-*.whl")
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    _run(str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel))
    purelib = _run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    ours = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    (pathlib.Path(purelib.stdout.strip()) / "requirements.pth").write_text(
        "\n".join(dict.fromkeys(ours)) + "\n"
    )
    work = tmp / "work"
    work.mkdir()
    return python, venv / "bin" / "momentum-optax", work, wheel


def test_the_wheel_has_no_top_level_experiments_package(installed):
    *_, wheel = installed
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"momentum_optax", wheel.name.split("-py3")[0] + ".dist-info"}, tops


def test_the_installed_package_is_the_wheels_and_experiments_is_not_importable(installed):
    python, _, work, _ = installed
    done = subprocess.run(
        [
            str(python),
            "-c",
            "import momentum_optax, momentum_optax.experiments.compare as c; "
            "print(momentum_optax.__file__); print(c.__file__); import experiments",
        ],
        capture_output=True,
        text=True,
        cwd=work,
        timeout=300,
    )
    lines = done.stdout.split()
    assert all(str(installed[0].parent.parent) in line for line in lines[:2]), lines
    assert "ModuleNotFoundError: No module named 'experiments'" in done.stderr


def test_momentum_optax_compare_runs_on_the_noisy_quadratic(installed):
    _, script, work, _ = installed
    names = ["heavy-ball", "yellowfin", "srsgd", "cautious-heavy-ball"]
    options = [x for name in names for x in ("--optimizer", name)]
    done = _run(str(script), "compare", *options, *TINY_NQM, "--out", "out", cwd=work)
    results = json.loads((work / "out" / "results.json").read_text())
    assert results["command"][:2] == ["momentum-optax", "compare"]
    assert results["commit"] == "unknown"  # not a checkout: the record says so
    assert results["environment"]["versions"]["momentum_optax"] == momentum_optax.__version__
    rows = {row["optimizer"] for row in results["results"]}
    assert rows == set(names), rows
    assert (work / "out" / "REPORT.md").read_text().startswith("# Comparison on ")
    assert "heavy-ball" in done.stdout


def test_the_console_script_names_a_missing_command(installed):
    _, script, work, _ = installed
    done = subprocess.run([str(script)], capture_output=True, text=True, cwd=work, timeout=120)
    assert done.returncode == 2
    assert "a command is needed (got none)" in done.stderr
    assert "compare" in done.stderr and "bench" in done.stderr
