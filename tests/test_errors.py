"""Bad input fails loudly at construction; mismatched updates fail with the path named."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from tests import helpers

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
    (lambda: mo.schedules.anneal(0.5, 0.9), TypeError, "steps", "keyword"),
    (lambda: mo.schedules.anneal(0.5, 1.1, steps=10), ValueError, "end", "1.1"),
    (lambda: mo.schedules.anneal(NAN, 0.9, steps=10), ValueError, "start", "nan"),
    (lambda: mo.sgd(None), TypeError, "learning_rate", "None"),
    (lambda: mo.sgd(-0.1), ValueError, "learning_rate", "-0.1"),
    (lambda: mo.sgd(NAN), ValueError, "learning_rate", "nan"),
    (lambda: mo.sgd(INF), ValueError, "learning_rate", "inf"),
    (lambda: mo.sgd("0.1"), TypeError, "learning_rate", "'0.1'"),
    (lambda: mo.sgd(0.1, 1.5), ValueError, "momentum", "1.5"),
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
    (lambda: mo.tuning.heavy_ball(NAN, 1.0), ValueError, "L", "nan"),
    (lambda: mo.fused_sgd(0.1, 0.9, chunk_size=0), ValueError, "chunk_size", "0"),
    (lambda: mo.train_step("loss", mo.sgd(0.1)), TypeError, "loss_fn", "'loss'"),
    (lambda: mo.train_step(lambda p: 0.0, "sgd"), TypeError, "optimizer", "'sgd'"),
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


@pytest.mark.parametrize(
    "call",
    [
        lambda: mo.trace(0.0),
        lambda: mo.trace(1.0),
        lambda: mo.ema(1.0),
        lambda: mo.ema(np.float32(0.5), debias=True),
        lambda: mo.trace(jnp.asarray(0.9)),
        lambda: mo.delta_momentum(0),
        lambda: mo.periodic_reset(TRACE, np.int64(4)),
        lambda: mo.sgd(0.0),
        lambda: mo.sgd(optax.constant_schedule(0.1), lambda t: 0.9),
        lambda: mo.periodic_reset(TRACE, 2**31 - 1),
    ],
    ids=lambda c: "",
)
def test_valid_edge_values_are_accepted(call):
    assert isinstance(call(), optax.GradientTransformation)


def test_tuning_accepts_numpy_and_jax_scalars():
    eigenvalues = np.linalg.eigvalsh(np.diag([1.0, 100.0]).astype(np.float32))
    from_numpy = mo.tuning.nesterov(eigenvalues.max(), eigenvalues.min())
    from_jax = mo.tuning.nesterov(jnp.float32(100.0), jnp.float32(1.0))
    assert from_numpy == from_jax == mo.tuning.nesterov(100.0, 1.0)


def test_traced_hyperparameters_are_not_checked_in_python():
    # under inject_hyperparams and vmap the coefficient is a tracer: no tracer error
    opt = optax.inject_hyperparams(mo.trace)(decay=0.9)
    state = opt.init(jnp.zeros(3))
    updates, _ = jax.jit(opt.update)(jnp.ones(3), state)
    np.testing.assert_allclose(updates, 1.0)

    def first_two_updates(momentum):
        opt = mo.sgd(0.1, momentum)
        state = opt.init(jnp.zeros(2))
        _, state = opt.update(jnp.ones(2), state)
        return opt.update(jnp.ones(2), state)[0]

    out = jax.jit(jax.vmap(first_two_updates))(jnp.array([0.0, 0.5, 0.9]))
    np.testing.assert_allclose(out[:, 0], [-0.1, -0.15, -0.19], rtol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optax.inject_hyperparams(mo.torch_sgd)(learning_rate=0.1, momentum=0.9),
        lambda: optax.inject_hyperparams(mo.torch_sgd)(
            learning_rate=0.1, momentum=0.5, dampening=0.5, weight_decay=0.1
        ),
        lambda: optax.inject_hyperparams(mo.sgd)(
            learning_rate=0.1, momentum=optax.linear_schedule(0.0, 0.9, 10)
        ),
        lambda: optax.inject_hyperparams(mo.sgd)(learning_rate=0.1, momentum=0.0),
    ],
    ids=["torch_sgd", "torch_sgd_all_traced", "sgd_scheduled_from_zero", "sgd_zero"],
)
def test_inject_hyperparams_works_under_jit(make):
    opt = make()
    params = jnp.ones(3)
    state = opt.init(params)
    step = jax.jit(opt.update)
    outs = []
    for _ in range(3):
        updates, state = step(jnp.ones(3), state, params)
        outs.append(float(updates[0]))
    assert np.all(np.isfinite(outs)) and outs[0] < 0


# --- mismatched updates, for every transformation of the table ---

PARAMS = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
MISMATCHES = [
    ({"w": jnp.ones(3)}, r"missing \['b'\]"),
    ({"w": jnp.ones(3), "b": jnp.ones(2), "c": jnp.ones(1)}, r"unexpected \['c'\]"),
    ({"w": jnp.ones(3), "bias": jnp.ones(2)}, r"missing \['b'\].*unexpected \['bias'\]"),
    ([jnp.ones(2), jnp.ones(3)], r"missing .*unexpected"),
    ({"w": jnp.ones((3, 3)), "b": jnp.ones(2)}, r"\['w'\] has shape \(3, 3\).*\(3,\)"),
    ({"w": jnp.ones(1), "b": jnp.ones(2)}, r"\['w'\] has shape \(1,\).*\(3,\)"),
    ({"w": jnp.ones(3), "b": jnp.ones(())}, r"\['b'\] has shape \(\)"),
]


# rows that keep a per-parameter buffer (plain sgd keeps none: nothing can broadcast)
STATEFUL = [row for row in helpers.ALL_TRANSFORMS if jax.tree.leaves(row.make().init(PARAMS))]


@pytest.mark.parametrize("row", STATEFUL, ids=repr)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_mismatched_updates_raise_naming_the_path(row, jit):
    opt = row.make()
    state = opt.init(PARAMS)
    update = jax.jit(opt.update) if jit else opt.update
    for updates, pattern in MISMATCHES:
        with pytest.raises(ValueError, match=pattern):
            update(updates, state)


def test_state_of_another_transformation_is_rejected():
    for make, other in [(mo.trace, mo.ema), (mo.ema, mo.trace), (mo.delta_momentum, mo.trace)]:
        with pytest.raises(TypeError, match=r"state must be the \w+State returned by"):
            make(0.9).update(PARAMS, other(0.9).init(PARAMS))
    with pytest.raises(TypeError, match="PeriodicResetState.*got a TraceState"):
        mo.periodic_reset(mo.trace(0.9), 2).update(PARAMS, mo.trace(0.9).init(PARAMS))
    trace_state = mo.trace(0.9).init({"other": jnp.zeros(3)})
    with pytest.raises(ValueError, match=r"missing \['other'\]"):
        mo.trace(0.9).update(PARAMS, trace_state)
