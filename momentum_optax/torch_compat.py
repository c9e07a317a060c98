"""PyTorch-faithful SGD: ``torch.optim.SGD``'s trajectory, as an optax chain."""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import ScalarOrSchedule

from momentum_optax import _tree
from momentum_optax import scaling
from momentum_optax._coefficients import check_bool
from momentum_optax._coefficients import check_coefficient
from momentum_optax._coefficients import check_nonnegative
from momentum_optax._coefficients import is_known_zero
from momentum_optax._coefficients import value_at


class TorchMomentumState(NamedTuple):
    """Momentum buffer of :func:`torch_sgd`, and the step count that marks its first step."""

    momentum_buffer: optax.Params
    count: jax.Array  # type: ignore[assignment]  # int32 scalar (saturating); 0 is torch's "buffer is None"


def _torch_momentum(
    momentum: ScalarOrSchedule, dampening: Any, nesterov: bool
) -> optax.GradientTransformation:
    """torch's buffer: ``b_0 = d_0``, then ``b_t = mu b_{t-1} + (1 - dampening) d_t``."""

    def init_fn(params: optax.Params) -> TorchMomentumState:
        return TorchMomentumState(
            momentum_buffer=optax.tree.zeros_like(params), count=jnp.zeros([], jnp.int32)
        )

    def update_fn(
        updates: optax.Updates, state: TorchMomentumState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, TorchMomentumState]:
        del params
        _tree.check_inputs(updates, state, TorchMomentumState, "torch_sgd", "momentum_buffer")
        mu, damping = value_at(momentum, state.count), value_at(dampening, None)
        first = state.count == 0

        def leaf(d: jax.Array, buf: jax.Array) -> tuple:
            new_buf = jnp.where(first, d, mu * buf + (1 - damping) * d)
            return (d + mu * new_buf if nesterov else new_buf), new_buf

        updates, buffer = _tree.leafwise(leaf, updates, state.momentum_buffer)
        return updates, TorchMomentumState(buffer, optax.safe_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


def torch_sgd(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule = 0.0,
    *,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""``torch.optim.SGD``, step for step.

    .. math::

        d_t &= \pm g_t + \lambda \theta_t \quad (- \text{ with maximize}) \\
        b_0 &= d_0, \qquad b_t = \mu_t b_{t-1} + (1 - \tau) d_t \\
        \theta_{t+1} &= \theta_t - \eta_t\, (b_t \text{, or } d_t + \mu_t b_t \text{ with nesterov})

    with :math:`\lambda` the (coupled, L2) weight decay and :math:`\tau` the
    dampening. Two things set it apart from ``optax.sgd`` / :func:`sgd`: the
    first step's buffer is the raw direction, not dampened (so it cannot be
    written as ``trace`` with a scaled input), and weight decay enters before
    the momentum. A momentum given as the number 0 keeps no buffer, as in
    PyTorch. Under ``optax.inject_hyperparams`` every argument may be traced;
    the nesterov rule is then only checked for what is known in Python.
    ``update`` needs ``params`` when ``weight_decay`` is not 0.

    Args:
        learning_rate: :math:`\eta`, a finite float >= 0 or a schedule.
        momentum: :math:`\mu`, a float in [0, 1] or a schedule.
        dampening: :math:`\tau`, a float in [0, 1].
        nesterov: Nesterov momentum; as in PyTorch it needs momentum > 0 and
            dampening == 0.
        weight_decay: :math:`\lambda`, a finite float >= 0.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation`` (a chain).

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.torch_sgd(0.1, momentum=0.9, dampening=0.5)
        >>> state = opt.init(jnp.zeros(1))
        >>> for _ in range(2):
        ...     u, state = opt.update(jnp.ones(1), state)
        >>> u  # buffer 1, then 0.9 * 1 + 0.5 * 1; times -0.1
        Array([-0.14], dtype=float32)

    References:
        PyTorch, ``torch.optim.SGD``. Sutskever et al., *On the importance of
        initialization and momentum in deep learning*, 2013.
    """
    check_nonnegative("learning_rate", learning_rate)
    check_coefficient("momentum", momentum)
    check_coefficient("dampening", dampening, allow_schedule=False)
    check_nonnegative("weight_decay", weight_decay, allow_schedule=False)
    check_bool("nesterov", nesterov)
    check_bool("maximize", maximize)
    no_momentum = is_known_zero(momentum)
    dampened = not isinstance(dampening, jax.Array) and not is_known_zero(dampening)
    if nesterov and (no_momentum or dampened):
        raise ValueError(
            "nesterov must be False unless momentum > 0 and dampening == 0 (as in "
            f"torch.optim.SGD); got momentum={momentum!r}, dampening={dampening!r}."
        )
    parts = []
    if maximize:
        parts.append(optax.scale(-1.0))
    if not is_known_zero(weight_decay):
        parts.append(optax.add_decayed_weights(weight_decay))
    if not no_momentum:
        parts.append(_torch_momentum(momentum, dampening, nesterov))
    parts.append(scaling.scale_by_learning_rate(learning_rate))
    return _tree.chain(*parts, owner="torch_sgd")
