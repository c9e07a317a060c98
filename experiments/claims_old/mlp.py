"""The Flax MLP on scikit-learn's iris and digits (claims C5, C7, C10, C11)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import momentum_optax as mo
from experiments import measures
from experiments import plotting
from experiments import report
from experiments import sweeps
from experiments import training

NAME = "mlp"


@dataclasses.dataclass(frozen=True)
class Config:
    # C5: online (batch 1) training on iris, as in seed 000
    online_epochs: int = 40
    online_lr: float = 0.01
    online_momenta: tuple[float, ...] = (0.5, 0.9)
    spread: float = 1.5  # "per weight": p90 / p10 of the effective step at least this
    shift: float = 0.1  # "adaptive": the median moves by at least this fraction
    # C7: EMA vs heavy ball on digits, mini-batch
    ema_momenta: tuple[float, ...] = (0.5, 0.9, 0.99)
    ema_lr: float = 0.1  # EMA's lr; heavy ball gets lr (1 - b)
    ema_epochs: int = 20
    ema_tolerance: float = 1e-4  # max |difference| / max |weight|
    # C10: with RMSprop / Adam, digits mini-batch
    adaptive_epochs: int = 20
    sgd_lrs: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3)
    adaptive_lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    target_loss: float = 0.01  # speed: epochs until the training loss stays below this
    margin: float = 0.8  # at equal epochs to target, "faster" needs a final loss this much lower
    # C11: gradient noise at several batch sizes, digits
    batch_sizes: tuple[int, ...] = (1, 16, 128, 0)  # 0: the full training set
    noise_steps: int = 1347  # about this many steps per batch size
    noise_lrs: tuple[float, ...] = (0.005, 0.05)
    noise_momenta: tuple[float, ...] = (0.5, 0.9, 0.99)
    noise_samples: int = 100  # steps of the second half at which the full gradient is computed
    batch_size: int = 32


FULL = Config(online_epochs=60, ema_epochs=30, adaptive_epochs=40, noise_steps=2694,
              noise_samples=200, sgd_lrs=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3),
              adaptive_lrs=(3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2))
QUICK = Config(online_epochs=30, ema_epochs=10, adaptive_epochs=15, noise_steps=400)


def flat(tree) -> jax.Array:
    return ravel_pytree(tree)[0]


# ----------------------------------------------------------------------------- C5


def effective_steps(cfg: Config, key: jax.Array) -> dict[str, np.ndarray]:
    """Per-weight |delta w| / (lr |grad|), summed over the first and the last epoch."""
    start = training.setup("iris", key, hidden=16)
    probe = lambda params, grads, updates, split, step: jnp.stack([jnp.abs(flat(updates)),
                                                                   jnp.abs(flat(grads))])
    table = {"momentum": np.asarray(cfg.online_momenta, np.float32)}
    table["lr"] = np.full_like(table["momentum"], cfg.online_lr)
    makers = {"heavy ball": sweeps.momentum_sgd,
              "delta momentum": lambda row: optax.chain(optax.scale_by_learning_rate(row["lr"]),
                                                        mo.delta_momentum(row["momentum"]))}
    ratios, losses = {}, {}
    for name, make_opt in makers.items():
        result = training.sweep_train(make_opt, start, table, epochs=cfg.online_epochs,
                                      batch_size=1, probe=probe)
        sums = result.probes.sum(2)  # (momentum, epoch, [|u|, |g|], weight)
        windows = sums[:, [0, -1]]  # first and last epoch
        with np.errstate(divide="ignore", invalid="ignore"):
            r = windows[:, :, 0] / (cfg.online_lr * windows[:, :, 1])
        ratios[name] = np.where(windows[:, :, 1] > 0, r, np.nan)  # (momentum, window, weight)
        losses[name] = result.epoch_loss
    return {"ratios": ratios, "losses": losses}


def adaptive_rate(cfg: Config, key: jax.Array, out: pathlib.Path) -> report.Claim:
    data = effective_steps(cfg, key)
    stats = {(name, b, w): measures.percentiles(r[i, j][np.isfinite(r[i, j])])
             for name, r in data["ratios"].items() for i, b in enumerate(cfg.online_momenta)
             for j, w in enumerate(("early", "late"))}
    b = cfg.online_momenta[-1]
    spread = {n: stats[n, b, "late"]["p90"] / stats[n, b, "late"]["p10"] for n in data["ratios"]}
    shift = {n: stats[n, b, "late"]["p50"] / stats[n, b, "early"]["p50"] - 1
             for n in data["ratios"]}
    conditions = {}
    for n in data["ratios"]:
        conditions[f"{n}: the effective step varies across weights (p90/p10 {spread[n]:.2f} "
                   f"in the last epoch, at least {cfg.spread:g} needed)"] = spread[n] >= cfg.spread
        conditions[f"{n}: it adapts during training (median moves {shift[n]:+.0%} from the first "
                   f"to the last epoch, at least {cfg.shift:.0%} needed)"] = \
            abs(shift[n]) >= cfg.shift
    conditions["early in training both move faster than the learning rate alone (median > 1)"] \
        = all(stats[n, b, "early"]["p50"] > 1 for n in data["ratios"])
    verdict = report.rule(conditions)
    fig, axes = plotting.figure(3, title=f"C5: effective step |dw| / (lr |g|) per weight, "
                                f"iris online, momentum {b:g}")
    bins = np.geomspace(0.05, 50, 41)
    for ax, name in zip(axes, data["ratios"]):
        r = data["ratios"][name][-1]
        for j, window in enumerate(("first epoch", "last epoch")):
            ax.hist(r[j][np.isfinite(r[j])], bins=bins, histtype="step", lw=1.5, label=window)
        ax.axvline(1, color="k", ls="--", lw=0.8)
        ax.set(xscale="log", xlabel="effective step / lr", ylabel="weights", title=name)
        ax.legend(fontsize=7)
    plotting.series(axes[2], {n: data["losses"][n][-1] for n in data["losses"]}, logy=True,
                    xlabel="epoch", ylabel="training loss", title="training loss")
    rows = [{"method": n, "momentum": mb, "window": w, **s} for (n, mb, w), s in stats.items()]
    return report.claim(
        "C5",
        setup=f"MLP 4-16-16-3 on iris, online training (batch 1) for {cfg.online_epochs} "
              f"epochs at lr {cfg.online_lr:g}: heavy ball (mo.sgd) and seed 000's delta "
              "momentum (chain(scale_by_learning_rate, mo.delta_momentum)), momentum "
              f"{report.listing(cfg.online_momenta)}, one vmapped compile per method. Effective "
              "step of weight i over an epoch: sum |delta w_i| / (lr sum |g_i|) (plain SGD: "
              "exactly 1); "
              "distribution over the weights in the first and the last epoch.",
        headline="; ".join(f"{n}: median {stats[n, b, 'early']['p50']:.2f} -> "
                           f"{stats[n, b, 'late']['p50']:.2f}, p90/p10 {spread[n]:.1f}"
                           for n in data["ratios"]),
        table=rows, plots=[plotting.save(fig, out, "c5_effective_step.png")], verdict=verdict,
        metrics={"stats": {f"{n}|{mb}|{w}": s for (n, mb, w), s in stats.items()}})


# ----------------------------------------------------------------------------- C7


def paired(first: optax.GradientTransformation,
           second: optax.GradientTransformation) -> optax.GradientTransformation:
    """Applies ``first`` to ``params[0]`` and ``second`` to ``params[1]``: two runs in one."""

    def init_fn(params):
        return first.init(params[0]), second.init(params[1])

    def update_fn(updates, state, params=None):
        p = (None, None) if params is None else params
        u0, s0 = first.update(updates[0], state[0], p[0])
        u1, s1 = second.update(updates[1], state[1], p[1])
        return (u0, u1), (s0, s1)

    return optax.GradientTransformation(init_fn, update_fn)


def ema_equivalence(cfg: Config, key: jax.Array, out: pathlib.Path) -> report.Claim:
    start = training.setup("digits", key)
    loss = lambda p, x, y: sum(training.classifier_loss(start.graphdef, q, x, y) for q in p)
    acc = lambda p, x, y: jnp.stack([training.accuracy(start.graphdef, q, x, y) for q in p])
    probe = lambda p, g, u, split, step: jnp.stack([jnp.max(jnp.abs(flat(p[0]) - flat(p[1]))),
                                              jnp.max(jnp.abs(flat(p[1])))])

    def one(row, params, split, key):
        opt = paired(mo.sgd(row["lr"], row["momentum"], ema=True),
                     mo.sgd(row["lr"] * (1 - row["momentum"]), row["momentum"]))
        train = training.train_fn(opt, loss, acc, epochs=cfg.ema_epochs,
                                  batch_size=cfg.batch_size, probe=probe)
        return train((params, params), split, key)

    table = {"momentum": np.asarray(cfg.ema_momenta, np.float32)}
    table["lr"] = np.full_like(table["momentum"], cfg.ema_lr)
    result = sweeps.sweep(one, table, start.params, start.split, start.key)
    diff = result.probes[..., 0].reshape(len(cfg.ema_momenta), -1)
    scale = result.probes[..., 1].reshape(len(cfg.ema_momenta), -1).max(-1)
    relative = diff.max(-1) / scale
    verdict = report.rule({
        f"for every momentum the two runs' weights differ by at most {cfg.ema_tolerance:g} of "
        "the largest weight, at every step": bool(np.all(relative <= cfg.ema_tolerance)),
        "their test accuracies are equal": bool(np.all(result.test_accuracy[:, 0] ==
                                                       result.test_accuracy[:, 1])),
    })
    fig, (ax, ax2) = plotting.figure(2, title="C7: EMA momentum vs heavy ball at lr (1 - b)")
    plotting.series(ax, {f"b = {b:g}": np.maximum(diff[i], 1e-12)
                         for i, b in enumerate(cfg.ema_momenta)}, logy=True,
                    ylabel="max |w_EMA - w_heavy ball|",
                    title="along the whole run (0 drawn at 1e-12)")
    plotting.series(ax2, {f"b = {b:g}": result.epoch_loss[i] for i, b in
                          enumerate(cfg.ema_momenta)}, logy=True, xlabel="epoch",
                    ylabel="training loss (sum of both runs)", title="training loss")
    rows = [{"momentum b": b, "steps": diff.shape[1], "max |difference|": diff[i].max(),
             "max |weight|": scale[i], "relative": relative[i],
             "test accuracy EMA": result.test_accuracy[i, 0],
             "test accuracy heavy ball": result.test_accuracy[i, 1]}
            for i, b in enumerate(cfg.ema_momenta)]
    return report.claim(
        "C7",
        setup=f"Digits MLP 64-64-10, batch {cfg.batch_size}, {cfg.ema_epochs} epochs: "
              f"mo.sgd(lr, b, ema=True) with lr {cfg.ema_lr:g} against mo.sgd(lr (1 - b), b), "
              "trained side by side on the same batches inside one compiled function (a paired "
              f"optimizer), b in {report.listing(cfg.ema_momenta)} vmapped; the largest weight "
              "difference is recorded at every step.",
        headline=f"max weight difference over {diff.shape[1]} steps: "
                 + ", ".join(f"{relative[i]:.1e} (b={b:g})"
                             for i, b in enumerate(cfg.ema_momenta)) + " of the largest weight",
        table=rows, plots=[plotting.save(fig, out, "c7_ema_equivalence.png")], verdict=verdict,
        metrics={"relative_difference": relative, "max_difference": diff.max(-1)})


# ----------------------------------------------------------------------------- C10

ADAPTIVE = {
    "heavy ball": sweeps.momentum_sgd,
    "RMSprop": lambda row: optax.chain(optax.scale_by_rms(decay=0.9, eps=1e-8),
                                       mo.trace(row["momentum"]),
                                       optax.scale_by_learning_rate(row["lr"])),
    "Adam": lambda row: optax.chain(optax.scale_by_adam(b1=row["momentum"], b2=0.999),
                                    optax.scale_by_learning_rate(row["lr"])),
}


def with_adaptive(cfg: Config, key: jax.Array, out: pathlib.Path) -> report.Claim:
    start = training.setup("digits", key)
    momenta = (0.0, 0.9)
    best = {}  # (method, momentum) -> the best learning rate's numbers and curve
    for name, make_opt in ADAPTIVE.items():
        lrs = cfg.sgd_lrs if name == "heavy ball" else cfg.adaptive_lrs
        table = sweeps.grid(momentum=momenta, lr=lrs)
        result = training.sweep_train(make_opt, start, table, epochs=cfg.adaptive_epochs,
                                      batch_size=cfg.batch_size)
        loss = np.nan_to_num(result.epoch_loss, nan=np.inf)
        epochs = measures.settles_below(loss, cfg.target_loss) + 1
        for i, b in enumerate(momenta):
            rows = np.flatnonzero(table["momentum"] == np.float32(b))
            r = rows[np.lexsort((loss[rows, -1], epochs[rows]))[0]]  # fastest, then lowest
            best[name, b] = {"lr": table["lr"][r], "epochs to target": epochs[r],
                             "final loss": loss[r, -1], "test accuracy":
                             result.test_accuracy[r], "curve": loss[r]}
    speed = lambda r: (r["epochs to target"], r["final loss"])  # ranks: smaller is faster
    faster = lambda a, b: (a["epochs to target"] < b["epochs to target"] or (
        a["epochs to target"] == b["epochs to target"]
        and a["final loss"] < cfg.margin * b["final loss"]))
    hb = best["heavy ball", 0.9]
    adaptive = min(("RMSprop", "Adam"), key=lambda n: speed(best[n, 0.9]))
    ad = best[adaptive, 0.9]
    verdict = report.rule({
        f"{adaptive} with momentum 0.9 learns faster than heavy ball 0.9, each at its best lr "
        f"(epochs until the training loss stays below {cfg.target_loss:g}: "
        f"{report.fmt(ad['epochs to target'])}"
        f" vs {report.fmt(hb['epochs to target'])}, then the final loss: "
        f"{ad['final loss']:.2g} vs {hb['final loss']:.2g})": faster(ad, hb),
        "its test accuracy is at most 1 point below heavy ball's":
            bool(ad["test accuracy"] >= hb["test accuracy"] - 0.01),
        "momentum 0.9 makes both RMSprop and Adam learn faster than without it":
            all(faster(best[n, 0.9], best[n, 0.0]) for n in ("RMSprop", "Adam")),
    })
    fig, (ax, ax2) = plotting.figure(2, title=f"C10: momentum with RMSprop and Adam, digits "
                                     f"MLP, batch {cfg.batch_size} (best lr of each)")
    for a, b in ((ax, 0.9), (ax2, 0.0)):
        plotting.series(a, {n: best[n, b]["curve"] for n in ADAPTIVE}, logy=True,
                        xlabel="epoch", ylabel="training loss", title=f"momentum / b1 = {b:g}")
        a.axhline(cfg.target_loss, color="k", ls=":", lw=0.8)
    rows = [{"method": n, "momentum": b, **{k: v for k, v in r.items() if k != "curve"}}
            for (n, b), r in best.items()]
    return report.claim(
        "C10",
        setup=f"Digits MLP 64-64-10, batch {cfg.batch_size}, {cfg.adaptive_epochs} epochs, the "
              "same initialisation and batches: heavy ball (mo.sgd), RMSprop with momentum "
              "(chain(scale_by_rms, mo.trace(b), scale_by_learning_rate)) and Adam (b1 = b), "
              f"b in {report.listing(momenta)}, learning rates {report.listing(cfg.sgd_lrs)} "
              f"(heavy ball) and {report.listing(cfg.adaptive_lrs)} (RMSprop, Adam); each "
              "method's grid is one vmapped compile. Each method is shown at its best learning "
              "rate: fewest epochs until the training loss stays below "
              f"{cfg.target_loss:g}, then lowest final loss. A run is faster "
              "than another if it needs fewer epochs, or as many and ends with a training loss "
              f"below {cfg.margin:g} times the other's.",
        headline=f"epochs until loss < {cfg.target_loss:g}: heavy ball "
                 f"{report.fmt(hb['epochs to target'])}, RMSprop "
                 f"{report.fmt(best['RMSprop', 0.9]['epochs to target'])}, Adam "
                 f"{report.fmt(best['Adam', 0.9]['epochs to target'])}; test accuracy "
                 f"{hb['test accuracy']:.3f} / {best['RMSprop', 0.9]['test accuracy']:.3f} / "
                 f"{best['Adam', 0.9]['test accuracy']:.3f}",
        table=rows, plots=[plotting.save(fig, out, "c10_adaptive.png")], verdict=verdict,
        metrics={f"{n}|{b:g}": r for (n, b), r in best.items()})


# ----------------------------------------------------------------------------- C11


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """Cosine similarity, safe for vectors near 0 or near overflow (0 if either is zero)."""
    a, b = (v / jnp.maximum(jnp.max(jnp.abs(v)), 1e-30) for v in (a, b))
    return jnp.vdot(a, b) / jnp.maximum(jnp.linalg.norm(a) * jnp.linalg.norm(b), 1e-30)


def gradient_noise(cfg: Config, key: jax.Array, out: pathlib.Path) -> report.Claim:
    start = training.setup("digits", key)
    n = start.split.x_train.shape[0]

    def probe_every(every: int, first: int):
        def probe(params, grads, updates, split, step):
            def measure():
                full = flat(jax.grad(training.classifier_loss, argnums=1)(
                    start.graphdef, params, split.x_train, split.y_train))
                return jnp.stack([cosine(-flat(updates), full), cosine(flat(grads), full)])

            on = (step >= first) & (step % every == 0)  # the full gradient costs a full pass
            return jax.lax.cond(on, measure, lambda: jnp.full(2, jnp.nan))

        return probe

    table = sweeps.grid(lr=cfg.noise_lrs, momentum=cfg.noise_momenta)
    ema_sgd = lambda row: mo.sgd(row["lr"], row["momentum"], ema=True)
    shape = (len(cfg.noise_lrs), len(cfg.noise_momenta))
    sims, accuracy = {}, {}
    for size in cfg.batch_sizes:
        size = size or n
        epochs = max(1, round(cfg.noise_steps * size / n))
        total = epochs * (n // size)
        probe = probe_every(max(1, total // (2 * cfg.noise_samples)), total // 2)
        result = training.sweep_train(ema_sgd, start, table, epochs=epochs, batch_size=size,
                                      probe=probe)
        c = result.probes.reshape(*shape, -1, 2)  # (lr, momentum, step, [EMA, raw])
        sims[size] = np.nanmean(c, axis=2)  # over the sampled steps of the second half
        accuracy[size] = result.test_accuracy.reshape(shape)
    i9 = list(cfg.noise_momenta).index(0.9)
    minis = [s for s in sims if s < n]
    verdict = report.rule({
        f"at lr {lr:g}, for every mini-batch size {minis}, the EMA (b = 0.9) of the mini-batch "
        "gradients is closer (mean cosine) to the full-batch gradient than the raw one":
            bool(minis) and all(sims[s][j, i9, 0] > sims[s][j, i9, 1] for s in minis)
        for j, lr in enumerate(cfg.noise_lrs)})
    fig, axes = plotting.figure(len(cfg.noise_lrs), title="C11: cosine to the full-batch "
                                "gradient, digits MLP, EMA momentum")
    sizes = np.asarray(list(sims))
    for j, (ax, lr) in enumerate(zip(axes, cfg.noise_lrs)):
        ax.plot(sizes, [sims[s][j, i9, 1] for s in sizes], "k.-", lw=2,
                label="raw mini-batch gradient")
        for i, b in enumerate(cfg.noise_momenta):
            ax.plot(sizes, [sims[s][j, i, 0] for s in sizes], "o--", label=f"EMA, b = {b:g}")
        ax.set(xscale="log", xlabel="batch size (largest: full batch)", ylabel="mean cosine",
               ylim=(0, 1.05), title=f"lr {lr:g}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    rows = [{"batch size": s, "lr": lr, "momentum b": b, "cosine raw": sims[s][j, i, 1],
             "cosine EMA": sims[s][j, i, 0], "test accuracy": accuracy[s][j, i]}
            for s in sims for j, lr in enumerate(cfg.noise_lrs)
            for i, b in enumerate(cfg.noise_momenta)]
    return report.claim(
        "C11",
        setup=f"Digits MLP 64-64-10 trained with EMA momentum (mo.sgd(lr, b, ema=True)), lr in "
              f"{report.listing(cfg.noise_lrs)} x b in {report.listing(cfg.noise_momenta)} "
              f"vmapped, at batch sizes {report.listing(sims)} (1: online/stochastic, {n}: full "
              "batch) for about "
              f"{cfg.noise_steps} steps each (whole epochs; one compile per batch size). At "
              f"about {cfg.noise_samples} evenly spaced steps of the second half of each run, the "
              "full-batch gradient at the current weights is computed and compared (cosine) "
              "with the raw mini-batch gradient and with the EMA; the table gives the means.",
        headline="b = 0.9, " + "; ".join(
            f"lr {lr:g}: " + ", ".join(f"batch {s} raw {sims[s][j, i9, 1]:.2f} / EMA "
                                       f"{sims[s][j, i9, 0]:.2f}" for s in minis)
            for j, lr in enumerate(cfg.noise_lrs)),
        table=rows, plots=[plotting.save(fig, out, "c11_gradient_noise.png")], verdict=verdict,
        metrics={"cosine": {str(s): v for s, v in sims.items()}, "lrs": cfg.noise_lrs,
                 "momenta": cfg.noise_momenta})


def run(cfg: Config, key: jax.Array, out: pathlib.Path,
        status: Callable[[str], None] = lambda _: None) -> list[report.Claim]:
    keys = jax.random.split(key, 4)
    claims = []
    for k, (stage, fn) in zip(keys, (("C5 effective step", adaptive_rate),
                                     ("C7 EMA vs heavy ball", ema_equivalence),
                                     ("C10 RMSprop and Adam", with_adaptive),
                                     ("C11 gradient noise", gradient_noise))):
        status(f"{NAME}: {stage}")
        claims.append(fn(cfg, k, out))
    return claims
