"""Every public factory under ``optax.inject_hyperparams`` with its defaults: optax hands
every int and float argument (the defaults too) on as an array, concrete in ``init`` and
traced in a jitted ``update``. Each factory takes them and gives its own updates; the
integers that set a buffer's shape are read from the state, and one traced where the state
is made is refused naming ``static_args``.
"""

import inspect

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

import momentum_optax as mo
from tests.helpers import PARAMS

#: the arguments each factory needs (the rest are its defaults); an integer is given where
#: the factory has one, so that it too goes through inject_hyperparams as an array
REQUIRED = {
    "trace": dict(decay=0.9),
    "ema": dict(decay=0.9, debias=True),
    "delta_momentum": dict(momentum=0.5),
    "aggmo": dict(decays=(0.0, 0.9)),
    "sgd": dict(learning_rate=0.1, momentum=0.9, reset_every=3),
    "srsgd": dict(learning_rate=0.1, restart_every=5),
    "cautious": dict(inner=mo.trace(0.9)),
    "sma": dict(window=4),
    "qhm": dict(nu=0.7, decay=0.9),
    "qhadam": dict(learning_rate=0.1),
    "scale_by_qhadam": {},
    "adaptive_restart": dict(inner=mo.trace(0.9)),
    "periodic_reset": dict(inner=mo.trace(0.9), every=3),
    "scale_by_learning_rate": dict(learning_rate=0.1),
    "scale_by_yellowfin": {},
    "yellowfin": {},
    "torch_sgd": dict(learning_rate=0.1, momentum=0.9, dampening=0.1),
}
#: public callables that are not transformation factories
NOT_FACTORIES = {"train_step", "check_restored", "fused_sgd"}


def _public_callables():
    return sorted(
        name for name in mo.__all__ if name[0].islower() and inspect.isfunction(getattr(mo, name))
    )


def test_every_public_factory_is_covered_here():
    assert set(_public_callables()) - NOT_FACTORIES == set(REQUIRED)


def _gradients(t):
    return jax.tree.map(lambda p: jnp.full(jnp.shape(p), (-1.0) ** t * (t + 1.0)), PARAMS)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_a_factory_under_inject_hyperparams_gives_its_own_updates(name):
    factory, kwargs = getattr(mo, name), REQUIRED[name]
    injected = optax.inject_hyperparams(factory)(**kwargs)
    plain = factory(**kwargs)
    state, plain_state = injected.init(PARAMS), plain.init(PARAMS)
    update = jax.jit(injected.update)
    for t in range(6):
        u, state = update(_gradients(t), state, PARAMS)
        v, plain_state = plain.update(_gradients(t), plain_state, PARAMS)
        # inject_hyperparams holds 0.999 as a float32, whose 1 - b2 is 4e-5 off 0.001
        chex.assert_trees_all_close(u, v, rtol=1e-4, atol=1e-7)
    # the buffers agree (a stage for a weight decay of 0 is kept when it comes as an array)
    chex.assert_trees_all_close(
        jax.tree.leaves(state.inner_state), jax.tree.leaves(plain_state), rtol=1e-4, atol=1e-7
    )


def test_an_integer_period_is_injected_and_read_as_a_number():
    # a period injected as an array is the period: reset every 2 steps, not every 3
    injected = optax.inject_hyperparams(mo.periodic_reset, static_args=("inner",))
    opt = injected(inner=mo.trace(0.9), every=3)
    state = opt.init(PARAMS)
    state.hyperparams["every"] = jnp.int32(2)
    reference = mo.periodic_reset(mo.trace(0.9), every=2)
    ref_state = reference.init(PARAMS)
    for t in range(5):
        u, state = jax.jit(opt.update)(_gradients(t), state, PARAMS)
        v, ref_state = reference.update(_gradients(t), ref_state, PARAMS)
        chex.assert_trees_all_close(u, v, rtol=1e-6)


@pytest.mark.parametrize(
    "factory,kwargs,name",
    [(mo.sma, dict(window=4), "window"), (mo.scale_by_yellowfin, {}, "curvature_window")],
    ids=["sma", "scale_by_yellowfin"],
)
def test_a_shape_traced_where_the_state_is_made_is_refused_naming_static_args(
    factory, kwargs, name
):
    opt = optax.inject_hyperparams(factory)(**kwargs)
    with pytest.raises(TypeError, match=rf"{name}.*static_args=\('{name}',\)"):
        jax.jit(opt.init)(PARAMS)
    static = optax.inject_hyperparams(factory, static_args=(name,))(**kwargs)
    jax.jit(static.init)(PARAMS)  # the spelling the message names works


@pytest.mark.parametrize("bad,error", [(0, ValueError), (-2, ValueError), (2.5, TypeError)])
def test_an_injected_period_out_of_range_is_refused_naming_it(bad, error):
    opt = optax.inject_hyperparams(mo.sma)(window=jnp.asarray(bad))
    with pytest.raises(error, match="window must be"):
        opt.init(PARAMS)


def test_fused_sgd_is_refused_naming_the_transformation_to_use():
    opt = optax.inject_hyperparams(mo.fused_sgd)(learning_rate=0.1, momentum=0.9)
    with pytest.raises(TypeError, match=r"use mo\.sgd with the same arguments"):
        opt.update(_gradients(0), opt.init(PARAMS), PARAMS)
