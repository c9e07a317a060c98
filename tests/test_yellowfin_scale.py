"""YellowFin at any scale of the loss: the same steps for ``c * loss`` at every ``c``, no
overflow of ``||g||^2``, and training that works at loss scales from 1e-6 to 1e6 (a
quadratic and the experiments' MNIST-1D MLP, 500 steps each)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo

LOSS_SCALES = (1e-6, 1e-2, 1.0, 1e6)


def _gradients(steps, seed=0):
    """Gradient trees of a noisy, shrinking quadratic: ``A x_t + noise``."""
    rng = np.random.default_rng(seed)
    curvature = {"w": rng.uniform(0.1, 3.0, (3, 2)), "b": rng.uniform(0.1, 3.0, (2,))}
    return [
        {
            k: jnp.asarray(a * 0.95**t + 0.2 * rng.standard_normal(a.shape), jnp.float32)
            for k, a in curvature.items()
        }
        for t in range(steps)
    ]


def _updates(opt, grads):
    state, update = opt.init(grads[0]), jax.jit(opt.update)
    out = []
    for g in grads:
        u, state = update(g, state)
        out.append(np.concatenate([np.ravel(x) for x in jax.tree.leaves(u)]))
    return np.array(out)


@pytest.mark.parametrize(
    "c",
    # the fast subset keeps the extremes; the scales between them run in the full suite
    [
        1e-30,
        *(pytest.param(c, marks=pytest.mark.slow) for c in (1e-20, 1e-6, 1e-2, 1e6, 1e20)),
        1e30,
    ],
)
def test_updates_do_not_depend_on_the_loss_scale(c):
    # ||g|| from 1e-30 to 1e30: past 1.8e19 its square overflows float32, below 1e-19 it
    # underflows; the norm is scaled before it is squared and the statistics are those of
    # g / ||g_0||, so the steps of c * loss are those of the loss
    grads = _gradients(40)
    scaled = [jax.tree.map(lambda g: c * g, g) for g in grads]
    want = _updates(mo.yellowfin(), grads)
    got = _updates(mo.yellowfin(), scaled)
    assert np.isfinite(got).all()
    assert np.abs(got[0]).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7 * np.abs(want).max())
    # and outside jit, where the norm takes a Python branch rather than lax.cond
    opt = mo.yellowfin()
    eager, _ = opt.update(scaled[0], opt.init(grads[0]))
    got = np.concatenate([np.ravel(x) for x in jax.tree.leaves(eager)])
    np.testing.assert_allclose(got, want[0], rtol=1e-5)


def _train_quadratic(noise):
    """500 steps on ``c/2 x^T diag(100, 10, 1) x`` (plus ``c`` times gradient noise) for
    every ``c`` in LOSS_SCALES at once: the losses over the first, per scale."""
    curvature = jnp.array([100.0, 10.0, 1.0])
    opt = mo.yellowfin()

    def run(c):
        def body(carry, t):
            x, state = carry
            z = noise * jax.random.normal(jax.random.fold_in(jax.random.key(0), t), (3,))
            updates, state = opt.update(c * (curvature * x + z), state, x)
            return (optax.apply_updates(x, updates), state), 0.5 * jnp.sum(curvature * x**2)

        x0 = jnp.ones(3)
        return jax.lax.scan(body, (x0, opt.init(x0)), jnp.arange(500))[1]

    losses = np.asarray(jax.jit(jax.vmap(run))(jnp.asarray(LOSS_SCALES)), np.float64)
    return losses / losses[:, :1]


@pytest.mark.parametrize("noise", [0.0, 0.1], ids=["noiseless", "noisy"])
def test_quadratic_trains_at_every_loss_scale(noise):
    losses = _train_quadratic(noise)
    assert np.isfinite(losses).all()
    assert (losses.max(axis=1) <= 1.0).all(), losses.max(axis=1)  # never above the start
    assert (losses[:, -1] < 1e-3).all(), losses[:, -1]


@pytest.mark.slow
def test_mnist1d_mlp_trains_at_every_loss_scale():
    # the experiments' 40-100-100-10 ReLU MLP (E3's) on 2,000 MNIST-1D samples: 500 steps
    # of batches of 32 on c * cross-entropy, every c at once (about 7 s: slow)
    from experiments import tasks  # flax and the data: imported where they are needed

    task = tasks.mnist1d_mlp(num_samples=2_000)
    x, y = task.data.x_train, task.data.y_train
    opt = mo.yellowfin()
    params = task.init(jax.random.key(0))
    loss = lambda p, idx: tasks.loss(task, p, x[idx], y[idx])

    def run(c):
        def body(carry, t):
            p, state = carry
            idx = jax.random.randint(jax.random.fold_in(jax.random.key(1), t), (32,), 0, len(y))
            grads = jax.grad(lambda p: c * loss(p, idx))(p)
            updates, state = opt.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), None

        final, _ = jax.lax.scan(body, (params, opt.init(params)), jnp.arange(500))
        return tasks.loss(task, final[0], x, y)

    start = float(tasks.loss(task, params, x, y))
    final = np.asarray(jax.jit(jax.vmap(run))(jnp.asarray(LOSS_SCALES)))
    assert np.isfinite(final).all()
    assert (final < 0.7 * start).all(), (start, final)
