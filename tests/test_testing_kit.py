"""The testing kit catches planted bugs, passes correct transformations, and says what broke.

Each planted bug is a small transformation written here; each test checks that the
invariant that should catch it fails with its name (and the step and leaf), and
:func:`check_transformation` lists it. Then the strategies produce what they claim, and
the oracles give hand-computed numbers and the library's.
"""

import inspect
import re
import subprocess
import sys
from typing import NamedTuple

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import io_callback

import momentum_optax as mo
from momentum_optax import testing
from momentum_optax.testing import invariants
from momentum_optax.testing import oracles
from momentum_optax.testing import strategies

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)}
BF16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), PARAMS)


class Buffer(NamedTuple):
    """The state of the planted transformations."""

    trace: optax.Params


def _heavy_ball(update_leaf, init=None):
    """A transformation whose state is ``Buffer(trace)`` and whose leaf rule is
    ``update_leaf(g, m, count) -> (u, new_m)``; ``init`` makes the buffer."""
    init = init or (lambda params: Buffer(optax.tree.zeros_like(params)))

    def update_fn(updates, state, params=None):
        del params
        pairs = jax.tree.map(lambda g, m: update_leaf(g, m), updates, state.trace)
        outer = jax.tree.structure(updates)
        u, m = jax.tree.transpose(outer, jax.tree.structure((0, 0)), pairs)
        return u, Buffer(m)

    return optax.GradientTransformation(init, update_fn)


def _raises(name, check, *args, **kwargs):
    """The message of the ``AssertionError`` ``check`` raises, which must start with ``name``."""
    with pytest.raises(AssertionError) as info:
        check(*args, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    return message


def _battery_message(tx, params, **kwargs):
    with pytest.raises(AssertionError) as info:
        testing.check_transformation(tx, params, **kwargs)
    return str(info.value)


# --- planted bugs, each caught by the invariant made for it ---


def test_a_state_whose_dtype_drifts_breaks_state_is_stable_and_compiles_once():
    # the bfloat16 buffer comes back float32 (computed in float32, never cast back)
    def leaf(g, m):
        new = g.astype(jnp.float32) + 0.9 * m.astype(jnp.float32)
        return new.astype(g.dtype), new

    tx = _heavy_ball(leaf)
    message = _raises("state_is_stable", invariants.state_is_stable, tx, BF16)
    assert "step 0, state.trace['b'] is float32[3], but tx.init(params) is bfloat16[3]" in message
    message = _raises("compiles_once", invariants.compiles_once, tx, BF16)
    assert "traced 2 times over 6 steps, again at step 1" in message
    battery = _battery_message(tx, BF16)
    assert "- state_is_stable: step 0" in battery and "- compiles_once: " in battery
    # scan needs a carry of fixed dtypes
    assert "- scan_equals_loop: raised TypeError: scan body function carry" in battery


def test_a_state_whose_structure_changes_after_a_step_breaks_state_is_stable():
    class Counted(NamedTuple):
        trace: optax.Params
        count: jax.Array | None

    def init_fn(params):
        return Counted(optax.tree.zeros_like(params), None)

    def update_fn(updates, state, params=None):
        trace = jax.tree.map(lambda g, m: g + 0.9 * m, updates, state.trace)
        return trace, Counted(trace, jnp.zeros([], jnp.int32))  # a count appears

    tx = optax.GradientTransformation(init_fn, update_fn)
    message = _raises("state_is_stable", invariants.state_is_stable, tx, PARAMS)
    assert "step 0, state: the structure differs from tx.init(params) (unexpected .count)" in (
        message
    )
    assert "state_is_stable" in _battery_message(tx, PARAMS)


def test_a_python_side_effect_breaks_jit_equals_eager():
    calls = [0]  # a counter in a closure: once under jit, at every eager step

    def update_fn(updates, state, params=None):
        calls[0] += 1
        return jax.tree.map(lambda g: g * calls[0], updates), state

    tx = optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)
    message = _raises("jit_equals_eager", invariants.jit_equals_eager, tx, PARAMS)
    # traced at the first call (factor 1 forever); eager steps then multiply by 2, 3, ...
    assert re.search(r"step 0, updates\['b'\]: jit and eager differ by", message), message
    # the scanned body and the chain are traced on their own, with the counter further on
    message = _raises("scan_equals_loop", invariants.scan_equals_loop, tx, PARAMS)
    assert "step 0, updates['b']: scan and loop differ by" in message
    message = _raises("works_in_chain", invariants.works_in_chain, tx, PARAMS)
    assert "step 0, updates['b']: in optax.chain(optax.clip(100.0), tx, " in message
    invariants.state_is_stable(tx, PARAMS)  # nothing else is wrong with it
    invariants.compiles_once(tx, PARAMS)


def test_a_callback_that_reduces_over_the_batch_breaks_vmap_equals_loop():
    # updates normalised by their largest entry in NumPy; the callback's vmap_method hands it
    # the whole batch, so under vmap the maximum is taken across the batch members
    def normalise(g):
        return (g / np.max(np.abs(g))).astype(g.dtype)

    def update_fn(updates, state, params=None):
        def leaf(g):
            shape = jax.ShapeDtypeStruct(g.shape, g.dtype)
            return jax.pure_callback(normalise, shape, g, vmap_method="expand_dims")

        return jax.tree.map(leaf, updates), state

    tx = optax.GradientTransformation(lambda p: optax.EmptyState(), update_fn)
    message = _raises("vmap_equals_loop", invariants.vmap_equals_loop, tx, PARAMS)
    assert re.search(r"batch member \d, step 0, updates\['b'\]: vmap and alone differ", message)
    names = invariants.NAMES[: invariants.NAMES.index("vmap_equals_loop")]
    testing.check_transformation(tx, PARAMS, only=names)  # the invariants before it hold


def _trace_ignoring_its_decay(decay):
    del decay  # the planted bug: 0.9 whatever is asked for
    return _heavy_ball(lambda g, m: (g + 0.9 * m,) * 2)


def test_a_transformation_that_ignores_its_coefficient_differs_from_optax_trace():
    # the battery cannot know what the coefficient means; the comparison with optax can
    testing.check_transformation(_trace_ignoring_its_decay(0.5), PARAMS)
    message = _raises(
        "assert_trajectories_close",
        testing.assert_trajectories_close,
        _trace_ignoring_its_decay(0.5),
        optax.trace(0.5),
        PARAMS,
        steps=5,
    )
    # step 0 is g_0 for any decay; step 1 is g_1 + 0.9 g_0 instead of g_1 + 0.5 g_0
    grads = testing.gradient_sequence(PARAMS, 5, seed=0)
    g0, g1 = (np.asarray(g["b"], np.float64) for g in grads[:2])
    found = re.search(
        r"^assert_trajectories_close: step 1, updates\['b'\]: tx_a and tx_b differ by (\S+) "
        r"\(first at index \((\d),\): tx_a (\S+), tx_b (\S+)\)",
        message,
    )
    assert found, message
    gap, index, got, want = float(found[1]), int(found[2]), float(found[3]), float(found[4])
    np.testing.assert_allclose(gap, np.max(np.abs(0.4 * g0)), rtol=2e-3)  # 3 digits
    np.testing.assert_allclose(got, g1[index] + 0.9 * g0[index], rtol=1e-5)
    np.testing.assert_allclose(want, g1[index] + 0.5 * g0[index], rtol=1e-5)
    # the same bug against the oracle, on the same gradients
    outs, state = [], _trace_ignoring_its_decay(0.5).init(PARAMS)
    for g in grads:
        u, state = _trace_ignoring_its_decay(0.5).update(g, state)
        outs.append(u["w"])
    want = oracles.trace(np.stack([g["w"] for g in grads]), 0.5)
    assert np.max(np.abs(np.stack(outs) - want)) > 0.1
    # for the one coefficient it hard-codes, it is optax.trace
    testing.assert_trajectories_close(_trace_ignoring_its_decay(0.9), optax.trace(0.9), PARAMS)


def test_nan_updates_break_finite_in_finite_out_at_their_step():
    class Count(NamedTuple):
        count: jax.Array

    def update_fn(updates, state, params=None):
        bad = state.count >= 3  # from the fourth step on
        u = jax.tree.map(lambda g: jnp.where(bad, jnp.nan, g), updates)
        return u, Count(optax.safe_increment(state.count))

    tx = optax.GradientTransformation(lambda p: Count(jnp.zeros([], jnp.int32)), update_fn)
    message = _raises("finite_in_finite_out", invariants.finite_in_finite_out, tx, PARAMS)
    assert "step 3 (finite gradients), updates['b'] is not finite: 3 of 3 entries" in message


def test_updates_of_another_shape_or_structure_break_updates_match_gradients():
    flat = optax.GradientTransformation(
        lambda p: optax.EmptyState(), lambda u, s, p=None: (jax.tree.map(jnp.ravel, u), s)
    )
    message = _raises("updates_match_gradients", invariants.updates_match_gradients, flat, PARAMS)
    assert "step 0, updates['w'] is float32[6], but the gradient is float32[2, 3]" in message
    as_list = optax.GradientTransformation(
        lambda p: optax.EmptyState(), lambda u, s, p=None: (jax.tree.leaves(u), s)
    )
    message = _raises(
        "updates_match_gradients", invariants.updates_match_gradients, as_list, PARAMS
    )
    assert "step 0, updates: the structure differs from the gradient (missing ['b'], ['w']" in (
        message
    )


def test_float32_updates_for_bfloat16_parameters_break_strict_promotion():
    # a float32 buffer and float32 updates, whatever the parameters' dtype: fine under
    # standard promotion (apply_updates casts back), refused under strict promotion
    def init_fn(params):
        return Buffer(optax.tree.zeros_like(params, dtype=jnp.float32))

    tx = _heavy_ball(lambda g, m: (g.astype(jnp.float32) + 0.9 * m,) * 2, init=init_fn)
    message = _raises("strict_promotion", invariants.strict_promotion, tx, PARAMS)
    assert "with bfloat16 parameters, step 0 raised TypePromotionError" in message
    testing.check_transformation(tx, BF16, skip=("strict_promotion",))  # nothing else


def test_a_weakly_typed_state_breaks_checkpoint_continues():
    # a scale made from a Python float is weakly typed: bfloat16 * scale stays bfloat16; the
    # restored checkpoint holds a strong float32, which promotes the updates to float32
    class Scale(NamedTuple):
        scale: jax.Array

    def update_fn(updates, state, params=None):
        return jax.tree.map(lambda g: g * state.scale, updates), Scale(state.scale * 1.0)

    tx = optax.GradientTransformation(lambda p: Scale(jnp.asarray(1.0)), update_fn)
    message = _raises("checkpoint_continues", invariants.checkpoint_continues, tx, BF16)
    assert "step 3 (resumed after step 2), updates['b'] is float32[3], but the uninterrupted" in (
        message
    )
    assert "weakly typed in the saved state, not once restored: ['.scale']" in message
    battery = _battery_message(tx, BF16)
    assert battery.startswith("check_transformation: 1 of 10 invariants broke:"), battery


def test_state_kept_on_the_host_breaks_checkpoint_continues():
    # a step counter kept in Python (read through a callback), not in the state: a restored
    # checkpoint cannot bring it back, so the resumed run scales by other counts
    host = {"count": 0}

    def tick():
        host["count"] += 1
        return np.float32(host["count"])

    def update_fn(updates, state, params=None):
        count = io_callback(tick, jax.ShapeDtypeStruct((), jnp.float32), ordered=True)
        return jax.tree.map(lambda g: g / count, updates), state

    tx = optax.GradientTransformation(lambda p: optax.EmptyState(), update_fn)
    message = _raises("checkpoint_continues", invariants.checkpoint_continues, tx, PARAMS)
    assert "step 3 (resumed after step 2), updates['b'] is not bit-identical: resumed" in message
    invariants.state_is_stable(tx, PARAMS)  # the state itself is fine


def test_an_exception_inside_update_fails_the_invariant_with_its_type():
    tx = mo.adaptive_restart(mo.trace(0.9), scheme="function")  # needs value=
    message = _raises("jit_equals_eager", invariants.jit_equals_eager, tx, PARAMS)
    assert "raised TypeError: adaptive_restart(scheme='function') needs the loss" in message


# --- correct transformations pass, extra arguments reach update ---


@pytest.mark.parametrize(
    "make",
    [
        lambda: optax.trace(0.9),
        lambda: mo.trace(0.9, nesterov=True),
        lambda: mo.sgd(0.1, 0.9),
        lambda: mo.ema(optax.linear_schedule(0.5, 0.9, 4), debias=True),
    ],
    ids=["optax.trace", "mo.trace_nesterov", "mo.sgd", "mo.ema_scheduled"],
)
@pytest.mark.parametrize("params", [PARAMS, BF16], ids=["float32", "bfloat16"])
def test_correct_transformations_pass_every_invariant(make, params):
    assert testing.check_transformation(make(), params) == invariants.NAMES


def _loss(params):
    return sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(params))


def test_extra_args_reach_update_as_a_callable_of_the_params_and_step_or_as_a_mapping():
    tx = mo.adaptive_restart(mo.trace(0.9), scheme="function")
    testing.check_transformation(
        tx, PARAMS, extra_args=lambda params, step: {"value": _loss(params)}
    )

    def update_fn(updates, state, params=None, *, value):
        return jax.tree.map(lambda g: g * value, updates), state

    scaled = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update_fn)
    # a mapping is passed as is at every step: value=2 makes it optax.scale(2), 3 does not
    testing.assert_trajectories_close(
        scaled, optax.scale(2.0), PARAMS, steps=3, extra_args={"value": 2.0}
    )
    with pytest.raises(AssertionError, match=r"step 0, updates.*tx_a and tx_b differ"):
        testing.assert_trajectories_close(
            scaled, optax.scale(2.0), PARAMS, steps=3, extra_args={"value": 3.0}
        )
    # a transformation whose update takes no extra arguments is given none (as in optax.chain)
    testing.check_transformation(optax.trace(0.9), PARAMS, extra_args={"value": 1.0})


def test_the_callable_sees_the_current_params_and_the_step():
    seen = []

    def extra(params, step):
        if not isinstance(step, jax.core.Tracer):  # the eager run's calls
            seen.append((int(step), params))
        return {}

    invariants.jit_equals_eager(optax.sgd(0.1), PARAMS, steps=3, extra_args=extra)
    assert [t for t, _ in seen] == [0, 1, 2]
    grads = testing.gradient_sequence(PARAMS, 3, seed=0)
    chex.assert_trees_all_equal(seen[0][1], PARAMS)
    # the parameters after one step of sgd: theta - 0.1 g_0
    want = jax.tree.map(lambda p, g: p - 0.1 * g, PARAMS, grads[0])
    chex.assert_trees_all_close(seen[1][1], want, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tx": "trace"}, TypeError, "tx must be an optax.GradientTransformation; got 'trace'"),
        ({"steps": 1}, ValueError, "steps must be an integer >= 2; got 1"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0; got -1"),
        ({"rtol": -1e-3}, ValueError, "rtol must be None or a float >= 0; got -0.001"),
        ({"extra_args": 3}, TypeError, "extra_args must be None, a mapping .* got 3 of type int"),
        ({"only": ("jit",)}, ValueError, r"only names unknown invariants \['jit'\]"),
        ({"skip": "nope"}, ValueError, r"skip names unknown invariants \['nope'\]"),
        ({"params": {}}, ValueError, "params must be a pytree with at least one array leaf"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, error, match):
    arguments = {"tx": optax.trace(0.9), "params": PARAMS, **kwargs}
    with pytest.raises(error, match=match):
        testing.check_transformation(arguments.pop("tx"), arguments.pop("params"), **arguments)


def test_only_and_skip_select_invariants_and_a_battery_shares_its_run():
    assert testing.check_transformation(optax.trace(0.9), PARAMS, only="scan_equals_loop") == (
        "scan_equals_loop",
    )
    names = testing.check_transformation(optax.trace(0.9), PARAMS, skip=invariants.NAMES[1:])
    assert names == invariants.NAMES[:1]
    calls = [0]

    def update_fn(updates, state, params=None):
        calls[0] += 1  # counts traces of the jitted run (and eager steps)
        return updates, state

    battery = testing.Battery(optax.GradientTransformation(lambda p: (), update_fn), PARAMS)
    for name in ("updates_match_gradients", "state_is_stable", "compiles_once"):
        battery.check(name)
    assert calls[0] == 1  # one jitted run, traced once, for the three
    with pytest.raises(ValueError, match="name names unknown invariants"):
        battery.check("nope")


def test_without_hypothesis_the_import_error_says_how_to_install_the_kit(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("momentum_optax.testing")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(ImportError, match=r"hypothesis is missing.*momentum_optax\[testing\]"):
        __import__("momentum_optax.testing")


def test_the_package_does_not_import_the_kit():
    code = (
        "import sys, momentum_optax; "
        "print(any(m.startswith('momentum_optax.testing') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_gradient_sequence_is_seeded_standard_normal_in_the_leaves_dtypes():
    params = {"a": jnp.zeros((2, 3), jnp.bfloat16), "b": jnp.zeros(4), "i": jnp.zeros(2, jnp.int32)}
    grads = testing.gradient_sequence(params, 3, seed=7)
    rng = np.random.default_rng(7)
    for g in grads:  # step after step, leaf after leaf (sorted keys a, b; i gets zeros)
        a, b = rng.standard_normal((2, 3)), rng.standard_normal(4)
        chex.assert_trees_all_equal(
            g,
            {
                "a": jnp.asarray(a, jnp.bfloat16),
                "b": jnp.asarray(b, jnp.float32),
                "i": jnp.zeros(2, jnp.int32),
            },
        )
    assert testing.gradient_sequence(params, 3, seed=8)[0]["b"][0] != grads[0]["b"][0]


# --- the strategies produce what they claim ---


def _leaves(tree):
    return jax.tree.leaves(tree)


def _containers(tree):
    kinds = set()

    def visit(node):
        if isinstance(node, strategies.Pair):
            kinds.add("namedtuple")
        elif isinstance(node, dict):
            kinds.add("dict")
        elif isinstance(node, list):
            kinds.add("list")
        elif isinstance(node, tuple):
            kinds.add("tuple")
        else:
            return
        for child in node.values() if isinstance(node, dict) else node:
            visit(child)

    visit(tree)
    return kinds


def _depth(tree):
    if isinstance(tree, dict):
        return 1 + max(_depth(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return 1 + max(_depth(v) for v in tree)
    return 0


# the first example found, unshrunk: these are existence checks
FIND = hypothesis.settings(
    max_examples=2000, database=None, derandomize=True, phases=[hypothesis.Phase.generate]
)


@pytest.mark.parametrize(
    ("what", "condition"),
    [
        ("rank 0", lambda t: any(x.ndim == 0 for x in _leaves(t))),
        ("rank 3", lambda t: any(x.ndim == 3 for x in _leaves(t))),
        ("zero-size", lambda t: any(x.size == 0 for x in _leaves(t))),
        ("float16", lambda t: any(x.dtype == jnp.float16 for x in _leaves(t))),
        ("bfloat16", lambda t: any(x.dtype == jnp.bfloat16 for x in _leaves(t))),
        ("float32", lambda t: any(x.dtype == jnp.float32 for x in _leaves(t))),
        ("dict", lambda t: "dict" in _containers(t)),
        ("list", lambda t: "list" in _containers(t)),
        ("tuple", lambda t: "tuple" in _containers(t)),
        ("namedtuple", lambda t: "namedtuple" in _containers(t)),
        ("nested", lambda t: _depth(t) >= 2),
    ],
    ids=lambda x: x if isinstance(x, str) else "condition",
)
def test_params_strategy_draws_every_rank_dtype_and_container(what, condition):
    assert condition(hypothesis.find(strategies.params(), condition, settings=FIND))


@hypothesis.given(data=st.data())
def test_params_and_gradient_sequences_match_in_structure_shape_and_dtype(data):
    params = data.draw(strategies.params())
    assert 1 <= len(_leaves(params))
    for x in _leaves(params):
        assert x.shape in strategies.SHAPES and x.dtype in strategies.DTYPES
    grads = data.draw(strategies.gradient_sequences(params, steps=4))
    assert len(grads) == 4
    for g in grads:
        chex.assert_trees_all_equal_structs(g, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(g, params)
        chex.assert_tree_all_finite(g)


@hypothesis.given(beta=strategies.coefficients(0.2, 0.7))
def test_coefficients_stay_in_their_range_at_every_step(beta):
    values = oracles.coefficient_values(beta, 60)
    assert np.all((values >= np.float32(0.2)) & (values <= np.float32(0.7))), beta


@hypothesis.given(beta=strategies.coefficients(0.0, 0.99, exclude_max=True))
def test_excluded_maximum_is_never_reached(beta):
    assert np.all(oracles.coefficient_values(beta, 60) < 0.99), beta


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant"])
def test_schedules_strategy_draws_optax_linear_cosine_and_constant_schedules(kind):
    found = hypothesis.find(strategies.schedules(0.5, 0.9), lambda s: s.kind == kind, settings=FIND)
    values = oracles.coefficient_values(found, 60)
    assert np.all((values >= 0.5) & (values <= np.float32(0.9)))
    # from its start to its end over its steps, then constant
    np.testing.assert_allclose(values[0], found.start, rtol=1e-6)
    np.testing.assert_allclose(values[found.steps :], found.end, rtol=1e-6)
    assert repr(found).startswith(f"{kind}({found.start} -> {found.end}")


def test_coefficients_draw_constants_and_schedules():
    coefficients = strategies.coefficients(0.5, 0.9)
    assert isinstance(
        hypothesis.find(coefficients, lambda c: not callable(c), settings=FIND), float
    )
    assert callable(hypothesis.find(coefficients, callable, settings=FIND))
    constants = strategies.coefficients(0.5, 0.9, schedules_too=False)
    with pytest.raises(hypothesis.errors.NoSuchExample):
        hypothesis.find(constants, callable, settings=FIND)


# --- the oracles: hand-computed numbers, then the library ---


def test_oracles_give_the_numbers_worked_by_hand():
    np.testing.assert_allclose(oracles.trace([1.0, 1.0], 0.9), [1.0, 1.9])
    # nesterov: g + b m = 1 + 0.9 * 1, 1 + 0.9 * 1.9
    np.testing.assert_allclose(oracles.trace([1.0, 1.0], 0.9, nesterov=True), [1.9, 2.71])
    np.testing.assert_allclose(oracles.ema([1.0, 2.0, 3.0], 0.5), [0.5, 1.25, 2.125])
    for decay in (0.0, 0.5, 0.9, 0.999):
        assert oracles.ema([3.25], decay, debias=True)[0] == pytest.approx(3.25, rel=1e-12)
    # scheduled debias: (1 - 0.5 * 0.8) m_1 with m_1 = 0.8 * 0.5 * 2 + 0.2 * 2
    np.testing.assert_allclose(oracles.ema([2.0, 2.0], [0.5, 0.8], debias=True), [2.0, 2.0])
    # nesterov + debias: b_1 m_0 / (1 - b_0 b_1) + (1 - b_0) g_0 / (1 - b_0) = 0.5 * 1 / 0.75 + 2
    np.testing.assert_allclose(
        oracles.ema([2.0], [0.5, 0.5], debias=True, nesterov=True), [0.5 / 0.75 + 2.0]
    )
    np.testing.assert_allclose(oracles.delta_momentum([1.0, 2.0, 3.0], 0.5), [1.0, 2.5, 4.0])
    np.testing.assert_allclose(
        oracles.coefficient_values(optax.linear_schedule(0.0, 1.0, 2), 4), [0.0, 0.5, 1.0, 1.0]
    )
    run = oracles.nesterov_lookahead(lambda x: x, np.array([1.0]), 0.5, 0.1, 2)
    np.testing.assert_allclose(run.velocity[:, 0], [0.1, 0.135])
    np.testing.assert_allclose(run.params[:, 0], [0.9, 0.765])
    np.testing.assert_allclose(run.lookahead[:, 0], [0.85, 0.765 - 0.0675])
    with pytest.raises(ValueError, match="at least 3 values; got an array of shape"):
        oracles.trace([1.0, 1.0], [0.9, 0.9], nesterov=True)


SCHEDULE = optax.linear_schedule(0.3, 0.95, 12)


@pytest.mark.parametrize("decay", [0.9, SCHEDULE], ids=["constant", "scheduled"])
@pytest.mark.parametrize("nesterov", [False, True], ids=["classical", "nesterov"])
def test_oracles_agree_with_the_library(decay, nesterov):
    grads = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)

    def library(opt):
        state, outs = opt.init(jnp.zeros(3)), []
        for g in grads:
            u, state = opt.update(jnp.asarray(g), state)
            outs.append(u)
        return np.stack(outs)

    np.testing.assert_allclose(
        library(mo.trace(decay, nesterov=nesterov)),
        oracles.trace(grads, decay, nesterov),
        rtol=2e-5,
        atol=2e-5,
    )
    for debias in (False, True):
        np.testing.assert_allclose(
            library(mo.ema(decay, debias=debias, nesterov=nesterov)),
            oracles.ema(grads, decay, debias, nesterov),
            rtol=2e-5,
            atol=2e-5,
        )
    np.testing.assert_allclose(
        library(mo.delta_momentum(decay)),
        oracles.delta_momentum(grads, decay),
        rtol=1e-6,
        atol=1e-6,
    )


def test_lookahead_oracle_is_the_path_of_nesterov_trace_in_a_chain():
    a = np.diag([0.1, 1.0, 2.0])
    theta0, eta, gamma = np.array([1.0, -1.0, 0.5]), 0.1, mo.schedules.linear_to_one(0.3, 25)
    want = oracles.nesterov_lookahead(lambda x: a @ x, theta0, gamma, eta, 30)
    opt = optax.chain(mo.trace(gamma, nesterov=True), optax.scale_by_learning_rate(eta))
    theta, state, got = jnp.asarray(theta0, jnp.float32), None, []
    state = opt.init(theta)
    for _ in range(30):
        u, state = opt.update(jnp.asarray(a, jnp.float32) @ theta, state)
        theta = optax.apply_updates(theta, u)
        got.append(theta)
    np.testing.assert_allclose(np.stack(got), want.lookahead, rtol=1e-4, atol=1e-5)
    assert np.max(np.abs(want.lookahead - want.params)) > 1e-2  # not the classical path


# --- the public API is documented ---


def _public_functions():
    for module in (testing, invariants, strategies, oracles):
        for name, value in vars(module).items():
            if inspect.isfunction(value) and not name.startswith("_"):
                if value.__module__.startswith("momentum_optax.testing"):
                    yield f"{module.__name__}.{name}", value


FUNCTIONS = dict(_public_functions())


def test_the_kit_has_the_public_functions_it_documents():
    names = {name.rsplit(".", 1)[1] for name in FUNCTIONS}
    assert {"check_transformation", "assert_trajectories_close", "gradient_sequence"} <= names
    assert set(invariants.NAMES) <= names
    assert {"trace", "ema", "delta_momentum", "nesterov_lookahead", "coefficient_values"} <= names
    assert {"params", "leaves", "gradient_sequences", "coefficients", "schedules"} <= names


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_public_function_documents_args_returns_and_an_example(name):
    doc = inspect.getdoc(FUNCTIONS[name]) or ""
    positions = [
        re.search(rf"^{s}:[ \t]*$", doc, flags=re.M) for s in ("Args", "Returns", "Example")
    ]
    assert all(positions), f"{name}: a section is missing"
    assert positions[0].start() < positions[1].start() < positions[2].start(), name
    assert doc.splitlines()[0].strip(), f"{name}: no summary line"
    assert ">>>" in doc[positions[2].start() :], f"{name}: the Example has no doctest"
    assert ".. math::" in doc, f"{name}: no formula"


@pytest.mark.parametrize("cls", [testing.Battery, oracles.LookAhead, strategies.Pair], ids=repr)
def test_public_classes_have_their_own_docstring(cls):
    assert cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}(")
