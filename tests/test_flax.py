"""momentum_optax inside Flax: nnx.Optimizer, an nnx.Module with BatchNorm and Dropout
trained by mo.train_step, and the experiments' compiled loop (``experiments.loop``) against
the same steps taken one by one in Python."""

import inspect

import jax
import jax.numpy as jnp
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
from experiments.protocol import stats
from tests import helpers

# flax 0.11 takes the model: update(model, grads); 0.10, the last for Python 3.10: update(grads)
MODEL_ARG = "model" in inspect.signature(nnx.Optimizer.update).parameters


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
        if MODEL_ARG:
            optimizer.update(model, grads)
        else:
            optimizer.update(grads)
        return loss

    first = float(step(model, optimizer))
    for _ in range(100):
        last = float(step(model, optimizer))
    assert last < 0.25 * first
    accuracy = np.mean(np.argmax(model(split.x_test), -1) == np.asarray(split.y_test))
    assert accuracy > 0.85


def value(variable):
    """A state entry's array: a Variable (flax 0.12) or a VariableState (flax 0.10) holds one."""
    (array,) = jax.tree.leaves(variable)
    return array


def rng_count(state):
    """The RNG count in a Dropout's state (flax 0.10 keeps it one level deeper, per stream)."""
    paths = jax.tree_util.tree_leaves_with_path(state)
    (count,) = [leaf for path, leaf in paths if "count" in jax.tree_util.keystr(path)]
    return int(count)


class DropoutMLP(nnx.Module):
    """Linear, BatchNorm, ReLU, Dropout, Linear: the state a step must carry forward."""

    def __init__(self, din: int, hidden: int, dout: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(din, hidden, rngs=rngs)
        self.norm = nnx.BatchNorm(hidden, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        self.out = nnx.Linear(hidden, dout, rngs=rngs)

    def __call__(self, x):
        return self.out(self.dropout(jax.nn.relu(self.norm(self.hidden(x)))))


@pytest.mark.parametrize(
    "opt",
    [mo.sgd(0.1, 0.9), mo.qhadam(0.01), mo.fused_sgd(0.1, 0.9)],
    ids=["sgd", "qhadam", "fused_sgd"],
)
def test_train_step_trains_an_nnx_module_with_batchnorm_and_dropout(opt):
    split = data_lib.load("digits", seed=0)
    model = DropoutMLP(64, 32, 10, rngs=nnx.Rngs(0))
    model.train()  # BatchNorm on batch statistics, Dropout on: fixed in the graphdef
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(params, rest, x, y):
        model = nnx.merge(graphdef, params, rest)
        logits = model(x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, nnx.state(model, nnx.Not(nnx.Param))  # the new statistics and RNG count

    step = mo.train_step(loss_fn, opt, has_aux=True)
    probe = mo.train_step(loss_fn, opt, has_aux=True, donate=False)
    state = opt.init(params)
    x, y = split.x_train[:256], split.y_train[:256]
    rests, losses = [rest], []
    for _ in range(60):
        old = jax.tree.leaves(params)
        params, state, (loss, rest) = step(params, state, rest, x, y)
        assert all(leaf.is_deleted() for leaf in old)  # donated
        rests.append(rest)
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < 0.3 * losses[0], losses
    # the running statistics moved away from their initial (0, 1)
    assert float(jnp.max(jnp.abs(value(rest["norm"]["mean"])))) > 0.05
    assert float(jnp.max(jnp.abs(value(rest["norm"]["var"]) - 1.0))) > 0.05
    # dropout's RNG advanced once a step, and the next step draws another mask: the same
    # parameters and batch give the same loss with the same RNG state, another with the next
    counts = [rng_count(r["dropout"]) for r in rests]
    # (from the count it had after initialisation: flax 0.10 shares it with the layers' init)
    assert counts == list(range(counts[0], counts[0] + 61)), counts
    losses_at = [float(probe(params, state, r, x, y)[2][0]) for r in (rests[1], rests[1], rests[2])]
    assert losses_at[0] == losses_at[1] and losses_at[1] != losses_at[2], losses_at
    # written back into the model, evaluated on running statistics without dropout
    nnx.update(model, params, rest)
    model.eval()
    accuracy = np.mean(np.argmax(model(split.x_test), -1) == np.asarray(split.y_test))
    assert accuracy > 0.85, accuracy


def test_nnx_optimizer_given_fused_sgd_fails_by_the_first_update_naming_apply():
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    grads = nnx.state(model, nnx.Param)
    with pytest.raises(TypeError, match=r"fused\.apply\(params, state, grads\).*mo\.train_step"):
        optimizer = nnx.Optimizer(model, mo.fused_sgd(0.1, 0.9), wrt=nnx.Param)
        optimizer.update(model, grads) if MODEL_ARG else optimizer.update(grads)


@pytest.mark.slow
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
def test_quickstart_tells_every_method_from_heavy_ball_but_ema_which_equals_it():
    rows = {r["optimizer"]: r for r in quickstart.run()}  # the command's defaults
    assert list(rows) == list(quickstart.optimizers())
    heavy = rows[quickstart.BASELINE]
    assert heavy["final train loss"].high < rows["plain SGD"]["final train loss"].low
    assert heavy[quickstart.DIFFERENCE] == "-"
    for name in ("plain SGD", "Nesterov 0.9", "heavy ball 0.9, reset every 50"):
        difference = rows[name][quickstart.DIFFERENCE]
        assert not difference.low <= 0 <= difference.high, (name, str(difference))
    same = rows[quickstart.SAME_AS_BASELINE]
    np.testing.assert_allclose(
        same["final train loss"].mean, heavy["final train loss"].mean, rtol=1e-3
    )
    [note] = quickstart.notes(list(rows.values()))  # the identity only: the rest differ
    assert note.startswith(f"{quickstart.SAME_AS_BASELINE} equals {quickstart.BASELINE}")


def test_quickstart_notes_the_methods_its_seeds_cannot_tell_from_heavy_ball():
    def row(name, difference):
        return {"optimizer": name, quickstart.DIFFERENCE: difference}

    rows = [
        row(quickstart.BASELINE, "-"),
        row("Nesterov 0.9", stats.Interval(-0.01, -0.03, 0.01, 5)),
        row("plain SGD", stats.Interval(0.5, 0.4, 0.6, 5)),
    ]
    [note] = quickstart.notes(rows)
    assert note == (
        f"Nesterov 0.9: its paired interval against {quickstart.BASELINE} contains 0, so 5 "
        "seeds do not tell them apart at this budget (--seeds, --steps)."
    )
    with pytest.raises(ValueError, match="seeds must be at least 2"):
        quickstart.run(seeds=1)
    with pytest.raises(SystemExit) as exit_info:
        quickstart.main(["--seeds", "1"])
    assert exit_info.value.code == 2
