"""The whole battery on one transformation, and two transformations compared step by step."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import optax

from momentum_optax.testing import _battery
from momentum_optax.testing import _compare
from momentum_optax.testing._gradients import Gradients
from momentum_optax.testing._gradients import check_gradients_arg
from momentum_optax.testing._gradients import gradient_trees
from momentum_optax.testing._gradients import gradients_like
from momentum_optax.testing._gradients import like_name
from momentum_optax.testing._run import DEFAULT_STEPS
from momentum_optax.testing._run import Case
from momentum_optax.testing._run import ExtraArgs
from momentum_optax.testing._run import SharedRunError
from momentum_optax.testing._run import as_params
from momentum_optax.testing._run import check_extra_args
from momentum_optax.testing._run import check_int
from momentum_optax.testing._run import check_tolerance
from momentum_optax.testing._run import check_transformation_arg
from momentum_optax.testing._run import make_step
from momentum_optax.testing._run import run


def gradient_sequence(params: Any, steps: int, seed: int = 0) -> list[Any]:
    r"""The seeded gradient sequence every check of the kit feeds to a transformation.

    .. math::

        g_t^i \sim \mathcal{N}(0, 1) \text{ entrywise, independent}, \qquad t = 0, \dots,
        \mathrm{steps} - 1

    Drawn with ``numpy.random.default_rng(seed)``, step after step and within a step leaf
    after leaf (in ``jax.tree.leaves`` order), each leaf as ``rng.standard_normal(shape)``
    cast to the leaf's dtype (so it is finite, and exactly representable in it); a leaf of
    a non-floating dtype gets zeros. For an ``optax.LookaheadParams`` (the parameters of
    ``optax.lookahead``) the gradients are shaped like its fast parameters, as lookahead
    is documented to take them.

    Args:
        params: a pytree of arrays: the gradients have its structure, shapes and dtypes
            (its ``fast`` field's, for an ``optax.LookaheadParams``).
        steps: how many gradient trees, at least 1.
        seed: a non-negative integer.

    Returns:
        A list of ``steps`` pytrees of ``jax.Array``.

    Example:
        >>> import jax.numpy as jnp
        >>> from momentum_optax.testing import gradient_sequence
        >>> grads = gradient_sequence({"w": jnp.zeros((2, 3), jnp.bfloat16)}, steps=4, seed=0)
        >>> len(grads), grads[0]["w"].shape, grads[0]["w"].dtype
        (4, (2, 3), dtype(bfloat16))
    """
    params = as_params(params)
    steps, seed = check_int("steps", steps, 1), check_int("seed", seed, 0)
    return gradient_trees(None, gradients_like(params), steps, seed, like_name(params))


def _names(argument: str, names: Iterable[str] | None, default: tuple[str, ...]) -> tuple:
    """``names`` as a tuple of invariants' names, or a ``ValueError`` naming ``argument``."""
    if names is None:
        return default
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [n for n in names if n not in _battery.NAMES]
    if unknown:
        raise ValueError(
            f"{argument} names unknown invariants {unknown}; the invariants are "
            f"{', '.join(_battery.NAMES)}."
        )
    return names


def _selection(only: Iterable[str] | None, skip: Iterable[str]) -> tuple[str, ...]:
    """The invariants ``only`` and ``skip`` select, in the order of ``invariants.NAMES``."""
    selected = _names("only", only, _battery.DEFAULT)
    skipped = _names("skip", skip, ())
    if not selected:
        raise ValueError(
            f"only must name at least one invariant; got {only!r}. Leave it out (None) for "
            f"the default set, or pass invariants.NAMES for every invariant."
        )
    both = [n for n in selected if n in skipped]
    if only is not None and both:
        raise ValueError(
            f"only and skip both name {both}: an invariant is either checked or skipped "
            f"(only={only!r}, skip={skip!r})."
        )
    names = tuple(n for n in dict.fromkeys(selected) if n not in skipped)
    if not names:
        raise ValueError(f"skip={skip!r} skips every invariant: nothing would be checked.")
    return names


class Battery:
    """The invariants of one transformation on one set of parameters, sharing one jitted run.

    :func:`check_transformation` builds one and checks the default invariants; a test suite
    that wants one test per invariant keeps a ``Battery`` per transformation (e.g. in a
    cached fixture) and calls :meth:`check` in each test, so the jitted run is compiled once
    for all of them. The arguments are those of :func:`check_transformation`, checked here.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> from momentum_optax.testing import Battery
        >>> battery = Battery(mo.trace(0.9), {"w": jnp.zeros(3)}, steps=4)
        >>> battery.check("state_is_stable")
        >>> battery.check_all(skip=("handles_scale",))[-1]
        'checkpoint_continues'
    """

    def __init__(
        self,
        tx: optax.GradientTransformation,
        params: Any,
        *,
        steps: int = DEFAULT_STEPS,
        seed: int = 0,
        gradients: Gradients = None,
        extra_args: ExtraArgs = None,
        rtol: float | None = None,
        atol: float | None = None,
    ):
        self._case = Case.build(
            tx,
            params,
            steps=steps,
            seed=seed,
            gradients=gradients,
            extra_args=extra_args,
            rtol=rtol,
            atol=atol,
        )
        self._case.grads  # noqa: B018  (a bad gradients= fails here, at construction)

    def check(self, name: str) -> None:
        """Checks the invariant ``name`` (one of ``invariants.NAMES``, opt-in ones included).

        Raises:
            AssertionError: the invariant broke; the message starts with its name.
            ValueError: ``name`` is not an invariant, or ``tx.init(params)`` raised.
            TypeError: the first step raised a ``TypeError`` (the message names
                ``extra_args``, which a transformation that reads the loss needs).
        """
        (name,) = _names("name", (name,), _battery.NAMES)
        _battery.CHECKS[name](self._case)

    def check_all(
        self, only: Iterable[str] | None = None, skip: Iterable[str] = ()
    ) -> tuple[str, ...]:
        """Checks every invariant of ``only`` not in ``skip``, in order.

        ``only`` defaults to ``invariants.DEFAULT`` (every invariant but the opt-in
        ``strict_promotion``); ``only=invariants.NAMES`` checks them all.

        Returns:
            The names checked.

        Raises:
            AssertionError: one or more invariants broke; one line (starting with its name)
                for each. When the jitted run they share cannot run, one line says so.
            ValueError: ``only`` is empty, a name is unknown or in both ``only`` and
                ``skip``, or ``tx.init(params)`` raised.
            TypeError: the first step raised a ``TypeError``: the message names
                ``extra_args``.
        """
        names = _selection(only, skip)
        try:
            self._case.trajectory  # noqa: B018  (shared; an argument error is raised once)
        except SharedRunError as error:
            raise AssertionError(
                f"check_transformation: no invariant could be checked: {error}"
            ) from error
        broken = []
        for name in names:
            try:
                _battery.CHECKS[name](self._case)
            except AssertionError as error:
                broken.append(str(error))
        if broken:
            listing = "\n".join(f"- {message}" for message in broken)
            raise AssertionError(
                f"check_transformation: {len(broken)} of {len(names)} invariants broke:\n{listing}"
            )
        return names


def check_transformation(
    tx: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    gradients: Gradients = None,
    extra_args: ExtraArgs = None,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    rtol: float | None = None,
    atol: float | None = None,
) -> tuple[str, ...]:
    r"""Runs the invariant battery on any ``optax.GradientTransformation``.

    .. math::

        \text{for each invariant } I \text{ of } \texttt{invariants.DEFAULT}: \quad
        I(tx, \theta_0, g_0, \dots, g_{T-1}) \text{ holds}

    ``tx`` runs from ``tx.init(params)`` over :func:`gradient_sequence` ``(params, steps,
    seed)`` (or ``gradients``), with ``optax.apply_updates`` after each step. The default
    invariants (:mod:`~momentum_optax.testing.invariants`, each callable on its own): the
    updates keep the gradients' structure and shapes; the state keeps its structure,
    shapes and dtypes; finite in, finite out; zero, huge (1e30) and tiny (1e-30) gradients
    give finite updates; one trace of the jitted step; jit equals eager; scan equals the
    Python loop; the same updates inside ``optax.chain`` between a clip and a learning
    rate; ``vmap`` over a batch of parameters equals each member's run; a flax checkpoint
    continues bit for bit. Opt-in (``only=``): under strict dtype promotion the parameters
    keep their dtypes, which stock ``optax.adam`` fails. The jitted run is computed once
    and shared. Every selected invariant is checked, and one ``AssertionError`` lists each
    that broke, its message starting with the invariant's name.

    The battery checks properties any transformation must have; it cannot know what a
    coefficient means: compare with a reference with :func:`assert_trajectories_close`.

    Args:
        tx: the transformation under test. It is wrapped with
            ``optax.with_extra_args_support``, so ``extra_args`` reach it when its
            ``update`` accepts them (as in ``optax.chain``).
        params: the initial parameters, a pytree of arrays (at least one leaf); for
            ``optax.lookahead``, ``optax.LookaheadParams.init_synced(params)`` (the
            gradients are then shaped like its fast half, as lookahead takes them).
        steps: steps per run, at least 2 (the checkpoint is taken after ``steps // 2``).
        seed: the seed of the gradient sequence.
        gradients: the gradient sequence, in place of the standard normal one: a list of
            exactly ``steps`` trees shaped like ``params``, or a callable ``(like, steps,
            seed) -> list`` of ``steps`` trees shaped like ``like`` (as
            :func:`gradient_sequence`). Leaves are cast to the parameters' dtypes
            (``same_kind``). ``handles_scale`` uses its own sequences.
        extra_args: keyword arguments of ``update``: ``None``, a mapping passed at every
            step, or a callable ``(params, step) -> mapping`` of the current parameters
            and the int32 step number (traced under ``jit`` and ``vmap``), e.g.
            ``lambda p, t: {"value": loss(p)}`` for a transformation that reads the loss.
        only: the names of the invariants to check, at least one (default:
            :data:`~momentum_optax.testing.invariants.DEFAULT`;
            :data:`~momentum_optax.testing.invariants.NAMES` for every invariant).
        skip: names of invariants not to check (none of them in ``only``).
        rtol: relative tolerance of the comparisons that allow rounding (jit and eager,
            scan, chain, vmap); ``None`` picks it by the leaf's dtype (1e-6 for float32,
            4e-3 for float16, 3e-2 for bfloat16). The checkpoint is always bit for bit.
        atol: absolute tolerance, relative to each leaf's scale ``max(1, max |x|)``;
            ``None`` picks it by the leaf's dtype, from the same table as ``rtol``.

    Returns:
        The names of the invariants checked, in order.

    Raises:
        AssertionError: an invariant broke; the message names it, the step and the leaf.
        ValueError, TypeError: an argument is invalid (the message names it), or makes
            every run fail: ``tx.init(params)`` raised (``ValueError``), or the first step
            raised a ``TypeError``, such as a missing ``value=`` (the message names
            ``extra_args``).

    Example:
        >>> import jax.numpy as jnp, optax
        >>> import momentum_optax as mo
        >>> from momentum_optax.testing import check_transformation, invariants
        >>> params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
        >>> names = check_transformation(mo.sgd(0.1, momentum=0.9), params)
        >>> names == invariants.DEFAULT, len(names)
        (True, 10)
        >>> check_transformation(mo.trace(0.9), params, only=("jit_equals_eager",))
        ('jit_equals_eager',)
        >>> lookahead = optax.lookahead(optax.sgd(0.1), sync_period=3, slow_step_size=0.5)
        >>> names = check_transformation(lookahead, optax.LookaheadParams.init_synced(params))
    """
    battery = Battery(
        tx,
        params,
        steps=steps,
        seed=seed,
        gradients=gradients,
        extra_args=extra_args,
        rtol=rtol,
        atol=atol,
    )
    return battery.check_all(only, skip)


def assert_trajectories_close(
    tx_a: optax.GradientTransformation,
    tx_b: optax.GradientTransformation,
    params: Any,
    *,
    steps: int = 20,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
    gradients: Gradients = None,
    extra_args: ExtraArgs = None,
) -> None:
    r"""Asserts that two transformations give the same updates over a random gradient sequence.

    .. math::

        |u^a_t - u^b_t| \le \mathrm{atol} \max(1, \|u^b_t\|_\infty) + \mathrm{rtol}\, |u^b_t|,
        \qquad t = 0, \dots, \mathrm{steps} - 1

    Both run jitted from their own ``init(params)`` over :func:`gradient_sequence`
    ``(params, steps, seed)`` (or ``gradients``); at each step both receive the same
    parameters, those that ``tx_a``'s updates produce (``optax.apply_updates``). This is
    the equivalence check written by hand with ``chex.assert_trees_all_close``, with the
    error naming the first step and leaf that disagree and by how much.

    Args:
        tx_a: the transformation under test.
        tx_b: the reference (``optax.trace(0.9)``, a known-good implementation, ...).
        params: the initial parameters, a pytree of arrays.
        steps: how many steps to compare, at least 1.
        rtol: relative tolerance; ``None`` picks it by the leaf's dtype (1e-6 for float32).
        atol: absolute tolerance, relative to each leaf's scale; ``None`` picks it by dtype.
        seed: the seed of the gradient sequence.
        gradients: the gradient sequence in place of the standard normal one, as in
            :func:`check_transformation` (a list of ``steps`` trees, or a callable).
        extra_args: keyword arguments of both ``update`` calls, as in
            :func:`check_transformation`.

    Returns:
        ``None``; raises an ``AssertionError`` at the first step where the updates differ.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> import momentum_optax as mo
        >>> from momentum_optax.testing import assert_trajectories_close
        >>> params = {"w": jnp.zeros(3)}
        >>> assert_trajectories_close(mo.trace(0.9), optax.trace(0.9), params, steps=10)
        >>> assert_trajectories_close(mo.trace(0.8), optax.trace(0.9), params, steps=10)
        Traceback (most recent call last):
        ...
        AssertionError: assert_trajectories_close: step 1, updates['w']: tx_a and tx_b differ ...
    """
    a, b = check_transformation_arg("tx_a", tx_a), check_transformation_arg("tx_b", tx_b)
    rtol, atol = check_tolerance("rtol", rtol), check_tolerance("atol", atol)
    extra_args = check_extra_args(extra_args)
    params = as_params(params)
    steps, seed = check_int("steps", steps, 1), check_int("seed", seed, 0)
    grads = gradient_trees(
        check_gradients_arg(gradients), gradients_like(params), steps, seed, like_name(params)
    )
    run_a = run(jax.jit(make_step(a, extra_args)), params, a.init(params), grads)
    run_b = run(
        jax.jit(make_step(b, extra_args)), params, b.init(params), grads, given_params=run_a.params
    )
    for t, (u, v) in enumerate(zip(run_a.updates, run_b.updates)):
        _compare.close(
            "assert_trajectories_close",
            f"step {t}, updates",
            u,
            v,
            got_name="tx_a",
            want_name="tx_b",
            rtol=rtol,
            atol=atol,
        )
