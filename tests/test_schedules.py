"""Momentum schedules against their formulas, and read correctly by the accumulators."""

import re
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import momentum_optax as mo
from tests import helpers


@pytest.mark.parametrize("total_steps", [1, 7, 100])
@pytest.mark.parametrize("start", [0.0, 0.5, 0.9])
def test_linear_to_one_follows_seed_001(start, total_steps):
    # gamma_t = gamma_0 + (1 - gamma_0) t / T, then constant
    t = np.arange(3 * total_steps + 2)
    want = start + (1 - start) * np.minimum(t, total_steps) / total_steps
    got = helpers.schedule_values(mo.schedules.linear_to_one(start, total_steps), len(t))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert got[total_steps] == 1.0


@pytest.mark.parametrize("steps", [1, 10])
@pytest.mark.parametrize("start,end", [(0.5, 0.9), (0.9, 0.5), (0.0, 0.99)])
def test_anneal_is_linear_then_constant(start, end, steps):
    t = np.arange(2 * steps + 3)
    want = start + (end - start) * np.minimum(t, steps) / steps
    got = helpers.schedule_values(mo.schedules.anneal(start, end, steps=steps), len(t))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_anneal_defaults_are_seed_002s_half_to_nine_tenths():
    schedule = mo.schedules.anneal(steps=10)
    assert float(schedule(0)) == pytest.approx(0.5, abs=1e-6)
    assert float(schedule(5)) == pytest.approx(0.7, abs=1e-6)
    assert float(schedule(10)) == pytest.approx(0.9, abs=1e-6)


DEPRECATED = (
    "anneal(start, end, steps) by position: pass steps=... (deprecated in 0.2, removed in 0.3"
)


def test_anneal_steps_by_position_warns_and_gives_the_keyword_schedule():
    with pytest.warns(DeprecationWarning, match=re.escape(DEPRECATED)) as record:
        positional = mo.schedules.anneal(0.5, 0.9, 100)
    assert [w.filename for w in record] == [__file__]  # the warning points at the caller
    keyword = mo.schedules.anneal(0.5, 0.9, steps=100)
    counts = jnp.arange(120, dtype=jnp.int32)
    np.testing.assert_array_equal(np.asarray(positional(counts)), np.asarray(keyword(counts)))


def test_anneal_steps_by_keyword_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mo.schedules.anneal(0.5, 0.9, steps=100)
        mo.schedules.anneal(steps=100)


def test_anneal_refuses_a_fourth_positional_argument_and_steps_twice():
    with pytest.raises(TypeError, match=r"anneal\(\) takes 2 positional arguments .* got 4"):
        mo.schedules.anneal(0.5, 0.9, 100, 200)
    with pytest.raises(TypeError, match="multiple values for argument 'steps'"):
        mo.schedules.anneal(0.5, 0.9, 100, steps=100)


def test_schedules_are_float32_and_jittable_on_int32_counts():
    schedule = mo.schedules.linear_to_one(0.5, 10)
    value = schedule(jnp.int32(5))
    assert value.dtype == jnp.float32
    assert float(value) == pytest.approx(0.75, abs=1e-6)


def test_trace_reaches_pure_accumulation_when_linear_to_one_hits_one():
    # at gamma = 1 nothing is forgotten: the trace is the running sum of gradients
    opt = mo.trace(mo.schedules.linear_to_one(0.0, 2))
    outs, _ = helpers.run_updates(opt, [jnp.float32(1.0)] * 5, jnp.zeros(()))
    # gammas 0, 0.5, 1, 1, 1: m = 1, 1.5, 2.5, 3.5, 4.5
    np.testing.assert_allclose(outs, [1.0, 1.5, 2.5, 3.5, 4.5])
