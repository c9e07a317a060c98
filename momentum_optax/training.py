"""The library-owned training step: gradients, the optimizer, donated buffers, metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax

from momentum_optax._coefficients import check_bool
from momentum_optax.fused import FusedSGD

Metrics = Callable[[optax.Updates, optax.Updates, optax.Params], Any]


def _as_transformation(optimizer: Any) -> optax.GradientTransformationExtraArgs | FusedSGD:
    """What the step calls: the fused pair, or a transformation that takes ``value=``."""
    if isinstance(optimizer, FusedSGD):
        return optimizer
    if isinstance(optimizer, optax.MultiSteps):
        # its update forwards extra arguments (value=) to the transformation it wraps
        return optax.GradientTransformationExtraArgs(*optimizer.gradient_transformation())
    if isinstance(optimizer, optax.GradientTransformationExtraArgs):
        return optimizer
    if isinstance(optimizer, optax.GradientTransformation):
        return optax.with_extra_args_support(optimizer)  # ignores value=
    hint = ""
    if callable(optimizer):
        hint = " (a function or class: call it to build the optimizer, e.g. mo.sgd(0.1, 0.9))"
    elif isinstance(optimizer, tuple) and len(optimizer) == 2:
        hint = " (an (init, update) pair: wrap it as optax.GradientTransformation(init, update))"
    raise TypeError(
        "optimizer must be an optax.GradientTransformation, an optax.MultiSteps or a "
        f"mo.FusedSGD; got {optimizer!r} of type {type(optimizer).__name__}{hint}."
    )


_CONCRETE: dict[type, bool] = {}  # leaf type -> whether its instances are arrays with buffers


def _is_concrete_array_type(cls: type) -> bool:
    """Whether instances of ``cls`` are arrays with buffers (not tracers); cached per type."""
    if cls not in _CONCRETE:
        _CONCRETE[cls] = issubclass(cls, jax.Array) and not issubclass(cls, jax.core.Tracer)
    return _CONCRETE[cls]


def _is_deleted(leaf: Any) -> bool:
    """Whether ``leaf`` is a concrete array whose buffer is gone (donated or deleted)."""
    return _is_concrete_array_type(type(leaf)) and leaf.is_deleted()


def _check_inputs(
    params: Any, opt_state: Any, batch: tuple, batch_kwargs: dict, donate: bool
) -> None:
    """The inputs' leaves, flattened once per call: no deleted array (on several devices XLA
    can crash on one) and, when donating, no array passed twice among the donated ones."""
    donated = jax.tree.leaves((params, opt_state))
    if any(map(_is_deleted, donated)) or any(
        map(_is_deleted, jax.tree.leaves((batch, batch_kwargs)))
    ):
        _name_the_deleted(params, opt_state, batch, batch_kwargs)
    if donate:
        arrays = [id(x) for x in donated if _is_concrete_array_type(type(x))]
        if len(set(arrays)) < len(arrays):
            _name_the_shared(params, opt_state)


def _name_the_deleted(params: Any, opt_state: Any, batch: tuple, batch_kwargs: dict) -> None:
    """Raises the ``ValueError`` that names the first deleted input."""
    named = {"params": params, "opt_state": opt_state}
    named.update({f"batch argument {i}": arg for i, arg in enumerate(batch)})
    named.update({f"batch argument {k!r}": arg for k, arg in batch_kwargs.items()})
    for name, tree in named.items():
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            if _is_deleted(leaf):
                raise ValueError(
                    f"{name}{jax.tree_util.keystr(path)} is a deleted array: its buffer was "
                    "donated to an earlier step (train_step donates params and opt_state unless "
                    "donate=False) or deleted. Pass the params and opt_state the last step "
                    "returned, or build the step with donate=False to reuse its inputs."
                )


def _name_the_shared(params: Any, opt_state: Any) -> None:
    """Raises the ``ValueError`` that names an array passed twice among the donated inputs
    (XLA cannot donate it twice), e.g. a state whose init stored the parameters themselves."""
    seen: dict[int, str] = {}
    for name, tree in (("params", params), ("opt_state", opt_state)):
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            if not _is_concrete_array_type(type(leaf)):
                continue
            where = f"{name}{jax.tree_util.keystr(path)}"
            if id(leaf) in seen:
                raise ValueError(
                    f"{where} is the same array as {seen[id(leaf)]}: a donated step cannot "
                    "donate one buffer twice. Copy one of them (e.g. jnp.copy), or build the "
                    "step with donate=False."
                )
            seen[id(leaf)] = where


def train_step(
    loss_fn: Callable[..., Any],
    optimizer: optax.GradientTransformation | optax.MultiSteps | FusedSGD,
    *,
    has_aux: bool = False,
    donate: bool = True,
    metrics: Metrics | None = None,
) -> TrainStep:
    r"""A jitted training step: the loss's gradient, the optimizer, the new parameters.

    .. math::  \ell = f(\theta, \text{batch}), \quad
               (u, s') = \text{update}(\nabla_\theta f, s, \theta), \quad
               \theta' = \theta + u

    With ``donate`` (the default) XLA writes the new parameters and state into
    the old buffers: without it every step allocates fresh ones (measured 4-5x
    slower at 1e8 parameters on CPU, page faults included). The arrays passed in
    are then consumed: use the returned ones. A step handed a deleted array (one
    donated to an earlier step) raises a ``ValueError`` naming it before XLA runs
    (with arrays on several devices XLA would crash on it). With ``donate=False``
    the inputs stay usable.

    The batch arguments, by position or keyword, are traced (arrays, or pytrees of
    arrays, as for any jitted function: bind a Python flag such as ``train=True``
    into ``loss_fn`` with ``functools.partial``). They reach ``loss_fn`` as given,
    rebuilt inside the differentiated function: a loss may mutate Flax NNX
    state passed among them (``nnx.merge`` of an ``nnx.State`` holding
    ``BatchStat`` or RNG variables), which is how an ``nnx.Module`` with
    ``BatchNorm`` and ``Dropout`` trains (see the "Training steps" guide).

    Args:
        loss_fn: ``loss_fn(params, *batch, **batch_kwargs) -> loss``, a scalar (or
            ``(loss, aux)`` with ``has_aux``).
        optimizer: an ``optax.GradientTransformation`` (one that takes extra
            arguments, such as ``optax.chain`` or ``mo.adaptive_restart``, is passed
            the loss as ``value=``), an ``optax.MultiSteps`` (its
            ``gradient_transformation()`` is used, and ``value=`` reaches the
            transformation it wraps), or a :class:`~momentum_optax.fused.FusedSGD`
            for the one-pass momentum update.
        has_aux: whether ``loss_fn`` returns ``(loss, aux)``; the step then returns
            ``(loss, aux)`` where it returns ``loss``.
        donate: whether the step consumes ``params`` and ``opt_state`` to write the
            new ones in place.
        metrics: ``None``, or ``metrics(grads, updates, params) -> pytree``, traced
            inside the step: ``grads`` of the loss, the optimizer's ``updates``
            (for a ``FusedSGD``, the new parameters minus the old), and the
            ``params`` the gradient was taken at. Its result is returned as a
            fourth output, e.g. ``lambda g, u, p: optax.tree.norm(g)``.

    Returns:
        A :class:`TrainStep`: ``step(params, opt_state, *batch, **batch_kwargs)``, jitted,
        returning ``(params, opt_state, loss)``, or ``(params, opt_state, loss, metrics)``
        with ``metrics``; ``step.lower(...)`` with the same arguments lowers it ahead of
        time (the program's text, its compiled cost and memory).

    Example:
        >>> import jax.numpy as jnp, optax
        >>> import momentum_optax as mo
        >>> loss = lambda w, x, *, y: jnp.sum((w * x - y) ** 2)
        >>> opt = mo.sgd(0.1, 0.5)
        >>> step = mo.train_step(loss, opt, metrics=lambda g, u, p: optax.tree.norm(g))
        >>> w = jnp.zeros(3); state = opt.init(w)
        >>> for _ in range(100):
        ...     w, state, value, grad_norm = step(w, state, jnp.ones(3), y=1.0)
        >>> bool(value < 1e-6), bool(grad_norm < 1e-3)
        (True, True)
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable; got {loss_fn!r}.")
    tx = _as_transformation(optimizer)
    check_bool("has_aux", has_aux)
    check_bool("donate", donate)
    if metrics is not None and not callable(metrics):
        raise TypeError(
            "metrics must be None or a callable metrics(grads, updates, params) -> pytree; "
            f"got {metrics!r} of type {type(metrics).__name__}."
        )

    def step(params: optax.Params, opt_state: Any, batch: tuple, batch_kwargs: dict) -> tuple:
        leaves, treedef = jax.tree.flatten((batch, batch_kwargs))

        def objective(params: optax.Params, leaves: list) -> Any:
            # the batch is rebuilt here, inside the trace that differentiates: NNX variables
            # among it are created at that level, so the loss may update them
            args, kwargs = jax.tree.unflatten(treedef, leaves)
            return loss_fn(params, *args, **kwargs)

        value, grads = jax.value_and_grad(objective, has_aux=has_aux)(params, leaves)
        if isinstance(tx, FusedSGD):
            new_params, opt_state = tx.apply(params, opt_state, grads)
            updates = None
        else:
            loss = value[0] if has_aux else value
            updates, opt_state = tx.update(grads, opt_state, params, value=loss)
            new_params = optax.apply_updates(params, updates)
        if metrics is None:
            return new_params, opt_state, value
        if updates is None:  # read only if the metrics use it
            updates = jax.tree.map(lambda new, old: new - old, new_params, params)
        return new_params, opt_state, value, metrics(grads, updates, params)

    return TrainStep(jax.jit(step, donate_argnums=(0, 1) if donate else ()), donate)


class TrainStep:
    """The step :func:`train_step` returns: call it, or lower it ahead of time.

    ``step(params, opt_state, *batch, **batch_kwargs)`` checks its inputs (deleted or
    doubly donated arrays are named) and runs the compiled step. ``step.lower(...)``, with
    the same arguments (arrays or ``jax.ShapeDtypeStruct``), is ``jax.jit``'s ``lower``:
    ``.as_text()`` for the program, ``.compile()`` for an executable (called with
    ``(params, opt_state, batch, batch_kwargs)``: ``batch`` a tuple, ``batch_kwargs`` a
    dict). ``step.jitted`` is the jitted function of those four arguments.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.sgd(0.1, 0.9)
        >>> step = mo.train_step(lambda w, x: jnp.sum((w - x) ** 2), opt)
        >>> w = jax.ShapeDtypeStruct((3,), jnp.float32)
        >>> lowered = step.lower(w, jax.eval_shape(opt.init, w), w)
        >>> lowered.as_text().count("tf.aliasing_output")  # params and momentum donated
        2
        >>> compiled = lowered.compile()
    """

    def __init__(self, jitted: Any, donate: bool) -> None:
        self.jitted = jitted
        self._donate = donate

    def __call__(
        self, params: optax.Params, opt_state: Any, /, *batch: Any, **batch_kwargs: Any
    ) -> tuple:
        _check_inputs(params, opt_state, batch, batch_kwargs, self._donate)
        return self.jitted(params, opt_state, batch, batch_kwargs)

    def lower(
        self, params: optax.Params, opt_state: Any, /, *batch: Any, **batch_kwargs: Any
    ) -> Any:
        """``jax.jit``'s ``lower`` for these arguments (a ``jax.stages.Lowered``)."""
        return self.jitted.lower(params, opt_state, batch, batch_kwargs)
