"""Coefficient types, their validation at construction, and their value at a step.

Every momentum coefficient is an ``optax.ScalarOrSchedule``: a constant or an
``optax.Schedule`` (a callable of the int32 step count).

One rule says what is known in Python: a *known constant* is a Python or NumPy
real number (a NumPy 0-d array included). Only a known constant decides the
state's structure (``torch_sgd(lr, 0.0)`` keeps no buffer, as in PyTorch). A ``jax.Array`` is a
run-time value: under ``optax.inject_hyperparams`` the same hyper-parameter is a
concrete array in ``init`` and a tracer in a jitted ``update``, so the structure
must not depend on it. Validation reads the value where it can: a known constant,
or a concrete ``jax.Array`` read as the NumPy number it holds, is range-checked
when a transformation is built; a tracer passes unchecked. Schedules are never
called at construction.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def is_schedule(value: Any) -> bool:
    """Whether ``value`` is a schedule (read from the step count) rather than a constant."""
    return callable(value)


def any_schedule(*values: Any) -> bool:
    """Whether any of ``values`` is a schedule, i.e. whether a step count is needed."""
    return any(is_schedule(v) for v in values)


def value_at(coefficient: optax.ScalarOrSchedule, count: jax.Array | None) -> Any:
    """The coefficient at step ``count``: the constant itself, or the schedule's value.

    A constant is returned unchanged (a Python float stays weakly typed, so a
    constant coefficient compiles to exactly the program optax compiles).
    """
    if is_schedule(coefficient):
        if count is None:
            raise ValueError(
                "this state has no step count: it was made with a constant coefficient (or by "
                "optax), but this transformation's coefficient is a schedule, which reads the "
                "step count."
            )
        # a schedule is a scalar function of an int32 count, written for JAX's standard
        # promotion (optax's own mix the count with Python floats): evaluated under it, so a
        # schedule also works when the caller runs with jax_numpy_dtype_promotion='strict'
        with jax.numpy_dtype_promotion("standard"):
            return _at_least_float32(jnp.asarray(coefficient(count)))
    return _at_least_float32(coefficient)


def _at_least_float32(value: Any) -> Any:
    """An array coefficient in a low-precision dtype, as ``optax.inject_hyperparams`` keeps
    one for bfloat16 parameters, cast to float32: its value is kept, and the arithmetic,
    which runs in at least float32, needs no promotion (strict promotion allows none).
    A Python number stays as it is (weakly typed)."""
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        dtype = jnp.result_type(value)
        if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
            return jnp.asarray(value, jnp.float32)
    return value


def init_count(*coefficients: Any) -> jax.Array | None:
    """A zero int32 step count if any coefficient is scheduled, else ``None`` (no state)."""
    return jnp.zeros([], jnp.int32) if any_schedule(*coefficients) else None


def next_count(count: jax.Array | None) -> jax.Array | None:
    """The saturating successor of ``count`` (``None`` stays ``None``)."""
    return None if count is None else optax.safe_increment(count)


def known_constant(name: str, value: Any, expected: str) -> float | None:
    """``value`` as a float if it is a known constant; ``None`` for a ``jax.Array``
    (concrete or traced: a run-time value).

    Raises a TypeError naming ``name`` and ``expected`` for anything else (a
    bool, a string, ``None``, a non-scalar array, a callable).
    """
    if isinstance(value, jax.Array):
        return None
    if isinstance(value, (np.ndarray, np.generic)) and value.shape == ():
        if jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer):
            return float(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"{name} must be {expected}; got {value!r} of type {type(value).__name__}.")


def is_known_zero(value: Any) -> bool:
    """Whether ``value`` is a known constant equal to 0 (a schedule or an array is not)."""
    if is_schedule(value) or isinstance(value, jax.Array):
        return False
    return known_constant("value", value, "a real number") == 0.0


def readable(value: Any) -> Any:
    """``value`` with a concrete ``jax.Array`` read back as a NumPy array (a tracer stays)."""
    if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer):
        return np.asarray(value)
    return value


def _constant(name: str, value: Any, expected: str, allow_schedule: bool) -> float | None:
    """``value`` as a float to range-check; ``None`` for an accepted schedule or a
    tracer (never inspected); a TypeError for anything else, or a callable when
    ``allow_schedule`` is False."""
    if allow_schedule:
        expected += " or a schedule (a callable of the step count)"
    if is_schedule(value):
        if not allow_schedule:
            raise TypeError(f"{name} must be {expected}; got the callable {value!r}.")
        return None
    return known_constant(name, readable(value), expected)


def check_coefficient(
    name: str, value: Any, *, allow_one: bool = True, allow_schedule: bool = True
) -> None:
    """Validates a momentum/decay coefficient at construction time.

    Args:
        name: the argument's name, used in the error message.
        value: a constant in ``[0, 1]`` (``[0, 1)`` when ``allow_one`` is False), a
            schedule, or a traced value (accepted unchecked).
        allow_one: whether exactly 1 is valid (it is not where ``1 - prod b`` divides).
        allow_schedule: whether a callable is valid (not for a schedule's own endpoints).

    Raises:
        TypeError: ``value`` is neither a real scalar nor an accepted callable.
        ValueError: ``value`` is NaN, infinite or out of range.
    """
    interval = "[0, 1]" if allow_one else "[0, 1)"
    number = _constant(name, value, f"a float in {interval}", allow_schedule)
    if number is None:
        return
    if not (0.0 <= number <= 1.0) or (number == 1.0 and not allow_one):
        raise ValueError(f"{name} must be in {interval}; got {value!r}.")


def check_nonnegative(name: str, value: Any, *, allow_schedule: bool = True) -> None:
    """Validates a learning rate, a weight decay or an epsilon: a finite constant >= 0,
    a schedule (when ``allow_schedule``), or a traced value (accepted unchecked)."""
    number = _constant(name, value, "a float >= 0", allow_schedule)
    if number is None:
        return
    if not (math.isfinite(number) and number >= 0.0):
        raise ValueError(f"{name} must be a finite float >= 0; got {value!r}.")


def check_positive(name: str, value: Any) -> float:
    """Validates a constant that must be strictly positive (an epsilon, a sequence's
    offset): a finite Python or NumPy number > 0, returned as a float. A ``jax.Array`` is
    refused: the value is read in Python."""
    number = known_constant(name, value, "a finite float > 0")
    if number is None or not (math.isfinite(number) and number > 0.0):
        raise ValueError(
            f"{name} must be a finite float > 0 (a Python or NumPy number); got {value!r}."
        )
    return number


INT32_MAX = 2**31 - 1


def check_positive_int(
    name: str, value: Any, *, maximum: int = INT32_MAX, what: str = "an integer >= 1"
) -> int:
    """Validates a period or a step total: a Python or NumPy integer in [1, maximum]
    (by default the int32 range its counter lives in); ``what`` says what else is
    accepted, in the TypeError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be {what}; got {value!r} of type {type(value).__name__}.")
    value = int(value)
    if not 1 <= value <= maximum:
        raise ValueError(f"{name} must be an integer >= 1 and <= {maximum}; got {value!r}.")
    return value


def positive_int(
    name: str, value: Any, *, maximum: int = INT32_MAX, what: str = "an integer >= 1"
) -> Any:
    """Validates a period that the update reads as a number: as :func:`check_positive_int`,
    and also a 0-d integer ``jax.Array`` (what ``optax.inject_hyperparams`` hands on, the
    default included), checked and returned as an ``int`` when concrete, returned as is
    (unchecked) when traced."""
    if (
        isinstance(value, jax.Array)
        and value.shape == ()
        and (jnp.issubdtype(value.dtype, jnp.integer))
    ):
        if isinstance(value, jax.core.Tracer):
            return value
        value = np.asarray(value)[()]
    return check_positive_int(name, value, maximum=maximum, what=what)


def structural_int(name: str, value: Any, *, what: str = "an integer >= 1") -> int | None:
    """Validates an integer that sets a buffer's shape: as :func:`positive_int`, but a
    traced value gives ``None`` (the caller reads the size from its state's buffer, where
    ``optax.inject_hyperparams`` hands the factory its value as a traced array)."""
    value = positive_int(name, value, what=what)
    return None if isinstance(value, jax.core.Tracer) else value


def traced_shape_error(name: str, owner: str) -> TypeError:
    """The error for a shape-setting argument traced where a shape is made (an ``init``
    jitted under ``optax.inject_hyperparams``)."""
    return TypeError(
        f"{name} sets the shape of {owner}'s buffer, so it must be a concrete integer where "
        f"the state is made; it is traced here (optax.inject_hyperparams inside jit). Build "
        f"it with optax.inject_hyperparams({owner}, static_args=({name!r},)), or call init "
        "outside jit."
    )


def check_bool(name: str, value: Any) -> None:
    """Validates a flag: only ``True`` or ``False`` (a typo'd string must not read as True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"{name} must be True or False; got {value!r} of type {type(value).__name__}."
        )


def check_accumulator_dtype(name: str, value: Any) -> Any:
    """Validates an accumulator dtype: ``None`` or a floating/complex dtype, returned canonical."""
    if value is None:
        return None
    try:
        dtype = jnp.dtype(value)
    except TypeError as error:
        raise TypeError(f"{name} must be None or a floating-point dtype; got {value!r}.") from error
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"{name} must be None or a floating-point dtype such as jnp.float32; "
            f"got {value!r} ({dtype}), which cannot hold a momentum buffer."
        )
    return jax.dtypes.canonicalize_dtype(dtype)
