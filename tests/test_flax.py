"""momentum_optax inside Flax: nnx.Optimizer and the experiments' compiled loop
(``experiments.loop``) against the same steps taken one by one in Python."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

import momentum_optax as mo
from experiments import data as data_lib
from experiments import loop
from experiments import models
from experiments import quickstart
from experiments import tasks
from tests import helpers


@pytest.mark.parametrize(
    "opt",
    [
        mo.sgd(0.05, 0.9),
        mo.sgd(0.05, 0.9, nesterov=True),
        mo.sgd(0.5, mo.schedules.anneal(0.5, 0.9, steps=50), ema=True, reset_every=40),
    ],
    ids=["heavy_ball", "nesterov", "annealed_ema_reset"],
)
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
    # the loss-reading restart checks that each step's loss reaches opt.update as value=
    task = tasks.digits_mlp(hidden=16)
    opt = mo.adaptive_restart(mo.sgd(0.05, 0.9, nesterov=True), scheme="function")
    schedule = loop.Schedule(steps=30, batch_size=16, eval_every=10)
    key = jax.random.key(2)
    curves = jax.jit(lambda k: loop.train(opt, task, k, schedule))(key)
    # the same steps, one jitted step at a time from Python: batches of uniform indices
    # drawn from the batch key, one draw per step
    ds = task.data
    init_key, batch_key = jax.random.split(key)

    def batch_loss(params, t):
        idx = jax.random.randint(jax.random.fold_in(batch_key, t), (16,), 0, len(ds.y_train))
        return tasks.loss(task, params, ds.x_train[idx], ds.y_train[idx])

    run = helpers.descend(
        opt,
        task.init(init_key),
        schedule.steps,
        jax.grad(batch_loss),
        value_fn=batch_loss,
    )
    full_loss = jax.jit(lambda p: tasks.loss(task, p, ds.x_train, ds.y_train))
    evaluated = range(schedule.eval_every - 1, schedule.steps, schedule.eval_every)
    train_loss = [full_loss(task.init(init_key))]
    train_loss += [full_loss(helpers.take(run.history, t)) for t in evaluated]
    params, state = run.params, run.state
    val_loss, val_acc = tasks.loss_and_accuracy(task, params, ds.x_val, ds.y_val)
    test_loss, test_acc = tasks.loss_and_accuracy(task, params, ds.x_test, ds.y_test)
    np.testing.assert_allclose(curves.train_loss, train_loss, rtol=1e-4)
    np.testing.assert_allclose(
        [curves.val_loss[-1], curves.val_accuracy[-1], curves.test_loss, curves.test_accuracy],
        [val_loss, val_acc, test_loss, test_acc],
        rtol=1e-4,
    )
    assert int(state.restarts) > 0  # restarts fired: without value= the runs would differ


@pytest.mark.slow
def test_quickstart_momentum_beats_plain_sgd_and_ema_equals_heavy_ball():
    names = ("plain SGD", "heavy ball 0.9", "EMA 0.9, lr / (1 - b)")
    rows = {r["optimizer"]: r for r in quickstart.run(steps=200, seed=0, names=names)}
    assert list(rows) == list(names)
    plain, heavy = rows["plain SGD"], rows["heavy ball 0.9"]
    assert heavy["final train loss"] < 0.5 * plain["final train loss"]
    assert heavy["test accuracy"] > 0.9
    np.testing.assert_allclose(
        rows["EMA 0.9, lr / (1 - b)"]["final train loss"], heavy["final train loss"], rtol=1e-3
    )
