"""Matplotlib figures for the report, drawn off-screen (Agg canvas, no pyplot state)."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

COLORS = {
    "GD": "tab:gray",
    "heavy ball": "tab:blue",
    "Nesterov": "tab:orange",
    "delta momentum": "tab:green",
    "RMSprop": "tab:purple",
    "Adam": "tab:red",
    "QHM": "tab:brown",
    "AggMo": "tab:pink",
    "Demon": "tab:olive",
    "YellowFin": "goldenrod",
    "SRSGD": "tab:cyan",
    "cautious heavy ball": "navy",
    "cautious Nesterov": "darkred",
}


def figure(
    ncols: int = 1,
    nrows: int = 1,
    *,
    width: float = 4.6,
    height: float = 3.6,
    title: str | None = None,
) -> tuple[Figure, list]:
    """A new figure with a grid of axes (returned as a flat list); a title wider than the
    figure is wrapped onto more lines, which the constrained layout makes room for."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    if title:
        fig.suptitle(title, wrap=True)
    return fig, axes


def save(fig: Figure, directory: pathlib.Path, name: str) -> str:
    """Writes ``directory/name`` (PNG); returns ``name``."""
    directory.mkdir(parents=True, exist_ok=True)
    fig.savefig(directory / name, dpi=110)
    return name


def legend_outside(ax, handles: Sequence[Any] = (), **kwargs) -> None:
    """``ax``'s legend (its labelled artists, then ``handles``) to the right of the axes,
    where it hides no data point; the figure's constrained layout makes room for it."""
    own, labels = ax.get_legend_handles_labels()
    ax.legend(
        [*own, *handles],
        [*labels, *(h.get_label() for h in handles)],
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize=7,
        **kwargs,
    )


def path(ax, xy: np.ndarray, label: str, **kwargs) -> None:
    """A 2-D trajectory with its start marked."""
    xy = np.asarray(xy)
    (line,) = ax.plot(
        xy[:, 0], xy[:, 1], ".-", ms=2.5, lw=0.9, label=label, color=COLORS.get(label), **kwargs
    )
    ax.plot(*xy[0], "o", color=line.get_color(), ms=5)


def series(
    ax,
    ys: dict[str, np.ndarray],
    *,
    x: np.ndarray | None = None,
    logy: bool = False,
    xlabel: str = "step",
    ylabel: str = "",
    title: str = "",
    **kwargs,
) -> None:
    """Several labelled curves on one axis (colors from ``COLORS`` where the label has one)."""
    for label, y in ys.items():
        y = np.asarray(y)
        ax.plot(
            np.arange(len(y)) if x is None else x, y, label=label, color=COLORS.get(label), **kwargs
        )
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.locator_params(axis="x", nbins=6)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def seed_bands(
    ax,
    steps: np.ndarray,
    curves: dict[str, np.ndarray],
    *,
    xlabel: str = "step",
    ylabel: str = "",
    title: str = "",
    logy: bool = False,
    colors: dict[str, Any] | None = None,
) -> None:
    """Mean over seeds with its 95% t-band (``stats.band``), one curve per label.

    ``curves[label]`` has shape ``(seeds, len(steps))``. A seed whose curve stops being
    finite (a diverged run) is marked with an ``x`` at its last finite point and left out
    of the band from there on; the legend counts the diverged seeds.
    """
    from .protocol import stats

    colors = colors or {}
    for i, (label, y) in enumerate(curves.items()):
        y = np.asarray(y, np.float64)
        color = colors.get(label, COLORS.get(label, f"C{i}"))
        finite = np.isfinite(y) & (np.abs(y) < 1e30)
        diverged = ~finite.all(-1)
        mean, low, high = stats.band(np.where(finite, y, np.nan))
        name = label + (f" ({int(diverged.sum())} of {len(y)} diverged)" if diverged.any() else "")
        ax.plot(steps, mean, color=color, lw=1.2, label=name)
        ax.fill_between(steps, low, high, color=color, alpha=0.25, lw=0)
        for run in np.flatnonzero(diverged):
            last = np.flatnonzero(finite[run])
            if last.size:
                ax.plot(steps[last[-1]], y[run, last[-1]], "x", color=color, ms=6)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def heatmap(
    ax,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    *,
    xlabel: str,
    ylabel: str,
    label: str,
    title: str = "",
    log_color: bool = False,
    marks: np.ndarray | None = None,
    cmap: str = "viridis_r",
):
    """``z[i, j]`` at ``(x[j], y[i])`` on log axes, with a colorbar labelled ``label``;
    non-finite cells (diverged runs) hatched grey; ``marks`` (same shape, bool) ringed.
    Returns the image."""
    from matplotlib import colors as mcolors

    z = np.asarray(z, np.float64)
    masked = np.ma.masked_invalid(np.where(np.abs(z) < 1e30, z, np.nan))
    ax.set_facecolor("0.85")
    norm = mcolors.LogNorm() if log_color else None
    edges = lambda v: np.exp(
        np.concatenate(
            [
                [np.log(v[0]) - (np.log(v[1]) - np.log(v[0])) / 2],
                (np.log(v[1:]) + np.log(v[:-1])) / 2,
                [np.log(v[-1]) + (np.log(v[-1]) - np.log(v[-2])) / 2],
            ]
        )
    )
    image = ax.pcolormesh(
        edges(np.asarray(x, np.float64)),
        edges(np.asarray(y, np.float64)),
        masked,
        cmap=cmap,
        norm=norm,
        shading="flat",
    )
    bad = ~np.isfinite(masked.filled(np.nan))
    for i, j in zip(*np.nonzero(bad)):
        ax.plot(x[j], y[i], "x", color="0.4", ms=5)
    if marks is not None:
        for i, j in zip(*np.nonzero(marks)):
            ax.plot(x[j], y[i], "o", mfc="none", mec="red", ms=9, mew=1.5)
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel, title=title)
    ax.figure.colorbar(image, ax=ax, label=label)
    return image


def distinct_colors(n: int) -> list:
    """``n`` colors for unordered labels (optimizers): matplotlib's ten-color cycle, or
    ``tab20``'s twenty where more are needed (beyond twenty they repeat)."""
    from matplotlib import colormaps

    if n <= 10:
        return [f"C{i}" for i in range(n)]
    return [colormaps["tab20"](i % 20) for i in range(n)]


def ordered_colors(values: Sequence[float], cmap: str = "viridis") -> list:
    """One color per ordered value (momentum, batch size), for a colorbar-like legend."""
    from matplotlib import colormaps

    values = np.asarray(values, np.float64)
    span = np.ptp(values) or 1.0
    return [colormaps[cmap]((v - values.min()) / span * 0.9) for v in values]


def trials_by_step(
    ax,
    points: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    ylabel: str,
    title: str,
    picks: dict[str, int] | None = None,
    cap: float = float(np.log(10)),
) -> None:
    """Every trial's mean final loss (``points[name] = (effective steps, losses)``, one
    entry per trial) against its effective step ``lr / (1 - beta)``, one color per method;
    a diverged trial (non-finite, or above ``cap``, the loss of a uniform guess) is an x at
    the cap; ``picks[name]`` (a trial index) is starred."""
    picks = picks or {}
    for i, (name, (step, loss)) in enumerate(points.items()):
        color = COLORS.get(name, f"C{i}")
        loss = np.asarray(loss, np.float64)
        bad = ~np.isfinite(loss) | (loss > cap)
        ax.plot(step[~bad], loss[~bad], "o", mfc="none", color=color, label=name)
        ax.plot(step[bad], np.full(bad.sum(), cap), "x", color=color)
        if name in picks and not bad[picks[name]]:
            ax.plot(step[picks[name]], loss[picks[name]], "*", ms=13, color=color, mec="k")
    ax.set(xscale="log", xlabel="effective step lr / (1 - beta)", ylabel=ylabel, title=title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
