"""The one-pass momentum update: ``mo.sgd`` and ``optax.apply_updates`` fused."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any
from typing import NamedTuple
from typing import NoReturn

import jax
import jax.numpy as jnp
import optax
from optax import ScalarOrSchedule

from momentum_optax import _heavy_ball
from momentum_optax import _tree
from momentum_optax._coefficients import any_schedule
from momentum_optax._coefficients import check_bool
from momentum_optax._coefficients import check_coefficient
from momentum_optax._coefficients import check_nonnegative
from momentum_optax._coefficients import check_positive_int
from momentum_optax._coefficients import init_count
from momentum_optax._coefficients import is_known_zero
from momentum_optax._coefficients import next_count
from momentum_optax._coefficients import value_at

DEFAULT_CHUNK = 1 << 17  # elements per block: measured best of 8K-512K on 2-core CPUs (cache-sized)
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


def _velocity(g: jax.Array, m: jax.Array, beta: Any) -> jax.Array:
    """The new buffer, as :func:`trace` computes and stores it."""
    dtype = _tree.compute_dtype(g, m)
    return _heavy_ball.velocity(g.astype(dtype), m.astype(dtype), beta).astype(m.dtype)


def _applied(
    p: jax.Array, g: jax.Array, new_m: jax.Array, neg_lr: Any, beta_next: Any, nesterov: bool
) -> jax.Array:
    """``p + (-lr) * out``, rounded where ``sgd`` then ``optax.apply_updates`` round."""
    dtype = _tree.compute_dtype(g, new_m)
    out_dtype = g.dtype
    out = _heavy_ball.output(g.astype(dtype), new_m.astype(dtype), beta_next, nesterov)
    update = (neg_lr * out.astype(out_dtype).astype(dtype)).astype(out_dtype)
    return (p + update).astype(p.dtype)


def _is_sharded(x: jax.Array) -> bool:
    """Whether ``x`` is split across devices on an explicit mesh (its type says so)."""
    spec = getattr(getattr(jax.typeof(x), "sharding", None), "spec", None)
    return spec is not None and any(axis is not None for axis in spec)


def _one_pass(
    p: jax.Array,
    m: jax.Array,
    g: jax.Array,
    coefficients: tuple[Any, Any, Any],
    nesterov: bool,
    chunk: int,
) -> tuple[jax.Array, jax.Array]:
    """``m' = g + b m``; ``p' = p - lr m'`` (or ``- lr (g + b' m')``), block by block, in place.

    Each block updates the momentum buffer first and then reads its new values
    back for the parameters; the block is still in cache, so memory sees one
    read of ``p, m, g`` and one write of ``p, m`` (XLA on CPU otherwise writes
    ``m'`` in one loop and reads it back in a second). Reading the *new* buffer
    also spares XLA a defensive copy of ``m``. All blocks have the same size and
    run inside the loop (an update after the loop would make XLA copy the
    arrays): when the size is not a multiple of the block, the last block is
    moved back to end at the last element and masked to the elements not yet done.
    """
    neg_lr, beta, beta_next = coefficients
    shape, size = p.shape, p.size
    if size == 0:
        return p, m
    p, m, g = p.reshape(-1), m.reshape(-1), g.reshape(-1)
    chunk = min(chunk, size)
    blocks = -(-size // chunk)

    def block(i: jax.Array, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        p, m = carry
        first_new = i * chunk
        start = jnp.minimum(first_new, size - chunk)
        fresh = start + jnp.arange(chunk) >= first_new  # all True but in a shifted last block
        g_b = jax.lax.dynamic_slice_in_dim(g, start, chunk)
        m_b = jax.lax.dynamic_slice_in_dim(m, start, chunk)
        m = jax.lax.dynamic_update_slice_in_dim(
            m, jnp.where(fresh, _velocity(g_b, m_b, beta), m_b), start, 0
        )
        new_m = jax.lax.dynamic_slice_in_dim(m, start, chunk)
        p_b = jax.lax.dynamic_slice_in_dim(p, start, chunk)
        new_p = jnp.where(fresh, _applied(p_b, g_b, new_m, neg_lr, beta_next, nesterov), p_b)
        return jax.lax.dynamic_update_slice_in_dim(p, new_p, start, 0), m

    p, m = jax.lax.fori_loop(0, blocks, block, (p, m))
    return p.reshape(shape), m.reshape(shape)


def fused_sgd(
    learning_rate: ScalarOrSchedule,
    momentum: ScalarOrSchedule,
    *,
    nesterov: bool = False,
    chunk_size: int | None = None,
) -> FusedSGD:
    r"""``mo.sgd(learning_rate, momentum, nesterov=nesterov)`` fused with ``optax.apply_updates``.

    .. math::  m_t = g_t + \mu_t m_{t-1}, \qquad
               \theta_{t+1} = \theta_t - \eta_t m_t \ (\text{or } \eta_t (g_t + \mu_{t+1} m_t))

    The parameters and the momentum buffer are those of ``mo.sgd`` followed by
    ``optax.apply_updates`` in one compiled step (as
    :func:`~momentum_optax.training.train_step` runs it), bit for bit in float32
    (tested; on CPU, with Nesterov and a bfloat16/float16 buffer, the output is
    computed from the stored, rounded buffer, so it may differ by one rounding).
    The state is a :class:`FusedSGDState` (the buffer and one step count for both
    schedules). Arithmetic runs in at least float32, rounded once on write. On CPU
    the leaves are processed in blocks of ``chunk_size`` elements inside one
    ``fori_loop``, so each element of the parameters, gradient and buffer crosses
    memory once (five passes instead of six). On GPU/TPU, where XLA fuses the two
    outputs into one kernel by itself, and for leaves sharded on an explicit mesh,
    the plain expressions are used. Donate ``params`` and ``state`` (as
    :func:`~momentum_optax.training.train_step` does) so the blocks are written in
    place. It is not an ``optax.GradientTransformation`` (its ``update`` raises):
    to chain it or give it to ``nnx.Optimizer``, use ``mo.sgd``.

    Args:
        learning_rate: :math:`\eta`, a finite float >= 0 or a schedule.
        momentum: :math:`\mu`, a float in (0, 1] or a schedule.
        nesterov: use Nesterov's accelerated output.
        chunk_size: elements per block (default 131,072; ``None`` picks it).

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
    chunk = DEFAULT_CHUNK if chunk_size is None else check_positive_int("chunk_size", chunk_size)
    if is_known_zero(momentum):
        raise ValueError(
            "momentum must be > 0 for fused_sgd (plain SGD is already one pass: use mo.sgd); got 0."
        )

    def init(params: optax.Params) -> FusedSGDState:
        return FusedSGDState(
            trace=optax.tree.zeros_like(params), count=init_count(learning_rate, momentum)
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
        if jax.default_backend() == "cpu" and not any(map(_is_sharded, jax.tree.leaves(params))):
            one_pass = functools.partial(
                _one_pass, coefficients=coefficients, nesterov=nesterov, chunk=chunk
            )
            # the gradients' structure, None entries as leaves: a None gradient (a frozen
            # parameter) leaves its parameter and buffer as they were
            treedef = _tree.structure(grads)
            columns = [treedef.flatten_up_to(tree) for tree in (params, state.trace, grads)]
            if not columns[0]:
                return params, FusedSGDState(trace=state.trace, count=following)
            new = [one_pass(p, m, g) if g is not None else (p, m) for p, m, g in zip(*columns)]
            new_params, new_trace = (treedef.unflatten(list(x)) for x in zip(*new))
        else:  # XLA fuses the two outputs itself: mo.sgd's expressions, then apply_updates
            neg_lr, beta, beta_next = coefficients

            def leaf(g: jax.Array, m: jax.Array) -> tuple:
                new_m = _heavy_ball.velocity(g, m, beta)
                return _heavy_ball.output(g, new_m, beta_next, nesterov), new_m

            out, new_trace = _tree.leafwise(leaf, grads, state.trace)
            updates = _tree.leafwise(lambda u: (neg_lr * u,), out)
            treedef = _tree.structure(updates)  # a None update leaves its parameter as it is
            pairs = zip(treedef.flatten_up_to(params), treedef.flatten_up_to(updates))
            new_params = treedef.unflatten(
                [p if u is None else optax.apply_updates(p, u) for p, u in pairs]
            )
        return new_params, FusedSGDState(trace=new_trace, count=following)

    return FusedSGD(init=init, apply=apply)
