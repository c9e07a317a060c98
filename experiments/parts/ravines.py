"""Randomised rotated ravines: f(x) = (kappa z1^2 + z2^2) / 2 with z = Q^T x, per seed a random
rotation Q, a random start on the unit circle and a condition number drawn log-uniformly.

Every quadratic textbook check (C1; C2; C3's and C4's quadratic parts; C12) and C13
(``oscillation``) run on them: rows of (seed, setting) are run in one compiled vmap and read
in the ravine's eigen-coordinates (steep, shallow). Also the measures on such a run: the
distance to the minimum, the fitted per-step rate and the sign changes of a coordinate.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import descent
from .. import problems
from .. import sweeps


class Ravine(NamedTuple):
    """A run on a rotated ravine in its eigen-coordinates (steep, shallow)."""

    z: jax.Array  # (steps + 1, 2)
    loss: jax.Array  # (steps + 1,)
    grad: jax.Array  # (steps, 2)


def rotation(theta: jax.Array) -> jax.Array:
    """The 2 x 2 rotation by ``theta``: the ravine's eigen-directions are its columns."""
    c, s = jnp.cos(theta), jnp.sin(theta)
    return jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])


def ravine_run(row: dict, steps: int) -> Ravine:
    """``sweeps.momentum_sgd(row)`` on the ravine of ``row`` (kappa, rotation theta, start
    angle phi, all traced), from the start (cos phi, sin phi)."""
    q = rotation(row["theta"])
    loss = lambda x: problems.quadratic(problems.ravine_curvatures(row["kappa"]))(q.T @ x)
    x0 = jnp.stack([jnp.cos(row["phi"]), jnp.sin(row["phi"])])
    path = descent.descend(loss, sweeps.momentum_sgd(row), x0, steps)
    return Ravine(path.x @ q, path.loss, path.grad @ q)


def ravines(key: jax.Array, seeds: int, kappa: tuple[float, float]) -> dict[str, np.ndarray]:
    """Seed ``s``'s ravine from ``fold_in(key, s)``: rotation and start angles uniform,
    the condition number log-uniform in ``kappa``."""
    u = np.stack(
        [np.asarray(jax.random.uniform(jax.random.fold_in(key, s), (3,))) for s in range(seeds)]
    )
    lo, hi = np.log(kappa)
    return {
        "theta": 2 * np.pi * u[:, 0],
        "phi": 2 * np.pi * u[:, 1],
        "kappa": np.exp(lo + (hi - lo) * u[:, 2]),
    }


def block(draw: dict, settings) -> dict[str, np.ndarray]:
    """Rows ``(seed, setting)`` (seed slowest): ``settings(kappa)`` lists each seed's
    ``(lr, momentum, nesterov)``."""
    rows = [(s, *setting) for s, k in enumerate(draw["kappa"]) for setting in settings(float(k))]
    seed, lr, momentum, nesterov = (np.asarray(c) for c in zip(*rows))
    out = {k: np.asarray(v[seed], np.float32) for k, v in draw.items()}
    out.update(
        lr=lr.astype(np.float32),
        momentum=momentum.astype(np.float32),
        nesterov=nesterov.astype(np.int32),
    )
    return out


def run_blocks(blocks: dict[str, dict], steps: int, seeds: int) -> dict[str, Ravine]:
    """Every block's rows in one compiled vmap; each result shaped ``(seeds, settings, ...)``."""
    names = list(blocks)
    table = {c: np.concatenate([blocks[n][c] for n in names]) for c in blocks[names[0]]}
    paths = sweeps.sweep(lambda row: ravine_run(row, steps), table)
    out, start = {}, 0
    for n in names:
        size = sweeps.rows(blocks[n])
        out[n] = Ravine(
            *(a[start : start + size].reshape(seeds, size // seeds, *a.shape[1:]) for a in paths)
        )
        start += size
    return out


def fitted_rate(errors: np.ndarray, start: float = 1e-2, stop: float = 1e-25) -> np.ndarray:
    """Per-step rate ``rho`` of ``error_t ~ a (t + 1)^p rho^t``: least squares on the log of
    the error's upper envelope (``max_{s >= t} error_s``, so an oscillating error is fitted at
    its peaks) while it falls from ``start`` to ``stop`` of its first value. The polynomial
    factor of a double root (heavy ball and Nesterov at their optimal parameters) does not
    bias it.
    NaN where fewer than 4 steps lie in that window."""
    flat = np.asarray(errors, np.float64).reshape(-1, np.shape(errors)[-1])
    flat = np.maximum.accumulate(np.nan_to_num(flat, nan=np.inf)[:, ::-1], axis=-1)[:, ::-1]
    rates = np.full(flat.shape[0], np.nan)
    for i, e in enumerate(flat):
        t = np.flatnonzero((e <= start * e[0]) & (e >= stop * e[0]) & np.isfinite(e))
        if t.size >= 4:
            design = np.stack([np.ones(t.size), np.log(t + 1.0), t], -1)
            rates[i] = np.exp(np.linalg.lstsq(design, np.log(e[t]), rcond=None)[0][2])
    return rates.reshape(np.shape(errors)[:-1])


def exponent_error(measured: np.ndarray, theory: np.ndarray) -> np.ndarray:
    """``|log measured / log theory - 1|``: the relative error in steps per decade
    (NaN, a rate that could not be fitted, counts as 1)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(np.log(measured) / np.log(theory) - 1)
    return np.where(np.isfinite(err), err, 1.0)


def flip_fraction(z: np.ndarray, floor: float) -> np.ndarray:
    """The fraction of consecutive steps (both with ``|z| > floor``; last axis: time) at which
    ``z`` changes sign: 1 for an overshoot at every step, 0 for none (NaN: no such pair).
    The floor keeps float32 rounding of a coordinate that has converged from counting."""
    z = np.asarray(z, np.float64)
    both = (np.abs(z[..., 1:]) > floor) & (np.abs(z[..., :-1]) > floor)
    flips = both & (z[..., 1:] * z[..., :-1] < 0)
    with np.errstate(invalid="ignore"):
        return flips.sum(-1) / both.sum(-1)


def distance(run: Ravine) -> np.ndarray:
    """``||x_t - x*|| / ||x_0 - x*||`` (the start is on the unit circle, the minimum at 0)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.linalg.norm(np.asarray(run.z, np.float64), axis=-1)
