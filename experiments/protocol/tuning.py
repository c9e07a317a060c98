"""Equal-budget tuning: every method gets the same number of trials over a declared space.

A ``Space`` names the ranges searched (log learning rate, or log *effective step*
``lr / (1 - beta)`` for heavy-ball-like methods whose learning rate sits outside the
velocity; log(1 - beta) where the momentum is tuned; log eps for Adam/RMSprop);
``trials(space, n)`` gives ``n`` points: a log-spaced grid, crossed over the dimensions
(``n = k**d``), so that tuning tunes (at least 8 points in 1-D, 16 in 2-D in the claims'
configurations), or with ``grid=False`` independent uniform draws in log space from a
given seed (where the question is the budget itself: expected best vs trials). Every
trial is run on every seed; selection is by ``select`` or the race's cross-fit
(``protocol.race``). A selection at the edge of the space is flagged, in effective step
too (``on_edge``): it says the space should be wider.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

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
    grid: bool = True
    effective: tuple[float, float] | None = None  # searched instead of lr: lr = step (1 - b)
    draw_seed: int = 0  # the generator of the draws when grid=False

    def __post_init__(self):
        for name in ("lr", "one_minus_beta", "eps", "effective"):
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
        """The tuned ranges: ``effective`` replaces ``lr`` where it is set."""
        first = "effective" if self.effective is not None else "lr"
        return {
            name: getattr(self, name)
            for name in (first, "one_minus_beta", "eps")
            if getattr(self, name) is not None
        }


def trials(space: Space, n: int) -> dict[str, np.ndarray]:
    """``n`` trials from ``space``: columns ``lr``, ``momentum`` (and ``eps``), float32.

    A grid (default): ``round(n ** (1/d))`` log-spaced values per tuned dimension, crossed
    (``n`` must be a perfect power of the number of dimensions). ``grid=False``: ``n``
    independent draws, uniform in log space, from ``space.draw_seed``. Where the space
    searches the effective step, ``lr = effective * (1 - beta)``.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer (trials per method); got {n!r}.")
    dims = space.dims
    logs = {name: np.log10(bounds) for name, bounds in dims.items()}
    if not space.grid:
        unit = np.random.default_rng(space.draw_seed).random((n, len(dims)))
    else:
        per = round(n ** (1 / len(dims)))
        if per ** len(dims) != n:
            raise ValueError(
                f"a grid over {len(dims)} dimensions needs n = k**{len(dims)}; got n={n}."
            )
        axis = np.linspace(0.0, 1.0, per) if per > 1 else np.array([0.5])
        unit = np.stack(np.meshgrid(*[axis] * len(dims), indexing="ij"), -1).reshape(-1, len(dims))
    values = {
        name: 10 ** (lo + (hi - lo) * unit[:, i]) for i, (name, (lo, hi)) in enumerate(logs.items())
    }
    momentum = (
        1 - values["one_minus_beta"] if "one_minus_beta" in values else np.full(n, space.momentum)
    )
    lr = values["effective"] * (1 - momentum) if "effective" in values else values["lr"]
    table = {"lr": lr, "momentum": momentum}
    if "eps" in values:
        table["eps"] = values["eps"]
    return {k: np.asarray(v, np.float32) for k, v in table.items()}


def on_edge(
    space: Space, table: dict[str, np.ndarray], index: int, finite: np.ndarray | None = None
) -> list[str]:
    """The dimensions in which trial ``index`` sits on the edge of ``space``: the first or
    last value of its column (a draw: within ``EDGE`` of the range's log-ends), judged in
    effective step ``lr / (1 - beta)`` as well as in the tuned columns. ``finite`` (one
    bool per trial: the trial did not diverge) adds the edge a stable space hides: the
    largest effective step among the trials that did not diverge."""
    edges = []
    grid = space.grid
    momentum = np.asarray(table.get("momentum", np.zeros_like(table["lr"])), np.float64)
    columns = {
        "lr": np.asarray(table["lr"], np.float64),
        "one_minus_beta": 1 - momentum,
        "effective": np.asarray(table["lr"], np.float64) / np.maximum(1 - momentum, 1e-12),
    }
    if "eps" in table:
        columns["eps"] = np.asarray(table["eps"], np.float64)
    named = dict(space.dims)
    if "one_minus_beta" in named or "effective" in named:
        named.setdefault("effective", (0.0, 0.0))
    for name, (low, high) in named.items():
        column = columns[name]
        if np.ptp(column) == 0:
            continue
        value = column[index]
        if grid or name not in space.dims:
            hit = value <= column.min() * (1 + 1e-5) or value >= column.max() * (1 - 1e-5)
        else:
            u = (np.log10(value) - np.log10(low)) / (np.log10(high) - np.log10(low))
            hit = u < EDGE or u > 1 - EDGE
        if name == "effective" and finite is not None and not hit:
            stable = column[np.asarray(finite, bool)]
            unstable = column[~np.asarray(finite, bool)]
            hit = unstable.size > 0 and stable.size > 0 and value >= stable.max() * (1 - 1e-5)
            name = "effective step (largest that did not diverge)" if hit else name
        if hit:
            edges.append(name if name != "effective" else "effective step")
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
