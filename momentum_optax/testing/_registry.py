"""Where the invariants are registered, and what their implementations share.

Each invariant is a function of a :class:`~momentum_optax.testing._run.Case` that raises an
``AssertionError`` starting with its name; :func:`invariant` registers it under that name,
in the order the modules of ``_battery`` write them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from momentum_optax.testing import _compare
from momentum_optax.testing._run import Case
from momentum_optax.testing._run import SharedRunError

Check = Callable[[Case], None]
CHECKS: dict[str, Check] = {}


def invariant(fn: Check) -> Check:
    """Registers ``fn`` under its name; an exception inside it fails the invariant.

    The shared run comes first: when an argument makes it fail (``tx.init(params)``
    raised, or the first step raised a ``TypeError``), its ``ValueError`` or ``TypeError``
    naming the argument is raised as is, rather than as this invariant's failure.
    """
    name = fn.__name__

    @functools.wraps(fn)
    def checked(case: Case) -> None:
        try:
            case.trajectory  # noqa: B018  (computed once, shared)
        except SharedRunError as error:
            raise AssertionError(f"{name}: {error}") from error
        try:
            fn(case)
        except AssertionError:
            raise
        except Exception as error:
            raise AssertionError(f"{name}: raised {type(error).__name__}: {error}") from error

    CHECKS[name] = checked
    return checked


def stack(trees: list[Any]) -> Any:
    """A list of trees as one tree of stacked leaves."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def take(tree: Any, i: int) -> Any:
    """Entry ``i`` along the leading axis of every leaf."""
    return jax.tree.map(lambda x: x[i], tree)


def compare_runs(
    name: str, case: Case, got: Any, want: Any, got_name: str, want_name: str, offset: int = 0
) -> None:
    """Fails unless two runs' updates and states are close at every step."""
    for i, (u, v, s, w) in enumerate(zip(got.updates, want.updates, got.states, want.states)):
        for what, a, b in (("updates", u, v), ("state", s, w)):
            _compare.close(
                name,
                f"step {offset + i}, {what}",
                a,
                b,
                got_name=got_name,
                want_name=want_name,
                rtol=case.rtol,
                atol=case.atol,
            )
