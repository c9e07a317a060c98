"""Momentum schedules: ``optax.Schedule`` objects mapping the step count to a coefficient.

Pass one wherever a transformation takes a ``decay`` or ``momentum``:
``mo.trace(mo.schedules.anneal(0.5, 0.9, steps=1000))``. The transformation then
keeps a saturating int32 step count and reads the schedule once per step.

Every schedule here returns its value as optax's own schedules do
(``optax.constant_schedule``, ``optax.cosine_decay_schedule``): weakly typed, in JAX's
default floating dtype, float32, or float64 with ``jax_enable_x64``. So a coefficient
takes the parameters' precision (float64 parameters under x64 get a float64 momentum),
and a float32 or bfloat16 computation is not promoted by it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from typing import ParamSpec
from typing import TypeVar
from typing import cast

import jax
import jax.numpy as jnp
import optax

from momentum_optax import _coefficients
from momentum_optax import _deprecation

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _steps(count: Any) -> jax.Array:
    """The step ``count`` as a weakly typed float of JAX's default precision (float64
    with x64): an int32 count times a Python float, as optax's schedules mix them."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.asarray(count) * 1.0


def _endpoint(value: Any) -> Any:
    """A validated constant of a schedule as a Python float (weakly typed in JAX, so it
    does not fix the schedule's dtype); a ``jax.Array`` is kept as the caller gave it."""
    return value if isinstance(value, jax.Array) else float(value)


def _linear(start: Any, end: Any, steps: int) -> optax.Schedule:
    """``optax.linear_schedule(start, end, steps)`` read at the count as a float of JAX's
    default precision: the same values as optax's in float32, and float64 under x64 (an
    int32 count divided by an int is float32 even there)."""
    linear = optax.linear_schedule(init_value=start, end_value=end, transition_steps=steps)

    def schedule(count: jax.Array) -> jax.Array:
        return jnp.asarray(linear(_steps(count)))

    return schedule


def _steps_by_position_deprecated(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn(start, end, *, steps)`` that also takes ``steps`` as a third positional
    argument, as in 0.1, with a ``DeprecationWarning``; its signature (``inspect`` and the
    type checkers read it) stays ``fn``'s, with ``steps`` keyword-only."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) > 3:
            raise TypeError(
                f"{name}() takes 2 positional arguments (start, end) and steps by keyword; "
                f"got {len(args)} positional arguments. Call {name}(start, end, steps=...)."
            )
        if len(args) == 3:
            if "steps" in kwargs:
                raise TypeError(f"{name}() got multiple values for argument 'steps'.")
            _deprecation.warn(f"{name}(start, end, steps) by position: pass steps=...")
            start, end, kwargs["steps"] = args
            return fn(start, end, **kwargs)
        return fn(*args, **kwargs)

    return cast(Callable[_P, _R], wrapper)


def linear_to_one(start: float, total_steps: int) -> optax.Schedule:
    r"""The momentum schedule of *Understanding Momentum*: linear from ``start`` to 1.

    .. math::  \gamma_t = \gamma_0 + (1 - \gamma_0)\, \min(t, T) / T

    It reaches exactly 1 at ``t = T`` and stays there: a momentum of 1 no
    longer forgets anything, which is what the schedules experiment shows
    (cap it with ``optax.linear_schedule(start, cap, T)`` when that is unwanted).

    Args:
        start: :math:`\gamma_0`, a float in [0, 1].
        total_steps: :math:`T`, the step at which the momentum reaches 1 (>= 1).

    Returns:
        A schedule ``count -> gamma_count`` (float32; float64 under x64).

    Example:
        >>> import momentum_optax as mo
        >>> schedule = mo.schedules.linear_to_one(0.5, total_steps=100)
        >>> [round(float(schedule(t)), 4) for t in (0, 50, 100, 200)]
        [0.5, 0.75, 1.0, 1.0]

    References:
        *Understanding Momentum in Neural Network Optimization* (author not named).
    """
    _coefficients.check_coefficient("start", start, allow_schedule=False)
    total_steps = _coefficients.check_positive_int("total_steps", total_steps)
    return _linear(_endpoint(start), 1.0, total_steps)


@_steps_by_position_deprecated
def anneal(start: float = 0.5, end: float = 0.9, *, steps: int) -> optax.Schedule:
    r"""Momentum that starts near 0.5 and is annealed to 0.9, the practice *Momentum* describes.

    .. math::  \beta_t = \beta_0 + (\beta_1 - \beta_0)\, \min(t, S) / S

    Args:
        start: :math:`\beta_0`, a float in [0, 1] (default 0.5).
        end: :math:`\beta_1`, a float in [0, 1] (default 0.9).
        steps: :math:`S`, the number of steps over which to anneal (required, >= 1),
            by keyword. ``anneal(start, end, steps)`` by position, as in 0.1, still
            works in this release with a ``DeprecationWarning``; it will be removed in 0.3.

    Returns:
        A schedule ``count -> beta_count`` (float32; float64 under x64), constant
        ``end`` after ``S``.

    Example:
        >>> import momentum_optax as mo
        >>> schedule = mo.schedules.anneal(0.5, 0.9, steps=4)
        >>> [round(float(schedule(t)), 4) for t in range(6)]
        [0.5, 0.6, 0.7, 0.8, 0.9, 0.9]

    References:
        *Momentum* (the article on exponential moving averages), author not
        named. Sutskever et al., *On the importance of initialization and
        momentum in deep learning*, 2013.
    """
    _coefficients.check_coefficient("start", start, allow_schedule=False)
    _coefficients.check_coefficient("end", end, allow_schedule=False)
    steps = _coefficients.check_positive_int("steps", steps)
    return _linear(_endpoint(start), _endpoint(end), steps)


def nesterov_sequence(r: float = 3.0) -> optax.Schedule:
    r"""Nesterov's accelerated momentum sequence, :math:`\mu_k = k / (k + r)` at look-ahead ``k``.

    .. math::

        b_t = \frac{k}{k + r},\ k = \max(t - 1, 0), \qquad\text{so that}\qquad
        b_{t+1} = \frac{t}{t + r} = \mu_t

    In the library's indexing :math:`b_t` multiplies the previous velocity in step
    :math:`t`'s update (:math:`m_t = g_t + b_t m_{t-1}`) and Nesterov's output
    :math:`u_t = g_t + b_{t+1} m_t` looks ahead with :math:`b_{t+1}`. With
    ``trace(nesterov_sequence(), nesterov=True)`` and a learning rate :math:`s`, step
    :math:`k` is therefore exactly

    .. math::

        v_{k+1} = w_k - s \nabla f(w_k), \qquad
        w_{k+1} = v_{k+1} + \frac{k}{k + r}\, (v_{k+1} - v_k)

    (the form of Wang et al.'s SRSGD; the momentum of the first step is 0). This is
    FISTA's (Beck & Teboulle 2009) momentum :math:`(t_k - 1) / t_{k+1}` with
    :math:`t_{k+1} = (1 + \sqrt{1 + 4 t_k^2}) / 2`, :math:`t_1 = 1`, in the common closed
    form :math:`t_k = (k + 1) / 2`, which gives :math:`(k - 1) / (k + 2)` at FISTA's
    :math:`k = 1, 2, \dots`, the same sequence counted from 0. It rises to 1, so on its own
    it suits convex problems; wrapped in :func:`~momentum_optax.periodic_reset` or
    :func:`~momentum_optax.adaptive_restart` the count starts again at each restart.
    ``r = 3`` is Nesterov's; any :math:`r \ge 3` keeps the :math:`O(1/k^2)` rate on
    smooth convex problems (Su, Boyd & Candès 2016; Chambolle & Dossal 2015).

    Args:
        r: the constant in :math:`k / (k + r)`, a finite float > 0 (default 3).

    Returns:
        A schedule ``count -> b_count`` (float32; float64 under x64).

    Example:
        >>> import momentum_optax as mo
        >>> schedule = mo.schedules.nesterov_sequence()
        >>> [round(float(schedule(t)), 4) for t in range(5)]  # b_{t+1} = t / (t + 3)
        [0.0, 0.0, 0.25, 0.4, 0.5]

    References:
        Nesterov, *A method for solving the convex programming problem with
        convergence rate O(1/k^2)*, 1983. Beck & Teboulle, *A fast iterative
        shrinkage-thresholding algorithm for linear inverse problems*, 2009. Wang,
        Nguyen, Bertozzi, Baraniuk & Osher, *Scheduled restart momentum for
        accelerated stochastic gradient descent*, 2020. Su, Boyd & Candès, *A
        differential equation for modeling Nesterov's accelerated gradient method*,
        JMLR 2016.
    """
    number = _coefficients.check_positive("r", r)

    def schedule(count: jax.Array) -> jax.Array:
        k = jnp.maximum(_steps(count) - 1, 0.0)
        return k / (k + number)

    return schedule


def sutskever(max_momentum: float, period: int = 250) -> optax.Schedule:
    r"""Sutskever et al.'s momentum schedule: 1 - 1/(2k) in the k-th period of steps, capped.

    .. math::

        \mu_t = \min\bigl(1 - 2^{-1 - \log_2(\lfloor t / P \rfloor + 1)},\ \mu_{max}\bigr)
        = \min\bigl(1 - 1 / (2 k),\ \mu_{max}\bigr), \qquad k = \lfloor t / P \rfloor + 1

    Args:
        max_momentum: :math:`\mu_{max}`, the cap, a float in [0, 1].
        period: :math:`P`, steps between increases (default 250, as in the paper).

    Returns:
        A schedule ``count -> mu_count`` (float32; float64 under x64).

    Example:
        >>> import momentum_optax as mo
        >>> schedule = mo.schedules.sutskever(0.99, period=10)
        >>> [round(float(schedule(t)), 4) for t in (0, 9, 10, 30, 70, 10_000)]
        [0.5, 0.5, 0.75, 0.875, 0.9375, 0.99]

    References:
        Sutskever, Martens, Dahl, Hinton, *On the importance of initialization
        and momentum in deep learning*, ICML 2013.
    """
    _coefficients.check_coefficient("max_momentum", max_momentum, allow_schedule=False)
    period = _coefficients.check_positive_int("period", period)
    cap = _endpoint(max_momentum)

    def schedule(count: jax.Array) -> jax.Array:
        k = jnp.floor(_steps(count) / period) + 1
        return jnp.minimum(1 - 0.5 / k, cap)

    return schedule


def demon(start: float, total_steps: int) -> optax.Schedule:
    r"""Decaying momentum (Demon): the future's weight :math:`\beta/(1-\beta)` decays linearly.

    .. math::

        \frac{\beta_t}{1 - \beta_t} = \Bigl(1 - \frac{t}{T}\Bigr) \frac{\beta_0}{1 - \beta_0}
        \quad\Longleftrightarrow\quad
        \beta_t = \frac{\beta_0 (1 - t/T)}{(1 - \beta_0) + \beta_0 (1 - t/T)}

    reaching 0 at :math:`t = T` and staying there.

    Args:
        start: :math:`\beta_0`, a float in [0, 1).
        total_steps: :math:`T` (>= 1).

    Returns:
        A schedule ``count -> beta_count`` (float32; float64 under x64).

    Example:
        >>> import momentum_optax as mo
        >>> schedule = mo.schedules.demon(0.9, total_steps=100)
        >>> [round(float(schedule(t)), 4) for t in (0, 50, 100, 150)]
        [0.9, 0.8182, 0.0, 0.0]

    References:
        Chen, Wolfe, Kyrillidis, *Demon: Improved neural network training with
        momentum decay*, ICASSP 2022.
    """
    _coefficients.check_coefficient("start", start, allow_one=False, allow_schedule=False)
    total_steps = _coefficients.check_positive_int("total_steps", total_steps)
    beta = _endpoint(start)

    def schedule(count: jax.Array) -> jax.Array:
        remaining = 1 - jnp.minimum(_steps(count), total_steps) / total_steps
        return beta * remaining / ((1 - beta) + beta * remaining)

    return schedule


def inverse_cycle(
    total_steps: int,
    *,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
) -> optax.Schedule:
    r"""Momentum cycled against a one-cycle learning rate, as PyTorch's ``OneCycleLR``.

    While the learning rate warms up (the first ``pct_start`` of the steps) the
    momentum falls from ``max_momentum`` to ``base_momentum``; while it anneals,
    the momentum rises back. With ``anneal_strategy="cos"`` each phase is
    :math:`m = e + (s - e)(1 + \cos(\pi p)) / 2` from :math:`s` to :math:`e`, with
    :math:`p` the fraction of the phase done; ``"linear"`` interpolates linearly.
    Phase boundaries are PyTorch's (``pct_start * T - 1`` and ``T - 1``), so the
    values match ``OneCycleLR(cycle_momentum=True)`` step for step. Pair it with
    ``optax.cosine_onecycle_schedule`` for the learning rate.

    Args:
        total_steps: :math:`T`, the length of the cycle (>= 2).
        base_momentum: the momentum at the learning rate's peak, a float in [0, 1].
        max_momentum: the momentum at the start and the end, a float in [0, 1].
        pct_start: fraction of the steps spent warming up, in (0, 1).
        anneal_strategy: ``"cos"`` or ``"linear"``.

    Returns:
        A schedule ``count -> momentum`` (float32; float64 under x64), constant after ``T - 1``.

    Example:
        >>> import momentum_optax as mo
        >>> schedule = mo.schedules.inverse_cycle(12, pct_start=0.5)
        >>> [round(float(schedule(t)), 4) for t in (0, 5, 8, 11, 20)]
        [0.95, 0.85, 0.9, 0.95, 0.95]

    References:
        Smith, *A disciplined approach to neural network hyper-parameters:
        Part 1*, 2018. PyTorch ``torch.optim.lr_scheduler.OneCycleLR``.
    """
    total_steps = _coefficients.check_positive_int("total_steps", total_steps)
    if total_steps < 2:
        raise ValueError(f"total_steps must be an integer >= 2; got {total_steps!r}.")
    _coefficients.check_coefficient("base_momentum", base_momentum, allow_schedule=False)
    _coefficients.check_coefficient("max_momentum", max_momentum, allow_schedule=False)
    _coefficients.check_coefficient("pct_start", pct_start, allow_schedule=False)
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"pct_start must be in (0, 1); got {pct_start!r}.")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be 'cos' or 'linear'; got {anneal_strategy!r}.")
    warmup_end = float(pct_start * total_steps) - 1
    cycle_end = float(total_steps - 1)
    if not 0.0 < warmup_end < cycle_end:
        raise ValueError(
            f"pct_start * total_steps must lie in (1, total_steps); got pct_start="
            f"{pct_start!r} with total_steps={total_steps!r}."
        )

    low, high = _endpoint(base_momentum), _endpoint(max_momentum)

    def interpolate(start: Any, end: Any, pct: jax.Array) -> jax.Array:
        if anneal_strategy == "cos":
            return end + (start - end) / 2 * (jnp.cos(jnp.pi * pct) + 1)
        return start + (end - start) * pct

    def schedule(count: jax.Array) -> jax.Array:
        t = jnp.minimum(_steps(count), cycle_end)
        falling = interpolate(high, low, t / warmup_end)
        rising = interpolate(low, high, (t - warmup_end) / (cycle_end - warmup_end))
        return jnp.where(t <= warmup_end, falling, rising)

    return schedule
