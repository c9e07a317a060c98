"""0.1 checkpoints restore into 0.2 states and continue 0.1's run.

The fixtures in ``tests/fixtures/v0_1/`` were written by momentum_optax 0.1.0
(``tests/fixtures/v0_1/make.py``): each optimizer's state after 3 steps, saved with flax and
(for the layouts the release notes name) with orbax, and the params 0.1 reached 3 steps later.
"""

import pathlib
from typing import NamedTuple

import flax.serialization
import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

import momentum_optax as mo
from tests.fixtures.v0_1 import make

HERE = pathlib.Path(__file__).resolve().parent / "fixtures" / "v0_1"
# the same optimizers built with this version's names
OPTIMIZERS = {
    "sgd_momentum": lambda: mo.sgd(0.1, 0.9),
    "sgd_zero_momentum": lambda: mo.sgd(0.1, 0.0),
    "sgd_nesterov": lambda: mo.sgd(0.1, 0.9, nesterov=True),
    "sgd_scheduled": lambda: mo.sgd(make.SCHEDULE, mo.schedules.anneal(0.5, 0.9, steps=10)),
    "sgd_reset": lambda: mo.sgd(0.1, 0.9, reset_every=4),
    "fused_sgd": lambda: mo.fused_sgd(0.1, 0.9),
    "fused_sgd_scheduled": lambda: mo.fused_sgd(make.SCHEDULE, 0.9, nesterov=True),
    "sma": lambda: mo.sma(3),
    "qhadam": lambda: mo.qhadam(0.01),
}


def _continue(opt, state, start):
    p = start
    for k in range(3, 6):
        g = make.gradient(k, p)
        if isinstance(opt, mo.FusedSGD):
            p, state = opt.apply(p, state, g)
        else:
            updates, state = opt.update(g, state, p)
            p = optax.apply_updates(p, updates)
    return p


def _expected(stem):
    saved = np.load(HERE / f"{stem}.npz")
    start = {n: jax.numpy.asarray(saved[f"start_{n}"]) for n in ("b", "w")}
    return start, {n: saved[f"end_{n}"] for n in ("b", "w")}


def _restored(stem, reader):
    if reader == "flax":
        return flax.serialization.msgpack_restore((HERE / f"{stem}.msgpack").read_bytes())
    return orbax_raw(HERE / "orbax" / stem)


def orbax_raw(path):
    """An orbax checkpoint read without a target, as NumPy arrays: no device of the
    writer's is needed (orbax 0.11's ``StandardCheckpointer().restore(path)`` refuses a
    checkpoint whose devices it cannot find)."""
    checkpointer = ocp.PyTreeCheckpointer()
    metadata = checkpointer.metadata(path)
    tree = getattr(metadata, "item_metadata", metadata)  # orbax >= 0.11.20 wraps it
    tree = getattr(tree, "tree", tree)
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return checkpointer.restore(path, restore_args=as_numpy)


CASES = [(stem, "flax") for stem in OPTIMIZERS] + [(stem, "orbax") for stem in make.ORBAX]


def test_the_fixtures_cover_every_optimizer_make_wrote():
    assert set(OPTIMIZERS) == set(make.OPTIMIZERS)


@pytest.mark.parametrize(("stem", "reader"), CASES)
def test_a_0_1_checkpoint_continues_0_1s_run(stem, reader):
    opt = OPTIMIZERS[stem]()
    start, end = _expected(stem)
    state = mo.checkpoints.from_v0_1(_restored(stem, reader), opt.init(start))
    for got, want in zip(jax.tree.leaves(_continue(opt, state, start)), jax.tree.leaves(end)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("stem", ["sgd_momentum", "fused_sgd", "sgd_zero_momentum"])
def test_the_0_1_checkpoint_does_not_restore_as_is(stem):
    """What users met: the 0.2 target refuses 0.1's layout (so the helper is needed)."""
    opt = OPTIMIZERS[stem]()
    start, _ = _expected(stem)
    data = (HERE / f"{stem}.msgpack").read_bytes()
    with pytest.raises(ValueError):
        mo.check_restored(flax.serialization.from_bytes(opt.init(start), data), opt.init(start))


def test_another_optimizers_checkpoint_is_refused_naming_the_path():
    start, _ = _expected("sma")
    raw = _restored("qhadam", "flax")
    with pytest.raises(ValueError, match=r"state\[0\].*'window'|no entry 'window'"):
        mo.checkpoints.from_v0_1(raw, mo.sma(3).init(start))
    with pytest.raises(ValueError, match="scheduled momentum"):
        mo.checkpoints.from_v0_1(_restored("sgd_scheduled", "flax"), mo.sgd(0.1, 0.9).init(start))
    with pytest.raises(ValueError, match=r"keeps nothing|no entry"):
        mo.checkpoints.from_v0_1(_restored("sgd_momentum", "flax"), optax.sgd(0.1).init(start))


class _TraceState01(NamedTuple):
    """0.1's ``mo.TraceState``, as an unpickled or in-memory 0.1 state holds it."""

    trace: dict
    count: object = None


def test_the_0_1_objects_themselves_convert_as_their_checkpoints_do():
    start, end = _expected("fused_sgd")
    raw = _restored("fused_sgd", "flax")
    old = (_TraceState01(trace=raw["0"]["trace"]), optax.EmptyState())
    opt = mo.fused_sgd(0.1, 0.9)
    state = mo.checkpoints.from_v0_1(old, opt.init(start))
    for got, want in zip(jax.tree.leaves(_continue(opt, state, start)), jax.tree.leaves(end)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
