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
from jax.sharding import AxisType
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
from momentum_optax._coefficients import readable
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


def _whole_on_one_device(*leaves: Any) -> bool:
    """Whether ``leaves`` (a parameter, its buffer, its gradient) are known to be whole on
    each device that holds them, alike, so the blocked loop, which splits nothing, keeps
    their placement.

    Their types must share one mesh, name none of its axes (an Explicit mesh's type says
    where an array is split) and have no Auto axis of more than one device (XLA places
    those; the type does not say). A type without a mesh says nothing under ``jit``
    (``in_shardings`` leaves none in it), so a traced leaf without one counts as whole
    only where JAX sees one device; a concrete array (an eager call) is read directly.
    """
    shardings = [jax.typeof(x).sharding for x in leaves]
    mesh = shardings[0].mesh
    if any(s.mesh != mesh for s in shardings):
        return False
    traced = [isinstance(x, jax.core.Tracer) for x in leaves]
    concrete = [x for x, t in zip(leaves, traced) if isinstance(x, jax.Array) and not t]
    if not all(x.sharding.is_fully_replicated for x in concrete):
        return False
    if mesh.empty:
        return not any(traced) or jax.device_count() == 1
    sizes = dict(zip(mesh.axis_names, mesh.axis_sizes))
    auto = [axis for axis, kind in zip(mesh.axis_names, mesh.axis_types) if kind == AxisType.Auto]
    named = [
        axis
        for s in shardings
        for entry in s.spec
        if entry is not None
        for axis in ((entry,) if isinstance(entry, str) else entry)
    ]
    return all(sizes[axis] == 1 for axis in auto + named)


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
    outputs into one kernel by itself, the plain expressions of ``mo.sgd`` are used.
    Donate ``params`` and ``state`` (as :func:`~momentum_optax.training.train_step`
    does) so the blocks are written in place. It is not an
    ``optax.GradientTransformation`` (its ``update`` raises): to chain it or give it
    to ``nnx.Optimizer``, use ``mo.sgd``.

    Shardings are those of ``mo.sgd`` with ``optax.apply_updates`` on the same inputs:
    where a parameter, its gradient and its buffer share a sharding, the new parameter
    keeps the parameter's and the new buffer the state's, on Auto and Explicit meshes
    alike; on an Explicit mesh a mix (unsharded parameters, sharded gradients) follows
    JAX's type rules, as ``mo.sgd``'s results do. The path is chosen per leaf, from the
    parameter, its buffer and its gradient together: the blocked loop only where all
    three are known to be whole on each device holding them (no mesh on a one-device
    host, replicated on one Explicit mesh, or concrete arrays in an eager call); any
    other leaf (sharded, on an Auto mesh, or traced without a mesh while JAX sees several
    devices, since ``jit(in_shardings=...)`` leaves no layout in the type) takes
    ``mo.sgd``'s expressions, which XLA partitions as it partitions ``mo.sgd``.

    Args:
        learning_rate: :math:`\eta`, a finite float >= 0 or a schedule.
        momentum: :math:`\mu`, a float in (0, 1] or a schedule. A concrete array is
            checked as its number (``jnp.float32(0)`` is refused as ``0.0`` is); a traced
            one (a hyper-parameter swept under ``jit`` or ``vmap``) cannot be read when
            the step is built and passes unchecked: a traced 0 gives plain SGD's numbers,
            with a buffer that only holds the last gradient.
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
    if is_known_zero(readable(momentum)):  # a concrete jax.Array read as its number
        raise ValueError(
            "momentum must be > 0 for fused_sgd (plain SGD is already one pass: use mo.sgd); "
            f"got {momentum!r}."
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
        neg_lr, beta, beta_next = coefficients
        one_pass = functools.partial(
            _one_pass, coefficients=coefficients, nesterov=nesterov, chunk=chunk
        )
        blocked = jax.default_backend() == "cpu"  # elsewhere XLA fuses the two outputs itself

        def leaf(g: jax.Array, m: jax.Array) -> tuple:
            new_m = _heavy_ball.velocity(g, m, beta)
            return _heavy_ball.output(g, new_m, beta_next, nesterov), new_m

        def step(p: Any, m: Any, g: Any) -> tuple[Any, Any]:
            if g is None or not _tree.is_trainable(g):
                # a frozen or an integer parameter: it and its buffer stay as they were
                return p, m
            if blocked and _whole_on_one_device(p, m, g):
                return one_pass(p, m, g)
            # mo.sgd's expressions, then apply_updates: sharding propagation (Auto axes) and
            # the type rules (Explicit ones) place the results as they place mo.sgd's
            out, new_m = _tree.leafwise(leaf, g, m)
            return optax.apply_updates(p, _tree.leafwise(lambda u: (neg_lr * u,), out)), new_m

        # the gradients' structure, None entries as leaves
        treedef = _tree.structure(grads)
        columns = [treedef.flatten_up_to(tree) for tree in (params, state.trace, grads)]
        if not columns[0]:
            return params, FusedSGDState(trace=state.trace, count=following)
        new = [step(p, m, g) for p, m, g in zip(*columns)]
        new_params, new_trace = (treedef.unflatten(list(x)) for x in zip(*new))
        return new_params, FusedSGDState(trace=new_trace, count=following)

    return FusedSGD(init=init, apply=apply)
