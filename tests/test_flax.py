"""momentum_optax inside Flax: nnx.Optimizer and the experiments' compiled loop."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

import momentum_optax as mo
from experiments import data as data_lib
from experiments import models
from experiments import quickstart
from experiments import training


@pytest.mark.parametrize("opt", [mo.sgd(0.05, 0.9), mo.sgd(0.05, 0.9, nesterov=True),
                                 mo.sgd(0.5, mo.schedules.anneal(0.5, 0.9, 50), ema=True,
                                        reset_every=40)],
                         ids=["heavy_ball", "nesterov", "annealed_ema_reset"])
def test_nnx_optimizer_trains_an_mlp_on_iris(opt):
    split = data_lib.load("iris", seed=0)
    model = models.MLP(4, 16, 3, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, opt, wrt=nnx.Param)

    def loss_fn(model):
        logits = model(split.x_train)
        return optax.softmax_cross_entropy_with_integer_labels(logits, split.y_train).mean()

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    first = float(step(model, optimizer))
    for _ in range(100):
        last = float(step(model, optimizer))
    assert last < 0.25 * first
    accuracy = np.mean(np.argmax(model(split.x_test), -1) == np.asarray(split.y_test))
    assert accuracy > 0.85


def test_compiled_loop_matches_a_python_loop_of_steps():
    split = data_lib.load("iris", seed=1)
    graphdef, params = training.init_mlp(split, jax.random.key(1), hidden=8)
    opt = mo.sgd(0.05, 0.9, nesterov=True)
    train = training.make_train(opt, graphdef, epochs=2, batch_size=16)
    result = train(params, split, jax.random.key(2))
    # the same steps, one by one in Python
    state = opt.init(params)
    n = split.x_train.shape[0] // 16
    for epoch_key in jax.random.split(jax.random.key(2), 2):
        order = np.asarray(jax.random.permutation(epoch_key, split.x_train.shape[0]))[: n * 16]
        for idx in order.reshape(n, 16):
            grads = jax.grad(training.classifier_loss, argnums=1)(
                graphdef, params, split.x_train[idx], split.y_train[idx])
            updates, state = opt.update(grads, state, params)
            params = optax.apply_updates(params, updates)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 result.params, params)


def test_quickstart_momentum_beats_plain_sgd_and_ema_equals_heavy_ball():
    rows = {r["optimizer"]: r for r in quickstart.run(epochs=6, seed=0)}
    plain, heavy = rows["plain SGD"], rows["heavy ball 0.9"]
    assert heavy["final train loss"] < 0.5 * plain["final train loss"]
    assert heavy["test accuracy"] > 0.9
    np.testing.assert_allclose(rows["EMA 0.9, lr / (1 - b)"]["final train loss"],
                               heavy["final train loss"], rtol=1e-3)
