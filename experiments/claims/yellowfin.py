"""E3: YellowFin's one untuned run against heavy ball tuned with N trials, MNIST-1D.

Measure: heavy ball (``mo.sgd``, lr x log(1 - beta), N trials, every trial on every seed)
in one compile; YellowFin (``mo.yellowfin()``: its learning rate and momentum tuned
online, the factor on them left at 1) once per seed in another; heavy ball selected on
mean validation accuracy. Judge: the paired difference in test accuracy (YellowFin -
tuned heavy ball) against a practical margin. Beside it, YellowFin's validation accuracy
on heavy ball's expected-best-of-k-trials curve (Dodge et al.), and k*, the number of
heavy-ball trials its untuned run is worth. One more short run logs the learning rate
and momentum YellowFin tunes (seed 0). Where the configuration asks for it, the same on
the 1-D CNN (secondary).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import momentum_optax as mo

from .. import comparison
from .. import loop
from .. import plotting
from .. import report
from .. import sweeps
from .. import tasks
from ..parts import budget
from ..parts import wallclock
from ..protocol import horizon
from ..protocol import stats
from ..protocol import tuning
from ..protocol import verdicts

NAME = "yellowfin"
CLAIMS = ("E3",)
UNTUNED = {"lr": np.array([1.0])}  # YellowFin's factor on its tuned learning rate


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    trials: int = 16  # heavy ball's tuning budget N: independent random draws
    schedule: loop.Schedule = loop.Schedule(steps=4000, batch_size=32, eval_every=100)
    effective: tuple[float, float] = (0.03, 3.0)  # C15's space of lr / (1 - beta)
    one_minus_beta: tuple[float, float] = (0.01, 0.5)
    margin: float = 0.02  # primary: YellowFin - tuned heavy ball test accuracy above -margin
    budgets: int = 400  # resolution of the real-valued budget k
    extrapolate: int = 10  # k* is looked for up to this many times the trials run (as C15)
    # the 1-D CNN (secondary; 0 trials: not run)
    cnn_trials: int = 8
    cnn_seeds: int = 8
    cnn_schedule: loop.Schedule = loop.Schedule(steps=600, batch_size=32, eval_every=100)


QUICK = Config(
    seeds=5,
    trials=8,
    schedule=loop.Schedule(steps=400, batch_size=32, eval_every=100),
    cnn_trials=0,
)
FULL = Config()

PRIMARY = (
    "YellowFin untuned is as good as heavy ball tuned with {trials} trials, within "
    "{margin:g} of accuracy: the 95% interval of the paired difference in test accuracy "
    "(YellowFin - heavy ball at its trial with the best mean validation accuracy) lies "
    "above -{margin:g}."
)
READING = (
    "An automatic tuner for momentum and learning rate standing in for hand-tuning is "
    "read as the result of a fixed number of steps: YellowFin's one run at its defaults (beta "
    "0.999, curvature window 20, learning-rate factor 1) against heavy ball with its "
    "learning rate and momentum tuned over the space C15 uses, chosen on validation "
    "accuracy and compared on test accuracy (reported once). 'Competitive' needs a "
    "margin: 2 points of accuracy. How much tuning YellowFin saves is the secondary "
    "number: k*, the (real) number of heavy-ball trials whose expected best validation "
    "accuracy (Dodge et al. 2019) equals YellowFin's, on the mean of the seeds' curves, "
    "with a BCa bootstrap interval over seeds. Beyond the {trials} trials run the curve "
    "extrapolates Dodge et al.'s estimator (draws with replacement), up to {most} trials, "
    "as C15 does; '>= {most}': not reached by then (YellowFin at or above heavy ball's "
    "best trials; resamples that never reach it count as {most}); 1: one random trial "
    "or fewer. The paper's comparison with Adam on ResNets "
    "and LSTMs is not reproduced here: the claim tested is the premise that the tuner "
    "stands in for hand-tuning."
)


class Accuracies(NamedTuple):
    """Heavy ball's final validation accuracy of every trial ``(trials, seeds)``, its tuned
    trial's test accuracy and YellowFin's validation and test accuracies (per seed)."""

    heavy_ball_val: np.ndarray
    heavy_ball_test: np.ndarray
    yellowfin_val: np.ndarray
    yellowfin_test: np.ndarray


def heavy_ball(cfg: Config) -> comparison.Method:
    space = tuning.Space(
        effective=cfg.effective, one_minus_beta=cfg.one_minus_beta, grid=False, draw_seed=3
    )  # the question is the budget: independent random draws, as Dodge et al. assume
    return comparison.Method("heavy ball", comparison.heavy_ball, space)


YELLOWFIN = comparison.Method(
    "YellowFin", lambda row: mo.yellowfin(row["lr"]), tuning.Space(lr=(1.0, 1.0))
)


class Arm(NamedTuple):
    """One task's E3 numbers: heavy ball's ``n`` trials, its cross-fitted pick (``tuned``),
    the accuracies, the budgets k, heavy ball's per-seed expected best of k trials
    ``(seeds, budgets)`` and YellowFin's worth k*."""

    n: int
    tuned: comparison.Selected
    accuracies: Accuracies
    budgets: np.ndarray
    expected: np.ndarray
    worth: stats.Interval


class Measured(NamedTuple):
    """The MLP arm, the CNN arm (``None`` if not run), YellowFin's tuned values on seed 0
    and the seconds per step (``run`` fills them in)."""

    mlp: Arm
    cnn: Arm | None
    tuned_values: dict[str, np.ndarray]
    wall: dict[str, float] | None = None


def arm(
    task: tasks.Task, trials: int, seeds: int, schedule: loop.Schedule, cfg: Config, key
) -> Arm:
    """Heavy ball's trials and YellowFin's runs on ``task``; heavy ball's validation pick."""
    hb = comparison.run(
        heavy_ball(cfg), task, trials=trials, seeds=seeds, key=key, schedule=schedule
    )
    yf = comparison.run(
        YELLOWFIN, task, trials=1, seeds=seeds, key=key, schedule=schedule, table=UNTUNED
    )
    val = np.asarray(hb.curves.val_accuracy[..., -1], np.float64)
    tuned = comparison.crossfit(hb, -val)  # each seed scored by the other seeds' choice
    yellowfin = yf.pick(0)
    acc = Accuracies(
        val,
        np.asarray(tuned.curves.test_accuracy, np.float64),
        np.asarray(yellowfin.curves.val_accuracy[:, -1], np.float64),
        np.asarray(yellowfin.curves.test_accuracy, np.float64),
    )
    budgets = np.geomspace(1, cfg.extrapolate * trials, cfg.budgets)
    curves = budget.per_seed(val, budgets)
    return Arm(
        trials, tuned, acc, budgets, curves, budget.worth(curves, acc.yellowfin_val, budgets)
    )


def tuned_values(task: tasks.Task, key: jax.Array, schedule: loop.Schedule) -> dict:
    """YellowFin's tuned learning rate and momentum at every step of seed 0's run (its
    initialisation and batches are those of ``comparison.run``'s seed 0)."""
    opt = mo.yellowfin()
    init_key, batch_key = jax.random.split(sweeps.seed_key(key, jnp.int32(0)))
    ds = task.data

    def step(carry, t):
        params, state = carry
        idx = jax.random.randint(
            jax.random.fold_in(batch_key, t), (schedule.batch_size,), 0, ds.x_train.shape[0]
        )
        grads = jax.grad(lambda p: tasks.loss(task, p, ds.x_train[idx], ds.y_train[idx]))(params)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), state[0]

    def probe(params):
        _, tuned = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(schedule.steps))
        return tuned.learning_rate, tuned.momentum

    lr, momentum = jax.jit(probe)(task.init(init_key))
    return {"learning_rate": np.asarray(lr), "momentum": np.asarray(momentum)}


def measure(cfg: Config, key: jax.Array, status=lambda _: None) -> Measured:
    """The MLP arm (and the CNN arm where configured) and YellowFin's tuned values."""
    status(f"heavy ball x {cfg.trials} trials and YellowFin, {cfg.seeds} seeds each")
    task = tasks.mnist1d_mlp()
    mlp = arm(task, cfg.trials, cfg.seeds, cfg.schedule, cfg, key)
    status("YellowFin's tuned learning rate and momentum, seed 0")
    values = tuned_values(task, key, cfg.schedule)
    cnn = None
    if cfg.cnn_trials:
        status(f"CNN: heavy ball x {cfg.cnn_trials} trials and YellowFin, {cfg.cnn_seeds} seeds")
        cnn = arm(tasks.mnist1d_cnn(), cfg.cnn_trials, cfg.cnn_seeds, cfg.cnn_schedule, cfg, key)
    return Measured(mlp, cnn, values)


def judge(mlp: Accuracies, cfg: Config, cnn: Accuracies | None = None) -> verdicts.Verdict:
    """E3's verdict from the MLP's accuracies (and the CNN's, secondary)."""

    def difference(acc: Accuracies, prefix: str = "") -> verdicts.Condition:
        return verdicts.Condition(
            f"{prefix}test accuracy, YellowFin - tuned heavy ball",
            stats.paired_difference(acc.yellowfin_test, acc.heavy_ball_test),
            -cfg.margin,
            verdicts.ABOVE,
        )

    first = budget.per_seed(mlp.heavy_ball_val, np.ones(1))[:, 0]  # one random heavy-ball trial
    secondary = [
        verdicts.Condition(
            "validation accuracy, YellowFin - heavy ball's expected best of 1 trial",
            stats.paired_difference(mlp.yellowfin_val, first),
            0.0,
            verdicts.ABOVE,
        )
    ]
    if cnn is not None:
        secondary.append(difference(cnn, "1-D CNN: "))
    return verdicts.judge(difference(mlp), secondary)


def figure(numbers: Measured, cfg: Config, out: pathlib.Path) -> list[str]:
    arms = {name: a for name, a in (("MLP", numbers.mlp), ("1-D CNN", numbers.cnn)) if a}
    fig, axes = plotting.figure(
        len(arms) + 2,
        title="E3: YellowFin untuned against heavy ball tuned with k trials (MNIST-1D)",
    )
    yf_color = plotting.COLORS["YellowFin"]
    for ax, (name, a) in zip(axes, arms.items()):
        ax.axvspan(a.n, a.budgets[-1], color="0.92", lw=0, label=f"k > {a.n}: extrapolated")
        plotting.seed_bands(
            ax,
            a.budgets,
            {"heavy ball, expected best of k trials": a.expected},
            xlabel="number of heavy-ball trials k",
            ylabel="validation accuracy",
            title=f"{name}: Dodge et al.'s curve; YellowFin's one run",
            colors={"heavy ball, expected best of k trials": plotting.COLORS["heavy ball"]},
        )
        yf = stats.mean(a.accuracies.yellowfin_val)
        ax.axhspan(yf.low, yf.high, color=yf_color, alpha=0.25, lw=0)
        ax.axhline(yf.mean, color=yf_color, lw=1.2, label="YellowFin, untuned (95% band)")
        if a.worth.bound != "lower":
            ax.axvline(a.worth.mean, color="k", ls=":", lw=0.8, label=f"k* = {a.worth.mean:.2g}")
        ax.set_xscale("log")
        ax.legend(fontsize=7)
    steps = np.arange(1, cfg.schedule.steps + 1)
    tuned = numbers.tuned_values
    panels = (
        ("learning_rate", r"tuned learning rate $\alpha_t$", "learning rate", True),
        ("momentum", r"tuned momentum $\mu_t$", "momentum", False),
    )
    for ax, (key, ylabel, what, logy) in zip(axes[len(arms) :], panels):
        plotting.series(
            ax,
            {"YellowFin": tuned[key]},
            x=steps,
            logy=logy,
            ylabel=ylabel,
            title=f"MLP, seed 0: the {what} YellowFin tunes",
        )
    return [plotting.save(fig, out, "e3_yellowfin.png")]


def rows(a: Arm, label: str) -> list[dict]:
    acc, tuned = a.accuracies, a.tuned
    return [
        {
            "method": f"heavy ball, tuned ({a.n} trials){label}",
            "lr": tuned.setting["lr"],
            "momentum": tuned.setting["momentum"],
            "validation accuracy": stats.mean(tuned.curves.val_accuracy[:, -1]),
            "test accuracy": stats.mean(acc.heavy_ball_test),
            "heavy-ball trials worth (k*)": "",
        },
        {
            "method": f"heavy ball, expected best of 1 trial{label}",
            "lr": "random draw",
            "momentum": "random draw",
            "validation accuracy": stats.mean(a.expected[:, 0]),
            "test accuracy": "",
            "heavy-ball trials worth (k*)": 1.0,
        },
        {
            "method": f"YellowFin, untuned{label}",
            "lr": "tuned online (factor 1)",
            "momentum": "tuned online",
            "validation accuracy": stats.mean(acc.yellowfin_val),
            "test accuracy": stats.mean(acc.yellowfin_test),
            "heavy-ball trials worth (k*)": a.worth,
        },
    ]


def describe(
    numbers: Measured, verdict: verdicts.Verdict, plots: list[str], cfg: Config
) -> report.Finding:
    mlp, cnn = numbers.mlp, numbers.cnn
    tuned = numbers.tuned_values
    setup = (
        f"MNIST-1D (8,000 train / 2,000 validation / 2,000 test), 40-100-100-10 ReLU MLP, "
        f"{cfg.schedule.steps} steps of batch {cfg.schedule.batch_size}, {cfg.seeds} seeds "
        "(same initialisation and batches for every run). Heavy ball: mo.sgd(lr, beta); "
        "YellowFin: mo.yellowfin() (Zhang & Mitliagkas: heavy ball whose learning rate and "
        "momentum are tuned online from gradient statistics; its defaults include the "
        "safeguards of the authors' code (log-space curvature range, slow start, adaptive "
        "gradient clipping, a bound on each move) and statistics of g / ||g_0||, so its steps "
        "do not depend on the loss's scale), one run per seed. YellowFin's "
        "tuned values are logged from one more run of seed 0 (same initialisation and "
        f"batches): at the last step learning rate {tuned['learning_rate'][-1]:.3g}, "
        f"momentum {tuned['momentum'][-1]:.3g}."
    )
    table = rows(mlp, "")
    edges = [f"heavy ball: {', '.join(mlp.tuned.edge)}"] if mlp.tuned.edge else []
    if cnn:
        c = cfg.cnn_schedule
        setup += (
            f" Secondary: MNIST-1D's 1-D CNN (three convolutions of 16 channels, width 5, "
            f"stride 2), heavy ball with {cfg.cnn_trials} trials over the same space and "
            f"YellowFin, {c.steps} steps of batch {c.batch_size}, {cfg.cnn_seeds} seeds."
        )
        table += rows(cnn, " (1-D CNN)")
        edges += [f"heavy ball (CNN): {', '.join(cnn.tuned.edge)}"] if cnn.tuned.edge else []
    return report.Finding(
        id="E3",
        reading=READING.format(trials=cfg.trials, most=cfg.extrapolate * cfg.trials),
        primary=PRIMARY.format(trials=cfg.trials, margin=cfg.margin),
        setup=setup,
        budget=f"Heavy ball: {cfg.trials} independent random trials, uniform in log effective "
        f"step lr / (1 - beta) in {report.listing(cfg.effective)} x log(1 - beta) in "
        f"{report.listing(cfg.one_minus_beta)} (the budget is the question: random draws, as "
        "Dodge et al.'s estimator assumes), "
        "every trial on every seed, the trial with the best mean final validation accuracy "
        "selected. YellowFin: none (one run per seed at its defaults).",
        headline=f"test accuracy, YellowFin - tuned heavy ball {verdict.primary[0].estimate}; "
        f"YellowFin's run is worth k* = {mlp.worth} heavy-ball trials",
        table=table,
        plots=plots,
        verdict=verdict,
        metrics={
            "worth": mlp.worth,
            "accuracies": mlp.accuracies._asdict(),
            "expected": mlp.expected,
            "heavy_ball_setting": mlp.tuned.setting,
            "seconds_per_step": numbers.wall,
            "tuned_values": tuned,
            "cnn": {"worth": cnn.worth, "accuracies": cnn.accuracies._asdict()} if cnn else {},
        },
        notes=" ".join(n for n in (report.edge_note(edges), wall_note(numbers.wall, cfg)) if n),
        horizon=horizon.describe(
            mlp.tuned.curves.val_loss,
            cfg.schedule,
            tasks.mnist1d_mlp().data.x_train.shape[0],
            "tuned heavy ball",
        ),
    )


def wall_note(wall: dict[str, float], cfg: Config) -> str:
    """The report's note on the cost of a step (reported, not judged)."""
    ms = {name: 1e3 * s for name, s in wall.items()}
    return (
        f"Wall-clock (this machine, batch {cfg.schedule.batch_size}, median of rounds timed in "
        f"turn): heavy ball {ms['heavy ball']:.3g} ms per step, YellowFin "
        f"{ms['YellowFin']:.3g} ms ({ms['YellowFin'] / ms['heavy ball']:.2f}x): its statistics "
        "cost that much more per step, at the same number of steps (reported, not judged)."
    )


def run(
    cfg: Config, key: jax.Array, out: pathlib.Path, status=lambda _: None
) -> list[report.Finding]:
    numbers = measure(cfg, key, status)
    status("wall-clock per step: tuned heavy ball and YellowFin")
    setting = numbers.mlp.tuned.setting
    numbers = numbers._replace(
        wall=wallclock.seconds_per_step(
            {"heavy ball": mo.sgd(setting["lr"], setting["momentum"]), "YellowFin": mo.yellowfin()},
            tasks.mnist1d_mlp(),
            batch_size=cfg.schedule.batch_size,
            key=key,
        )
    )
    cnn = numbers.cnn.accuracies if numbers.cnn else None
    verdict = judge(numbers.mlp.accuracies, cfg, cnn)
    return [describe(numbers, verdict, figure(numbers, cfg, out), cfg)]
