"""Equal-budget tuning: every method gets the same number of trials over a declared space.

A ``Space`` names the ranges searched (log learning rate; log(1 - beta) where the
momentum is tuned; log eps for Adam/RMSprop); ``trials(space, n)`` draws ``n`` points
from it — a log-spaced grid for one dimension, a scrambled Halton sequence (fixed seed,
so identical across runs) for more. Every trial is run on every seed; the trial with
the best mean *validation* objective is selected (``select``), and only the selected
trial's test number is reported. A selection at the edge of the space is flagged: it
says the space should be wider.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.stats import qmc

EDGE = 0.1  # a quasi-random choice within this fraction of a range's ends is on its edge


@dataclasses.dataclass(frozen=True)
class Space:
    """A search space: ``(low, high)`` ranges, each searched on a log scale.

    ``lr`` is the learning rate; ``one_minus_beta`` the momentum's ``1 - beta`` (None:
    the momentum is not tuned, ``momentum`` is used); ``eps`` Adam/RMSprop's epsilon
    (None: not tuned). ``grid=True`` crosses log-spaced grids instead of a Halton draw.
    """

    lr: tuple[float, float] = (1e-3, 1.0)
    one_minus_beta: tuple[float, float] | None = None
    eps: tuple[float, float] | None = None
    momentum: float = 0.0
    grid: bool = False

    def __post_init__(self):
        for name in ("lr", "one_minus_beta", "eps"):
            bounds = getattr(self, name)
            if bounds is None:
                continue
            low, high = bounds
            if not (0 < low <= high) or not math.isfinite(high):
                raise ValueError(
                    f"Space.{name} must be (low, high) with 0 < low <= high; got {bounds!r}."
                )
        if self.one_minus_beta is not None and self.one_minus_beta[1] > 1:
            raise ValueError(
                f"Space.one_minus_beta must lie in (0, 1]; got {self.one_minus_beta!r}."
            )

    @property
    def dims(self) -> dict[str, tuple[float, float]]:
        return {
            name: getattr(self, name)
            for name in ("lr", "one_minus_beta", "eps")
            if getattr(self, name) is not None
        }


def trials(space: Space, n: int) -> dict[str, np.ndarray]:
    """``n`` trials from ``space``: columns ``lr``, ``momentum`` (and ``eps``), float32.

    One tuned dimension: ``n`` log-spaced values. Several: a scrambled Halton draw
    (seed 0), or with ``space.grid`` the cross product of ``round(n ** (1/d))`` values
    per dimension (``n`` must then be a perfect power).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer (trials per method); got {n!r}.")
    dims = space.dims
    logs = {name: np.log10(bounds) for name, bounds in dims.items()}
    if len(dims) == 1:
        unit = np.linspace(0.0, 1.0, n)[:, None] if n > 1 else np.full((1, 1), 0.5)
    elif space.grid:
        per = round(n ** (1 / len(dims)))
        if per ** len(dims) != n:
            raise ValueError(
                f"a grid over {len(dims)} dimensions needs n = k**{len(dims)}; got n={n}."
            )
        axis = np.linspace(0.0, 1.0, per) if per > 1 else np.array([0.5])
        unit = np.stack(np.meshgrid(*[axis] * len(dims), indexing="ij"), -1).reshape(-1, len(dims))
    else:
        unit = qmc.Halton(d=len(dims), scramble=True, seed=0).random(n)
    values = {
        name: 10 ** (lo + (hi - lo) * unit[:, i]) for i, (name, (lo, hi)) in enumerate(logs.items())
    }
    table = {"lr": values["lr"]}
    table["momentum"] = (
        1 - values["one_minus_beta"] if "one_minus_beta" in values else np.full(n, space.momentum)
    )
    if "eps" in values:
        table["eps"] = values["eps"]
    return {k: np.asarray(v, np.float32) for k, v in table.items()}


def on_edge(space: Space, table: dict[str, np.ndarray], index: int) -> list[str]:
    """The tuned dimensions in which trial ``index`` sits on the edge of ``space``: for a
    grid (one tuned dimension, or ``space.grid``) its first or last value; for a
    quasi-random draw a value within ``EDGE`` of the range's log-ends."""
    edges = []
    grid = space.grid or len(space.dims) == 1
    for name, (low, high) in space.dims.items():
        if low == high:
            continue
        column = np.asarray(
            1 - table["momentum"] if name == "one_minus_beta" else table[name], np.float64
        )
        value = column[index]
        if grid:
            hit = value <= column.min() * (1 + 1e-6) or value >= column.max() * (1 - 1e-6)
        else:
            u = (np.log10(value) - np.log10(low)) / (np.log10(high) - np.log10(low))
            hit = u < EDGE or u > 1 - EDGE
        if hit:
            edges.append(name)
    return edges


def select(objective: np.ndarray, *, lower_is_better: bool = True) -> int:
    """The trial with the best mean objective over seeds; ``objective`` has shape
    ``(trials, seeds)``. Non-finite entries (diverged runs) count as the worst value."""
    objective = np.asarray(objective, np.float64)
    worst = np.inf if lower_is_better else -np.inf
    scores = np.where(np.isfinite(objective), objective, worst).mean(-1)
    return int(np.argmin(scores) if lower_is_better else np.argmax(scores))


def expected_best(
    values: np.ndarray, budgets: np.ndarray, *, lower_is_better: bool = True
) -> np.ndarray:
    """Dodge et al. (2019)'s expected best result of ``k`` trials drawn (with replacement)
    from the ``n`` observed ``values``, for every ``k`` in ``budgets``.

    With the values sorted from worst to best, ``E[best of k] = sum_i v_(i) ((i/n)^k -
    ((i-1)/n)^k)``. Non-finite values count as the worst.
    """
    v = np.asarray(values, np.float64).ravel()
    v = np.where(np.isfinite(v), v, np.nan)
    worst = np.nanmax(v) if lower_is_better else np.nanmin(v)
    v = np.where(np.isnan(v), worst, v)
    v = np.sort(v)[::-1] if lower_is_better else np.sort(v)  # worst first
    n = v.size
    i = np.arange(1, n + 1)
    k = np.asarray(budgets, np.float64)[:, None]
    weights = (i / n) ** k - ((i - 1) / n) ** k
    return weights @ v
