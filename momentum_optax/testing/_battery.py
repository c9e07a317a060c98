"""The invariants' implementations, by concept; each takes a ``Case`` and fails with its name.

One run's properties (``_single_run``), the same run another way (``_equivalence``) and the
state leaving the run (``_portability``). Each invariant is documented (summary, formula,
what breaks it) where it is written; the public function of
:mod:`~momentum_optax.testing.invariants` is made from it and its docstring.
"""

from __future__ import annotations

from momentum_optax.testing import _equivalence  # noqa: F401  (registers its invariants)
from momentum_optax.testing import _portability  # noqa: F401
from momentum_optax.testing import _single_run  # noqa: F401
from momentum_optax.testing._registry import CHECKS

#: every invariant's name, in the order they are checked: one run's properties first (the
#: modules register them in import order, which isort sorts; a test checks this is them all)
NAMES: tuple[str, ...] = (
    "updates_match_gradients",
    "state_is_stable",
    "finite_in_finite_out",
    "handles_scale",
    "compiles_once",
    "jit_equals_eager",
    "scan_equals_loop",
    "works_in_chain",
    "vmap_equals_loop",
    "checkpoint_continues",
    "strict_promotion",
)
#: the invariants checked only when asked for (``only=``): stock optax fails them itself
OPT_IN: tuple[str, ...] = ("strict_promotion",)
#: the invariants :func:`~momentum_optax.testing.check_transformation` checks by default
DEFAULT: tuple[str, ...] = tuple(n for n in NAMES if n not in OPT_IN)

__all__ = ("CHECKS", "DEFAULT", "NAMES", "OPT_IN")
