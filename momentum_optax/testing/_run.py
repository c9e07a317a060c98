"""What the invariants share: the inputs' checks, the gradient sequence, the step, the runs.

The shared run also checks what no invariant can: that ``tx.init(params)`` and the first
step run at all. When they do not, the error is raised once, naming the argument to fix
(``params``, ``extra_args``), instead of once per invariant.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from momentum_optax.testing._gradients import Gradients
from momentum_optax.testing._gradients import check_gradients_arg
from momentum_optax.testing._gradients import gradient_trees
from momentum_optax.testing._gradients import gradients_like
from momentum_optax.testing._gradients import like_name

#: ``extra_args`` of the checks: keyword arguments of ``update`` (such as ``value=`` the
#: loss), a mapping passed as is at every step, or a callable ``(params, step) -> mapping``
#: of the current parameters and the int32 step number (traced under ``jit``)
ExtraArgs = Mapping[str, Any] | Callable[[Any, jax.Array], Mapping[str, Any]] | None

#: steps of each run when not told otherwise: enough for a momentum buffer to matter,
#: few enough to keep a whole battery fast
DEFAULT_STEPS = 6

Step = Callable[[Any, Any, Any, jax.Array], tuple[Any, Any, Any]]


class SharedRunError(AssertionError):
    """The jitted run every invariant shares raised: no invariant can be checked."""


def check_transformation_arg(name: str, tx: Any) -> optax.GradientTransformationExtraArgs:
    """``tx`` with extra-arguments support, or a ``TypeError`` naming ``name``."""
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(
            f"{name} must be an optax.GradientTransformation; got {tx!r} of type "
            f"{type(tx).__name__}."
        )
    return optax.with_extra_args_support(tx)


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or a ``ValueError`` naming ``name`` and the valid range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_tolerance(name: str, value: Any) -> float | None:
    """``value`` as a float (or ``None``), or a ``ValueError`` naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value) >= 0:
        raise ValueError(f"{name} must be None or a float >= 0; got {value!r}.")
    return float(value)


def check_extra_args(extra_args: Any) -> ExtraArgs:
    """``extra_args`` if it is ``None``, a mapping or a callable; else a ``TypeError``."""
    if extra_args is None or isinstance(extra_args, Mapping) or callable(extra_args):
        return extra_args
    raise TypeError(
        "extra_args must be None, a mapping of update's keyword arguments, or a callable "
        f"(params, step) -> mapping; got {extra_args!r} of type {type(extra_args).__name__}."
    )


def as_params(params: Any, name: str = "params") -> Any:
    """``params`` with every leaf a strongly typed ``jax.Array``; at least one leaf."""
    if not jax.tree.leaves(params):
        raise ValueError(f"{name} must be a pytree with at least one array leaf; got {params!r}.")
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)), params)


def extra_at(extra_args: ExtraArgs, params: Any, t: jax.Array) -> Mapping[str, Any]:
    """The keyword arguments of ``update`` at step ``t``."""
    if extra_args is None:
        return {}
    if callable(extra_args):
        return extra_args(params, t)
    return extra_args


def _fits(updates: Any, params: Any) -> bool:
    structure: Any = jax.tree.structure(updates)
    if structure != jax.tree.structure(params):
        return False
    return all(
        jnp.shape(u) == jnp.shape(p)
        for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params))
    )


def make_step(tx: optax.GradientTransformationExtraArgs, extra_args: ExtraArgs) -> Step:
    """``step(params, state, grads, t) -> (updates, state, new_params)``: one training step.

    Updates that do not fit the parameters (another structure or shape, decided at trace
    time) leave them unchanged rather than broadcast, so the run goes on and the invariant
    that checks the updates reports them.
    """

    def step(params: Any, state: Any, grads: Any, t: jax.Array) -> tuple[Any, Any, Any]:
        updates, state = tx.update(grads, state, params, **extra_at(extra_args, params, t))
        fits = _fits(updates, params)
        return updates, state, optax.apply_updates(params, updates) if fits else params

    return step


class Trajectory(NamedTuple):
    """A run: at each step the parameters it received, its updates and the state after it."""

    params: list[Any]
    updates: list[Any]
    states: list[Any]
    final_params: Any


def run(
    step: Step,
    params: Any,
    state: Any,
    grads: Sequence[Any],
    *,
    start: int = 0,
    given_params: Sequence[Any] | None = None,
    after_step: Callable[[int], None] | None = None,
) -> Trajectory:
    """Runs ``step`` over ``grads`` in a Python loop, steps numbered from ``start``.

    With ``given_params`` step ``i`` receives ``given_params[i]`` rather than the
    parameters the previous step produced (both runs of a comparison see the same inputs).
    """
    seen, outs, states = [], [], []
    for i, g in enumerate(grads):
        if given_params is not None:
            params = given_params[i]
        seen.append(params)
        updates, state, params = step(params, state, g, jnp.int32(start + i))
        outs.append(updates)
        states.append(state)
        if after_step is not None:
            after_step(i)
    return Trajectory(seen, outs, states, params)


@dataclasses.dataclass
class Case:
    """One transformation, its parameters and the run the invariants share (computed once)."""

    tx: optax.GradientTransformationExtraArgs
    params: Any
    steps: int
    seed: int
    extra_args: ExtraArgs
    gradients: Gradients
    rtol: float | None
    atol: float | None
    traced: int = 0  # how often :attr:`jitted` has been traced
    traces_after: list[int] = dataclasses.field(default_factory=list)  # ... after each step

    @classmethod
    def build(
        cls,
        tx: Any,
        params: Any,
        *,
        steps: Any,
        seed: Any,
        extra_args: Any,
        gradients: Any = None,
        rtol: Any = None,
        atol: Any = None,
    ) -> Case:
        """Checks every argument (the errors name it) and builds the case."""
        return cls(
            tx=check_transformation_arg("tx", tx),
            params=as_params(params),
            steps=check_int("steps", steps, 2),
            seed=check_int("seed", seed, 0),
            extra_args=check_extra_args(extra_args),
            gradients=check_gradients_arg(gradients),
            rtol=check_tolerance("rtol", rtol),
            atol=check_tolerance("atol", atol),
        )

    @property
    def like(self) -> Any:
        """The tree the gradients are shaped like (``params.fast`` for lookahead)."""
        return gradients_like(self.params)

    @functools.cached_property
    def grads(self) -> list[Any]:
        """The gradient sequence of the runs: drawn from ``seed``, or ``gradients``'."""
        return self.grads_for(self.params, self.seed)

    def grads_for(self, params: Any, seed: int) -> list[Any]:
        """The gradient sequence for ``params`` (a batch member of ``vmap``) and ``seed``."""
        like = gradients_like(params)
        return gradient_trees(self.gradients, like, self.steps, seed, like_name(params))

    @functools.cached_property
    def step(self) -> Step:
        return make_step(self.tx, self.extra_args)

    @functools.cached_property
    def jitted(self) -> Step:
        """``jax.jit`` of :attr:`step`, counting its traces in ``traced``."""

        def counted(*args: Any) -> tuple[Any, Any, Any]:
            self.traced += 1
            return self.step(*args)

        return jax.jit(counted)

    @functools.cached_property
    def trajectory(self) -> Trajectory:
        """The jitted run from ``tx.init(params)`` over :attr:`grads`; fills ``traces_after``."""

        def count(i: int) -> None:
            self.traces_after.append(self.traced)

        try:
            state = self.tx.init(self.params)
        except Exception as error:
            raise ValueError(
                f"tx.init(params) raised {type(error).__name__}: {error}\nparams must be a "
                "pytree tx.init takes (for optax.lookahead, "
                "optax.LookaheadParams.init_synced(params))."
            ) from error
        grads = self.grads
        try:
            return run(self.jitted, self.params, state, grads, after_step=count)
        except Exception as error:
            raise self._run_error(error, step=len(self.traces_after)) from error

    def _run_error(self, error: Exception, step: int) -> Exception:
        """The error the shared run raises in place of ``error`` (at ``step``)."""
        what = f"tx.update raised {type(error).__name__} at step {step} (under jax.jit): {error}"
        if isinstance(error, TypeError) and not isinstance(error, jax.errors.JAXTypeError):
            return TypeError(
                f"{what}\nIf update needs keyword arguments (such as value=, the loss), pass "
                "them with extra_args=: a mapping, or a callable (params, step) -> mapping; "
                f"got extra_args={self.extra_args!r}."
            )
        if isinstance(error, AttributeError) and "'fast'" in str(error):
            what += " (optax.lookahead takes params = optax.LookaheadParams.init_synced(params))"
        return SharedRunError(f"the jitted run every invariant shares failed: {what}")
