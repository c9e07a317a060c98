"""Bad input fails loudly at construction; mismatched updates fail with the path named."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers
from tests.helpers import PARAMS

NAN, INF = float("nan"), float("inf")
TRACE = mo.trace(0.9)

# (call, exception, argument named, value shown)
BAD_CONSTRUCTIONS = [
    (lambda: mo.trace(NAN), ValueError, "decay", "nan"),
    (lambda: mo.trace(INF), ValueError, "decay", "inf"),
    (lambda: mo.trace(-0.1), ValueError, "decay", "-0.1"),
    (lambda: mo.trace(1.5), ValueError, "decay", "1.5"),
    (lambda: mo.trace("0.9"), TypeError, "decay", "'0.9'"),
    (lambda: mo.trace(None), TypeError, "decay", "None"),
    (lambda: mo.trace(True), TypeError, "decay", "True"),
    (lambda: mo.trace(np.array([0.9, 0.9])), TypeError, "decay", "array"),
    (lambda: mo.trace(0.9, nesterov="yes"), TypeError, "nesterov", "'yes'"),
    (lambda: mo.trace(0.9, accumulator_dtype=jnp.int32), TypeError, "accumulator_dtype", "int32"),
    (lambda: mo.trace(0.9, accumulator_dtype=bool), TypeError, "accumulator_dtype", "bool"),
    (lambda: mo.trace(0.9, accumulator_dtype="float33"), TypeError, "accumulator_dtype", "float33"),
    (lambda: mo.ema(1.0, debias=True), ValueError, "decay", "1.0"),
    (lambda: mo.ema(np.float32(-1)), ValueError, "decay", "-1"),
    (lambda: mo.ema(0.9, debias=1), TypeError, "debias", "1"),
    (lambda: mo.ema(0.9, accumulator_dtype=jnp.uint8), TypeError, "accumulator_dtype", "uint8"),
    (lambda: mo.delta_momentum(2.0), ValueError, "momentum", "2.0"),
    (lambda: mo.delta_momentum(NAN), ValueError, "momentum", "nan"),
    (lambda: mo.periodic_reset(TRACE, 0), ValueError, "every", "0"),
    (lambda: mo.periodic_reset(TRACE, -3), ValueError, "every", "-3"),
    (lambda: mo.periodic_reset(TRACE, 2.5), TypeError, "every", "2.5"),
    (lambda: mo.periodic_reset(TRACE, True), TypeError, "every", "True"),
    (lambda: mo.periodic_reset("trace", 3), TypeError, "inner", "'trace'"),
    (lambda: mo.schedules.linear_to_one(1.2, 10), ValueError, "start", "1.2"),
    (lambda: mo.schedules.linear_to_one(0.5, 0), ValueError, "total_steps", "0"),
    (lambda: mo.schedules.linear_to_one(0.5, 10.0), TypeError, "total_steps", "10.0"),
    (lambda: mo.schedules.anneal(0.5, 1.1, steps=10), ValueError, "end", "1.1"),
    (lambda: mo.schedules.anneal(NAN, 0.9, steps=10), ValueError, "start", "nan"),
    (lambda: mo.sgd(None), TypeError, "learning_rate", "None"),
    (lambda: mo.sgd(-0.1), ValueError, "learning_rate", "-0.1"),
    (lambda: mo.sgd(NAN), ValueError, "learning_rate", "nan"),
    (lambda: mo.sgd(INF), ValueError, "learning_rate", "inf"),
    (lambda: mo.sgd("0.1"), TypeError, "learning_rate", "'0.1'"),
    (lambda: mo.sgd(0.1, 1.5), ValueError, "momentum", "1.5"),
    (lambda: mo.sgd(0.1, jnp.asarray(1.5)), ValueError, "momentum", "Array(1.5"),
    (lambda: mo.sgd(jnp.float32(-0.1)), ValueError, "learning_rate", "Array(-0.1"),
    (lambda: mo.sgd(0.1, 0.9, ema="no"), TypeError, "ema", "'no'"),
    (lambda: mo.sgd(0.1, 0.9, reset_every=0), ValueError, "reset_every", "0"),
    (lambda: mo.sgd(0.1, 0.9, reset_every=1.5), TypeError, "reset_every", "1.5"),
    (lambda: mo.qhm(1.5, 0.9), ValueError, "nu", "1.5"),
    (lambda: mo.qhm(0.7, NAN), ValueError, "decay", "nan"),
    (lambda: mo.qhadam(-1.0), ValueError, "learning_rate", "-1.0"),
    (lambda: mo.qhadam(0.1, b1=1.0), ValueError, "b1", "1.0"),
    (lambda: mo.qhadam(0.1, eps=-1e-8), ValueError, "eps", "-1e-08"),
    (lambda: mo.aggmo(()), TypeError, "decays", "()"),
    (lambda: mo.aggmo("0.9"), TypeError, "decays", "'0.9'"),
    (lambda: mo.aggmo((0.9, 2.0)), ValueError, "decays[1]", "2.0"),
    (lambda: mo.sma(0), ValueError, "window", "0"),
    (lambda: mo.sma(2.5), TypeError, "window", "2.5"),
    (lambda: mo.adaptive_restart("trace"), TypeError, "inner", "'trace'"),
    (lambda: mo.adaptive_restart(TRACE, scheme="sometimes"), ValueError, "scheme", "'sometimes'"),
    (lambda: mo.torch_sgd(None), TypeError, "learning_rate", "None"),
    (lambda: mo.torch_sgd(0.1, 0.9, dampening=1.5), ValueError, "dampening", "1.5"),
    (lambda: mo.torch_sgd(0.1, 0.9, dampening=lambda t: 0.1), TypeError, "dampening", "lambda"),
    (lambda: mo.torch_sgd(0.1, weight_decay=-1.0), ValueError, "weight_decay", "-1.0"),
    (lambda: mo.torch_sgd(0.1, maximize="yes"), TypeError, "maximize", "'yes'"),
    (lambda: mo.schedules.sutskever(1.5), ValueError, "max_momentum", "1.5"),
    (lambda: mo.schedules.sutskever(0.9, period=0), ValueError, "period", "0"),
    (lambda: mo.schedules.demon(1.0, 10), ValueError, "start", "1.0"),
    (lambda: mo.schedules.demon(0.9, 0), ValueError, "total_steps", "0"),
    (lambda: mo.schedules.inverse_cycle(1), ValueError, "total_steps", "1"),
    (lambda: mo.schedules.inverse_cycle(100, pct_start=0.0), ValueError, "pct_start", "0.0"),
    (
        lambda: mo.schedules.inverse_cycle(100, anneal_strategy="cosine"),
        ValueError,
        "anneal_strategy",
        "'cosine'",
    ),
    (lambda: mo.tuning.heavy_ball(1.0, 2.0), ValueError, "mu", "2.0"),
    (lambda: mo.tuning.nesterov("big", 1.0), TypeError, "L", "'big'"),
    (lambda: mo.fused_sgd(0.1, 0.0), ValueError, "momentum", "0"),
    (lambda: mo.schedules.anneal(lambda t: 0.5, 0.9, steps=10), TypeError, "start", "callable"),
    (
        lambda: mo.schedules.inverse_cycle(100, max_momentum=lambda t: 0.9),
        TypeError,
        "max_momentum",
        "callable",
    ),
    (lambda: mo.qhadam(0.1, b1=lambda t: 0.9), TypeError, "b1", "callable"),
    (lambda: mo.qhadam(0.1, eps=lambda t: 1e-8), TypeError, "eps", "callable"),
    (lambda: mo.periodic_reset(TRACE, 2**31), ValueError, "every", "2147483648"),
    (lambda: mo.periodic_reset(TRACE, 2.5), TypeError, "every", "2.5"),
    (lambda: mo.tuning.heavy_ball(NAN, 1.0), ValueError, "L", "nan"),
    (lambda: mo.scale_by_yellowfin(beta=1.0), ValueError, "beta", "1.0"),
    (lambda: mo.scale_by_yellowfin(beta=NAN), ValueError, "beta", "nan"),
    (lambda: mo.scale_by_yellowfin(beta=lambda t: 0.9), TypeError, "beta", "callable"),
    (lambda: mo.scale_by_yellowfin(curvature_window=0), ValueError, "curvature_window", "0"),
    (lambda: mo.scale_by_yellowfin(curvature_window=2.0), TypeError, "curvature_window", "2.0"),
    (lambda: mo.scale_by_yellowfin(eps=0.0), ValueError, "eps", "0.0"),
    (lambda: mo.scale_by_yellowfin(eps=INF), ValueError, "eps", "inf"),
    (lambda: mo.scale_by_yellowfin(eps="1e-12"), TypeError, "eps", "'1e-12'"),
    (
        lambda: mo.scale_by_yellowfin(accumulator_dtype=jnp.int8),
        TypeError,
        "accumulator_dtype",
        "int8",
    ),
    (lambda: mo.yellowfin(-1.0), ValueError, "learning_rate", "-1.0"),
    (lambda: mo.yellowfin(None), TypeError, "learning_rate", "None"),
    (lambda: mo.srsgd(NAN), ValueError, "learning_rate", "nan"),
    (lambda: mo.srsgd(0.1, restart_every=0), ValueError, "restart_every", "0"),
    (lambda: mo.srsgd(0.1, restart_every="40"), TypeError, "restart_every", "'40'"),
    (lambda: mo.srsgd(0.1, accumulator_dtype="int32"), TypeError, "accumulator_dtype", "int32"),
    (lambda: mo.cautious(mo.trace), TypeError, "inner", "function"),
    (lambda: mo.cautious("trace"), TypeError, "inner", "'trace'"),
    (lambda: mo.cautious(TRACE, flip_sign="yes"), TypeError, "flip_sign", "'yes'"),
    (lambda: mo.schedules.nesterov_sequence(0.0), ValueError, "r", "0.0"),
    (lambda: mo.schedules.nesterov_sequence(NAN), ValueError, "r", "nan"),
    (lambda: mo.schedules.nesterov_sequence("3"), TypeError, "r", "'3'"),
    (lambda: mo.fused_sgd(0.1, 0.9, chunk_size=0), ValueError, "chunk_size", "0"),
    (lambda: mo.train_step("loss", mo.sgd(0.1)), TypeError, "loss_fn", "'loss'"),
    (lambda: mo.train_step(lambda p: 0.0, "sgd"), TypeError, "optimizer", "'sgd'"),
    (lambda: mo.train_step(lambda p: 0.0, mo.sgd(0.1), donate="yes"), TypeError, "donate", "'yes'"),
    (lambda: mo.train_step(lambda p: 0.0, mo.sgd(0.1), metrics=3), TypeError, "metrics", "3"),
]


@pytest.mark.parametrize(
    "call,exception,argument,shown",
    BAD_CONSTRUCTIONS,
    ids=[f"{a}={v}" for _, _, a, v in BAD_CONSTRUCTIONS],
)
def test_bad_argument_is_rejected_at_construction_naming_it(call, exception, argument, shown):
    with pytest.raises(exception) as info:
        call()
    message = str(info.value)
    assert message.startswith(argument + " must be"), message
    assert shown in message, message
    assert re.search(
        r"\[0, 1\]|\[0, 1\)|\(0, 1\)|>= 1|>= 2|>= 0|dtype|True or False|"
        r"GradientTransformation|one of|'cos' or|\(0, L\]|finite float|non-empty|> 0|callable",
        message,
    ), message


def test_anneal_requires_its_steps_by_keyword():
    # steps by position is deprecated (tests/test_schedules.py), not refused, until 0.3
    with pytest.raises(TypeError, match="keyword-only argument: 'steps'"):
        mo.schedules.anneal(0.5, 0.9)


VALID_EDGES = {
    "trace_zero": lambda: mo.trace(0.0),
    "trace_one": lambda: mo.trace(1.0),
    "ema_one": lambda: mo.ema(1.0),
    "ema_numpy_debias": lambda: mo.ema(np.float32(0.5), debias=True),
    "trace_jax_array": lambda: mo.trace(jnp.asarray(0.9)),
    "delta_momentum_int_zero": lambda: mo.delta_momentum(0),
    "periodic_reset_numpy_int": lambda: mo.periodic_reset(TRACE, np.int64(4)),
    "sgd_zero_learning_rate": lambda: mo.sgd(0.0),
    "sgd_schedules": lambda: mo.sgd(optax.constant_schedule(0.1), lambda t: 0.9),
    "periodic_reset_int32_max": lambda: mo.periodic_reset(TRACE, 2**31 - 1),
}


@pytest.mark.parametrize("call", VALID_EDGES.values(), ids=VALID_EDGES.keys())
def test_valid_edge_values_are_accepted(call):
    assert isinstance(call(), optax.GradientTransformation)


def test_concrete_values_are_range_checked_and_traced_ones_are_used_as_given():
    # the same out-of-range value: rejected when it can be read (a Python or NumPy number,
    # a concrete jax.Array), accepted unchecked as a tracer, and then used as given
    for concrete in (1.5, np.float32(1.5), np.asarray(1.5), jnp.asarray(1.5)):
        with pytest.raises(ValueError, match=r"decay must be in \[0, 1\]; got .*1\.5"):
            mo.trace(concrete)

    @jax.jit
    def two_updates(decay):
        opt = mo.trace(decay)
        _, state = opt.update(jnp.ones(2), opt.init(jnp.zeros(2)))
        return opt.update(jnp.ones(2), state)[0]

    np.testing.assert_allclose(two_updates(1.5), 1.0 + 1.5 * 1.0)


def test_a_jax_array_momentum_keeps_a_buffer_whatever_its_value():
    # the state's structure never depends on a jax.Array's value: no momentum keeps no
    # buffer, a zero array keeps one (as under inject_hyperparams), with the same updates
    assert jax.tree.leaves(mo.sgd(0.1).init(PARAMS)) == []
    as_array = mo.sgd(0.1, jnp.float32(0.0))
    traces = optax.tree.get_all_with_path(as_array.init(PARAMS), "trace")
    assert len(traces) == 1
    chex.assert_trees_all_equal(traces[0][1], optax.tree.zeros_like(PARAMS))
    grads = [helpers.grads(seed) for seed in range(3)]
    with_buffer, _ = helpers.run_updates(as_array, grads, PARAMS)
    without, _ = helpers.run_updates(mo.sgd(0.1), grads, PARAMS)
    chex.assert_trees_all_close(with_buffer, without, rtol=1e-6)
    chex.assert_trees_all_close(without, jax.tree.map(lambda g: -0.1 * g, grads), rtol=1e-6)


def test_tuning_accepts_numpy_and_jax_scalars():
    eigenvalues = np.linalg.eigvalsh(np.diag([1.0, 100.0]).astype(np.float32))
    from_numpy = mo.tuning.nesterov(eigenvalues.max(), eigenvalues.min())
    from_jax = mo.tuning.nesterov(jnp.float32(100.0), jnp.float32(1.0))
    assert from_numpy == from_jax == mo.tuning.nesterov(100.0, 1.0)


# --- traced hyper-parameters: not checked in Python, and used as the formula says ---

STEPS = 6


def test_traced_decay_under_inject_hyperparams_follows_the_trace_formula():
    # the injected decay is an array (a tracer in the jitted update): no tracer error, and
    # the buffer follows m_t = g_t + 0.9 m_{t-1} step after step
    grads = helpers.random_steps(0, STEPS, (3,))
    opt = optax.inject_hyperparams(mo.trace)(decay=0.9)
    got, _ = helpers.run_updates(opt, list(grads), jnp.zeros(3), jit=True)
    want = helpers.np_trace(grads.astype(np.float64), np.full(STEPS + 1, 0.9))
    chex.assert_trees_all_close(np.stack(got), want, rtol=1e-5, atol=1e-6)


def test_vmapped_momentum_follows_the_heavy_ball_formula_for_each_value():
    momenta = np.array([0.0, 0.5, 0.9], np.float32)
    grads = helpers.random_steps(1, STEPS, (2,))

    def updates(momentum):
        return jnp.stack(helpers.run_updates(mo.sgd(0.1, momentum), list(grads), jnp.zeros(2))[0])

    got = jax.jit(jax.vmap(updates))(jnp.asarray(momenta))
    for i, beta in enumerate(momenta.tolist()):
        want = -0.1 * helpers.np_trace(grads.astype(np.float64), np.full(STEPS + 1, beta))
        chex.assert_trees_all_close(got[i], want, rtol=1e-5, atol=1e-6)


def _np_torch_sgd(grads, p0, lr, momentum=0.0, dampening=0.0, weight_decay=0.0):
    """torch.optim.SGD: d = g + wd p; b_0 = d_0, b_t = mu b_{t-1} + (1 - dampening) d_t;
    p -= lr b. The parameters after each step."""
    p, buf, out = p0.astype(np.float64), None, []
    for g in grads.astype(np.float64):
        d = g + weight_decay * p
        buf = d if buf is None else momentum * buf + (1 - dampening) * d
        p = p - lr * buf
        out.append(p)
    return np.stack(out)


def _np_heavy_ball(grads, p0, lr, momenta):
    """p -= lr m_t, m_t = g_t + b_t m_{t-1}. The parameters after each step."""
    steps = helpers.np_trace(grads.astype(np.float64), np.append(momenta, 0.0))
    return p0.astype(np.float64) - lr * np.cumsum(steps, axis=0)


INJECTED = {
    "torch_sgd": (
        lambda: optax.inject_hyperparams(mo.torch_sgd)(learning_rate=0.1, momentum=0.9),
        lambda g, p0: _np_torch_sgd(g, p0, 0.1, 0.9),
    ),
    "torch_sgd_all_traced": (
        lambda: optax.inject_hyperparams(mo.torch_sgd)(
            learning_rate=0.1, momentum=0.5, dampening=0.5, weight_decay=0.1
        ),
        lambda g, p0: _np_torch_sgd(g, p0, 0.1, 0.5, 0.5, 0.1),
    ),
    # inject_hyperparams reads the schedule at its own count and passes the value
    "sgd_scheduled_from_zero": (
        lambda: optax.inject_hyperparams(mo.sgd)(
            learning_rate=0.1, momentum=optax.linear_schedule(0.0, 0.9, 10)
        ),
        lambda g, p0: _np_heavy_ball(g, p0, 0.1, np.minimum(np.arange(STEPS) / 10, 1) * 0.9),
    ),
    "sgd_zero": (
        lambda: optax.inject_hyperparams(mo.sgd)(learning_rate=0.1, momentum=0.0),
        lambda g, p0: _np_heavy_ball(g, p0, 0.1, np.zeros(STEPS)),
    ),
}


@pytest.mark.parametrize("make,formula", INJECTED.values(), ids=INJECTED.keys())
def test_inject_hyperparams_under_jit_follows_the_formula(make, formula):
    grads = helpers.random_steps(2, STEPS, (3,))
    p0 = np.array([1.0, -2.0, 0.5], np.float32)
    run = helpers.descend(make(), jnp.asarray(p0), STEPS, helpers.given(list(grads)))
    chex.assert_trees_all_close(run.history, formula(grads, p0), rtol=1e-5, atol=1e-6)


# --- mismatched updates, for every transformation of the table ---

_KERNEL, _BIAS = jnp.ones((3, 4)), jnp.ones(4)
MISMATCHES = [
    ({"dense": {"kernel": _KERNEL, "bias": _BIAS}}, r"missing \['scale'\]"),
    (
        {"dense": {"kernel": _KERNEL, "bias": _BIAS}, "scale": jnp.ones(()), "extra": jnp.ones(1)},
        r"unexpected \['extra'\]",
    ),
    (
        {"dense": {"kernel": _KERNEL, "b": _BIAS}, "scale": jnp.ones(())},
        r"missing \['dense'\]\['bias'\].*unexpected \['dense'\]\['b'\]",
    ),
    ([_BIAS, _KERNEL, jnp.ones(())], r"missing .*unexpected"),
    (
        {"dense": {"kernel": jnp.ones((4, 3)), "bias": _BIAS}, "scale": jnp.ones(())},
        r"\['dense'\]\['kernel'\] has shape \(4, 3\).*\(3, 4\)",
    ),
    (
        {"dense": {"kernel": jnp.ones((1, 4)), "bias": _BIAS}, "scale": jnp.ones(())},
        r"\['dense'\]\['kernel'\] has shape \(1, 4\)",
    ),
    (
        {"dense": {"kernel": _KERNEL, "bias": jnp.ones(())}, "scale": jnp.ones(())},
        r"\['dense'\]\['bias'\] has shape \(\)",
    ),
    (
        {"dense": {"kernel": _KERNEL, "bias": _BIAS}, "scale": jnp.ones(1)},
        r"\['scale'\] has shape \(1,\) but \w+State\.\w+",
    ),
]

# rows that keep a per-parameter buffer and see the updates as given (plain sgd and the
# learning rate keep none, a step count at most: nothing can broadcast; a wrapper hands on
# updates it has masked or accumulated)
STATEFUL = [
    row
    for row in helpers.ALL_TRANSFORMS
    if any(jnp.issubdtype(x.dtype, jnp.floating) for x in jax.tree.leaves(row.make().init(PARAMS)))
    and not row.wrapped
]


@pytest.mark.parametrize("row", STATEFUL, ids=repr)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_mismatched_updates_raise_naming_the_path(row, jit):
    opt = row.make()
    state = opt.init(PARAMS)
    update = jax.jit(opt.update) if jit else opt.update
    for updates, pattern in MISMATCHES:
        with pytest.raises(ValueError, match=pattern):
            update(updates, state)


# each state's field that the updates are checked against, as the message names it
CHECKED_FIELDS = {
    "trace": (lambda: mo.trace(0.9), "TraceState.trace"),
    "ema": (lambda: mo.ema(0.9, debias=True), "EmaState.ema"),
    "delta_momentum": (lambda: mo.delta_momentum(0.5), "DeltaMomentumState.previous_delta"),
    "sma": (lambda: mo.sma(3), "SmaState.buffer (one slot)"),
    "qhm": (lambda: mo.qhm(0.7, 0.9), "QhmState.ema"),
    "aggmo": (lambda: mo.aggmo((0.5, 0.9)), "AggMoState.velocities[0]"),
    "scale_by_qhadam": (lambda: mo.scale_by_qhadam(), "QhAdamState.first_moment"),
    "torch_sgd": (lambda: mo.torch_sgd(0.1, 0.9), "TorchMomentumState.momentum_buffer"),
    "periodic_reset": (lambda: mo.periodic_reset(mo.ema(0.9), 3), "EmaState.ema"),
}


@pytest.mark.parametrize("make,field", CHECKED_FIELDS.values(), ids=CHECKED_FIELDS.keys())
def test_mismatch_messages_name_the_state_type_and_field(make, field):
    opt = make()
    state = opt.init(PARAMS)
    with pytest.raises(ValueError) as structure:
        opt.update({"dense": PARAMS["dense"]}, state)
    assert str(structure.value).startswith(
        f"the structure of updates differs from {field}: missing ['scale']"
    ), structure.value
    wrong_shape = {**PARAMS, "scale": jnp.ones(2)}
    with pytest.raises(ValueError) as shape:
        opt.update(wrong_shape, state)
    assert f"updates['scale'] has shape (2,) but {field} has shape ()" in str(shape.value)


def test_state_of_another_transformation_is_rejected():
    for make, other in [(mo.trace, mo.ema), (mo.ema, mo.trace), (mo.delta_momentum, mo.trace)]:
        with pytest.raises(TypeError, match=r"state must be the \w+State returned by"):
            make(0.9).update(PARAMS, other(0.9).init(PARAMS))
    with pytest.raises(TypeError, match=r"PeriodicResetState.*got a TraceState"):
        mo.periodic_reset(mo.trace(0.9), 2).update(PARAMS, mo.trace(0.9).init(PARAMS))
    trace_state = mo.trace(0.9).init({"other": jnp.zeros(3)})
    with pytest.raises(ValueError, match=r"missing \['other'\]; unexpected \['dense'\]\['bias'\]"):
        mo.trace(0.9).update(PARAMS, trace_state)
