"""The one-pass momentum update: ``mo.sgd`` and ``optax.apply_updates`` fused."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from typing import NamedTuple
from typing import NoReturn

import jax
import optax
from jax.typing import DTypeLike
from optax import ScalarOrSchedule

from momentum_optax import _fused_kernel
from momentum_optax import _heavy_ball
from momentum_optax import _tree
from momentum_optax._coefficients import any_schedule
from momentum_optax._coefficients import check_accumulator_dtype
from momentum_optax._coefficients import check_bool
from momentum_optax._coefficients import check_coefficient
from momentum_optax._coefficients import check_nonnegative
from momentum_optax._coefficients import check_positive_int
from momentum_optax._coefficients import init_count
from momentum_optax._coefficients import is_known_zero
from momentum_optax._coefficients import next_count
from momentum_optax._coefficients import readable
from momentum_optax._coefficients import value_at

DEFAULT_CHUNK = 1 << 16  # elements per block of the CPU kernel (p, m, g: 768 KiB of a 2 MiB L2)
_NOT_A_TRANSFORMATION = (
    "a FusedSGD is not an optax.GradientTransformation: it applies the step itself, as "
    "fused.apply(params, state, grads) -> (params, state), which mo.train_step(loss_fn, fused) "
    "calls; for a transformation to chain or to give nnx.Optimizer, use mo.sgd with the same "
    "arguments"
)


class FusedSGDState(NamedTuple):
    """Momentum buffer of :func:`fused_sgd`, and the step count its schedules read."""

    trace: optax.Params
    count: jax.Array | None  # type: ignore[assignment]  # int32 scalar; None when neither coefficient is scheduled


@dataclasses.dataclass(frozen=True)
class FusedSGD:
    """Heavy-ball / Nesterov SGD whose update and application are one pass over memory.

    ``init(params)`` returns a :class:`FusedSGDState`; ``apply`` maps
    ``(params, state, grads)`` to ``(params, state)`` and is what
    :func:`~momentum_optax.training.train_step` calls. Build it with :func:`fused_sgd`.

    It is not an ``optax.GradientTransformation``: it returns new parameters, not
    updates, so it does not unpack as ``(init, update)``, and its :meth:`update`
    raises (``optax.chain``, ``optax.MultiSteps`` or ``nnx.Optimizer`` given one fail
    at their first update, naming ``apply``). ``mo.sgd`` takes the same arguments and
    is the transformation with the same numbers.
    """

    init: Callable[[Any], FusedSGDState]
    apply: Callable[[Any, FusedSGDState, Any], tuple[Any, FusedSGDState]]

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: ``FusedSGD`` applies the step itself, with ``apply(params, state, grads)``."""
        del args, kwargs
        raise TypeError(_NOT_A_TRANSFORMATION + " (it has no update(updates, state, params)).")

    def __iter__(self) -> NoReturn:
        raise TypeError(_NOT_A_TRANSFORMATION + " (it does not unpack as (init, update)).")


def fused_sgd(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule,
    *,
    nesterov: bool = False,
    accumulator_dtype: DTypeLike | None = None,
    chunk_size: int | None = None,
) -> FusedSGD:
    r"""``mo.sgd(learning_rate, momentum, nesterov=nesterov)`` fused with ``optax.apply_updates``.

    .. math::  m_t = g_t + \mu_t m_{t-1}, \qquad
               \theta_{t+1} = \theta_t - \eta_t m_t \ (\text{or } \eta_t (g_t + \mu_{t+1} m_t))

    The parameters and the momentum buffer are those of ``mo.sgd`` followed by
    ``optax.apply_updates`` in one compiled step (as
    :func:`~momentum_optax.training.train_step` runs it), bit for bit (tested in
    float32 and bfloat16). The state is a :class:`FusedSGDState` (the buffer and one
    step count for both schedules). Arithmetic runs in at least float32, rounded once
    on write.

    On the CPU backend with one device, with Numba installed
    (``pip install "momentum_optax[fused]"``; :func:`kernel_available` says), every
    leaf with float32 or bfloat16 parameters and gradients and a float32 buffer goes
    to one kernel call per step that reads ``p, m, g`` once and writes ``p, m`` once
    (five passes over memory; XLA's two fusions make six), in blocks of ``chunk_size``
    elements on all cores, heavy ball and Nesterov alike. Donate ``params`` and
    ``state`` (as :func:`~momentum_optax.training.train_step` does) so it writes in
    place; otherwise XLA copies them first. Any other leaf (another dtype, several
    devices, GPU/TPU, where XLA fuses the two outputs by itself, or no Numba) takes
    ``mo.sgd``'s expressions, at ``mo.sgd``'s speed. The kernel has no derivative:
    differentiate through ``mo.sgd``. It is not an ``optax.GradientTransformation``
    (its ``update`` raises): to chain it or give it to ``nnx.Optimizer``, use ``mo.sgd``.

    Shardings are those of ``mo.sgd`` with ``optax.apply_updates`` on the same inputs
    (on several devices every leaf takes ``mo.sgd``'s expressions): where a parameter,
    its gradient and its buffer share a sharding, the new parameter keeps the
    parameter's and the new buffer the state's, on Auto and Explicit meshes alike; on
    an Explicit mesh a mix (unsharded parameters, sharded gradients) follows JAX's type
    rules, as ``mo.sgd``'s results do.

    Args:
        learning_rate: :math:`\eta`, a finite float >= 0 or a schedule.
        momentum: :math:`\mu`, a float in (0, 1] or a schedule. A concrete array is
            checked as its number (``jnp.float32(0)`` is refused as ``0.0`` is); a traced
            one (a hyper-parameter swept under ``jit`` or ``vmap``) cannot be read when
            the step is built and passes unchecked: a traced 0 gives plain SGD's numbers,
            with a buffer that only holds the last gradient.
        nesterov: use Nesterov's accelerated output.
        accumulator_dtype: dtype of the momentum buffer, as ``mo.sgd``'s; ``None`` keeps
            the parameters' (``jnp.float32`` keeps bfloat16 parameters' buffer in float32).
        chunk_size: elements per block of the CPU kernel (default 65,536; ``None`` picks it).

    Returns:
        A :class:`FusedSGD`: ``init(params) -> state`` and
        ``apply(params, state, grads) -> (params, state)``.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> import momentum_optax as mo
        >>> fused = mo.fused_sgd(0.1, 0.9)
        >>> params = {"w": jnp.ones(5)}
        >>> state = fused.init(params)
        >>> params, state = fused.apply(params, state, {"w": jnp.ones(5)})
        >>> params["w"]
        Array([0.9, 0.9, 0.9, 0.9, 0.9], dtype=float32)
    """
    check_nonnegative("learning_rate", learning_rate)
    check_coefficient("momentum", momentum)
    check_bool("nesterov", nesterov)
    accumulator_dtype = check_accumulator_dtype("accumulator_dtype", accumulator_dtype)
    chunk = DEFAULT_CHUNK if chunk_size is None else check_positive_int("chunk_size", chunk_size)
    if is_known_zero(readable(momentum)):  # a concrete jax.Array read as its number
        raise ValueError(
            "momentum must be > 0 for fused_sgd (plain SGD is already one pass: use mo.sgd); "
            f"got {momentum!r}."
        )

    def init(params: optax.Params) -> FusedSGDState:
        return FusedSGDState(
            trace=optax.tree.zeros_like(params, dtype=accumulator_dtype),
            count=init_count(learning_rate, momentum),
        )

    def apply(
        params: optax.Params, state: FusedSGDState, grads: optax.Updates
    ) -> tuple[optax.Params, FusedSGDState]:
        _tree.check_inputs(
            grads,
            state,
            FusedSGDState,
            "fused_sgd",
            "trace",
            name="grads",
            scheduled=any_schedule(learning_rate, momentum),
            coefficient="learning rate or momentum",
        )
        _tree.check_inputs(params, state, FusedSGDState, "fused_sgd", "trace", name="params")
        count, following = state.count, next_count(state.count)
        coefficients = (
            -value_at(learning_rate, count),
            value_at(momentum, count),
            value_at(momentum, following),
        )
        neg_lr, beta, beta_next = coefficients
        kernel = kernel_available()

        def leaf(g: jax.Array, m: jax.Array) -> tuple:
            new_m = _heavy_ball.velocity(g, m, beta)
            return _heavy_ball.output(g, new_m, beta_next, nesterov), new_m

        def step(p: Any, m: Any, g: Any) -> tuple[Any, Any]:
            # mo.sgd's expressions, then apply_updates: sharding propagation (Auto axes) and
            # the type rules (Explicit ones) place the results as they place mo.sgd's
            out, new_m = _tree.leafwise(leaf, g, m)
            return optax.apply_updates(p, _tree.leafwise(lambda u: (neg_lr * u,), out)), new_m

        # the gradients' structure, None entries as leaves
        treedef = _tree.structure(grads)
        columns = [treedef.flatten_up_to(tree) for tree in (params, state.trace, grads)]
        if not columns[0]:
            return params, FusedSGDState(trace=state.trace, count=following)
        new: list[tuple[Any, Any]] = []
        in_kernel: list[int] = []
        for i, (p, m, g) in enumerate(zip(*columns)):
            if g is None or not _tree.is_trainable(g):
                new.append((p, m))  # a frozen or an integer parameter: kept, with its buffer
            elif kernel and _fused_kernel.takes(p, m, g, coefficients):
                new.append((p, m))  # filled in below, by one call for all such leaves
                in_kernel.append(i)
            else:
                new.append(step(p, m, g))
        if in_kernel:  # every leaf keeps its shape (a reshape would make XLA copy it)
            ps, ms, gs = ([column[i] for i in in_kernel] for column in columns)
            new_ps, new_ms = _fused_kernel.apply(ps, ms, gs, coefficients, nesterov, chunk)
            for i, new_p, new_m in zip(in_kernel, new_ps, new_ms):
                new[i] = (new_p, new_m)
        new_params, new_trace = (treedef.unflatten(list(x)) for x in zip(*new))
        return new_params, FusedSGDState(trace=new_trace, count=following)

    return FusedSGD(init=init, apply=apply)


def kernel_available() -> bool:
    """Whether :func:`fused_sgd` runs its one-pass CPU kernel here.

    True on the CPU backend with one device when Numba is installed
    (``pip install "momentum_optax[fused]"``): the kernel runs on all cores itself, and on
    several devices it would be launched concurrently, which Numba's default threading
    layer does not allow. Elsewhere ``fused_sgd`` computes ``mo.sgd``'s expressions, at
    ``mo.sgd``'s speed.
    """
    return jax.default_backend() == "cpu" and jax.device_count() == 1 and _fused_kernel.available()
