"""The compiled loop with evaluation, tasks, and comparisons of methods over trials x seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import momentum_optax as mo
from experiments import comparison
from experiments import data
from experiments import loop
from experiments import tasks
from experiments.protocol import tuning
from tests import helpers

KEY = jax.random.key(0)
TINY = loop.Schedule(steps=6, batch_size=4, eval_every=3)


@pytest.mark.slow
def test_loop_equals_a_python_loop_of_the_same_steps():
    task = tasks.digits_mlp()
    opt = mo.sgd(0.1, 0.9)
    curves = jax.jit(lambda k: loop.train(opt, task, k, TINY))(KEY)
    init_key, batch_key = jax.random.split(KEY)
    ds = task.data
    full = jax.jit(lambda p: tasks.loss(task, p, ds.x_train, ds.y_train))

    def batch_gradient(params, t):  # uniform batches with replacement, key fold_in(batch_key, t)
        idx = jax.random.randint(jax.random.fold_in(batch_key, t), (4,), 0, len(ds.y_train))
        return jax.grad(lambda p: tasks.loss(task, p, ds.x_train[idx], ds.y_train[idx]))(params)

    # the same steps, one jitted step at a time from Python, outside any scan
    run = helpers.descend(opt, task.init(init_key), TINY.steps, batch_gradient)
    expected = [full(task.init(init_key))]
    evaluated = range(TINY.eval_every - 1, TINY.steps, TINY.eval_every)
    expected += [full(helpers.take(run.history, t)) for t in evaluated]
    params = run.params
    np.testing.assert_allclose(curves.train_loss, expected, rtol=2e-5)
    _, test_acc = tasks.loss_and_accuracy(task, params, ds.x_test, ds.y_test)
    np.testing.assert_allclose(curves.test_accuracy, test_acc)
    assert curves.val_accuracy.shape == (3,) and TINY.eval_steps.tolist() == [0, 3, 6]


@pytest.mark.slow
def test_seeds_fix_the_start_and_batches_for_every_method_and_differ_between_seeds():
    task = tasks.digits_mlp()
    frozen = tuning.Space(lr=(1e-9, 1e-9))  # lr ~ 0: the curves stay at the initial loss
    methods = [
        comparison.Method("heavy ball", comparison.heavy_ball, frozen),
        comparison.Method("Nesterov", comparison.nesterov, frozen),
    ]
    runs = comparison.run(methods, task, trials=1, seeds=3, key=KEY, schedule=TINY)
    start = [r.curves.train_loss[0, :, 0] for r in runs]
    np.testing.assert_array_equal(start[0], start[1])  # same initialisation per seed
    assert len(set(np.round(start[0], 6).tolist())) == 3  # other seeds, other starts
    np.testing.assert_allclose(runs[0].curves.train_loss[0, :, -1], start[0], rtol=1e-6)


@pytest.mark.slow
def test_methods_in_one_compile_equal_their_separate_runs():
    task = tasks.digits_mlp()
    space = tuning.Space(lr=(1e-2, 1e-1), one_minus_beta=(0.05, 0.5))
    methods = [
        comparison.Method("heavy ball", comparison.heavy_ball, space),
        comparison.Method("Nesterov", comparison.nesterov, space),
    ]
    # a 2 x 2 grid of lr x (1 - beta)
    together = comparison.run(methods, task, trials=4, seeds=2, key=KEY, schedule=TINY)
    alone = comparison.run(methods[1], task, trials=4, seeds=2, key=KEY, schedule=TINY)
    np.testing.assert_allclose(together[1].curves.train_loss, alone.curves.train_loss, rtol=1e-6)
    assert not np.allclose(together[0].curves.train_loss, together[1].curves.train_loss)
    assert together[0].curves.train_loss.shape == (4, 2, 3)


def test_methods_that_need_other_columns_are_refused():
    task = tasks.digits_mlp()
    methods = [
        comparison.Method("sgd", comparison.heavy_ball, tuning.Space()),
        comparison.Method("adam", comparison.heavy_ball, tuning.Space(eps=(1e-8, 1e-4))),
    ]
    with pytest.raises(ValueError, match="same columns"):  # 4 trials: a 2 x 2 grid for adam
        comparison.run(methods, task, trials=4, seeds=1, key=KEY, schedule=TINY)
    with pytest.raises(ValueError, match=r"n = k\*\*2"):  # lr x eps is a crossed grid
        comparison.run(methods[1], task, trials=2, seeds=1, key=KEY, schedule=TINY)


def _trials(train_final, val_final=None, space=None):
    """Hand-made ``Trials``: curves ``(trials, seeds, 3 evaluations)`` that start at 2.0 and
    end at ``train_final`` / ``val_final`` (``(trials, seeds)``)."""
    train_final = np.asarray(train_final, np.float64)
    val_final = train_final if val_final is None else np.asarray(val_final, np.float64)
    start = np.full((*train_final.shape, 2), 2.0)
    train = np.concatenate([start, train_final[..., None]], -1)
    val = np.concatenate([start, val_final[..., None]], -1)
    accuracy = np.zeros(train_final.shape)
    curves = loop.Curves(train, val, np.zeros_like(val), val, accuracy)
    n = train_final.shape[0]
    space = tuning.Space() if space is None else space
    return comparison.Trials("m", space, tuning.trials(space, n), curves, TINY)


def test_finite_flags_the_trials_on_which_no_seed_diverged():
    trials = _trials([[0.5, 0.4], [0.5, np.nan], [np.inf, 0.3], [1.5, 1.9]])
    assert trials.finite.tolist() == [True, False, False, True]
    assert trials.seeds == 2


def test_pick_takes_the_trial_its_settings_and_flags_the_largest_step_that_did_not_diverge():
    # effective steps 0.01, 0.0316, 0.1, 0.316, 1 (lr = step x 0.1); the two largest diverge
    space = tuning.Space(effective=(0.01, 1.0), momentum=0.9)
    finals = [[0.5, 0.6], [0.4, 0.5], [0.3, 0.2], [np.nan, 0.1], [np.inf, np.nan]]
    trials = _trials(finals, space=space)
    chosen = trials.pick(2)
    assert chosen.method == "m" and chosen.index == 2
    assert chosen.setting["lr"] == pytest.approx(0.1 * 0.1, rel=1e-6)
    assert chosen.setting["momentum"] == pytest.approx(0.9)
    np.testing.assert_array_equal(chosen.curves.train_loss[:, -1], [0.3, 0.2])
    assert chosen.curves.train_loss.shape == (2, 3)  # leading axis: seeds
    assert chosen.chosen.tolist() == [2, 2]  # every seed's curves from trial 2
    assert chosen.edge == ["effective step (largest that did not diverge)"]
    assert trials.pick(1).edge == []  # inside the space and below the stable limit
    assert trials.pick(0).edge == ["effective step"]  # the grid's smallest step
    # the same choice with no trial diverged sits inside the space: no flag
    calm = _trials(np.full((5, 2), 0.3), space=space)
    assert calm.finite.all() and calm.pick(2).edge == []


def test_selection_by_final_loss_is_cross_fitted_and_counts_diverged_runs_as_the_worst():
    # 4 seeds: folds even (0, 2) and odd (1, 3); trial 1 is best where it did not diverge
    train = [[1.0, 1.0, 1.0, 1.0], [0.1, np.nan, 0.1, 0.2], [0.5, 0.7, 0.6, 0.4]]
    val = [[0.2, 0.2, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1], [0.9, 0.9, 0.9, 0.9]]
    trials = _trials(train, val)
    np.testing.assert_array_equal(comparison.final(trials.curves.train_loss)[1, :2], [0.1, np.inf])
    chosen = comparison.select_by_train_loss(trials)
    # the setting shown: the best mean on all seeds (trial 1's NaN counts as inf)
    assert chosen.index == 2 and chosen.setting["lr"] == pytest.approx(trials.table["lr"][2])
    # each seed's curves: the trial the other fold chose (the odd seeds choose 2 for the
    # even ones; the even seeds choose 1, which diverged on seed 1, for the odd ones)
    assert chosen.chosen.tolist() == [2, 1, 2, 1]
    np.testing.assert_array_equal(chosen.curves.train_loss[:, -1], [0.5, np.nan, 0.6, 0.2])
    by_val = comparison.select_by_validation_loss(trials)
    assert by_val.index == 1 and by_val.chosen.tolist() == [1, 1, 1, 1]


def test_schedule_refuses_bad_lengths():
    with pytest.raises(ValueError, match="multiple of eval_every"):
        loop.Schedule(steps=10, batch_size=1, eval_every=3)
    with pytest.raises(ValueError, match=r"Schedule\.batch_size"):
        loop.Schedule(steps=10, batch_size=0, eval_every=5)


@pytest.mark.slow
def test_mnist1d_splits_are_disjoint_and_standardised_on_the_training_part():
    ds = data.mnist1d(num_samples=1200)
    assert (ds.x_train.shape, ds.x_val.shape, ds.x_test.shape) == ((800, 40), (200, 40), (200, 40))
    np.testing.assert_allclose(np.asarray(ds.x_train).mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ds.x_train).std(0), 1.0, atol=1e-3)
    rows = lambda x: {tuple(np.round(np.asarray(r), 5)) for r in x}
    assert not rows(ds.x_train) & rows(ds.x_test) and not rows(ds.x_val) & rows(ds.x_test)
    assert set(np.asarray(ds.y_train).tolist()) == set(range(10))
    with pytest.raises(ValueError, match="num_samples"):
        data.mnist1d(num_samples=10)


@pytest.mark.slow
def test_cnn_task_initialises_per_key_and_maps_sequences_to_logits():
    task = tasks.mnist1d_cnn(channels=4, num_samples=1200)
    a, b = task.init(jax.random.key(1)), task.init(jax.random.key(2))
    logits = task.apply(a, task.data.x_val[:5])
    assert logits.shape == (5, 10)
    assert not np.allclose(logits, task.apply(b, task.data.x_val[:5]))
    batched = jax.vmap(task.init)(jax.random.split(KEY, 3))  # seeds vmapped
    assert jax.tree.leaves(batched)[0].shape[0] == 3
    assert jnp.isfinite(tasks.loss(task, a, task.data.x_val, task.data.y_val))
