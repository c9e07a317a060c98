"""The invariant battery, one function per invariant (``check_transformation`` runs them all).

Each function runs ``tx`` from ``tx.init(params)`` over the seeded gradient sequence of
:func:`~momentum_optax.testing.gradient_sequence` (``optax.apply_updates`` after each step)
and raises an ``AssertionError`` whose message starts with the invariant's name and names
the step and the leaf that broke it. They share one signature, so a suite can parametrize
over :data:`NAMES`::

    @pytest.mark.parametrize("name", invariants.NAMES)
    def test_my_transformation(name):
        getattr(invariants, name)(my_transformation(0.9), params)
"""

from __future__ import annotations

from typing import Any

import optax

from momentum_optax.testing import _battery
from momentum_optax.testing._run import DEFAULT_STEPS
from momentum_optax.testing._run import Case
from momentum_optax.testing._run import ExtraArgs

#: every invariant's name, in the order :func:`~momentum_optax.testing.check_transformation`
#: checks them
NAMES = (
    "updates_match_gradients",
    "state_is_stable",
    "finite_in_finite_out",
    "compiles_once",
    "jit_equals_eager",
    "scan_equals_loop",
    "works_in_chain",
    "vmap_equals_loop",
    "checkpoint_continues",
    "strict_promotion",
)


def updates_match_gradients(
    tx: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    extra_args: ExtraArgs = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    r"""The updates have the gradients' tree structure and leaf shapes, at every step.

    .. math::

        \mathrm{tree}(u_t) = \mathrm{tree}(g_t), \quad \mathrm{shape}(u_t^i) = \mathrm{shape}(g_t^i)

    Their dtypes may differ (a float32 buffer promotes bfloat16 gradients); what the
    parameters keep is :func:`strict_promotion`'s concern.

    Args:
        tx: the ``optax.GradientTransformation`` under test.
        params: the initial parameters, a pytree of arrays.
        steps, seed, extra_args, rtol, atol: as in
            :func:`~momentum_optax.testing.check_transformation`.

    Returns:
        ``None``; raises an ``AssertionError`` naming ``updates_match_gradients`` if it breaks.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from momentum_optax.testing import invariants
        >>> invariants.updates_match_gradients(optax.trace(0.9), {"w": jnp.zeros(3)})
    """
    _battery.CHECKS["updates_match_gradients"](
        Case.build(tx, params, steps=steps, seed=seed, extra_args=extra_args, rtol=rtol, atol=atol)
    )


def state_is_stable(
    tx: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    extra_args: ExtraArgs = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    r"""The state keeps the structure, shapes and dtypes of ``tx.init(params)`` at every step.

    .. math::

        \mathrm{tree}(s_t) = \mathrm{tree}(s_0), \qquad \mathrm{aval}(s_t^i) = \mathrm{aval}(s_0^i)

    A state that drifts (a buffer promoted to float32, a field that appears after the
    first step) recompiles a jitted step, breaks ``jax.lax.scan`` and checkpoints.

    Args:
        tx: the ``optax.GradientTransformation`` under test.
        params: the initial parameters, a pytree of arrays.
        steps, seed, extra_args, rtol, atol: as in
            :func:`~momentum_optax.testing.check_transformation`.

    Returns:
        ``None``; raises an ``AssertionError`` naming ``state_is_stable`` if it breaks.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from momentum_optax.testing import invariants
        >>> invariants.state_is_stable(optax.trace(0.9), {"w": jnp.zeros(3)})
    """
    _battery.CHECKS["state_is_stable"](
        Case.build(tx, params, steps=steps, seed=seed, extra_args=extra_args, rtol=rtol, atol=atol)
    )


def finite_in_finite_out(
    tx: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    extra_args: ExtraArgs = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    r"""Finite gradients give finite updates, at every step.

    .. math::

        g_t \in \mathbb{R}^n \;\Rightarrow\; u_t \in \mathbb{R}^n

    The error names the step, the leaf and the first entry that is NaN or infinite.

    Args:
        tx: the ``optax.GradientTransformation`` under test.
        params: the initial parameters, a pytree of arrays.
        steps, seed, extra_args, rtol, atol: as in
            :func:`~momentum_optax.testing.check_transformation`.

    Returns:
        ``None``; raises an ``AssertionError`` naming ``finite_in_finite_out`` if it breaks.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from momentum_optax.testing import invariants
        >>> invariants.finite_in_finite_out(optax.trace(0.9), {"w": jnp.zeros(3)})
    """
    _battery.CHECKS["finite_in_finite_out"](
        Case.build(tx, params, steps=steps, seed=seed, extra_args=extra_args, rtol=rtol, atol=atol)
    )


def compiles_once(
    tx: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    extra_args: ExtraArgs = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    r"""The jitted step is traced once over all the steps (no recompilation).

    .. math::

        \#\mathrm{traces}(\mathrm{jit}(\mathrm{step})) = 1 \text{ over } t = 0, \dots, T-1

    A second trace means the state or the updates change structure, shape, dtype or
    weak type between steps; the error names the step that traced again.

    Args:
        tx: the ``optax.GradientTransformation`` under test.
        params: the initial parameters, a pytree of arrays.
        steps, seed, extra_args, rtol, atol: as in
            :func:`~momentum_optax.testing.check_transformation`.

    Returns:
        ``None``; raises an ``AssertionError`` naming ``compiles_once`` if it breaks.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from momentum_optax.testing import invariants
        >>> invariants.compiles_once(optax.trace(0.9), {"w": jnp.zeros(3)})
    """
    _battery.CHECKS["compiles_once"](
        Case.build(tx, params, steps=steps, seed=seed, extra_args=extra_args, rtol=rtol, atol=atol)
    )


def jit_equals_eager(
    tx: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    extra_args: ExtraArgs = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    r"""The jitted step gives the eager step's updates and states, up to rounding.

    .. math::

        |u^{\mathrm{jit}}_t - u_t| \le \mathrm{atol} \max(1, \|u_t\|_\infty) + \mathrm{rtol}\, |u_t|

    XLA fuses operations under ``jit``, so the two may differ by rounding (default
    tolerances by dtype: 1e-6 for float32, looser for the 16-bit types). A Python side
    effect in ``update`` (a counter in a closure) runs once under ``jit`` and at every
    eager step: this invariant catches it.

    Args:
        tx: the ``optax.GradientTransformation`` under test.
        params: the initial parameters, a pytree of arrays.
        steps, seed, extra_args, rtol, atol: as in
            :func:`~momentum_optax.testing.check_transformation`.

    Returns:
        ``None``; raises an ``AssertionError`` naming ``jit_equals_eager`` if it breaks.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from momentum_optax.testing import invariants
        >>> invariants.jit_equals_eager(optax.trace(0.9), {"w": jnp.zeros(3)})
    """
    _battery.CHECKS["jit_equals_eager"](
        Case.build(tx, params, steps=steps, seed=seed, extra_args=extra_args, rtol=rtol, atol=atol)
    )


def scan_equals_loop(
    tx: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    extra_args: ExtraArgs = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    r"""The steps inside ``jax.lax.scan`` give the Python loop's updates and states.

    .. math::

        \mathrm{scan}(\mathrm{step})_t = \mathrm{step}^{(t)} \text{ (within tolerance)}

    ``scan`` needs a state whose structure, shapes and dtypes are fixed.

    Args:
        tx: the ``optax.GradientTransformation`` under test.
        params: the initial parameters, a pytree of arrays.
        steps, seed, extra_args, rtol, atol: as in
            :func:`~momentum_optax.testing.check_transformation`.

    Returns:
        ``None``; raises an ``AssertionError`` naming ``scan_equals_loop`` if it breaks.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from momentum_optax.testing import invariants
        >>> invariants.scan_equals_loop(optax.trace(0.9), {"w": jnp.zeros(3)})
    """
    _battery.CHECKS["scan_equals_loop"](
        Case.build(tx, params, steps=steps, seed=seed, extra_args=extra_args, rtol=rtol, atol=atol)
    )


def works_in_chain(
    tx: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    extra_args: ExtraArgs = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    r"""Inside ``optax.chain`` between a clip and a learning rate, ``tx`` gives its updates alone.

    .. math::

        \mathrm{chain}(\mathrm{clip}, tx, \mathrm{lr}_{0.5})(g_t) = -0.5\, tx(g_t)

    The clip never binds on the gradients drawn, and the learning rate 0.5 scales exactly,
    so the two runs differ only by rounding; both see the same parameters at each step.
    The state inside the chain must also follow the state alone.

    Args:
        tx: the ``optax.GradientTransformation`` under test.
        params: the initial parameters, a pytree of arrays.
        steps, seed, extra_args, rtol, atol: as in
            :func:`~momentum_optax.testing.check_transformation`.

    Returns:
        ``None``; raises an ``AssertionError`` naming ``works_in_chain`` if it breaks.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from momentum_optax.testing import invariants
        >>> invariants.works_in_chain(optax.trace(0.9), {"w": jnp.zeros(3)})
    """
    _battery.CHECKS["works_in_chain"](
        Case.build(tx, params, steps=steps, seed=seed, extra_args=extra_args, rtol=rtol, atol=atol)
    )


def vmap_equals_loop(
    tx: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    extra_args: ExtraArgs = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    r"""``jax.vmap`` over a batch of parameters gives each member's own run.

    .. math::

        \mathrm{vmap}(\mathrm{step})(\theta^{(b)}, g^{(b)})_b = \mathrm{step}(\theta^{(b)}, g^{(b)})

    The batch holds ``params`` and a perturbed copy, each with its own gradients; the
    state comes from ``jax.vmap(tx.init)``.

    Args:
        tx: the ``optax.GradientTransformation`` under test.
        params: the initial parameters, a pytree of arrays.
        steps, seed, extra_args, rtol, atol: as in
            :func:`~momentum_optax.testing.check_transformation`.

    Returns:
        ``None``; raises an ``AssertionError`` naming ``vmap_equals_loop`` if it breaks.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from momentum_optax.testing import invariants
        >>> invariants.vmap_equals_loop(optax.trace(0.9), {"w": jnp.zeros(3)})
    """
    _battery.CHECKS["vmap_equals_loop"](
        Case.build(tx, params, steps=steps, seed=seed, extra_args=extra_args, rtol=rtol, atol=atol)
    )


def checkpoint_continues(
    tx: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    extra_args: ExtraArgs = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    r"""A flax checkpoint of the state, restored into ``tx.init(params)``, continues bit for bit.

    .. math::

        \mathrm{from\_bytes}(tx.\mathrm{init}(\theta_0), \mathrm{to\_bytes}(s_k)) = s_k,
        \qquad u^{\mathrm{resumed}}_t = u_t

    The state after step ``steps // 2 - 1`` goes through ``flax.serialization.to_bytes`` /
    ``from_bytes``; the restored state must equal it bit for bit, and the run resumed from
    it must give the uninterrupted run's updates and states exactly. Weakly typed state
    leaves (made from Python scalars) are a common cause of failure: a restored leaf is
    strongly typed, and promotes differently.

    Args:
        tx: the ``optax.GradientTransformation`` under test.
        params: the initial parameters, a pytree of arrays.
        steps, seed, extra_args, rtol, atol: as in
            :func:`~momentum_optax.testing.check_transformation`.

    Returns:
        ``None``; raises an ``AssertionError`` naming ``checkpoint_continues`` if it breaks.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from momentum_optax.testing import invariants
        >>> invariants.checkpoint_continues(optax.trace(0.9), {"w": jnp.zeros(3)})
    """
    _battery.CHECKS["checkpoint_continues"](
        Case.build(tx, params, steps=steps, seed=seed, extra_args=extra_args, rtol=rtol, atol=atol)
    )


def strict_promotion(
    tx: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    extra_args: ExtraArgs = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    r"""Under strict dtype promotion ``tx`` runs and the parameters keep their dtypes.

    .. math::

        \mathrm{dtype}(\mathrm{apply\_updates}(\theta, u_t)) = \mathrm{dtype}(\theta)

    ``init`` and a few eager steps run under ``jax.numpy_dtype_promotion('strict')``, with
    the parameters as given, as float32 and as bfloat16 (float copies), and
    ``optax.apply_updates(params, updates)`` must keep every parameter's dtype (under strict
    promotion it raises when the updates' dtype differs from the parameter's).

    Args:
        tx: the ``optax.GradientTransformation`` under test.
        params: the initial parameters, a pytree of arrays.
        steps, seed, extra_args, rtol, atol: as in
            :func:`~momentum_optax.testing.check_transformation`.

    Returns:
        ``None``; raises an ``AssertionError`` naming ``strict_promotion`` if it breaks.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from momentum_optax.testing import invariants
        >>> invariants.strict_promotion(optax.trace(0.9), {"w": jnp.zeros(3)})
    """
    _battery.CHECKS["strict_promotion"](
        Case.build(tx, params, steps=steps, seed=seed, extra_args=extra_args, rtol=rtol, atol=atol)
    )
