"""The kit as a package: what it imports, its public API documented function by function,
and its arguments: checked by name, and reported once when they make every run fail.
"""

import inspect
import pathlib
import re
import subprocess
import sys
import typing

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from momentum_optax import testing
from momentum_optax.testing import _battery
from momentum_optax.testing import invariants
from momentum_optax.testing import oracles
from momentum_optax.testing import strategies

API_PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "api" / "testing.md"

# --- what it imports ---


def test_without_hypothesis_the_import_error_says_how_to_install_the_kit(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("momentum_optax.testing")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(ImportError, match=r"hypothesis is missing.*momentum_optax\[testing\]"):
        __import__("momentum_optax.testing")


@pytest.mark.slow
def test_the_package_does_not_import_the_kit():
    code = (
        "import sys, momentum_optax; "
        "print(any(m.startswith('momentum_optax.testing') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_the_kit_does_not_import_chex():
    # the testing extra installs chex for the tests written with the kit; the kit needs none
    code = "import sys, momentum_optax.testing; print('chex' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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


@pytest.mark.parametrize("name", invariants.NAMES)
def test_each_invariant_is_a_function_of_its_own_taking_the_batterys_arguments(name):
    check = getattr(invariants, name)
    assert inspect.isfunction(check)
    module = "momentum_optax.testing.invariants"
    assert (check.__name__, check.__qualname__, check.__module__) == (name, name, module)
    signature = inspect.signature(check)
    assert signature.parameters == inspect.signature(testing.Battery).parameters
    names = "tx params steps seed gradients extra_args rtol atol".split()
    assert list(signature.parameters) == names
    assert typing.get_type_hints(check)["steps"] is int  # resolvable, as Sphinx needs
    assert f"naming ``{name}`` if it breaks" in inspect.getdoc(check)
    assert f".. autofunction:: {module}.{name}\n" in API_PAGE.read_text()


def test_the_invariants_are_the_public_functions_of_their_module_each_with_its_summary():
    public = [n for n, v in vars(invariants).items() if inspect.isfunction(v) and n[0] != "_"]
    assert tuple(public) == invariants.NAMES
    summaries = {inspect.getdoc(getattr(invariants, n)).splitlines()[0] for n in public}
    assert len(summaries) == len(public), summaries


def test_the_invariants_are_those_registered_and_the_default_set_leaves_out_the_opt_in():
    assert set(invariants.NAMES) == set(_battery.CHECKS)
    assert invariants.OPT_IN == ("strict_promotion",)
    assert invariants.DEFAULT == tuple(n for n in invariants.NAMES if n != "strict_promotion")
    assert "handles_scale" in invariants.DEFAULT


# --- the arguments ---

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)}
ZEROS = jax.tree.map(jnp.zeros_like, PARAMS)


def _as_complex(tree):
    return jax.tree.map(lambda x: x.astype(jnp.complex64), tree)


def _battery_message(tx, params, **kwargs):
    with pytest.raises(AssertionError) as info:
        testing.check_transformation(tx, params, **kwargs)
    return str(info.value)


# --- a transformation that cannot take its first step is reported once ---


def _value_counting(calls):
    """A transformation whose update needs ``value=`` (keyword-only), counting its calls."""

    def update_fn(updates, state, params=None, *, value):
        calls.append(1)
        return jax.tree.map(lambda g: g * value, updates), state

    return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update_fn)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (
            lambda calls: mo.adaptive_restart(mo.trace(0.9), scheme="function"),
            "adaptive_restart(scheme='function') needs the loss",
        ),
        (_value_counting, "missing 1 required keyword-only argument: 'value'"),
    ],
    ids=["adaptive_restart_function", "keyword_only_value"],
)
def test_a_missing_extra_args_raises_one_type_error_naming_it(make, says):
    calls = []
    with pytest.raises(TypeError) as info:
        testing.check_transformation(make(calls), PARAMS)
    message = str(info.value)
    assert message.startswith("tx.update raised TypeError at step 0 (under jax.jit): "), message
    assert says in message
    assert "pass them with extra_args=: a mapping, or a callable (params, step) -> mapping" in (
        message
    )
    assert message.endswith("got extra_args=None."), message
    assert calls == []  # the update never ran: no invariant was tried
    # each invariant, and a battery's check, raises the same error (not an AssertionError)
    with pytest.raises(TypeError, match="extra_args"):
        invariants.jit_equals_eager(make(calls), PARAMS)
    with pytest.raises(TypeError, match="extra_args"):
        testing.Battery(make(calls), PARAMS).check("checkpoint_continues")
    testing.check_transformation(make(calls), PARAMS, extra_args={"value": 1.0})


def test_an_init_that_raises_is_reported_once_naming_params():
    tx = optax.GradientTransformation(lambda params: params["missing"], lambda u, s, p=None: (u, s))
    match = r"^tx.init\(params\) raised KeyError: 'missing'\nparams must be a pytree tx.init takes"
    with pytest.raises(ValueError, match=match):
        testing.check_transformation(tx, PARAMS)
    with pytest.raises(ValueError, match=match):
        invariants.state_is_stable(tx, PARAMS)


def test_an_update_that_always_raises_is_reported_once_with_its_error():
    def update_fn(updates, state, params=None):
        raise ValueError("broken on purpose")

    tx = optax.GradientTransformation(lambda p: optax.EmptyState(), update_fn)
    message = _battery_message(tx, PARAMS)
    assert message == (
        "check_transformation: no invariant could be checked: the jitted run every invariant "
        "shares failed: tx.update raised ValueError at step 0 (under jax.jit): broken on purpose"
    )
    with pytest.raises(AssertionError, match=r"^scan_equals_loop: the jitted run every "):
        invariants.scan_equals_loop(tx, PARAMS)


def _loss(params):
    return sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(params))


@pytest.mark.slow
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
        ({"only": []}, ValueError, r"only must name at least one invariant; got \[\]"),
        (
            {"only": ["handles_scale", "compiles_once"], "skip": ["handles_scale"]},
            ValueError,
            r"only and skip both name \['handles_scale'\]: an invariant is either checked or "
            r"skipped \(only=\['handles_scale', 'compiles_once'\], skip=\['handles_scale'\]\)",
        ),
        ({"skip": invariants.DEFAULT}, ValueError, r"skip=\(.*\) skips every invariant"),
        (
            {"gradients": 3},
            TypeError,
            r"gradients must be None, a list of gradient trees, or a callable .* got 3 of type int",
        ),
        (
            {"gradients": [ZEROS] * 3},
            ValueError,
            "gradients must be a list of steps=6 gradient trees; got 3 trees",
        ),
        (
            {"gradients": [ZEROS] * 5 + [{"w": jnp.zeros(6), "b": jnp.zeros(3)}]},
            ValueError,
            r"gradients\[5\]\['w'\] has shape \(6,\), but params\['w'\] has shape \(2, 3\)",
        ),
        (
            {"gradients": [{"w": ZEROS["w"]}] * 6},
            ValueError,
            r"gradients\[0\] must have the tree structure of params: got PyTreeDef\(\{'w': \*\}\)",
        ),
        (
            {"gradients": lambda like, steps, seed: [_as_complex(like)] * steps},
            ValueError,
            r"gradients\(like, steps, seed\)\[0\]\['b'\] is complex64, which does not cast to the "
            r"float32 of params\['b'\]",
        ),
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


# --- gradients= replaces the standard normal sequence ---


def _normalised():
    """``g / ||g||`` leaf by leaf: 0/0 on a zero gradient, fine on standard normal ones."""
    return optax.GradientTransformation(
        lambda p: optax.EmptyState(),
        lambda u, s, p=None: (jax.tree.map(lambda g: g / jnp.linalg.norm(g), u), s),
    )


def test_a_list_of_gradients_reaches_the_runs():
    invariants.finite_in_finite_out(_normalised(), PARAMS)
    grads = [ZEROS, *testing.gradient_sequence(PARAMS, 5, seed=1)]
    with pytest.raises(AssertionError, match=r"^finite_in_finite_out: step 0 \(finite gradients"):
        invariants.finite_in_finite_out(_normalised(), PARAMS, gradients=grads)
    # NumPy float64 gradients are cast to the parameters' float32: the eager run sees them
    seen = []

    def update_fn(updates, state, params=None):
        if not isinstance(updates["w"], jax.core.Tracer):
            seen.append(updates)
        return updates, state

    spy = optax.GradientTransformation(lambda p: optax.EmptyState(), update_fn)
    as_numpy = [jax.tree.map(lambda x: np.asarray(x, np.float64), g) for g in grads]
    invariants.jit_equals_eager(spy, PARAMS, gradients=as_numpy)
    chex.assert_trees_all_equal(seen, grads)  # dtypes included


def test_a_callable_is_called_with_the_tree_to_shape_the_steps_and_the_seed():
    calls = []

    def gradients(like, steps, seed):
        calls.append((jax.tree.map(jnp.shape, like), steps, seed))
        return testing.gradient_sequence(like, steps, seed)

    invariants.vmap_equals_loop(optax.trace(0.9), PARAMS, seed=3, gradients=gradients)
    shapes = {"b": (3,), "w": (2, 3)}
    assert calls == [(shapes, 6, 3), (shapes, 6, 4)]  # the run, then vmap's second member
    calls.clear()
    lookahead = optax.lookahead(optax.sgd(0.1), sync_period=2, slow_step_size=0.5)
    synced = optax.LookaheadParams.init_synced(PARAMS)
    invariants.finite_in_finite_out(lookahead, synced, gradients=gradients)
    assert calls == [(shapes, 6, 0)]  # shaped like params.fast


def test_finite_in_finite_out_checks_the_steps_before_the_first_non_finite_gradient():
    grads = testing.gradient_sequence(PARAMS, 6, seed=0)
    grads[3] = jax.tree.map(lambda g: g.at[0].set(jnp.nan), grads[3])
    invariants.finite_in_finite_out(optax.trace(0.9), PARAMS, gradients=grads)  # NaN from 3 on

    def update_fn(updates, state, params=None):  # NaN at step 1, before the NaN gradient
        return jax.tree.map(lambda g: g / (state.count - 1), updates), optax.ScaleByScheduleState(
            optax.safe_increment(state.count)
        )

    tx = optax.GradientTransformation(
        lambda p: optax.ScaleByScheduleState(jnp.zeros([], jnp.float32)), update_fn
    )
    with pytest.raises(AssertionError, match=r"^finite_in_finite_out: step 1 \(finite gradients"):
        invariants.finite_in_finite_out(tx, PARAMS, gradients=grads)
