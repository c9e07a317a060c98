"""The invariant battery, one function per invariant (``check_transformation`` runs them all).

Each function runs ``tx`` from ``tx.init(params)`` over the seeded gradient sequence of
:func:`~momentum_optax.testing.gradient_sequence` (``optax.apply_updates`` after each step)
and raises an ``AssertionError`` whose message starts with the invariant's name and names
the step and the leaf that broke it. They share one signature, so a suite can parametrize
over :data:`NAMES`::

    @pytest.mark.parametrize("name", invariants.NAMES)
    def test_my_transformation(name):
        getattr(invariants, name)(my_transformation(0.9), params)

:data:`NAMES` lists every invariant; :data:`DEFAULT`, those ``check_transformation`` checks
unless told otherwise (all but the opt-in :data:`OPT_IN`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ParamSpec

from momentum_optax.testing import _battery
from momentum_optax.testing.checks import Battery

#: every invariant's name, in the order :func:`~momentum_optax.testing.check_transformation`
#: checks them, the opt-in ones included
NAMES = _battery.NAMES
#: the invariants :func:`~momentum_optax.testing.check_transformation` checks by default:
#: all of :data:`NAMES` but :data:`OPT_IN`
DEFAULT = _battery.DEFAULT
#: the invariants checked only when named in ``only=``: ``strict_promotion``, which stock
#: ``optax.adam``, ``optax.adamw`` and ``optax.MultiSteps`` fail themselves (optax 0.2.8)
OPT_IN = _battery.OPT_IN

P = ParamSpec("P")

# what every invariant's docstring says after the one of its check in ``_battery``
_SECTIONS = """

Args:
    tx: the ``optax.GradientTransformation`` under test.
    params: the initial parameters, a pytree of arrays.
    steps, seed, gradients, extra_args, rtol, atol: as in
        :func:`~momentum_optax.testing.check_transformation`.

Returns:
    ``None``; raises an ``AssertionError`` naming ``{name}`` if it breaks.

Example:
    >>> import jax.numpy as jnp, optax
    >>> from momentum_optax.testing import invariants
    >>> invariants.{name}(optax.trace(0.9), {{"w": jnp.zeros(3)}})
"""


def _taking_the_arguments_of(battery: Callable[P, Battery]) -> Callable[[str], Callable[P, None]]:
    """The factory of the invariants: ``make(name)`` checks ``name`` on ``battery(...)``.

    Each invariant takes ``battery``'s arguments (those of :class:`Battery`, written and
    checked there once) and is documented by its check's docstring in ``_battery``
    followed by the sections all share.
    """
    signature = inspect.signature(battery).replace(return_annotation="None")
    # resolved where they are written, for typing.get_type_hints (and Sphinx)
    resolved = inspect.signature(battery, eval_str=True).parameters
    annotations = {name: p.annotation for name, p in resolved.items()} | {"return": None}

    def make(name: str) -> Callable[P, None]:
        check = _battery.CHECKS[name]

        def invariant(*args: P.args, **kwargs: P.kwargs) -> None:
            battery(*args, **kwargs).check(name)

        invariant.__name__ = invariant.__qualname__ = name
        invariant.__doc__ = inspect.cleandoc(check.__doc__ or "") + _SECTIONS.format(name=name)
        invariant.__signature__ = signature  # type: ignore[attr-defined]
        invariant.__annotations__ = annotations
        return invariant

    return make


_invariant = _taking_the_arguments_of(Battery)

updates_match_gradients = _invariant("updates_match_gradients")
state_is_stable = _invariant("state_is_stable")
finite_in_finite_out = _invariant("finite_in_finite_out")
handles_scale = _invariant("handles_scale")
compiles_once = _invariant("compiles_once")
jit_equals_eager = _invariant("jit_equals_eager")
scan_equals_loop = _invariant("scan_equals_loop")
works_in_chain = _invariant("works_in_chain")
vmap_equals_loop = _invariant("vmap_equals_loop")
checkpoint_continues = _invariant("checkpoint_continues")
strict_promotion = _invariant("strict_promotion")
