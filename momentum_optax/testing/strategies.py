"""Hypothesis strategies: parameter pytrees, matching gradient sequences, coefficients.

Shapes come from a small set (:data:`SHAPES`), so the eager operations a transformation
runs are compiled once per shape and dtype and reused across examples; values are drawn
from a seed (standard normal, scaled), so an example is cheap to draw and to shrink.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax

#: leaf shapes: ranks 0 to 3, zero-size ones included
SHAPES: tuple[tuple[int, ...], ...] = ((), (1,), (3,), (0,), (2, 3), (3, 0), (1, 4, 2), (2, 0, 1))
#: leaf dtypes
DTYPES: tuple[Any, ...] = (jnp.float32, jnp.bfloat16, jnp.float16)
#: the scales of drawn gradients (all finite in every dtype of :data:`DTYPES`)
SCALES: tuple[float, ...] = (1.0, 1e-3, 10.0)

_SEEDS = st.integers(0, 2**32 - 1)
_KEYS = st.text("abcdefgh", min_size=1, max_size=3)


class Pair(NamedTuple):
    """The ``NamedTuple`` container of :func:`params` trees."""

    first: Any
    second: Any


def _normal(shape: tuple[int, ...], dtype: Any, seed: int, scale: float = 1.0) -> jax.Array:
    values = scale * np.random.default_rng(seed).standard_normal(shape)
    return jnp.asarray(values, dtype)


def leaves(
    shapes: Sequence[tuple[int, ...]] = SHAPES, dtypes: Sequence[Any] = DTYPES
) -> st.SearchStrategy[jax.Array]:
    r"""Arrays of a shape in ``shapes`` and a dtype in ``dtypes``, standard normal values.

    .. math::

        x \sim \mathcal{N}(0, 1)^{\mathrm{shape}} \text{ rounded to the dtype}

    Args:
        shapes: the shapes to draw from (default :data:`SHAPES`: ranks 0-3, zero-size too).
        dtypes: the dtypes to draw from (default :data:`DTYPES`).

    Returns:
        A strategy of ``jax.Array``.

    Example:
        >>> import hypothesis, jax.numpy as jnp
        >>> from momentum_optax.testing import strategies
        >>> @hypothesis.given(strategies.leaves(shapes=[(2, 3)], dtypes=[jnp.bfloat16]))
        ... @hypothesis.settings(max_examples=5, deadline=None)
        ... def test_leaf(x):
        ...     assert x.shape == (2, 3) and x.dtype == jnp.bfloat16
        >>> test_leaf()
    """
    return st.builds(_normal, st.sampled_from(list(shapes)), st.sampled_from(list(dtypes)), _SEEDS)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.dictionaries(_KEYS, children, min_size=1, max_size=3),
        st.lists(children, min_size=1, max_size=3),
        st.lists(children, min_size=1, max_size=3).map(tuple),
        st.builds(Pair, children, children),
    )


def params(
    *,
    max_leaves: int = 5,
    shapes: Sequence[tuple[int, ...]] = SHAPES,
    dtypes: Sequence[Any] = DTYPES,
) -> st.SearchStrategy[Any]:
    r"""Parameter pytrees: nested dicts, lists, tuples and :class:`Pair` of :func:`leaves`.

    .. math::

        \theta = \text{a tree of } 1 \text{ to } \texttt{max\_leaves} \text{ arrays}

    Args:
        max_leaves: about how many leaves at most (hypothesis' ``recursive`` bound).
        shapes: the leaf shapes to draw from (default :data:`SHAPES`).
        dtypes: the leaf dtypes to draw from (default :data:`DTYPES`).

    Returns:
        A strategy of pytrees with at least one array leaf.

    Example:
        >>> import hypothesis, jax
        >>> from momentum_optax.testing import strategies
        >>> @hypothesis.given(strategies.params(max_leaves=3))
        ... @hypothesis.settings(max_examples=5, deadline=None)
        ... def test_params(params):
        ...     assert jax.tree.leaves(params)  # at least one leaf
        >>> test_params()
    """
    return st.recursive(leaves(shapes, dtypes), _containers, max_leaves=max_leaves)


def _sequence(params: Any, steps: int, seed: int, scale: float) -> list[Any]:
    rng = np.random.default_rng(seed)

    def leaf(x: Any) -> jax.Array:
        return jnp.asarray(scale * rng.standard_normal(jnp.shape(x)), jnp.result_type(x))

    return [jax.tree.map(leaf, params) for _ in range(steps)]


def gradient_sequences(
    params: Any, *, steps: int = 3, scales: Sequence[float] = SCALES
) -> st.SearchStrategy[list[Any]]:
    r"""Sequences of gradient trees matching ``params``: its structure, shapes and dtypes.

    .. math::

        g_t \sim s \cdot \mathcal{N}(0, 1), \qquad s \in \texttt{scales}, \;
        t = 0, \dots, \texttt{steps} - 1

    Every value is finite (the scales keep float16 far from overflow).

    Args:
        params: the parameter pytree the gradients are for.
        steps: the length of each sequence.
        scales: the scales :math:`s` to draw from (one per sequence).

    Returns:
        A strategy of lists of ``steps`` pytrees.

    Example:
        >>> import hypothesis, jax
        >>> from momentum_optax.testing import strategies
        >>> @hypothesis.given(hypothesis.strategies.data())
        ... @hypothesis.settings(max_examples=5, deadline=None)
        ... def test_gradients(data):
        ...     params = data.draw(strategies.params(max_leaves=3))
        ...     grads = data.draw(strategies.gradient_sequences(params, steps=4))
        ...     assert len(grads) == 4
        ...     assert [g.shape for g in jax.tree.leaves(grads[0])] == [
        ...         p.shape for p in jax.tree.leaves(params)]
        >>> test_gradients()
    """
    return st.builds(_sequence, st.just(params), st.just(steps), _SEEDS, st.sampled_from(scales))


class _Schedule:
    """A schedule clipped to ``[low, high]``, with its kind and end points for reports."""

    def __init__(
        self, kind: str, fn: optax.Schedule, start: float, end: float, steps: int, bounds: tuple
    ):
        self.kind, self.fn, self.start, self.end, self.steps = kind, fn, start, end, steps
        self.low, self.high = bounds

    def __call__(self, count: Any) -> jax.Array:
        return jnp.clip(self.fn(count), self.low, self.high)

    def __repr__(self) -> str:
        return f"{self.kind}({self.start} -> {self.end}, {self.steps} steps)"


def _bounds(min_value: float, max_value: float, exclude_max: bool) -> tuple[float, float]:
    """The float32 values closest to ``[min_value, max_value]`` from inside (strictly below
    ``max_value`` with ``exclude_max``)."""
    low, high = np.float32(min_value), np.float32(max_value)
    if low < min_value:
        low = np.nextafter(low, np.float32(np.inf))
    if high > max_value or (exclude_max and high == max_value):
        high = np.nextafter(high, np.float32(-np.inf))
    if not low <= high:
        raise ValueError(
            f"min_value must be <= max_value (below it with exclude_max); got {min_value!r} "
            f"and {max_value!r}."
        )
    return float(low), float(high)


def _linear(a: float, b: float, n: int, bounds: tuple) -> _Schedule:
    return _Schedule("linear", optax.linear_schedule(a, b, n), a, b, n, bounds)


def _cosine(a: float, b: float, n: int, bounds: tuple) -> _Schedule:
    shape = optax.cosine_decay_schedule(1.0, n)  # from 1 down to 0 over n steps
    return _Schedule("cosine", lambda count: b + (a - b) * shape(count), a, b, n, bounds)


def _constant(a: float, bounds: tuple) -> _Schedule:
    return _Schedule("constant", optax.constant_schedule(a), a, a, 0, bounds)


def schedules(
    min_value: float = 0.0, max_value: float = 1.0, *, exclude_max: bool = False
) -> st.SearchStrategy[Callable[[Any], jax.Array]]:
    r"""Coefficient schedules with values in ``[min_value, max_value]``.

    .. math::

        \beta(t) \in [\beta_{\min}, \beta_{\max}] \text{ for every step count } t

    Built on optax's linear, cosine-decay and constant schedules between two values drawn
    in the range, each clipped to it (so rounding never leaves it). Each has attributes
    ``kind`` (``"linear"``, ``"cosine"`` or ``"constant"``), ``start``, ``end`` and
    ``steps`` (the transition's length), and a ``repr`` that names them.

    Args:
        min_value: the smallest value.
        max_value: the largest value.
        exclude_max: keep every value below ``max_value`` (e.g. a debiased ``ema``'s decay).

    Returns:
        A strategy of schedules (callables of the int32 step count).

    Example:
        >>> import hypothesis, jax.numpy as jnp
        >>> from momentum_optax.testing import strategies
        >>> @hypothesis.given(strategies.schedules(0.5, 0.9))
        ... @hypothesis.settings(max_examples=5, deadline=None)
        ... def test_schedule(schedule):
        ...     assert all(0.5 <= float(schedule(jnp.int32(t))) <= 0.9 for t in range(0, 60, 7))
        >>> test_schedule()
    """
    bounds = _bounds(min_value, max_value, exclude_max)
    values, counts = st.floats(*bounds, width=32), st.integers(1, 50)
    return st.one_of(
        st.builds(_linear, values, values, counts, st.just(bounds)),
        st.builds(_cosine, values, values, counts, st.just(bounds)),
        st.builds(_constant, values, st.just(bounds)),
    )


def coefficients(
    min_value: float = 0.0,
    max_value: float = 1.0,
    *,
    schedules_too: bool = True,
    exclude_max: bool = False,
) -> st.SearchStrategy[Any]:
    r"""Coefficients: floats in ``[min_value, max_value]`` and, optionally, :func:`schedules`.

    .. math::

        \beta \in [\beta_{\min}, \beta_{\max}] \quad\text{or}\quad
        \beta(t) \in [\beta_{\min}, \beta_{\max}]

    Args:
        min_value: the smallest value.
        max_value: the largest value.
        schedules_too: draw schedules as well as constants.
        exclude_max: keep every value below ``max_value``.

    Returns:
        A strategy of floats (float32-representable) and schedules.

    Example:
        >>> import hypothesis, jax.numpy as jnp, optax
        >>> import momentum_optax as mo
        >>> from momentum_optax.testing import strategies
        >>> @hypothesis.given(strategies.coefficients(0.0, 0.99))
        ... @hypothesis.settings(max_examples=5, deadline=None)
        ... def test_first_step(decay):
        ...     updates, _ = mo.trace(decay).update(jnp.ones(2), mo.trace(decay).init(jnp.zeros(2)))
        ...     assert jnp.all(updates == 1.0)  # the first step is the gradient itself
        >>> test_first_step()
    """
    constants = st.floats(*_bounds(min_value, max_value, exclude_max), width=32)
    if not schedules_too:
        return constants
    return st.one_of(constants, schedules(min_value, max_value, exclude_max=exclude_max))
