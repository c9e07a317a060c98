"""The practice arm (``experiments.parts.practice``): weight decay in front, warm-up + cosine
behind, checked against the formula step by step; its methods carry the suffix."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from experiments import comparison
from experiments.parts import practice
from experiments.protocol import tuning

STEPS = 40


def test_wrapped_sgd_is_lr_times_schedule_times_decayed_gradient():
    lr = 0.1
    opt = practice.wrap(lambda row: mo.sgd(row["lr"]), STEPS)({"lr": lr})
    params = {"w": jnp.asarray([1.0, -2.0, 3.0])}
    grads = {"w": jnp.asarray([0.5, 0.5, -1.0])}
    state = opt.init(params)
    warmup = round(practice.WARMUP * STEPS)
    for t in range(STEPS + 1):
        updates, state = opt.update(grads, state, params)
        if t <= warmup:
            factor = t / warmup
        else:
            factor = 0.5 * (1 + np.cos(np.pi * (t - warmup) / (STEPS - warmup)))
        want = (
            -lr
            * factor
            * (np.asarray(grads["w"]) + practice.WEIGHT_DECAY * np.asarray(params["w"]))
        )
        np.testing.assert_allclose(updates["w"], want, rtol=1e-5, atol=1e-9, err_msg=f"step {t}")


def test_decoupled_decay_comes_after_the_method_scaled_by_its_lr_and_outside_a_mask():
    lr = 0.1
    params = {"w": jnp.asarray([1.0, -2.0, 3.0])}
    grads = {"w": jnp.asarray([0.5, 0.5, -1.0])}
    warmup = round(practice.WARMUP * STEPS)
    opt = practice.wrap(lambda r: mo.sgd(r["lr"], 0.9), STEPS, decoupled=True)({"lr": lr})
    state, velocity = opt.init(params), np.zeros(3)
    for t in range(warmup + 3):
        updates, state = opt.update(grads, state, params)
        velocity = 0.9 * velocity + np.asarray(grads["w"])  # the decay never enters it
        factor = float(practice.schedule(STEPS)(t))
        want = -lr * factor * (velocity + practice.WEIGHT_DECAY * np.asarray(params["w"]))
        np.testing.assert_allclose(updates["w"], want, rtol=1e-5, atol=1e-9, err_msg=f"step {t}")

    # a mask that drops every component drops the direction, never the decay
    def masked(r):
        return optax.chain(mo.cautious(mo.trace(0.9)), mo.scale_by_learning_rate(r["lr"]))

    opt = practice.wrap(masked, STEPS, decoupled=True)({"lr": lr})
    state = opt.init(params)
    for _ in range(warmup + 1):  # at the peak of the schedule
        updates, state = opt.update({"w": jnp.zeros(3)}, state, params)
    np.testing.assert_allclose(
        updates["w"], -lr * practice.WEIGHT_DECAY * np.asarray(params["w"]), rtol=1e-5
    )


def test_the_schedule_starts_and_ends_at_zero_and_peaks_at_one():
    s = practice.schedule(STEPS)
    warmup = round(practice.WARMUP * STEPS)
    assert float(s(0)) == 0.0 and float(s(STEPS)) == pytest.approx(0.0, abs=1e-7)
    assert float(s(warmup)) == pytest.approx(1.0)
    values = np.asarray(jax.vmap(s)(jnp.arange(STEPS + 1)))
    assert values.max() == pytest.approx(1.0)


def test_the_arm_names_its_methods_and_keeps_their_spaces():
    space = tuning.Space(lr=(1e-3, 1e-1))
    methods = [comparison.Method("heavy ball", comparison.heavy_ball, space)]
    arm = practice.arm(methods, STEPS)
    assert [m.name for m in arm] == ["heavy ball" + practice.SUFFIX]
    assert arm[0].space is space
    assert practice.main(["a", "a" + practice.SUFFIX, "b"]) == ["a", "b"]
    # the momentum is inside: the wrapped heavy ball differs from the wrapped SGD
    row = {"lr": jnp.float32(0.1), "momentum": jnp.float32(0.9)}
    params = {"w": jnp.ones(2)}
    grads = {"w": jnp.ones(2)}
    opt = arm[0].make(row)
    state = opt.init(params)
    ups = []
    for _ in range(5):
        u, state = opt.update(grads, state, params)
        ups.append(float(u["w"][0]))
    plain = practice.wrap(lambda r: mo.sgd(r["lr"]), STEPS)(row)
    state = plain.init(params)
    for _ in range(5):
        u, state = plain.update(grads, state, params)
    assert abs(ups[-1]) > abs(float(u["w"][0])) * 1.5  # the velocity has built up


def test_a_practiced_method_without_its_practiced_reference_is_refused():
    import dataclasses

    from experiments.claims import cautious
    from experiments.parts import speedup

    cfg = dataclasses.replace(cautious.QUICK, practice=True)
    with pytest.raises(ValueError, match=r"references \['heavy ball'\] are not practiced"):
        speedup.measure(
            cautious.methods(cfg),
            None,
            "heavy ball",
            cfg,
            jax.random.key(0),
            label="E5",
            practiced=("cautious heavy ball",),
        )
