"""mo.train_step: the optimizer's numbers, donation, batch by keyword, metrics, MultiSteps."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.full(3, 0.5, jnp.float32)}


def _loss(params, x, y):
    """Least squares of a linear model: ``x`` is (n, 2), ``y`` is (n, 3)."""
    return jnp.mean((x @ params["w"] + params["b"][None, :] - y) ** 2)


def _batch(seed):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal((8, 2)), jnp.float32), jnp.asarray(
        rng.standard_normal((8, 3)), jnp.float32
    )


def _fresh():
    return jax.tree.map(jnp.copy, PARAMS)


def _manual_run(opt, steps, **extra):
    """The steps taken by hand: value_and_grad, opt.update, apply_updates."""
    params, state, losses = PARAMS, opt.init(PARAMS), []
    for t in range(steps):
        value, grads = jax.value_and_grad(_loss)(params, *_batch(t))
        kwargs = {"value": value} if extra.get("value") else {}
        updates, state = opt.update(grads, state, params, **kwargs)
        params = optax.apply_updates(params, updates)
        losses.append(value)
    return params, state, np.array(losses)


@pytest.mark.parametrize(
    "make",
    [lambda: mo.sgd(0.05, 0.9, nesterov=True), lambda: mo.fused_sgd(0.05, 0.9, nesterov=True)],
    ids=["sgd", "fused_sgd"],
)
def test_train_step_donates_and_matches_a_manual_step(make):
    opt = make()
    step = mo.train_step(_loss, opt)
    params = _fresh()
    state = opt.init(params)
    for t in range(5):
        old = jax.tree.leaves((params, state))
        params, state, value = step(params, state, *_batch(t))
        assert all(x.is_deleted() for x in old)  # donated: the new ones live in the old buffers
    ref_params, _, ref_losses = _manual_run(mo.sgd(0.05, 0.9, nesterov=True), 5)
    np.testing.assert_allclose(value, ref_losses[-1], rtol=1e-6)
    chex.assert_trees_all_close(params, ref_params, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "make", [lambda: mo.sgd(0.05, 0.9), lambda: mo.fused_sgd(0.05, 0.9)], ids=["sgd", "fused_sgd"]
)
def test_donate_false_keeps_the_inputs_usable(make):
    opt = make()
    step = mo.train_step(_loss, opt, donate=False)
    params = _fresh()
    state = opt.init(params)
    first = step(params, state, *_batch(0))
    again = step(params, state, *_batch(0))  # the same inputs, reused
    assert not any(x.is_deleted() for x in jax.tree.leaves((params, state)))
    chex.assert_trees_all_equal(first, again)
    chex.assert_trees_all_equal(params, PARAMS)  # not written in place
    donated = mo.train_step(_loss, opt)(_fresh(), opt.init(_fresh()), *_batch(0))
    chex.assert_trees_all_equal(first, donated)


def test_reusing_a_donated_input_is_refused_naming_it():
    opt = mo.sgd(0.05, 0.9)
    step = mo.train_step(_loss, opt)
    params, state = _fresh(), opt.init(_fresh())
    new_params, new_state, _ = step(params, state, *_batch(0))
    with pytest.raises(ValueError, match=r"^params\['b'\] is a deleted array.*donate=False"):
        step(params, new_state, *_batch(1))
    with pytest.raises(ValueError, match=r"^opt_state.* is a deleted array"):
        step(new_params, state, *_batch(1))
    x, y = _batch(1)
    x.delete()
    with pytest.raises(ValueError, match=r"^batch argument 0 is a deleted array"):
        step(new_params, new_state, x, y)
    with pytest.raises(ValueError, match=r"^batch argument 'x' is a deleted array"):
        step(new_params, new_state, x=x, y=y)
    # the refused calls consumed nothing: the returned arrays still train
    step(new_params, new_state, *_batch(1))


def test_batch_arguments_by_position_or_keyword_give_the_same_step():
    opt = mo.sgd(0.05, 0.9)
    step = mo.train_step(_loss, opt, donate=False)
    params, state = PARAMS, opt.init(PARAMS)
    x, y = _batch(0)
    by_position = step(params, state, x, y)
    chex.assert_trees_all_equal(step(params, state, x, y=y), by_position)
    chex.assert_trees_all_equal(step(params, state, x=x, y=y), by_position)
    ref_params, _, ref_losses = _manual_run(opt, 1)
    chex.assert_trees_all_close(by_position[0], ref_params, rtol=1e-6)
    np.testing.assert_allclose(by_position[2], ref_losses[0], rtol=1e-6)


def _norms(grads, updates, params):
    return {
        "grad_norm": optax.tree.norm(grads),
        "update_norm": optax.tree.norm(updates),
        "update_sum": optax.tree.sum(updates),  # signed: an update of the wrong sign shows
        "param_norm": optax.tree.norm(params),
    }


@pytest.mark.parametrize(
    "make", [lambda: mo.sgd(0.05, 0.9), lambda: mo.fused_sgd(0.05, 0.9)], ids=["sgd", "fused_sgd"]
)
def test_metrics_see_the_gradient_the_update_and_the_params_before_it(make):
    opt = make()
    step = mo.train_step(_loss, opt, metrics=_norms)
    reference = mo.sgd(0.05, 0.9)
    params, state = _fresh(), opt.init(_fresh())
    ref_params, ref_state = PARAMS, reference.init(PARAMS)
    for t in range(3):
        params, state, _, metrics = step(params, state, *_batch(t))
        grads = jax.grad(_loss)(ref_params, *_batch(t))
        updates, ref_state = reference.update(grads, ref_state, ref_params)
        expected = {
            "grad_norm": optax.tree.norm(grads),
            "update_norm": optax.tree.norm(updates),
            "update_sum": optax.tree.sum(updates),
            "param_norm": optax.tree.norm(ref_params),
        }
        ref_params = optax.apply_updates(ref_params, updates)
        chex.assert_trees_all_close(metrics, expected, rtol=1e-5, atol=1e-6)
    assert float(metrics["update_norm"]) > 0.0


def test_metrics_come_after_the_aux_output():
    loss = lambda p, x, y: (_loss(p, x, y), {"mean_w": jnp.mean(p["w"])})
    opt = mo.sgd(0.05)
    step = mo.train_step(loss, opt, has_aux=True, metrics=lambda g, u, p: optax.tree.norm(g))
    _, _, (value, aux), grad_norm = step(_fresh(), opt.init(PARAMS), *_batch(0))
    np.testing.assert_allclose(value, _loss(PARAMS, *_batch(0)), rtol=1e-6)
    np.testing.assert_allclose(aux["mean_w"], jnp.mean(PARAMS["w"]), rtol=1e-6)
    np.testing.assert_allclose(
        grad_norm, optax.tree.norm(jax.grad(_loss)(PARAMS, *_batch(0))), rtol=1e-6
    )


def test_the_step_compiles_once():
    traces = []

    def loss(params, x, y):
        traces.append(None)  # runs once per trace
        return _loss(params, x, y)

    opt = mo.sgd(0.05, 0.9)
    step = mo.train_step(loss, opt, metrics=_norms)
    params, state = _fresh(), opt.init(PARAMS)
    for t in range(4):
        params, state, _, _ = step(params, state, *_batch(t))
    assert len(traces) == 1


def test_multisteps_accumulates_exactly_as_optax_multisteps():
    opt = optax.MultiSteps(mo.sgd(0.1, 0.9), every_k_schedule=3)
    step = mo.train_step(_loss, opt)

    @jax.jit
    def manual(params, state, x, y):  # optax's own recipe, compiled the same way
        grads = jax.grad(_loss)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params, state = _fresh(), opt.init(PARAMS)
    ref_params, ref_state = PARAMS, opt.init(PARAMS)
    for t in range(7):
        params, state, _ = step(params, state, *_batch(t))
        ref_params, ref_state = manual(ref_params, ref_state, *_batch(t))
        chex.assert_trees_all_equal((params, state), (ref_params, ref_state))
    assert int(state.gradient_step) == 2  # two updates applied, one mini-step pending
    assert int(state.mini_step) == 1
    assert not np.allclose(params["w"], PARAMS["w"])


@pytest.mark.slow
def test_multisteps_forwards_the_loss_to_the_transformation_it_wraps():
    inner = optax.chain(
        mo.adaptive_restart(mo.trace(0.99), scheme="function"), optax.scale_by_learning_rate(0.4)
    )
    opt = optax.MultiSteps(inner, every_k_schedule=2)
    loss = lambda w: jnp.sum((w - 1.0) ** 2)
    step = mo.train_step(loss, opt)
    w, state = jnp.zeros(2), opt.init(jnp.zeros(2))
    ref_w, ref_state = jnp.zeros(2), opt.init(jnp.zeros(2))
    for _ in range(40):
        w, state, _ = step(w, state)
        value, grads = jax.value_and_grad(loss)(ref_w)
        updates, ref_state = opt.update(grads, ref_state, ref_w, value=value)
        ref_w = optax.apply_updates(ref_w, updates)
    assert int(state.inner_opt_state[0].restarts) > 0  # the loss rose at least once: seen
    chex.assert_trees_all_close((w, state), (ref_w, ref_state), rtol=1e-5)


def test_train_step_passes_the_loss_to_function_restart():
    loss = lambda w: jnp.sum((w - 1.0) ** 2)
    opt = optax.chain(
        mo.adaptive_restart(mo.trace(0.99), scheme="function"), optax.scale_by_learning_rate(0.4)
    )
    step = mo.train_step(loss, opt)
    w, state = jnp.zeros(2), opt.init(jnp.zeros(2))
    for _ in range(30):
        w, state, value = step(w, state)
    assert int(state[0].restarts) > 0  # the loss rose at least once: it was seen
    assert float(value) < 1e-2


def test_train_step_with_aux_returns_it():
    loss = lambda w: (jnp.sum(w**2), {"norm": jnp.linalg.norm(w)})
    opt = mo.sgd(0.1, 0.5)
    step = mo.train_step(loss, opt, has_aux=True)
    w = jnp.ones(4)
    w, _, (value, aux) = step(w, opt.init(w))
    assert float(value) == 4.0 and float(aux["norm"]) == 2.0


def _init(params):
    return ()


@pytest.mark.parametrize(
    "optimizer,shown,hint",
    [
        (mo.sgd, "function sgd", "call it to build the optimizer"),
        ((_init, _init), "function _init", "optax.GradientTransformation(init, update)"),
        ("sgd", "'sgd'", ""),
        (None, "None", ""),
    ],
    ids=["uncalled_factory", "bare_pair", "string", "none"],
)
def test_non_transformations_are_refused_naming_the_argument(optimizer, shown, hint):
    with pytest.raises(TypeError) as info:
        mo.train_step(_loss, optimizer)
    message = str(info.value)
    assert message.startswith("optimizer must be an optax.GradientTransformation"), message
    assert "optax.MultiSteps" in message and "FusedSGD" in message, message
    assert shown in message and hint in message, message


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(donate="no"), "donate must be True or False; got 'no'"),
        (dict(has_aux=1), "has_aux must be True or False; got 1"),
        (dict(metrics="grad_norm"), r"metrics must be None or a callable .*got 'grad_norm'"),
    ],
    ids=["donate", "has_aux", "metrics"],
)
def test_bad_flags_are_refused_at_construction(kwargs, match):
    with pytest.raises(TypeError, match=match):
        mo.train_step(_loss, mo.sgd(0.1), **kwargs)


def test_one_array_in_both_params_and_state_is_refused_when_donating():
    # an init that keeps the parameters themselves: XLA cannot donate one buffer twice
    keeps_params = optax.GradientTransformation(
        lambda params: {"copy": params}, lambda updates, state, params=None: (updates, state)
    )
    loss = lambda w: jnp.sum(w**2)
    w = jnp.ones(3)
    state = keeps_params.init(w)
    with pytest.raises(ValueError, match=r"opt_state\['copy'\] is the same array as params"):
        mo.train_step(loss, keeps_params)(w, state)
    # without donation nothing is consumed, and the step runs
    new_w, _, value = mo.train_step(loss, keeps_params, donate=False)(w, state)
    np.testing.assert_allclose(new_w, 3.0 * w)  # identity updates: w + grad = w + 2w
    assert float(value) == 3.0
