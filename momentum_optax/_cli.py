"""``momentum-optax``: the comparison tool and the bench, installed with the package.

``momentum-optax compare ...`` is ``python -m experiments compare ...`` of a checkout, and
``momentum-optax bench ...`` its bench; both need the ``experiments`` extra
(``pip install "momentum_optax[experiments]"``). The experiments ship inside this package
as ``momentum_optax.experiments`` (no top-level ``experiments`` is installed); the claims of
the source documents are measured from a checkout (``python -m experiments all``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

COMMANDS = {
    "compare": "your own comparison of optimizers under the protocol (compare --help)",
    "bench": "speed and memory against optax, PyTorch and the bandwidth limit (bench --help)",
}
# what the experiments import beyond the library's own requirements: the experiments extra
NEEDS = {
    "flax": "flax",
    "matplotlib": "matplotlib",
    "sklearn": "scikit-learn",
    "rich": "rich",
    "scipy": "scipy",
    "mnist1d": "mnist1d",
    "numba": "numba",  # momentum_optax[fused], which the bench's fused_sgd rows run
}
USAGE = "usage: momentum-optax {compare,bench} [options]\n\n" + "\n".join(
    f"  {name:<8} {about}" for name, about in COMMANDS.items()
)


def main(argv: list[str] | None = None) -> None:
    """The console script: ``momentum-optax COMMAND ARGS``. Exits with status 2 on an
    unknown command or a missing requirement (naming it and the extra that installs it)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return
    if not argv or argv[0] not in COMMANDS:
        got = f"got {argv[0]!r}" if argv else "got none"
        print(f"{USAGE}\n\nmomentum-optax: error: a command is needed ({got})", file=sys.stderr)
        raise SystemExit(2)
    missing = [dist for module, dist in NEEDS.items() if importlib.util.find_spec(module) is None]
    if missing:
        print(
            f"momentum-optax {argv[0]}: needs the experiments extra, and {', '.join(missing)} "
            "is not installed: pip install 'momentum_optax[experiments]'",
            file=sys.stderr,
        )
        raise SystemExit(2)
    importlib.import_module("momentum_optax.experiments.__main__").main(argv)
