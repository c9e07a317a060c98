"""Drop-in for optax: optax's states continue under the library and back, ``None`` leaves
pass through, and a state of another configuration is refused with an error that says which."""

import chex
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from momentum_optax._coefficients import value_at
from tests import helpers
from tests.helpers import PARAMS

# --- optax's state continues under mo, and mo's under optax ---

SGD_PAIRS = {
    "heavy_ball": (lambda: mo.sgd(0.05, 0.9), lambda: optax.sgd(0.05, 0.9)),
    "nesterov": (
        lambda: mo.sgd(0.05, 0.9, nesterov=True),
        lambda: optax.sgd(0.05, 0.9, nesterov=True),
    ),
    "scheduled_lr": (
        lambda: mo.sgd(optax.linear_schedule(0.1, 0.01, 8), 0.8),
        lambda: optax.sgd(optax.linear_schedule(0.1, 0.01, 8), 0.8),
    ),
    "trace_nesterov": (
        lambda: mo.trace(0.7, nesterov=True),
        lambda: optax.trace(0.7, nesterov=True),
    ),
}


def _steps(opt, state, first, count):
    """``count`` jitted updates of ``opt`` from ``state`` on gradients ``first, first+1, ...``."""
    update = jax.jit(opt.update)
    outs = []
    for seed in range(first, first + count):
        u, state = update(helpers.grads(seed), state, PARAMS)
        outs.append(u)
    return outs, state


@pytest.mark.parametrize("pair", sorted(SGD_PAIRS))
@pytest.mark.parametrize("direction", ["optax_to_mo", "mo_to_optax"])
def test_a_checkpoint_continues_across_libraries_with_identical_updates(pair, direction):
    make_mo, make_optax = SGD_PAIRS[pair]
    first, then = (make_optax, make_mo) if direction == "optax_to_mo" else (make_mo, make_optax)
    _, state = _steps(first(), first().init(PARAMS), 0, 5)
    # the checkpoint: serialised, restored against the other library's target
    restored = flax.serialization.from_bytes(
        then().init(PARAMS), flax.serialization.to_bytes(state)
    )
    chex.assert_trees_all_equal(restored, state)  # structure included
    continued, continued_state = _steps(then(), restored, 5, 6)
    reference, reference_state = _steps(first(), state, 5, 6)
    chex.assert_trees_all_equal(continued, reference)
    chex.assert_trees_all_equal(continued_state, reference_state)


def test_optaxs_own_trace_state_is_accepted_as_it_stands():
    state = optax.trace(0.9).init(PARAMS)
    updates, new_state = mo.trace(0.9).update(helpers.grads(0), state)
    assert type(new_state) is optax.TraceState
    chex.assert_trees_all_equal(updates, optax.trace(0.9).update(helpers.grads(0), state)[0])


# --- a state of another configuration: an error that says which ---

SCHEDULE = optax.linear_schedule(0.5, 0.9, 10)

MISMATCHES = {
    "scheduled_sgd_given_optax_sgd_state": (
        lambda: mo.sgd(0.1, SCHEDULE),
        lambda: optax.sgd(0.1, 0.9).init(PARAMS),
        r"no step count: it is an optax.TraceState, made with a constant decay.*"
        r"mo.ScheduledTraceState\(trace=state.trace, count=",
    ),
    "constant_trace_given_scheduled_state": (
        lambda: mo.trace(0.9),
        lambda: mo.trace(SCHEDULE).init(PARAMS),
        r"has a step count: it is a mo.ScheduledTraceState, made with a scheduled decay.*"
        r"optax.TraceState\(trace=state.trace\)",
    ),
    "scheduled_ema_given_constant_state": (
        lambda: mo.ema(SCHEDULE),
        lambda: mo.ema(0.9).init(PARAMS),
        r"this EmaState has no step count: it was made with a constant decay; ema here has "
        r"a scheduled decay",
    ),
    "constant_delta_momentum_given_scheduled_state": (
        lambda: mo.delta_momentum(0.5),
        lambda: mo.delta_momentum(SCHEDULE).init(PARAMS),
        r"this DeltaMomentumState has a step count: it was made with a scheduled momentum.*"
        r"count=None",
    ),
    "scheduled_qhm_given_constant_state": (
        lambda: mo.qhm(SCHEDULE, 0.9),
        lambda: mo.qhm(0.7, 0.9).init(PARAMS),
        r"this QhmState has no step count",
    ),
    "constant_aggmo_given_scheduled_state": (
        lambda: mo.aggmo((0.0, 0.9)),
        lambda: mo.aggmo((0.0, SCHEDULE)).init(PARAMS),
        r"this AggMoState has a step count",
    ),
    "scheduled_lr_given_constant_lr_state": (
        lambda: mo.scale_by_learning_rate(SCHEDULE),
        lambda: optax.EmptyState(),
        r"no step count: it is an EmptyState, made with a constant learning rate.*"
        r"optax.ScaleByScheduleState\(count=",
    ),
    "constant_lr_given_scheduled_lr_state": (
        lambda: mo.scale_by_learning_rate(0.1),
        lambda: optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32)),
        r"has a step count: it is an optax.ScaleByScheduleState.*optax.EmptyState\(\)",
    ),
    "aggmo_given_fewer_velocities": (
        lambda: mo.aggmo((0.0, 0.9, 0.99)),
        lambda: mo.aggmo((0.0, 0.9)).init(PARAMS),
        r"this AggMoState was made with len\(decays\)=2; aggmo here has len\(decays\)=3",
    ),
    "sma_given_a_shorter_window": (
        lambda: mo.sma(4),
        lambda: mo.sma(3).init(PARAMS),
        r"this SmaState was made with window=3; sma here has window=4",
    ),
    "debiased_ema_given_a_plain_state": (
        lambda: mo.ema(0.9, debias=True),
        lambda: mo.ema(0.9).init(PARAMS),
        r"this EmaState was made with debias=False; ema here has debias=True",
    ),
    "plain_ema_given_a_debiased_state": (
        lambda: mo.ema(0.9),
        lambda: mo.ema(0.9, debias=True).init(PARAMS),
        r"this EmaState was made with debias=True; ema here has debias=False",
    ),
    "trace_given_ema_state": (
        lambda: mo.trace(0.9),
        lambda: optax.ema(0.9).init(PARAMS),
        r"state must be the TraceState returned by trace\(...\).init; got an EmaState",
    ),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_a_state_of_another_configuration_says_which(case):
    make, state, message = MISMATCHES[case]
    with pytest.raises(TypeError, match=message):
        make().update(helpers.grads(0), state(), PARAMS)


def test_two_state_classes_of_one_name_are_told_apart_by_module():
    class TraceState(tuple):  # another library's state that happens to share the name
        pass

    with pytest.raises(TypeError, match=r"optax\S*TraceState.*got a tests\.\S*TraceState"):
        mo.trace(0.9).update(helpers.grads(0), TraceState())


def test_sgd_without_momentum_refuses_the_flags_that_need_one():
    with pytest.raises(ValueError, match=r"momentum is None.*nesterov=True"):
        mo.sgd(0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"momentum is None.*reset_every=3"):
        mo.sgd(0.1, reset_every=3)
    with pytest.raises(ValueError, match=r"momentum is None.*accumulator_dtype=dtype\('float32'\)"):
        mo.sgd(0.1, accumulator_dtype=jnp.float32)


# --- None leaves in the updates pass through, as in optax ---

FROZEN = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.ones(3), "s": jnp.float32(0.5)}
TRAINED = {"w": FROZEN["w"], "s": FROZEN["s"]}


def _none_at_b(tree):
    return {**tree, "b": None}


# optax's own wrappers (masked, MultiSteps) refuse None updates whatever they wrap
# (optax.masked(optax.trace(0.9), ...) fails alike): the library's rows are the others
UNWRAPPED = [row for row in helpers.ALL_TRANSFORMS if not row.wrapped]


def test_optaxs_wrappers_refuse_none_updates_themselves():
    params = {"w": jnp.ones(3), "b": jnp.ones(2)}
    for opt in (
        optax.masked(optax.trace(0.9), lambda tree: jax.tree.map(lambda _: True, tree)),
        optax.MultiSteps(optax.sgd(0.1, 0.9), 2).gradient_transformation(),
    ):
        # jax 0.10 names the structures; jax 0.6 says what it expected at the None
        with pytest.raises(ValueError, match=r"pytree structure|Expected None"):
            jax.jit(opt.update)({"w": jnp.ones(3), "b": None}, opt.init(params), params)


@pytest.mark.parametrize("row", [helpers.fast_or_slow(row) for row in UNWRAPPED], ids=repr)
def test_none_updates_pass_through_and_the_rest_is_updated_as_without_them(row):
    # the updates hold None where a parameter is frozen: it comes out None, its buffers stay
    # as they were, and the other leaves get exactly the updates of a tree without it
    opt = row.make()
    state0 = opt.init(FROZEN)
    update = jax.jit(opt.update)
    reference = row.make()
    reference_state = reference.init(TRAINED)
    state = state0
    for seed in range(4):
        grads = helpers.grads(seed, FROZEN)
        updates, state = update(_none_at_b(grads), state, FROZEN)
        expected, reference_state = reference.update(
            {k: v for k, v in grads.items() if k != "b"}, reference_state, TRAINED
        )
        assert updates["b"] is None
        chex.assert_trees_all_close(
            {k: v for k, v in updates.items() if k != "b"}, expected, rtol=1e-6, atol=1e-7
        )
    chex.assert_trees_all_equal_structs(state, state0)


def _buffers_at_b(state):
    """The state's leaves that belong to parameter ``b`` (its buffers), by path."""
    return {
        jax.tree_util.keystr(path): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
        if any(getattr(key, "key", None) == "b" for key in path)
    }


# rows with a buffer that nothing but the updates changes: a restart re-initialises every
# buffer, frozen or not, and sgd without momentum and the learning rate keep none
BUFFERED = [
    row
    for row in UNWRAPPED
    if row.name not in ("sgd", "scale_by_learning_rate_scheduled")
    and not any(word in row.name for word in ("reset", "restart"))
]


@pytest.mark.parametrize("row", [helpers.fast_or_slow(row) for row in BUFFERED], ids=repr)
def test_a_frozen_leaf_keeps_its_buffers_as_they_were(row):
    opt = row.make()
    update = jax.jit(opt.update)
    state = opt.init(FROZEN)
    for seed in range(3):  # trained first, so its buffers hold something
        _, state = update(helpers.grads(seed, FROZEN), state, FROZEN)
    before = _buffers_at_b(state)
    assert before and any(np.any(np.asarray(v) != 0) for v in before.values()), before
    for seed in range(3, 5):  # then frozen
        _, state = update(_none_at_b(helpers.grads(seed, FROZEN)), state, FROZEN)
    after = _buffers_at_b(state)
    assert after.keys() == before.keys()
    for path, leaf in after.items():
        np.testing.assert_array_equal(leaf, before[path], err_msg=path)


@pytest.mark.parametrize("row", [helpers.fast_or_slow(r) for r in helpers.ALL_TRANSFORMS], ids=repr)
def test_none_parameters_keep_none_in_the_state_and_the_updates(row):
    params = _none_at_b(FROZEN)
    opt = row.make()
    state = opt.init(params)
    updates, new_state = jax.jit(opt.update)(_none_at_b(helpers.grads(0, FROZEN)), state, params)
    assert updates["b"] is None
    chex.assert_trees_all_equal_shapes(updates["w"], params["w"])
    # no buffer for b: the state holds None there (or no entry for b at all), before and after
    for tree in (state, new_state):
        assert _buffers_at_b(tree) == {}, _buffers_at_b(tree)
    chex.assert_trees_all_equal_structs(new_state, state)


def test_an_array_where_the_state_holds_none_is_refused():
    opt = mo.trace(0.9)
    state = opt.init(_none_at_b(FROZEN))
    with pytest.raises(
        ValueError, match=r"updates\['b'\] is an array but TraceState.trace holds None"
    ):
        opt.update(helpers.grads(0, FROZEN), state)


def test_a_schedule_read_without_a_step_count_says_so():
    # the last guard, behind every state check: a schedule never reads a missing count
    with pytest.raises(ValueError, match="this state has no step count"):
        value_at(optax.linear_schedule(0.1, 0.01, 5), None)


def test_fused_sgd_given_a_state_of_the_other_configuration_says_which():
    fused = mo.fused_sgd(optax.linear_schedule(0.1, 0.01, 5), 0.9)
    state = mo.fused_sgd(0.1, 0.9).init(PARAMS)
    with pytest.raises(TypeError, match="this FusedSGDState has no step count"):
        fused.apply(PARAMS, state, helpers.grads(0))
    with pytest.raises(TypeError, match="this FusedSGDState has a step count"):
        mo.fused_sgd(0.1, 0.9).apply(PARAMS, fused.init(PARAMS), helpers.grads(0))


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_fused_sgd_leaves_a_frozen_parameter_and_its_buffer_as_they_were(monkeypatch, backend):
    # the one-pass CPU path and the plain path elsewhere (the backend's name picks it); the
    # other leaves move as mo.sgd moves a tree without the frozen one
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    fused, plain = mo.fused_sgd(0.1, 0.9), mo.sgd(0.1, 0.9)
    params, state = FROZEN, fused.init(FROZEN)
    plain_params, plain_state = TRAINED, plain.init(TRAINED)
    for seed in range(3):
        grads = helpers.grads(seed, FROZEN)
        params, state = fused.apply(params, state, _none_at_b(grads))
        updates, plain_state = plain.update(
            {k: v for k, v in grads.items() if k != "b"}, plain_state
        )
        plain_params = optax.apply_updates(plain_params, updates)
    np.testing.assert_array_equal(params["b"], FROZEN["b"])
    np.testing.assert_array_equal(state.trace["b"], np.zeros(3))
    trained = lambda tree: {k: v for k, v in tree.items() if k != "b"}
    chex.assert_trees_all_close(trained(params), plain_params, rtol=1e-6)
    chex.assert_trees_all_close(trained(state.trace), plain_state[0].trace, rtol=1e-6)
