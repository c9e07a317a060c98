"""YellowFin: heavy ball whose learning rate and momentum are tuned online from the gradients."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import DTypeLike
from optax import ScalarOrSchedule

from momentum_optax import _coefficients
from momentum_optax import _tree
from momentum_optax import scaling

# the order of the scalar running averages in YellowFinState.averages
_CORRECTION, _NORM_SQUARED, _NORM, _H_MIN, _H_MAX, _DISTANCE, _LR, _MU = range(8)
#: p of the SingleStep cubic is clipped to this range, where its root is finite in float32
P_RANGE = (1e-30, 1e30)


class YellowFinState(NamedTuple):
    """State of :func:`scale_by_yellowfin`; ``learning_rate`` and ``momentum`` are the
    tuned values the last step used (float32 scalars, for logging)."""

    count: jax.Array  # type: ignore[assignment]  # int32 scalar t, steps taken (saturating)
    velocity: optax.Params  # v_t = mu_t v_{t-1} + alpha_t g_t, like the params
    grad_avg: optax.Params  # the running average of g (not yet debiased), like the params
    window: jax.Array  # float32 (w,): ||g||^2 of the last w steps, a ring buffer
    averages: jax.Array  # float32 (8,): 1 - beta^t and the running averages (not debiased)
    learning_rate: jax.Array  # float32 alpha_t
    momentum: jax.Array  # float32 mu_t


def cubic_root(p: jax.Array) -> jax.Array:
    r"""The root :math:`x \in [0, 1]` of SingleStep's cubic :math:`p\, x = (1 - x)^3`.

    :math:`x = \sqrt{\mu}` minimises :math:`\mu D^2 + \alpha^2 C` with
    :math:`\alpha = (1 - \sqrt\mu)^2 / h_{min}` and :math:`p = D^2 h_{min}^2 / (2 C)`.
    With :math:`s = 1 - x`, the depressed cubic :math:`s^3 + p s - p = 0` has one real root,
    written without cancellation or overflow (Cardano's form
    :math:`w - p / (3 w)` subtracts two numbers of size :math:`\sqrt p`) as

    .. math::  s = 2 \sqrt{p / 3}\, \sinh\Bigl(\tfrac13 \operatorname{arsinh}
               \bigl(\tfrac32 \sqrt{3 / p}\bigr)\Bigr)

    followed, for :math:`p > 1`, by one Newton step on :math:`f(x) = p x - (1 - x)^3`
    (:math:`f' \ge p`), which makes the small roots of a large :math:`p`
    (:math:`x \approx 1 / p`) accurate to a relative error of float32's precision. ``p``
    is clipped to :data:`P_RANGE`.
    """
    p = jnp.clip(jnp.asarray(p, jnp.float32), *P_RANGE)
    s = 2 * jnp.sqrt(p / 3) * jnp.sinh(jnp.arcsinh(1.5 * jnp.sqrt(3 / p)) / 3)
    x = jnp.clip(1 - s, 0.0, 1.0)
    polished = x - (p * x - (1 - x) ** 3) / (p + 3 * (1 - x) ** 2)
    # below p = 1 the root is above 0.31 and 1 - s is accurate as it stands; there, close
    # to x = 1, f is flat (f' = p) and a Newton step would overshoot
    return jnp.where(p > 1, jnp.clip(polished, 0.0, 1.0), x)


def single_step(
    variance: jax.Array, distance: jax.Array, h_min: jax.Array, h_max: jax.Array, eps: float
) -> tuple[jax.Array, jax.Array]:
    r"""YellowFin's SingleStep: the tuned ``(learning_rate, momentum)`` from the estimates.

    .. math::

        \mu = \max\Bigl(x^2,\ \Bigl(\frac{\sqrt{h_{max}/h_{min}} - 1}
              {\sqrt{h_{max}/h_{min}} + 1}\Bigr)^2\Bigr), \qquad
        \alpha = \frac{(1 - \sqrt\mu)^2}{h_{min}}

    with :math:`x` the :func:`cubic_root` of :math:`p = D^2 h_{min}^2 / (2 C)`: the
    momentum that minimises the expected squared distance after one step,
    :math:`\mu D^2 + \alpha^2 C`, floored by the one that keeps every curvature in
    :math:`[h_{min}, h_{max}]` in the robust region. :math:`C` and :math:`h_{min}` are
    floored at ``eps``, :math:`h_{max}` at :math:`h_{min}`.
    """
    h_min = jnp.maximum(h_min, eps)
    h_max = jnp.maximum(h_max, h_min)
    reach = distance * h_min
    x = cubic_root(reach * reach / (2 * jnp.maximum(variance, eps)))
    spread = jnp.sqrt(h_max / h_min)
    momentum = jnp.maximum(x * x, ((spread - 1) / (spread + 1)) ** 2)
    learning_rate = (1 - jnp.sqrt(momentum)) ** 2 / h_min
    return learning_rate, momentum


def _new_average(
    updates: optax.Updates, average: optax.Params, b: float
) -> tuple[optax.Params, jax.Array]:
    """The new gradient average ``b m + (1 - b) g``, stored in ``m``'s dtype, and its squared
    norm in float32 (or wider) from the unrounded values, so the statistics do not depend
    on the dtype the average is stored in. A ``None`` update keeps its average."""
    _tree.check_tree_match(updates, average, what="YellowFinState.grad_avg")
    treedef = _tree.structure(updates)
    leaves, total = [], jnp.zeros([], jnp.float32)
    for g, m in zip(treedef.flatten_up_to(updates), treedef.flatten_up_to(average)):
        if g is None:
            leaves.append(m)
            continue
        dtype = _tree.compute_dtype(g, m)
        new = b * jnp.asarray(m, dtype) + (1 - b) * jnp.asarray(g, dtype)
        total = total + jnp.sum(jnp.square(new)).astype(jnp.float32)
        leaves.append(new.astype(m.dtype))
    return treedef.unflatten(leaves), total


def scale_by_yellowfin(
    *,
    beta: float = 0.999,
    curvature_window: int = 20,
    eps: float = 1e-12,
    accumulator_dtype: DTypeLike | None = None,
) -> optax.GradientTransformation:
    r"""YellowFin's update with its own tuned learning rate and momentum (Zhang &
    Mitliagkas, Algorithm 1); :func:`yellowfin` puts a learning-rate factor after it.

    At step :math:`t` (from 0), with :math:`h_t = \|g_t\|^2`, every running average
    :math:`\bar x_t = \beta \bar x_{t-1} + (1 - \beta) x_t` started at 0 and divided by
    :math:`1 - \beta^{t+1}` (zero-debiased; see below for where this departs from the
    reference implementations):

    .. math::

        \text{CurvatureRange:}\quad h_{max} = \overline{\max_{t-w < i \le t} h_i},\quad
        h_{min} = \overline{\min_{t-w < i \le t} h_i}

        \text{Variance:}\quad C = \overline{\|g\|^2} - \|\bar g\|^2 \qquad
        \text{Distance:}\quad D = \overline{\bigl(\overline{\|g\|} / \overline{\|g\|^2}\bigr)}

        \mu_t', \alpha_t' = \text{SingleStep}(C, D, h_{min}, h_{max}) \qquad
        \mu_t = \overline{\mu'}_t, \quad \alpha_t = \overline{\alpha'}_t

        v_t = \mu_t v_{t-1} + \alpha_t g_t, \qquad u_t = v_t

    (:func:`single_step`; the window holds the last :math:`w` = ``curvature_window``
    values, fewer in the first steps). With ``scale_by_learning_rate(1.0)`` after it
    the parameters follow the paper's heavy ball
    :math:`x_{t+1} = x_t - \alpha_t g_t + \mu_t (x_t - x_{t-1})`. The step at :math:`t`
    uses the values tuned from :math:`g_0, \dots, g_t`, as Algorithm 1 is written. The
    statistics are those of the whole parameter tree (norms over every leaf), kept in
    float32; the smoothed :math:`\mu_t, \alpha_t` are in the state for logging. The first
    step, with no variance seen yet, is a normalised gradient step
    :math:`\alpha_0 \approx 1 / \|g_0\|^2`; clip gradients with ``optax.clip_by_global_norm``
    in front where that is too large. On a noiseless problem the variance vanishes as
    the run converges and :math:`\|g\|^2` no longer tracks a curvature, so the tuned rate
    grows until the run blows up (on the example's quadratic the loss, 6e-33 at step
    100, peaks at 1e15 near step 197 and is back below 1e-11 by step 400); the estimates
    are built for stochastic gradients. Where this departs from the reference
    implementations: their smoothing of :math:`\mu` and :math:`\alpha` starts from given
    initial values (learning rate 1, momentum 0) without debiasing; here it is
    zero-debiased like the other averages, so no initial value is needed and the first
    step uses its own tuned values. The window holds :math:`w` values, as theirs does
    (the pseudo-code's :math:`t - w \le i \le t` has :math:`w + 1`). Their extras
    (log-scale smoothing of the curvature range, gradient clipping, a slow start) are
    left out.

    Args:
        beta: :math:`\beta`, the smoothing of every estimate, a constant in [0, 1).
        curvature_window: :math:`w`, the number of recent :math:`\|g\|^2` the curvature
            range looks at, an integer >= 1.
        eps: the floor of :math:`C` and :math:`h_{min}` and the guard of the distance's
            division, a float > 0.
        accumulator_dtype: dtype of the velocity and the gradient average; ``None``
            keeps the parameters'.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`YellowFinState`.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.scale_by_yellowfin()
        >>> state = opt.init(jnp.zeros(2))
        >>> u, state = opt.update(jnp.array([3.0, 4.0]), state)
        >>> round(float(state.learning_rate), 4), round(float(state.momentum), 4)  # 1 / ||g||^2
        (0.04, 0.0)

    References:
        Zhang & Mitliagkas, *YellowFin and the art of momentum tuning*, SysML 2019.
    """
    _coefficients.check_coefficient("beta", beta, allow_one=False, allow_schedule=False)
    window = _coefficients.check_positive_int("curvature_window", curvature_window)
    _coefficients.check_positive("eps", eps)
    accumulator_dtype = _coefficients.check_accumulator_dtype(
        "accumulator_dtype", accumulator_dtype
    )

    def init_fn(params: optax.Params) -> YellowFinState:
        def zeros() -> optax.Params:
            return optax.tree.zeros_like(params, dtype=accumulator_dtype)

        scalar = jnp.zeros([], jnp.float32)
        return YellowFinState(
            count=jnp.zeros([], jnp.int32),
            velocity=zeros(),
            grad_avg=zeros(),
            window=jnp.zeros([window], jnp.float32),
            averages=jnp.zeros([8], jnp.float32),
            learning_rate=scalar,
            momentum=scalar,
        )

    def update_fn(
        updates: optax.Updates, state: YellowFinState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, YellowFinState]:
        del params
        _tree.check_inputs(updates, state, YellowFinState, "scale_by_yellowfin", "velocity")
        b = _coefficients.value_at(beta, None)
        grad_avg, average_squared = _new_average(updates, state.grad_avg, b)
        norm_squared = _tree.vdot(updates, updates)
        slot = jnp.arange(window) == state.count % window
        recent = jnp.where(slot, norm_squared, state.window)
        seen = jnp.arange(window) < jnp.minimum(state.count, window - 1) + 1
        h_min_t = jnp.min(jnp.where(seen, recent, jnp.inf))
        h_max_t = jnp.max(jnp.where(seen, recent, -jnp.inf))

        avg = state.averages
        blend = lambda index, value: b * avg[index] + (1 - b) * value
        correction = blend(_CORRECTION, 1.0)
        norm_squared_avg = blend(_NORM_SQUARED, norm_squared)
        norm_avg = blend(_NORM, jnp.sqrt(norm_squared))
        h_min_avg, h_max_avg = blend(_H_MIN, h_min_t), blend(_H_MAX, h_max_t)
        mean_norm_squared = norm_squared_avg / correction
        # one gradient has no variance: exactly 0 at the first step, not a rounding residue
        variance = jnp.where(
            state.count == 0, 0.0, mean_norm_squared - average_squared / correction**2
        )
        distance_avg = blend(
            _DISTANCE, (norm_avg / correction) / jnp.maximum(mean_norm_squared, eps)
        )
        lr_t, mu_t = single_step(
            variance,
            distance_avg / correction,
            h_min_avg / correction,
            h_max_avg / correction,
            eps,
        )
        lr_avg, mu_avg = blend(_LR, lr_t), blend(_MU, mu_t)
        learning_rate, momentum = lr_avg / correction, mu_avg / correction

        updates, velocity = _tree.leafwise(
            lambda g, v: (momentum * v + learning_rate * g,) * 2, updates, state.velocity
        )
        averages = jnp.stack(
            [
                correction,
                norm_squared_avg,
                norm_avg,
                h_min_avg,
                h_max_avg,
                distance_avg,
                lr_avg,
                mu_avg,
            ]
        ).astype(jnp.float32)
        return updates, YellowFinState(
            count=optax.safe_increment(state.count),
            velocity=velocity,
            grad_avg=grad_avg,
            window=recent,
            averages=averages,
            learning_rate=learning_rate.astype(jnp.float32),
            momentum=momentum.astype(jnp.float32),
        )

    return optax.GradientTransformation(init_fn, update_fn)


def yellowfin(
    learning_rate: ScalarOrSchedule = 1.0,
    *,
    beta: float = 0.999,
    curvature_window: int = 20,
    eps: float = 1e-12,
    accumulator_dtype: DTypeLike | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""YellowFin as an optimizer: ``chain(scale_by_yellowfin(...),
    scale_by_learning_rate(learning_rate))``.

    .. math::  x_{t+1} = x_t - \eta_t v_t, \qquad v_t = \mu_t v_{t-1} + \alpha_t g_t

    with :math:`\alpha_t, \mu_t` tuned online (:func:`scale_by_yellowfin`). The
    ``learning_rate`` :math:`\eta` is a factor on the tuned rate (the reference
    implementation's ``lr_factor``): the default 1.0 is YellowFin untuned, a schedule
    decays the tuned rate.

    Args:
        learning_rate: :math:`\eta`, the factor on the tuned learning rate, a finite
            float >= 0 or a schedule (default 1.0).
        beta: smoothing of every estimate, in [0, 1).
        curvature_window: number of recent squared gradient norms for the curvature
            range, >= 1.
        eps: floor of the variance and the curvature, > 0.
        accumulator_dtype: dtype of the velocity and the gradient average.

    Returns:
        An ``optax.GradientTransformationExtraArgs``; its first state is a
        :class:`YellowFinState`.

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> import momentum_optax as mo
        >>> loss = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 0.1]) * w**2)
        >>> opt = mo.yellowfin()
        >>> w = jnp.array([1.0, 1.0]); state = opt.init(w)
        >>> for _ in range(100):
        ...     updates, state = opt.update(jax.grad(loss)(w), state)
        ...     w = optax.apply_updates(w, updates)
        >>> bool(loss(w) < 1e-12), round(float(state[0].momentum), 2)  # the tuned momentum
        (True, 0.51)

    References:
        Zhang & Mitliagkas, *YellowFin and the art of momentum tuning*, SysML 2019.
    """
    _coefficients.check_nonnegative("learning_rate", learning_rate)
    return optax.chain(
        scale_by_yellowfin(
            beta=beta,
            curvature_window=curvature_window,
            eps=eps,
            accumulator_dtype=accumulator_dtype,
        ),
        scaling.scale_by_learning_rate(learning_rate),
    )
