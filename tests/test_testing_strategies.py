"""What the kit draws: the seeded gradient sequence, and hypothesis strategies that produce
what they claim (every rank, dtype and container; coefficients and schedules in range)."""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from momentum_optax import testing
from momentum_optax.testing import oracles
from momentum_optax.testing import strategies


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
    assert _leaves(params), f"an empty tree: {params!r}"  # every container holds a leaf
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


@pytest.mark.slow
def test_coefficients_draw_constants_and_schedules():
    coefficients = strategies.coefficients(0.5, 0.9)
    assert isinstance(
        hypothesis.find(coefficients, lambda c: not callable(c), settings=FIND), float
    )
    assert callable(hypothesis.find(coefficients, callable, settings=FIND))
    constants = strategies.coefficients(0.5, 0.9, schedules_too=False)
    with pytest.raises(hypothesis.errors.NoSuchExample):
        hypothesis.find(constants, callable, settings=FIND)
