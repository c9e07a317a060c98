"""Quasi-hyperbolic momentum (QHM) and QHAdam: a weighted mix of the gradient and its average."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import ScalarOrSchedule

from momentum_optax import _deprecation
from momentum_optax import _tree
from momentum_optax import scaling
from momentum_optax._coefficients import any_schedule
from momentum_optax._coefficients import check_coefficient
from momentum_optax._coefficients import check_nonnegative
from momentum_optax._coefficients import init_count
from momentum_optax._coefficients import next_count
from momentum_optax._coefficients import value_at


class QhmState(NamedTuple):
    """Moving average of :func:`qhm`."""

    ema: optax.Params
    count: jax.Array | None  # type: ignore[assignment]  # int32 scalar; None when no coefficient is scheduled


def qhm(nu: ScalarOrSchedule, decay: ScalarOrSchedule) -> optax.GradientTransformation:
    r"""Quasi-hyperbolic momentum (Ma & Yarats, 2019).

    .. math::

        m_t = \beta_t m_{t-1} + (1 - \beta_t) g_t, \qquad u_t = (1 - \nu_t) g_t + \nu_t m_t

    ``nu = 0`` is the plain gradient, ``nu = 1`` is EMA momentum (:func:`ema`),
    and ``nu = decay`` is Nesterov's EMA momentum. The paper recommends
    ``nu = 0.7, decay = 0.999``. Use as ``chain(qhm(nu, b), scale_by_learning_rate(lr))``.

    Args:
        nu: :math:`\nu`, the weight of the average, a float in [0, 1] or a schedule.
        decay: :math:`\beta`, the average's decay, a float in [0, 1] or a schedule.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`QhmState`.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.qhm(nu=0.5, decay=0.5)
        >>> state = opt.init(jnp.zeros(1))
        >>> u, state = opt.update(jnp.array([4.0]), state)
        >>> u  # 0.5 * 4 + 0.5 * (0.5 * 4)
        Array([3.], dtype=float32)

    References:
        Ma & Yarats, *Quasi-hyperbolic momentum and Adam for deep learning*, ICLR 2019.
    """
    check_coefficient("nu", nu)
    check_coefficient("decay", decay)

    def init_fn(params: optax.Params) -> QhmState:
        return QhmState(ema=optax.tree.zeros_like(params), count=init_count(nu, decay))

    def update_fn(
        updates: optax.Updates, state: QhmState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, QhmState]:
        del params
        _tree.check_inputs(
            updates,
            state,
            QhmState,
            "qhm",
            "ema",
            scheduled=any_schedule(nu, decay),
            coefficient="nu or decay",
        )
        beta, weight = value_at(decay, state.count), value_at(nu, state.count)

        def leaf(g: jax.Array, m: jax.Array) -> tuple:
            new_m = (1 - beta) * g + beta * m
            return (1 - weight) * g + weight * new_m, new_m

        updates, new_ema = _tree.leafwise(leaf, updates, state.ema)
        return updates, QhmState(ema=new_ema, count=next_count(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


class QhAdamState(NamedTuple):
    """Both moments of :func:`scale_by_qhadam`, with their bias corrections."""

    first_moment: optax.Params  # m_t, like the params
    second_moment: optax.Params  # v_t, like the params
    correction: jax.Array  # float32 (1 - b1^t, 1 - b2^t), shape (2,)

    @property
    def mu(self) -> optax.Params:
        """Deprecated name of :attr:`first_moment` (0.1's); warns, and goes in 0.3."""
        _deprecation.warn("QhAdamState.mu is now QhAdamState.first_moment")
        return self.first_moment

    @property
    def nu(self) -> optax.Params:
        """Deprecated name of :attr:`second_moment` (0.1's); warns, and goes in 0.3."""
        _deprecation.warn("QhAdamState.nu is now QhAdamState.second_moment")
        return self.second_moment


def scale_by_qhadam(
    b1: float = 0.995, b2: float = 0.999, nu1: float = 0.7, nu2: float = 1.0, eps: float = 1e-8
) -> optax.GradientTransformation:
    r"""QHAdam's direction (Ma & Yarats, 2019), learning-rate free.

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,
        \quad u_t = \frac{(1-\nu_1) g_t + \nu_1 m_t / (1-\beta_1^t)}
                         {\sqrt{(1-\nu_2) g_t^2 + \nu_2 v_t / (1-\beta_2^t)} + \epsilon}

    ``nu1 = nu2 = 1`` is Adam's direction. The moments are kept in the
    parameters' dtype; the corrections :math:`1 - \beta^t` are kept in float32
    as moving averages of ones, so a constant gradient gives its sign, up to
    rounding.

    Args:
        b1: :math:`\beta_1`, the first moment's decay, a constant in [0, 1).
        b2: :math:`\beta_2`, the second moment's decay, a constant in [0, 1).
        nu1: :math:`\nu_1`, the weight of the first moment against the
            gradient, a constant in [0, 1].
        nu2: :math:`\nu_2`, the weight of the second moment against the squared
            gradient, a constant in [0, 1].
        eps: :math:`\epsilon`, added to the denominator, a constant >= 0.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`QhAdamState`.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.scale_by_qhadam(nu1=1.0, nu2=1.0, eps=0.0)  # Adam's direction
        >>> state = opt.init(jnp.zeros(2))
        >>> for _ in range(3):
        ...     u, state = opt.update(jnp.array([2.0, -0.5]), state)
        >>> u  # a constant gradient: m_hat = g, v_hat = g^2, so u = sign(g)
        Array([ 1., -1.], dtype=float32)

    References:
        Ma & Yarats, *Quasi-hyperbolic momentum and Adam for deep learning*, ICLR 2019.
    """
    check_coefficient("b1", b1, allow_one=False, allow_schedule=False)
    check_coefficient("b2", b2, allow_one=False, allow_schedule=False)
    check_coefficient("nu1", nu1, allow_schedule=False)
    check_coefficient("nu2", nu2, allow_schedule=False)
    check_nonnegative("eps", eps, allow_schedule=False)

    def init_fn(params: optax.Params) -> QhAdamState:
        return QhAdamState(
            first_moment=optax.tree.zeros_like(params),
            second_moment=optax.tree.zeros_like(params),
            correction=jnp.zeros([2], jnp.float32),
        )

    def update_fn(
        updates: optax.Updates, state: QhAdamState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, QhAdamState]:
        del params
        _tree.check_inputs(updates, state, QhAdamState, "scale_by_qhadam", "first_moment")
        # constants; arrays (inject_hyperparams) read in at least float32
        b1_, b2_, nu1_, nu2_, eps_ = (value_at(x, None) for x in (b1, b2, nu1, nu2, eps))
        # the same (1 - b) as in the moments: a constant gradient gives m_hat = g up to rounding
        c1 = (1 - b1_) + b1_ * state.correction[0]
        c2 = (1 - b2_) + b2_ * state.correction[1]

        def leaf(g: jax.Array, m: jax.Array, v: jax.Array) -> tuple:
            new_m = (1 - b1_) * g + b1_ * m
            new_v = (1 - b2_) * g * g + b2_ * v
            numerator = (1 - nu1_) * g + nu1_ * new_m / c1
            denominator = jnp.sqrt((1 - nu2_) * g * g + nu2_ * new_v / c2) + eps_
            return numerator / denominator, new_m, new_v

        updates, first, second = _tree.leafwise(
            leaf, updates, state.first_moment, state.second_moment
        )
        correction = jnp.stack([c1, c2])
        return updates, QhAdamState(first_moment=first, second_moment=second, correction=correction)

    return optax.GradientTransformation(init_fn, update_fn)


def qhadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.995,
    b2: float = 0.999,
    nu1: float = 0.7,
    nu2: float = 1.0,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    r"""QHAdam as a ready optimizer: ``chain(scale_by_qhadam(...), scale_by_learning_rate(lr))``.

    .. math::  \theta_{t+1} = \theta_t - \eta_t\, u_t

    with :math:`u_t` the direction of :func:`scale_by_qhadam`.

    Defaults are the paper's recommendation (``b1=0.995, b2=0.999, nu1=0.7, nu2=1``).

    Args:
        learning_rate: :math:`\eta`, a finite float >= 0 or a schedule.
        b1: first-moment decay, in [0, 1).
        b2: second-moment decay, in [0, 1).
        nu1: weight of the first moment against the gradient, in [0, 1].
        nu2: weight of the second moment against the squared gradient, in [0, 1].
        eps: added to the denominator, >= 0.

    Returns:
        An ``optax.GradientTransformation``.

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> import momentum_optax as mo
        >>> opt = mo.qhadam(0.1)
        >>> w = jnp.array([1.0, -1.0]); state = opt.init(w)
        >>> updates, state = opt.update(jnp.array([2.0, -3.0]), state)
        >>> [round(float(u), 6) for u in updates]  # first step: -lr * sign(g)
        [-0.1, 0.1]

    References:
        Ma & Yarats, *Quasi-hyperbolic momentum and Adam for deep learning*, ICLR 2019.
    """
    check_nonnegative("learning_rate", learning_rate)
    return _tree.chain(
        scale_by_qhadam(b1, b2, nu1, nu2, eps),
        scaling.scale_by_learning_rate(learning_rate),
        owner="qhadam",
    )
