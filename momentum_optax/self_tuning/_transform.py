"""``scale_by_yellowfin`` and ``yellowfin``: the transformation and the optimizer."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.typing import DTypeLike
from optax import ScalarOrSchedule

from momentum_optax import _coefficients
from momentum_optax import _tree
from momentum_optax import scaling
from momentum_optax.self_tuning import _state as layout
from momentum_optax.self_tuning import _statistics as stats
from momentum_optax.self_tuning._state import YellowFinState


def _positive(name: str, value: Any, *, allow_none: bool = False) -> None:
    """Checks a finite float > 0 (or ``None`` when ``allow_none``) where its value is known:
    a Python or NumPy number, or a concrete ``jax.Array`` (what ``inject_hyperparams``
    hands on); a traced one passes unchecked."""
    if allow_none and value is None:
        return
    expected = "None or a finite float > 0" if allow_none else "a finite float > 0"
    number = _coefficients.known_constant(name, _coefficients.readable(value), expected)
    if number is not None and not (math.isfinite(number) and number > 0.0):
        raise ValueError(f"{name} must be {expected}; got {value!r}.")


def scale_by_yellowfin(
    *,
    beta: float = 0.999,
    curvature_window: int = 20,
    eps: float = 1e-12,
    scale_invariant: bool = True,
    log_curvature: bool = True,
    smooth_tuned: bool = True,
    slow_start: bool = True,
    adaptive_clip: bool = True,
    stat_protect_factor: float = 100.0,
    max_move: float | None = 100.0,
    sparsity_debias: bool = False,
    non_increasing_step: bool = False,
    accumulator_dtype: DTypeLike | None = None,
) -> optax.GradientTransformation:
    r"""YellowFin's update with its own tuned learning rate and momentum (Zhang &
    Mitliagkas, Algorithm 1, with the safeguards of the authors' code); :func:`yellowfin`
    puts a learning-rate factor after it.

    At step :math:`t` (from 0), every running average
    :math:`\bar x_t = \beta \bar x_{t-1} + (1 - \beta) x_t` starts at 0 and is divided by
    :math:`1 - \beta^{t+1}` (zero-debiased). The gradient is measured in units of the first
    nonzero one, :math:`\hat g_t = g_t / s` with :math:`s = \|g_{t_0}\|` (see Scale), and for
    :math:`t \ge 1` clipped to the norm :math:`\sqrt{f\, h_{max,t-1}}`; with
    :math:`h_t = \|\hat g_t\|^2` and :math:`w` = ``curvature_window``:

    .. math::

        \text{CurvatureRange:}\quad h_{max} = \exp \overline{\max_{t-w < i \le t}
        \log(h_i + \epsilon)},\quad h_{min} = \exp \overline{\min_{t-w < i \le t}
        \log(h_i + \epsilon)}

        \text{Variance:}\quad C = \overline{\|\hat g\|^2} - \|\bar{\hat g}\|^2 \qquad
        \text{Distance:}\quad D = \overline{\bigl(\overline{\|\hat g\|} /
        \overline{\|\hat g\|^2}\bigr)}

        \mu', \alpha' = \text{SingleStep}(C, D, h_{min}, h_{max}), \qquad
        \mu_t = \overline{\mu'}_t, \qquad
        \alpha_t = \min\Bigl(\overline{\alpha'}_t \min\bigl(1, \tfrac{t + 1}{10 w}\bigr),\
        \frac{M}{\|\hat g_t\|}\Bigr)

        v_t = \mu_t v_{t-1} + \alpha_t \tilde g_t, \qquad u_t = v_t, \qquad
        \tilde g_t = \hat g_t \min\bigl(1, \sqrt{h_{max,t-1}} / \|\hat g_t\|\bigr)

    (:func:`single_step`; the window holds the last :math:`w` values, fewer in the first
    steps; :math:`f` = ``stat_protect_factor``, :math:`M` = ``max_move``). The
    parameters follow the paper's heavy ball
    :math:`x_{t+1} = x_t - \alpha_t \tilde g_t + \mu_t (x_t - x_{t-1})` with
    ``scale_by_learning_rate(1.0)`` after it. The statistics are those of the whole
    parameter tree, in float32; the state logs :math:`\mu_t` and the rate on :math:`g`,
    :math:`\alpha_t / s`. Each safeguard is an option; with ``scale_invariant``,
    ``log_curvature``, ``slow_start``, ``adaptive_clip`` False and ``max_move=None`` this
    is Algorithm 1 as printed (:math:`s = 1`, linear averages of the window's extremes).

    **Scale.** :math:`h = \|g\|^2` stands for a curvature, so the paper's tuned rate is
    in units of :math:`1/\|g\|^2` and its step :math:`\approx g / \|g\|^2` shrinks as the
    loss grows: a loss scaled by :math:`c` takes steps :math:`1/c` as long. The references'
    safeguards alone leave this (the MNIST-1D MLP of experiment E3, 500 steps from a loss
    of 2.41: 1.4e4 with the loss scaled by 1e-6, 2.48 by 1e-2, 2.409 by 1e6). Measuring
    :math:`g` in units of :math:`s` (``scale_invariant``, this library's, not theirs)
    makes the steps of :math:`c \cdot` loss those of the loss up to rounding (there: 1.13
    at every scale), and :math:`\|g\|` is scaled before it is squared, so
    :math:`\|g\|` from 1e-30 to 1e30 neither overflows nor vanishes. The first step is
    :math:`g_0 / (10 w \|g_0\|)`. The units of the parameters still count: a
    reparametrisation :math:`x \to k x` changes the run.

    **Noiseless problems.** The estimates are built for stochastic gradients. On a
    deterministic quadratic the variance vanishes as the run converges and
    :math:`\|g\|^2` no longer tracks a curvature: the run converges fast at first
    (:math:`\operatorname{diag}(100, 10, 1)` from ones: 7e-19 of the initial loss at step
    500, 5e-30 at 1,000, never above it), but the tuned rate grows as :math:`\|g\|`
    vanishes, until it destabilises the run (50 curvatures from 100 to 0.01: 1e-11 at
    step 10,000, above the initial loss from about step 14,300 to 27,200, peaking near
    7e3 times it, then converging anew, 4e-27 at step 30,000: a cycle, without NaN).
    ``non_increasing_step=True`` removes the blow-up (no loss above the initial one in
    40,000 steps), with a slower tail, and costs the MNIST-1D MLP of experiment E3
    65% validation accuracy after its 4,000 steps against 72% (3 seeds): hence off.

    Safeguards, from JianGoForIt/YellowFin (TensorFlow, ``tuner_utils/yellowfin.py``) and
    JianGoForIt/YellowFin_Pytorch (``tuner_utils/yellowfin.py``):

    - ``log_curvature``: :math:`h_{min}, h_{max}` averaged in log space (their
      ``h_min_log_smooth``, ``h_max_log_smooth``, on in both), which follows curvatures
      spanning decades and keeps the window overflow-free (it always holds logs).
    - ``slow_start``: the rate used times :math:`\min(1, (t + 1) / (10 w))`
      (``get_lr_tensor``, ``get_lr``; theirs ramps SingleStep's rate, which is the rate
      used by default, and here ramping the smoothed one keeps the ramp :math:`10 w` steps
      long: inside the smoothing it would last about a thousand).
    - ``adaptive_clip``: for :math:`t \ge 1` the gradient is clipped to
      :math:`\sqrt{f h_{max,t-1}}` before the statistics see it (``stat_protect_fac``) and
      to :math:`\sqrt{h_{max,t-1}}` for the step when it is larger (TensorFlow's
      ``use_adapt_grad_clip``, the port's ``adapt_clip``).
    - ``max_move``: :math:`\alpha_t \|\hat g_t\| \le M` (the port's
      ``catastrophic_move_thresh``), ``None`` to disable.
    - ``sparsity_debias``: :math:`h_{min}, h_{max}, C` times the smoothed fraction of
      nonzero gradient entries, :math:`D` over its root (``grad_sparsity``; off in both).
    - ``non_increasing_step``: after :math:`w` steps, :math:`\alpha_t` at most twice the
      least smoothed :math:`\alpha \|\hat g\|` seen over the smoothed :math:`\|\hat g\|`
      (the port's ``force_non_inc_step``; off there), smoothed in log space and here
      debiased from the step it starts at (the port divides by :math:`1 - \beta^{t+1}`).
    - zero-debiasing (their ``zero_debias=True``), here of :math:`\mu, \alpha` too: their
      smoothing of the tuned values starts from given values (paper: learning rate 1,
      momentum 0) and their step 0 is not tuned; here step 0 uses its own tuned values.
      ``smooth_tuned`` keeps the paper's smoothing of :math:`\mu, \alpha`, which both
      codes leave off by default (``use_unsmoothed_lr_mu=True``; the port's SGD reads
      ``_lr_t``, ``_mu_t``): with it off, the noiseless quadratic above stalls, between
      1e-8 and 1e-3 of its initial loss from step 500 on, with :math:`\mu \to 1` (the
      MLP's accuracy is the same within its seeds).
    - Not taken: their restore of a saved copy on a NaN (wrap it in
      ``optax.apply_if_finite``), their :math:`\epsilon = 10^{-6}` added in several places
      (here ``eps`` only floors :math:`C, h_{min}` and the window, in units of :math:`s`).

    The window holds :math:`w` values, as theirs does (the pseudo-code's
    :math:`t - w \le i \le t` has :math:`w + 1`), as a shift register (oldest first),
    which keeps cycling after the step count saturates at :math:`2^{31} - 1`.

    Args:
        beta: :math:`\beta`, the smoothing of every estimate, a constant in [0, 1).
        curvature_window: :math:`w`, the number of recent :math:`\|g\|^2` the curvature
            range looks at, an integer >= 1. It sets the window's shape: under
            ``optax.inject_hyperparams`` it is read when the state is made and from the
            window after that.
        eps: :math:`\epsilon`, the floor of :math:`C`, :math:`h_{min}` and the window,
            and the guard of the distance's division, a float > 0.
        scale_invariant: measure :math:`g` in units of the first nonzero :math:`\|g\|`.
        log_curvature: average the curvature range in log space.
        smooth_tuned: use the smoothed :math:`\mu, \alpha` (the paper) rather than
            SingleStep's values of the step.
        slow_start: ramp the tuned rate up over the first :math:`10 w` steps.
        adaptive_clip: clip exploding gradients against :math:`h_{max}`.
        stat_protect_factor: :math:`f`, a float > 0 (default 100, as theirs).
        max_move: :math:`M`, the longest step :math:`\alpha_t \|\hat g_t\|`, a float > 0
            or ``None``.
        sparsity_debias: correct the estimates for sparse gradients.
        non_increasing_step: keep the step length from growing.
        accumulator_dtype: dtype of the velocity and the gradient average; ``None``
            keeps the parameters'.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`YellowFinState`. A state
        saved in the legacy layout (before these safeguards) continues through
        :meth:`YellowFinState.from_legacy`.

    Example:
        >>> import jax.numpy as jnp
        >>> import momentum_optax as mo
        >>> opt = mo.scale_by_yellowfin()
        >>> state = opt.init(jnp.zeros(2))
        >>> u, state = opt.update(jnp.array([3.0, 4.0]), state)
        >>> u, float(state.scale)  # g / (10 w ||g||)
        (Array([0.003, 0.004], dtype=float32), 5.0)

    References:
        Zhang & Mitliagkas, *YellowFin and the Art of Momentum Tuning*, SysML 2019;
        their code, JianGoForIt/YellowFin and JianGoForIt/YellowFin_Pytorch,
        ``tuner_utils/yellowfin.py``.
    """
    _coefficients.check_coefficient("beta", beta, allow_one=False, allow_schedule=False)
    known_window = _coefficients.structural_int("curvature_window", curvature_window)
    _positive("eps", eps)
    _positive("stat_protect_factor", stat_protect_factor)
    _positive("max_move", max_move, allow_none=True)
    flags = dict(
        scale_invariant=scale_invariant,
        log_curvature=log_curvature,
        smooth_tuned=smooth_tuned,
        slow_start=slow_start,
        adaptive_clip=adaptive_clip,
        sparsity_debias=sparsity_debias,
        non_increasing_step=non_increasing_step,
    )
    for name, flag in flags.items():
        _coefficients.check_bool(name, flag)
    accumulator_dtype = _coefficients.check_accumulator_dtype(
        "accumulator_dtype", accumulator_dtype
    )

    def init_fn(params: optax.Params) -> YellowFinState:
        if known_window is None:
            raise _coefficients.traced_shape_error("curvature_window", "scale_by_yellowfin")

        def zeros() -> optax.Params:
            return optax.tree.zeros_like(params, dtype=accumulator_dtype)

        return YellowFinState(  # every field its own buffer (a donated step needs that)
            count=jnp.zeros([], jnp.int32),
            velocity=zeros(),
            grad_avg=zeros(),
            window=jnp.zeros([known_window], jnp.float32),
            averages=jnp.zeros([layout.AVERAGES], jnp.float32),
            scale=jnp.full([], 0.0 if scale_invariant else 1.0, jnp.float32),
            learning_rate=jnp.zeros([], jnp.float32),
            momentum=jnp.zeros([], jnp.float32),
        )

    def update_fn(
        updates: optax.Updates, state: YellowFinState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, YellowFinState]:
        del params
        _tree.check_inputs(updates, state, YellowFinState, "scale_by_yellowfin", "velocity")
        w = state.window.shape[0]  # the window's size: the buffer's (a traced w is not one)
        if known_window is not None:
            _tree.check_made_alike(state, "scale_by_yellowfin", "curvature_window", w, known_window)
        options = stats.Options(
            log_curvature,
            smooth_tuned,
            slow_start,
            sparsity_debias,
            non_increasing_step,
            _coefficients.value_at(beta, None),
            _coefficients.value_at(eps, None),
        )
        t, avg = state.count, state.averages

        # the gradient in units of s, the first nonzero ||g|| (1 without scale_invariant)
        peak, root = stats.norm_parts(updates)
        scale = state.scale
        if scale_invariant:
            scale = jnp.where(scale > 0, scale, peak * root)
        divisor = jnp.where(scale > 0, scale, 1.0)
        norm = (peak / divisor) * root
        # the previous step's h_max (with its density), which the clipping compares with
        previous = jnp.where(avg[layout.CORRECTION] > 0, avg[layout.CORRECTION], 1.0)
        h_max_before = stats.curvature(avg[layout.H_MAX] / previous, options)
        if sparsity_debias:
            h_max_before = h_max_before * avg[layout.DENSITY] / previous
        protect = jnp.ones([], jnp.float32)
        if adaptive_clip:  # keeps an exploding gradient out of the statistics
            limit = jnp.sqrt(_coefficients.value_at(stat_protect_factor, None) * h_max_before)
            protect = jnp.where((t > 0) & (norm > limit), limit / norm, 1.0)
            norm = norm * protect
        factor = (protect / divisor).astype(jnp.float32)  # g / s, protected
        # the scalars are computed once, not fused into (and redone for) every entry
        factor = jax.lax.optimization_barrier(factor)

        grad_avg, average_squared, density = stats.new_average(
            updates, state.grad_avg, options.beta, factor, density=sparsity_debias
        )
        window = jnp.concatenate(
            [state.window[1:], stats.log_plus_eps(2 * jnp.log(norm), options.eps)[None]]
        ).astype(jnp.float32)
        averages, lr, mu = stats.tune(avg, window, t, norm, average_squared, density, options)
        if non_increasing_step:
            averages, lr = stats.non_increasing(averages, t, w, norm, lr, options)
        if max_move is not None:
            move = _coefficients.value_at(max_move, None)
            lr = jnp.where(lr * norm > move, move / norm, lr)
        step = jnp.ones([], jnp.float32)
        if adaptive_clip:  # the step's gradient at most as long as sqrt(h_max) of before
            limit = jnp.sqrt(h_max_before)
            step = jnp.where((t > 0) & (norm > limit), limit / norm, 1.0)
        rate, mu = jax.lax.optimization_barrier(
            ((lr * factor * step).astype(jnp.float32), mu.astype(jnp.float32))
        )
        updates, velocity = _tree.leafwise(
            lambda g, v: (mu.astype(v.dtype) * v + rate.astype(g.dtype) * g,) * 2,
            updates,
            state.velocity,
        )
        return updates, YellowFinState(
            count=optax.safe_increment(t),
            velocity=velocity,
            grad_avg=grad_avg,
            window=window,
            averages=averages,
            scale=scale.astype(jnp.float32),
            learning_rate=(lr / divisor).astype(jnp.float32),
            momentum=mu,
        )

    return optax.GradientTransformation(init_fn, update_fn)


def yellowfin(
    learning_rate: ScalarOrSchedule = 1.0,
    *,
    beta: float = 0.999,
    curvature_window: int = 20,
    eps: float = 1e-12,
    scale_invariant: bool = True,
    log_curvature: bool = True,
    smooth_tuned: bool = True,
    slow_start: bool = True,
    adaptive_clip: bool = True,
    stat_protect_factor: float = 100.0,
    max_move: float | None = 100.0,
    sparsity_debias: bool = False,
    non_increasing_step: bool = False,
    accumulator_dtype: DTypeLike | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""YellowFin as an optimizer: ``chain(scale_by_yellowfin(...),
    scale_by_learning_rate(learning_rate))``.

    .. math::  x_{t+1} = x_t - \eta_t v_t, \qquad v_t = \mu_t v_{t-1} + \alpha_t \tilde g_t

    with :math:`\alpha_t, \mu_t` tuned online and :math:`\tilde g_t` the gradient in
    units of the first one, clipped (:func:`scale_by_yellowfin`, which documents every
    option and the safeguards of the authors' code they follow). The ``learning_rate``
    :math:`\eta` is a factor on the tuned rate (the reference implementations'
    ``lr_factor``): the default 1.0 is YellowFin untuned, a schedule decays the tuned
    rate.

    Args:
        learning_rate: :math:`\eta`, the factor on the tuned learning rate, a finite
            float >= 0 or a schedule (default 1.0).
        beta: smoothing of every estimate, in [0, 1).
        curvature_window: number of recent squared gradient norms for the curvature
            range, >= 1.
        eps: floor of the variance, the curvature and the window, > 0.
        scale_invariant: measure the gradient in units of the first nonzero one.
        log_curvature: average the curvature range in log space.
        smooth_tuned: use the smoothed tuned values (the paper's).
        slow_start: ramp the tuned rate over the first ``10 * curvature_window`` steps.
        adaptive_clip: clip exploding gradients against the curvature range.
        stat_protect_factor: the statistics see gradients up to ``sqrt(factor * h_max)``.
        max_move: the longest step of the tuned rate, or ``None``.
        sparsity_debias: correct the estimates for sparse gradients.
        non_increasing_step: keep the step length from growing.
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
        >>> update = jax.jit(opt.update)
        >>> for _ in range(200):
        ...     updates, state = update(jax.grad(loss)(w), state)
        ...     w = optax.apply_updates(w, updates)
        >>> bool(loss(w) < 1e-12), round(float(state[0].momentum), 2)  # the tuned momentum
        (True, 0.77)

    References:
        Zhang & Mitliagkas, *YellowFin and the Art of Momentum Tuning*, SysML 2019.
    """
    _coefficients.check_nonnegative("learning_rate", learning_rate)
    return _tree.chain(
        scale_by_yellowfin(
            beta=beta,
            curvature_window=curvature_window,
            eps=eps,
            scale_invariant=scale_invariant,
            log_curvature=log_curvature,
            smooth_tuned=smooth_tuned,
            slow_start=slow_start,
            adaptive_clip=adaptive_clip,
            stat_protect_factor=stat_protect_factor,
            max_move=max_move,
            sparsity_debias=sparsity_debias,
            non_increasing_step=non_increasing_step,
            accumulator_dtype=accumulator_dtype,
        ),
        scaling.scale_by_learning_rate(learning_rate),
        owner="yellowfin",
    )
