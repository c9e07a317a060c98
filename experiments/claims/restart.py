"""C9: momentum restart every k steps on MNIST-1D, each k at its own tuned lr and beta; and
E1: adaptive restart on random quadratics (``restart_quadratic``).

Measure (C9): heavy ball ``mo.sgd(lr, beta, reset_every=k)`` for a few periods k and for
"never" (a period longer than the run), every arm tuned over the same trials of log lr x
log(1 - beta); one compile (the arms share one state structure, ``comparison.run`` picks
each row's period by a traced index). Each arm is selected on its final training loss.
Judge: the paired ratio of final training loss, the best restarted arm / no restart.
With ``cfg.practice`` (the full run) the same arms run again under the practice arm
(``parts.practice``: warm-up + cosine, weight decay), judged as secondary conditions.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import numpy as np

import momentum_optax as mo

from .. import comparison
from .. import loop
from .. import plotting
from .. import report
from .. import tasks
from ..parts import practice
from ..parts import restart_quadratic
from ..protocol import horizon
from ..protocol import race
from ..protocol import stats
from ..protocol import tuning
from ..protocol import verdicts

NAME = "restart"
CLAIMS = ("C9", "E1")
NEVER = "no restart"


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    trials: int = 16  # per arm, a 4 x 4 grid of effective step x beta, the same for every arm
    schedule: loop.Schedule = loop.Schedule(steps=2000, batch_size=32, eval_every=100)
    periods: tuple[int, ...] = (50, 200, 1000)
    effective: tuple[float, float] = (0.03, 3.0)  # lr / (1 - beta)
    one_minus_beta: tuple[float, float] = (0.003, 0.5)  # beta in [0.5, 0.997]
    gain: float = 0.9  # primary: final training loss ratio (best restarted / none) below this
    practice: bool = True  # the practice arm (warm-up + cosine, weight decay): secondary
    quadratic: restart_quadratic.Config = restart_quadratic.FULL


QUICK = Config(
    seeds=5,
    periods=(50, 200),
    schedule=loop.Schedule(steps=600, batch_size=32, eval_every=100),
    quadratic=restart_quadratic.QUICK,
    practice=False,
)
FULL = Config()

PRIMARY = (
    "Restarting helps: the restart period k with the lowest mean final training loss "
    "(each k at its own tuned lr and beta) ends with a training loss at least "
    "{pct:.0f}% below heavy ball without restarts at its own tuned lr and beta - the 95% "
    "interval of the paired ratio (restarted / no restart) lies below {gain:g}."
)
READING = (
    "'Find the best solution more efficiently' is read as training efficiency: a lower "
    "loss on the training subset after the same number of steps. Every arm, the "
    "unrestarted one included, gets its own tuned learning rate and momentum, so a "
    "restart cannot win merely by taming a setting that is unstable without it. The best "
    "k is picked after the run, which favours the restarted side slightly (the best of "
    "{n} arms); the {pct:.0f}% threshold leaves room for that."
)


def label(k: int) -> str:
    return f"restart every {k}"


def methods(cfg: Config) -> list[comparison.Method]:
    """One arm per period, then no restart (a period one step longer than the run, so every
    arm keeps the same state structure)."""
    space = tuning.Space(effective=cfg.effective, one_minus_beta=cfg.one_minus_beta)
    arms = [(label(k), k) for k in cfg.periods] + [(NEVER, cfg.schedule.steps + 1)]
    return [
        comparison.Method(
            name, lambda row, k=k: mo.sgd(row["lr"], row["momentum"], reset_every=k), space
        )
        for name, k in arms
    ]


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> practice.Arms:
    """Every arm's trials on every seed (one compile; the practice arm another); each arm's
    training-loss choice."""
    return practice.measure(
        methods(cfg),
        tasks.mnist1d_mlp(),
        cfg,
        key,
        comparison.select_by_train_loss,
        label="C9",
        status=status,
    )


def best_period(train: dict[str, np.ndarray]) -> str:
    """The restarted arm with the lowest mean final training loss (diverged: inf)."""
    restarted = [name for name in practice.main(train) if name != NEVER]
    return min(
        restarted, key=lambda name: np.where(np.isfinite(train[name]), train[name], np.inf).mean()
    )


def judge(
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    cfg: Config,
) -> verdicts.Verdict:
    """C9's verdict from per-seed final training losses (primary), validation losses and
    test accuracies (secondary) of each arm's selected trial; ``NEVER`` is the baseline."""
    best = best_period(train)
    primary = verdicts.Condition(
        f"{best} (best k): final training loss / no restart's",
        stats.paired_ratio(train[best], train[NEVER]),
        cfg.gain,
        verdicts.BELOW,
    )
    secondary = [
        verdicts.Condition(
            f"{name}: final training loss / no restart's",
            stats.paired_ratio(train[name], train[NEVER]),
            cfg.gain,
            verdicts.BELOW,
        )
        for name in practice.main(train)
        if name not in (best, NEVER)
    ]
    drilled = best + practice.SUFFIX, NEVER + practice.SUFFIX
    if drilled[0] in train:
        secondary.append(
            verdicts.Condition(
                f"{drilled[0]}: final training loss / {drilled[1]}'s",
                stats.paired_ratio(train[drilled[0]], train[drilled[1]]),
                cfg.gain,
                verdicts.BELOW,
            )
        )
    secondary += [
        verdicts.Condition(
            f"{best}: final validation loss / no restart's",
            stats.paired_ratio(val[best], val[NEVER]),
            1.0,
            verdicts.BELOW,
        ),
        verdicts.Condition(
            f"{best}: test accuracy, restarted - no restart",
            stats.paired_difference(test[best], test[NEVER]),
            0.0,
            verdicts.ABOVE,
        ),
    ]
    return verdicts.judge(primary, secondary)


def per_seed(selected: list[comparison.Selected]) -> tuple[dict, dict, dict]:
    """Final training loss, final validation loss and test accuracy of each arm, per seed."""
    return (
        {s.method: comparison.final(s.curves.train_loss) for s in selected},
        {s.method: comparison.final(s.curves.val_loss) for s in selected},
        {s.method: np.asarray(s.curves.test_accuracy, np.float64) for s in selected},
    )


def figure(numbers: practice.Arms, cfg: Config, out: pathlib.Path) -> list[str]:
    fig, axes = plotting.figure(
        2,
        title="C9: momentum restart every k steps, each k at its own "
        "tuned lr and beta (MNIST-1D MLP)",
    )
    sel = list(numbers.main().values())
    colors = dict(zip([s.method for s in sel], plotting.ordered_colors(range(len(sel)))))
    plotting.seed_bands(
        axes[0],
        cfg.schedule.eval_steps,
        {s.method: s.curves.train_loss for s in sel},
        logy=True,
        ylabel="loss on the training subset",
        colors=colors,
        title="selected trials (bands: seeds)",
    )
    for r in (t for t in numbers.trials if t.method in colors):
        loss = comparison.final(r.curves.train_loss)
        mean = np.where(np.isfinite(loss).all(-1), loss.mean(-1), np.nan)
        axes[1].plot(
            r.table["lr"] / (1 - r.table["momentum"]),
            mean,
            "o",
            color=colors[r.method],
            label=r.method,
            mfc="none",
        )
    axes[1].set(
        xscale="log",
        yscale="log",
        xlabel="effective step lr / (1 - beta)",
        ylabel="final training loss (mean over seeds)",
        title="every trial (missing: some seed diverged)",
    )
    axes[1].legend(fontsize=7)
    axes[1].grid(alpha=0.3)
    return [plotting.save(fig, out, "c9_restart.png")]


def describe(
    numbers: practice.Arms, verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    rows, edges = [], []
    for sel in numbers.selected:
        rows.append(
            {
                "arm": sel.method,
                "lr": sel.setting["lr"],
                "beta": sel.setting["momentum"],
                "final training loss": stats.mean(comparison.final(sel.curves.train_loss)),
                "final validation loss": stats.mean(comparison.final(sel.curves.val_loss)),
                "test accuracy": stats.mean(sel.curves.test_accuracy),
            }
        )
        edges += [f"{sel.method}: {', '.join(sel.edge)}"] if sel.edge else []
    s, n = cfg.schedule, len(cfg.periods)
    return report.Finding(
        id="C9",
        reading=READING.format(n=n, pct=100 * (1 - cfg.gain)),
        primary=PRIMARY.format(pct=100 * (1 - cfg.gain), gain=cfg.gain),
        setup=f"MNIST-1D (8,000 train / 2,000 validation / 2,000 test), 40-100-100-10 ReLU "
        f"MLP, heavy ball mo.sgd(lr, beta, reset_every=k) (Understanding Momentum's v_t = 0 "
        f"every k steps, mo.periodic_reset around the momentum) for k in "
        f"{report.listing(cfg.periods)} and without restarts; {s.steps} steps of batch "
        f"{s.batch_size}, losses on the training subset and the validation set every "
        f"{s.eval_every} steps, {cfg.seeds} seeds "
        "(same initialisation and batches for every arm). All arms in one compile."
        + (
            f" {practice.sentence(raced=False)} The practice arm's best k is the main arm's."
            if cfg.practice
            else ""
        ),
        budget=f"{cfg.trials} trials per arm, the same "
        f"{race.grid(cfg.trials, cfg.effective, cfg.one_minus_beta)} for every arm; each "
        "arm selected on its final training "
        "loss (the quantity the claim is about); test accuracy of the selected trial only.",
        headline=f"{verdict.primary[0].text.split(':')[0]}: final training loss / no restart's "
        f"{verdict.primary[0].estimate}",
        table=rows,
        plots=plots,
        verdict=verdict,
        metrics={"selected": {sel.method: sel.setting for sel in numbers.selected}},
        notes=report.edge_note(edges),
        horizon=horizon.describe(
            numbers.main()[NEVER].curves.val_loss,
            s,
            tasks.mnist1d_mlp().data.x_train.shape[0],
            NEVER,
        ),
    )


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    numbers = measure(cfg, key, status)
    findings = [
        describe(numbers, judge(*per_seed(numbers.selected), cfg), figure(numbers, cfg, out), cfg)
    ]
    q = restart_quadratic
    quad = q.measure(cfg.quadratic, jax.random.fold_in(key, 1), status)
    verdict = q.judge(quad["steps"], cfg.quadratic)
    return [*findings, q.describe(quad, verdict, q.figure(quad, cfg.quadratic, out), cfg.quadratic)]
