"""QHM, AggMo and Demon against tuned heavy ball on the digits MLP (E2, beyond the seeds)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import jax
import numpy as np
import optax

import momentum_optax as mo
from experiments import measures
from experiments import plotting
from experiments import report
from experiments import training

NAME = "variants"


@dataclasses.dataclass(frozen=True)
class Config:
    epochs: int = 20
    batch_size: int = 32
    seeds: int = 3  # initialisations and batch orders, vmapped inside each compile
    # learning rate x gain, where the gain is how much a method multiplies a constant
    # gradient once its buffers are full (1/(1-b) for heavy ball, 1 for QHM): every method
    # is tried at the same step sizes
    step_sizes: tuple[float, ...] = (0.1, 0.14, 0.2, 0.28, 0.4, 0.57, 0.8, 1.13, 1.6, 2.26, 3.2)
    momentum: float = 0.9  # heavy ball's, and Demon's at the start
    qhm_nu: float = 0.7  # Ma & Yarats' recommendation
    qhm_decay: float = 0.999
    aggmo_decays: tuple[float, ...] = (0.0, 0.9, 0.99)  # Lucas et al.'s default
    target_loss: float = 0.01  # epochs until the training loss stays below this (shown)
    margin: float = 0.5  # "faster": a typical training loss at most this times heavy ball's
    accuracy_drop: float = 0.01  # a variant may lose at most this much test accuracy


FULL = Config(epochs=30, seeds=5)
QUICK = Config(epochs=12, seeds=2, step_sizes=(0.2, 0.4, 0.8, 1.6, 3.2))


def methods(cfg: Config, total_steps: int) -> dict[str, tuple[Callable, float]]:
    """``name -> (row -> optimizer at learning rate row["lr"], gain)``."""
    lr = lambda row: optax.scale_by_learning_rate(row["lr"])
    b = cfg.momentum
    return {
        "heavy ball": (lambda row: mo.sgd(row["lr"], b), 1 / (1 - b)),
        "QHM": (lambda row: optax.chain(mo.qhm(cfg.qhm_nu, cfg.qhm_decay), lr(row)), 1.0),
        "AggMo": (lambda row: optax.chain(mo.aggmo(cfg.aggmo_decays), lr(row)),
                  float(np.mean([1 / (1 - d) for d in cfg.aggmo_decays]))),
        "Demon": (lambda row: mo.sgd(row["lr"], mo.schedules.demon(b, total_steps)),
                  1 / (1 - b)),
    }


def train(cfg: Config, key: jax.Array) -> dict[str, dict[str, np.ndarray]]:
    """Every method at every step size and seed: one compile per method. Returns, per
    method, arrays over the step sizes (and seeds, epochs where named)."""
    start = training.setup("digits", key)
    total = cfg.epochs * (start.split.x_train.shape[0] // cfg.batch_size)
    sizes = np.asarray(cfg.step_sizes, np.float32)
    runs = {}
    for name, (make_opt, gain) in methods(cfg, total).items():
        table = {"lr": sizes / np.float32(gain)}
        result = training.sweep_train_seeds(make_opt, start, table, cfg.seeds,
                                            epochs=cfg.epochs, batch_size=cfg.batch_size)
        loss = np.nan_to_num(result.epoch_loss, nan=np.inf)  # (size, seed, epoch)
        epochs = measures.settles_below(loss, cfg.target_loss) + 1  # (size, seed)
        runs[name] = {"lr": table["lr"], "curve": loss.mean(1),
                      "typical": 10 ** np.log10(loss).mean((1, 2)), "epochs": epochs.mean(1),
                      "final": loss[..., -1].mean(1), "accuracy": result.test_accuracy.mean(1),
                      "worst accuracy": result.test_accuracy.min(1)}
    return runs


def best(run: dict[str, np.ndarray]) -> int:
    """The best step size: the lowest typical training loss (geometric mean over the epochs
    and the seeds: the area under the log-loss curve, early and late progress alike)."""
    return int(np.argmin(run["typical"]))


def variants(cfg: Config, key: jax.Array, out: pathlib.Path) -> report.Claim:
    runs = train(cfg, key)
    pick = {name: best(run) for name, run in runs.items()}
    at = lambda name, field: runs[name][field][pick[name]]
    f, hb = report.fmt, "heavy ball"
    others = [name for name in runs if name != hb]
    conditions = {
        f"{name} trains faster than heavy ball by a margin, each at its best step size: a "
        f"typical training loss at most {cfg.margin:g} x heavy ball's ({at(name, 'typical'):.2g} "
        f"vs {at(hb, 'typical'):.2g})": bool(at(name, "typical")
                                             <= cfg.margin * at(hb, "typical"))
        for name in others}
    conditions[f"no variant's test accuracy is more than {100 * cfg.accuracy_drop:g} point "
               f"below heavy ball's ({at(hb, 'accuracy'):.3f}: " + ", ".join(
                   f"{n} {at(n, 'accuracy'):.3f}" for n in others) + ")"] = bool(others) and all(
        at(n, "accuracy") >= at(hb, "accuracy") - cfg.accuracy_drop for n in others)
    verdict = report.rule(conditions)
    fig, (ax, ax2, ax3) = plotting.figure(3, title=f"E2: momentum variants, digits MLP, batch "
                                          f"{cfg.batch_size}, mean of {cfg.seeds} seeds")
    plotting.series(ax, {n: at(n, "curve") for n in runs}, x=np.arange(1, cfg.epochs + 1),
                    logy=True, xlabel="epoch", ylabel="training loss (mean of the seeds)",
                    title="at each method's best step size")
    ax.axhline(cfg.target_loss, color="k", ls=":", lw=0.8)
    sizes = np.asarray(cfg.step_sizes)
    for name, run in runs.items():
        color = plotting.COLORS.get(name)
        ax2.plot(sizes, run["typical"], "o-", color=color, label=name)
        ax2.plot(sizes[pick[name]], at(name, "typical"), "*", ms=11, color=color)
        ax3.plot(sizes, run["accuracy"], "o-", color=color, label=name)
    ax2.set(xscale="log", yscale="log", xlabel="step size (learning rate x gain)",
            ylabel="typical training loss", title="geometric mean over the epochs (*: best)")
    ax3.set(xscale="log", xlabel="step size (learning rate x gain)", ylabel="test accuracy",
            ylim=(0.9, 1.0), title="test accuracy (mean of the seeds)")
    for a in (ax2, ax3):
        a.minorticks_off()
        a.set_xticks(sizes, [f"{x:g}" for x in sizes], fontsize=7)
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    shown = lambda loss: loss if np.isfinite(loss) else "diverged"
    rows = [{"method": name, "step size": size, "lr": run["lr"][i],
             "typical loss": shown(run["typical"][i]),
             f"epochs to {cfg.target_loss:g}": run["epochs"][i],
             "final loss": shown(run["final"][i]),
             "test accuracy": run["accuracy"][i], "worst seed": run["worst accuracy"][i],
             "best": i == pick[name]}
            for name, run in runs.items() for i, size in enumerate(cfg.step_sizes)]
    gains = ", ".join(f"{n} {g:.3g}" for n, (_, g) in methods(cfg, 1).items())
    return report.claim(
        "E2",
        setup=f"Digits MLP 64-64-10, batch {cfg.batch_size}, {cfg.epochs} epochs, {cfg.seeds} "
              "seeds (initialisation and batch order; the same for every method): heavy ball "
              f"(mo.sgd, momentum {cfg.momentum:g}); QHM (chain(mo.qhm({cfg.qhm_nu:g}, "
              f"{cfg.qhm_decay:g}), scale_by_learning_rate), Ma & Yarats' recommendation); "
              f"AggMo (mo.aggmo({report.listing(cfg.aggmo_decays)}), Lucas et al.'s default); "
              f"Demon (mo.sgd with mo.schedules.demon({cfg.momentum:g}, total steps): the "
              "momentum decays to 0 at the end of training). Each method is tried at the step "
              f"sizes {report.listing(cfg.step_sizes)}, learning rate x gain, the factor by "
              f"which it multiplies a constant gradient once its buffers are full ({gains}); "
              "its step sizes and seeds are one compile (vmap in vmap). Speed: the typical "
              "training loss of a run, the geometric mean of its epoch losses (the area under "
              "the log-loss curve, early and late progress alike), averaged over the seeds (also "
              "shown: epochs until the training loss stays below "
              f"{cfg.target_loss:g}, mean over the seeds, never if a seed does not; the final "
              "loss). Each method is compared at its best step size, the one with the lowest "
              "typical loss.",
        headline="typical training loss at the best step size: " + ", ".join(
            f"{n} {at(n, 'typical'):.2g}" for n in runs) + "; test accuracy " + " / ".join(
            f"{at(n, 'accuracy'):.3f}" for n in runs),
        table=rows, plots=[plotting.save(fig, out, "e2_variants.png")], verdict=verdict,
        metrics={name: {k: v for k, v in run.items() if k != "curve"} | {
            "best": pick[name], "curve": run["curve"][pick[name]]} for name, run in runs.items()})


def run(cfg: Config, key: jax.Array, out: pathlib.Path,
        status: Callable[[str], None] = lambda _: None) -> list[report.Claim]:
    status(f"{NAME}: E2 QHM, AggMo, Demon vs heavy ball")
    return [variants(cfg, key, out)]
