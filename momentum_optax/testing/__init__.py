"""momentum_optax.testing: property-test any optax transformation.

The invariant battery (:func:`check_transformation`, one function per invariant in
:mod:`~momentum_optax.testing.invariants`), step-by-step equivalence of two
transformations (:func:`assert_trajectories_close`), NumPy oracles of the library's
formulas (:mod:`~momentum_optax.testing.oracles`) and hypothesis strategies for
parameters, gradients and coefficients (:mod:`~momentum_optax.testing.strategies`).
Not imported by ``momentum_optax`` itself; it needs hypothesis and flax, which the
``testing`` extra installs (with chex, for the tests written with the kit)::

    pip install 'momentum_optax[testing]'
"""

try:
    import flax  # noqa: F401
    import hypothesis  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"momentum_optax.testing needs hypothesis and flax ({error.name} is missing): "
        "install them with pip install 'momentum_optax[testing]'."
    ) from error

from momentum_optax.testing import invariants
from momentum_optax.testing import oracles
from momentum_optax.testing import strategies
from momentum_optax.testing.checks import Battery
from momentum_optax.testing.checks import assert_trajectories_close
from momentum_optax.testing.checks import check_transformation
from momentum_optax.testing.checks import gradient_sequence

__all__ = (
    "Battery",
    "assert_trajectories_close",
    "check_transformation",
    "gradient_sequence",
    "invariants",
    "oracles",
    "strategies",
)
