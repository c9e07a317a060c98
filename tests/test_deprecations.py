"""0.1's renamed state fields still read, with a ``DeprecationWarning`` that names the new
field, until 0.3; they are not fields (checkpoints hold only the new names)."""

import jax.numpy as jnp
import numpy as np
import pytest

import momentum_optax as mo

PARAMS = {"w": jnp.array([1.0, -2.0])}


def _stepped(opt):
    state = opt.init(PARAMS)
    _, state = opt.update({"w": jnp.array([0.5, 3.0])}, state, PARAMS)
    return state


@pytest.mark.parametrize(
    ("make", "old", "new"),
    [
        (lambda: _stepped(mo.sma(3)), "window", "buffer"),
        (lambda: _stepped(mo.scale_by_qhadam()), "mu", "first_moment"),
        (lambda: _stepped(mo.scale_by_qhadam()), "nu", "second_moment"),
        (lambda: _stepped(mo.qhadam(0.1))[0], "mu", "first_moment"),
    ],
    ids=["SmaState.window", "QhAdamState.mu", "QhAdamState.nu", "qhadam chain"],
)
def test_a_renamed_field_reads_the_new_one_and_warns(make, old, new):
    state = make()
    owner = type(state).__name__
    with pytest.warns(DeprecationWarning, match=rf"{owner}\.{old} is now {owner}\.{new}.*0\.3"):
        value = getattr(state, old)
    np.testing.assert_array_equal(value["w"], getattr(state, new)["w"])
    assert np.any(np.asarray(value["w"]) != 0)  # a stepped state: the field is not its init
    assert old not in state._fields


def test_the_warning_points_at_the_callers_line():
    state = _stepped(mo.sma(2))
    with pytest.warns(DeprecationWarning) as caught:
        state.window  # noqa: B018
    assert caught[0].filename == __file__
