"""``python -m experiments compare``: its options, its errors, and small end-to-end runs whose
numbers are checked against the same optimizer written by hand and against the noisy
quadratic run directly."""

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_optax as mo
from experiments import compare
from experiments import comparison
from experiments import loop
from experiments import noisy_quadratic as nqm
from experiments import optimizers
from experiments import outputs
from experiments import plotting
from experiments import sweeps
from experiments.protocol import stats
from experiments.protocol import tuning


def heavy_ball_by_hand(row):
    """Heavy ball as a user would write it: a factory of the row."""
    return optax.chain(mo.trace(row["momentum"]), optax.scale_by_learning_rate(row["lr"]))


def adam_of_learning_rate(learning_rate):
    """A factory of the learning rate only."""
    return optax.adam(learning_rate)


def not_a_factory(x):
    return x


def returns_a_number(row):
    return 3


def _fail_at_step(*_):
    raise RuntimeError("the update failed at step 1")


def fails_when_run(row):
    """Builds and updates under the check (abstractly); its update fails when it runs, in a
    callback, with heavy ball's state (so it shares heavy ball's and sgd's compile)."""
    inner = mo.sgd(row["lr"], row["momentum"])

    def update(updates, state, params=None):
        jax.debug.callback(_fail_at_step, state)
        return inner.update(updates, state, params)

    return optax.GradientTransformation(inner.init, update)


TINY_NQM = "--problem noisy-quadratic --trials 1 --seeds 2 --steps 20 --eval-every 10".split()


@pytest.fixture
def no_compute(monkeypatch):
    """A comparison that gets to computing fails the test."""

    def run(*args, **kwargs):
        raise AssertionError("computed before the check that should have stopped it")

    monkeypatch.setattr(comparison, "run", run)


def parse(*argv):
    p = compare.parser()
    args = compare.check(p, p.parse_args(list(argv)))
    return args


def test_help_documents_every_option_and_optimizer(capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    options = [a for a in compare.parser()._actions if a.option_strings and a.dest != "help"]
    assert {a.dest for a in options} == {
        "optimizer",
        "problem",
        "trials",
        "seeds",
        "batch_size",
        "steps",
        "eval_every",
        "tune_momentum",
        "lr_range",
        "select",
        "out",
        "seed",
    }
    for action in options:
        assert len(action.help) > 20, action.dest
        assert action.option_strings[0] in text
    assert {"yellowfin", "srsgd", "cautious-heavy-ball"} <= set(optimizers.OPTIMIZERS)
    for name in optimizers.OPTIMIZERS:
        assert f"\n  {name} " in text
    assert "package.module:factory" in text and "learning_rate" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--optimizer", "foo"], "--optimizer 'foo': not a known optimizer; expected one of sgd,"),
        (["--optimizer", "sgd", "--optimizer", "sgd"], "--optimizer sgd: given more than once"),
        (["--trials", "0"], "argument --trials: expected a positive integer; got '0'"),
        (["--seeds", "two"], "argument --seeds: expected a positive integer; got 'two'"),
        (
            ["--steps", "100", "--eval-every", "30"],
            "--steps 100 is not a multiple of --eval-every 30",
        ),
        (["--problem", "cifar"], "argument --problem: invalid choice: 'cifar'"),
        (["--select", "test"], "argument --select: invalid choice: 'test'"),
        (["--lr-range", "1", "0.1"], "--lr-range 1 0.1: expected 0 < LOW <= HIGH"),
        (
            ["--optimizer", "no_such_module:make"],
            "--optimizer 'no_such_module:make': cannot import 'make' from module 'no_such_module'",
        ),
        (
            ["--optimizer", "tests.test_compare:missing"],
            "cannot import 'missing' from module 'tests.test_compare' (AttributeError",
        ),
        (
            ["--optimizer", "tests.test_compare:not_a_factory"],
            "--optimizer 'tests.test_compare:not_a_factory': expected a callable whose first "
            "parameter is `row` or that has a `learning_rate` parameter; got parameters ['x']",
        ),
        (
            ["--optimizer", "tests.test_compare:returns_a_number", "--problem", "noisy-quadratic"],
            "--optimizer 'tests.test_compare:returns_a_number': building or updating it failed "
            "(TypeError: it returned 3, not an optax.GradientTransformation)",
        ),
        (
            ["--optimizer", "..x:f"],
            "--optimizer '..x:f': not an import path; expected package.module:factory",
        ),
        (["--optimizer", "tests.:f"], "--optimizer 'tests.:f': not an import path"),
        (
            ["--seed", "9223372036854775808"],
            "argument --seed: expected an integer in 0..4294967295 (2**32 - 1, the seeds "
            "jax.random.key tells apart); got '9223372036854775808'",
        ),
        (["--seed", "-1"], "argument --seed: expected an integer in 0..4294967295"),
    ],
)
def test_bad_input_names_the_option_the_value_and_what_was_expected(
    argv, message, capsys, tmp_path, no_compute
):
    with pytest.raises(SystemExit) as exit_info:
        compare.main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("below", ["", "sub"])
def test_out_must_be_a_writable_folder_checked_before_any_compute(
    below, tmp_path, capsys, no_compute
):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / below
    with pytest.raises(SystemExit) as exit_info:
        compare.main([*TINY_NQM, "--out", str(out)])
    assert exit_info.value.code == 2
    where = "" if not below else f"its parent {tmp_path / 'file'} "
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m experiments compare")
    assert f"error: argument --out: {out}: {where}is a file; expected a folder" in err


def test_a_second_comparison_on_the_same_folder_is_refused(tmp_path, capsys, no_compute):
    with outputs.lock(tmp_path, "python -m experiments compare"):
        with pytest.raises(SystemExit) as exit_info:
            compare.main([*TINY_NQM, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --out: {tmp_path}: in use by another run (pid {os.getpid()} on " in err


def test_an_out_holding_another_commands_report_is_refused(tmp_path, capsys, no_compute):
    (tmp_path / "REPORT.md").write_text("# Momentum claims, measured\n")
    with pytest.raises(SystemExit):
        compare.main([*TINY_NQM, "--out", str(tmp_path)])
    assert "holds REPORT.md, which `python -m experiments compare` did not write" in (
        capsys.readouterr().err
    )


def test_a_module_that_fails_to_import_is_an_option_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_factories.py").write_text("raise RuntimeError('needs a GPU')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--optimizer", "broken_factories:make", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert (
        "--optimizer 'broken_factories:make': importing it failed (RuntimeError: needs a GPU"
        in capsys.readouterr().err
    )


def test_an_optimizer_failing_while_running_is_reported_and_the_others_go_on(tmp_path, capsys):
    out = tmp_path / "cmp"
    hand = "tests.test_compare:fails_when_run"
    numbers = compare.main(
        [*TINY_NQM, "--optimizer", hand, "--optimizer", "sgd", "--out", str(out)]
    )
    assert [row["optimizer"] for row in numbers.rows] == ["sgd"]
    said = capsys.readouterr()
    # JAX names the error JaxRuntimeError; its floor release, XlaRuntimeError
    line = re.escape(f"--optimizer '{hand}': failed while running: ") + (
        r"(Jax|Xla)RuntimeError: RuntimeError: the update failed at step 1 \(raised at "
    )
    assert re.search(line, said.out) and "Traceback" not in said.out + said.err
    results = json.loads((out / "results.json").read_text())
    assert re.match(r"failed while running: (Jax|Xla)RuntimeError", results["failed"][hand])
    assert "test_compare.py:" in results["failed"][hand]
    text = (out / "REPORT.md").read_text()
    assert f"Failed while running, not compared: {hand}: failed while running" in text
    assert f"The first optimizer given, {hand}, is one of them" in text


def test_every_optimizer_failing_stops_with_a_clear_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(
            [
                *TINY_NQM,
                "--optimizer",
                "tests.test_compare:fails_when_run",
                "--out",
                str(tmp_path / "o"),
            ]
        )
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "error: every optimizer failed while running: tests.test_compare:fails_when_run" in err
    assert f"nothing written to {tmp_path / 'o'}" in err and not (tmp_path / "o").exists()


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:Degrees of freedom")
def test_a_diverged_final_loss_reads_inf_in_results_json_as_in_the_report(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    measured = {}
    measure = compare.measure
    monkeypatch.setattr(
        compare, "measure", lambda *a, **k: measured.setdefault("runs", measure(*a, **k))
    )
    argv = [*TINY_NQM, "--optimizer", "sgd", "--lr-range", "1000", "1000", "--out", str(out)]
    compare.main(argv)
    [row] = json.loads((out / "results.json").read_text())["results"]
    assert row["final loss"] == {"mean": "inf", "low": "inf", "high": "inf", "n": 2}
    assert "| sgd | inf [inf, inf] |" in (out / "REPORT.md").read_text()
    # interrupted after its first new plot: the comparison's files stay as they were
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(args, runs, numbers, folder):
        (folder / "curves.png").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(compare, "figures", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare.main(argv)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_spaces_follow_the_options():
    args = parse(
        "--optimizer",
        "sgd",
        "--optimizer",
        "heavy-ball",
        "--optimizer",
        "aggmo",
        "--optimizer",
        "adam",
        "--optimizer",
        "tests.test_compare:adam_of_learning_rate",
        "--tune-momentum",
        "--lr-range",
        "0.01",
        "0.1",
    )
    spaces = {m.name: m.space for m in compare.methods(args)}
    assert all(s.lr == (0.01, 0.1) for s in spaces.values())
    assert spaces["heavy-ball"].one_minus_beta == optimizers.ONE_MINUS_BETA
    assert spaces["adam"].one_minus_beta == optimizers.ONE_MINUS_BETA
    assert spaces["adam"].eps == optimizers.EPS and spaces["heavy-ball"].eps is None
    for fixed in ("sgd", "aggmo", "tests.test_compare:adam_of_learning_rate"):
        assert spaces[fixed].one_minus_beta is None, fixed
    assert spaces["sgd"].momentum == 0.0
    untuned = {m.name: m.space for m in compare.methods(parse("--optimizer", "nesterov"))}
    assert untuned["nesterov"].one_minus_beta is None
    assert untuned["nesterov"].momentum == 0.9 and untuned["nesterov"].lr == (1e-4, 1.0)


def test_optimizers_with_one_state_structure_share_a_compile():
    params = jax.ShapeDtypeStruct((compare.NQM_DIM,), jnp.float32)
    names = ("sgd", "heavy-ball", "nesterov", "adam", "rmsprop", "ema")
    args = parse(*(flag for n in names for flag in ("--optimizer", n)))
    key = {m.name: compare.structure(m, params) for m in compare.methods(args)}
    assert key["sgd"] == key["heavy-ball"] == key["nesterov"]
    assert len({key[n] for n in ("heavy-ball", "adam", "rmsprop", "ema")}) == 4


# The optimizers compare knows by name beyond heavy ball, each as the library writes it
BY_NAME = {
    "yellowfin": lambda lr, beta: mo.yellowfin(lr),
    "srsgd": lambda lr, beta: mo.srsgd(lr),
    "cautious-heavy-ball": lambda lr, beta: mo.cautious(mo.sgd(lr, beta)),
}


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_a_named_optimizer_runs_the_library_method_it_names(name, tmp_path):
    numbers = compare.main([*TINY_NQM, "--optimizer", name, "--out", str(tmp_path / "o")])
    [selected] = numbers.selected
    lr, beta = selected.setting["lr"], selected.setting["momentum"]
    assert (lr, beta) == pytest.approx(
        (
            np.sqrt(np.prod(optimizers.OPTIMIZERS[name].lr)),
            optimizers.OPTIMIZERS[name].momentum or 0,
        )
    )  # one trial: the middle of the range (log scale)
    h = nqm.curvatures(compare.NQM_DIM)
    for seed in range(selected.curves.train_loss.shape[0]):
        key = sweeps.seed_key(jax.random.key(0), jnp.int32(seed))
        direct = nqm.sample(
            BY_NAME[name](lr, beta),
            h,
            nqm.start(jax.random.fold_in(key, 0), compare.NQM_DIM),
            jax.random.fold_in(key, 1),
            32,
            20,
            every=10,
        )
        np.testing.assert_allclose(selected.curves.train_loss[seed], direct, rtol=1e-5)
    assert np.isfinite(selected.curves.train_loss).all()


def test_the_named_self_tuned_and_restarted_optimizers_keep_their_momentum_untuned():
    names = ("yellowfin", "srsgd", "cautious-heavy-ball")
    args = parse(*(flag for n in names for flag in ("--optimizer", n)), "--tune-momentum")
    spaces = {m.name: m.space for m in compare.methods(args)}
    assert spaces["yellowfin"].one_minus_beta is None and spaces["srsgd"].one_minus_beta is None
    assert spaces["cautious-heavy-ball"].one_minus_beta == optimizers.ONE_MINUS_BETA
    assert spaces["yellowfin"].lr == (0.1, 10.0)  # a factor on the rate it tunes itself
    assert spaces["cautious-heavy-ball"].lr == optimizers.OPTIMIZERS["heavy-ball"].lr


def _hand_made_comparison(finals: dict[str, list[float]], objective_name: str):
    """``Trials`` of each optimizer (2 seeds; the final validation loss of trial i on both
    seeds ``finals[name][i]``, on a log grid of learning rates) and their ``Summary``,
    each optimizer represented by its lowest trial."""
    space = tuning.Space(lr=(1e-4, 1.0))
    schedule = loop.Schedule(steps=20, batch_size=4, eval_every=10)
    runs = []
    for name, final in finals.items():
        last = np.repeat(np.asarray(final, np.float64)[:, None], 2, 1)  # (trials, seeds)
        loss = np.stack([np.full_like(last, 2.5), (2.5 + last) / 2, last], -1)
        curves = loop.Curves(loss, loss, 1 - loss / 2.5, last, 1 - last / 2.5)
        table = tuning.trials(space, len(final))
        runs.append(comparison.Trials(name, space, table, curves, schedule))
    selected = [t.pick(int(np.argmin(t.final_mean("val_loss")))) for t in runs]
    numbers = compare.Summary(selected, "val_loss", objective_name, 1.0, [], [], [], [])
    return runs, numbers


@pytest.mark.parametrize(
    "problem, objective_name",
    [("mnist1d-mlp", "validation loss"), ("noisy-quadratic", "loss")],
)
def test_the_plots_show_their_whole_titles_and_no_legend_hides_a_selected_trial(
    problem, objective_name, tmp_path, monkeypatch
):
    # trials in every region of the axes but the lower centre, where only the best one is
    # (a legend placed where it hides the fewest points would cover it)
    runs, numbers = _hand_made_comparison(
        {
            "heavy-ball": [0.15, 2.0, 0.35, 0.1, 0.4, 0.9, 2.0, 0.18],
            "nesterov": [2.2, 0.8, 2.1, 0.35, 0.7, 0.3, 0.8, 0.16],
            "adam": [0.17, 2.3, 0.9, 1.9, 0.33, 2.0, 0.4, 2.1],
            "qhm": [0.4, 0.5, 1.5, 0.6, 1.2, 0.5, 1.4, 0.45],
        },
        objective_name,
    )
    drawn = {}
    monkeypatch.setattr(
        plotting, "save", lambda fig, folder, name: drawn.setdefault(name, fig) and name
    )
    compare.figures(compare.Options(problem=problem, seeds=2), runs, numbers, tmp_path)
    assert set(drawn) == {"curves.png", "tuning.png"}

    def inside(artist, fig):
        box, page = artist.get_window_extent(fig.canvas.get_renderer()), fig.bbox
        return page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 <= box.y1 <= page.y1

    for name, fig in drawn.items():
        fig.canvas.draw()
        titles = [t for t in [*fig.texts, *(ax.title for ax in fig.axes)] if t.get_text()]
        assert titles, name
        for title in titles:
            assert inside(title, fig), (name, title.get_text())
    fig = drawn["tuning.png"]
    [ax] = fig.axes
    legend = ax.get_legend()
    assert inside(legend, fig)
    box = legend.get_window_extent(fig.canvas.get_renderer())
    for trials, chosen in zip(runs, numbers.selected):
        point = (trials.table["lr"][chosen.index], trials.final_mean("val_loss")[chosen.index])
        assert not box.contains(*ax.transData.transform(point)), trials.method


@pytest.mark.slow
def test_digits_comparison_end_to_end(tmp_path):
    out = tmp_path / "cmp"
    compare.main(
        [
            "--problem",
            "digits-mlp",
            "--optimizer",
            "sgd",
            "--optimizer",
            "heavy-ball",
            "--optimizer",
            "tests.test_compare:heavy_ball_by_hand",
            "--trials",
            "3",
            "--seeds",
            "3",
            "--steps",
            "60",
            "--eval-every",
            "30",
            "--lr-range",
            "0.01",
            "0.1",
            "--out",
            str(out),
            "--seed",
            "1",
        ]
    )
    assert {p.name for p in out.iterdir()} == {
        "REPORT.md",
        "results.json",
        "curves.png",
        "tuning.png",
    }
    results = json.loads((out / "results.json").read_text())
    hand = "tests.test_compare:heavy_ball_by_hand"
    settings = {s["optimizer"]: s for s in results["settings"]}
    # each optimizer's selected trial is the best mean final validation loss of its trials
    for name, trials in results["trials"].items():
        objective = np.asarray(trials["final_objective"], np.float64)
        assert objective.shape == (3, 3)
        assert settings[name]["trial"] == int(np.argmin(objective.mean(-1))), name
        assert 0.01 <= settings[name]["lr"] <= 0.1 * (1 + 1e-6)
    assert settings["sgd"]["momentum"] == 0
    assert settings["heavy-ball"]["momentum"] == pytest.approx(0.9)
    # heavy ball written by hand: the same trials, the same seeds, the same numbers
    selected = results["selected"]
    for field in ("train_loss", "val_loss", "val_accuracy", "test_accuracy"):
        np.testing.assert_allclose(
            selected[hand]["curves"][field], selected["heavy-ball"]["curves"][field], rtol=1e-5
        )
    paired = {row["optimizer"]: row for row in results["paired"]}
    assert set(paired) == {"heavy-ball - sgd", f"{hand} - sgd"}
    by_hand, built_in = paired[f"{hand} - sgd"], paired["heavy-ball - sgd"]
    assert by_hand["final validation loss"]["mean"] == pytest.approx(
        built_in["final validation loss"]["mean"], rel=1e-4
    )
    # the paired difference: seed by seed, its interval from the per-seed differences
    sgd_val = np.asarray(selected["sgd"]["curves"]["val_loss"])[:, -1]
    hb_val = np.asarray(selected["heavy-ball"]["curves"]["val_loss"])[:, -1]
    expected = stats.paired_difference(hb_val, sgd_val)
    got = built_in["final validation loss"]
    assert expected.mean == pytest.approx((hb_val - sgd_val).mean())
    assert (got["mean"], got["low"], got["high"]) == pytest.approx(
        (expected.mean, expected.low, expected.high), rel=1e-5
    )
    text = (out / "REPORT.md").read_text()
    assert "**Paired against sgd**" in text and "![curves.png](curves.png)" in text
    assert "| heavy-ball | 0.0" in text  # the tuned settings table


@pytest.mark.slow
def test_noisy_quadratic_matches_a_direct_run(tmp_path):
    out = tmp_path / "nqm"
    numbers = compare.main(
        [
            "--problem",
            "noisy-quadratic",
            "--optimizer",
            "heavy-ball",
            "--optimizer",
            "tests.test_compare:adam_of_learning_rate",
            "--tune-momentum",
            "--trials",
            "4",
            "--seeds",
            "3",
            "--steps",
            "40",
            "--eval-every",
            "10",
            "--batch-size",
            "16",
            "--out",
            str(out),
            "--seed",
            "5",
        ]
    )
    heavy = numbers.selected[0]
    assert 0.5 <= heavy.setting["momentum"] <= 0.999 * (1 + 1e-6)
    assert numbers.settings[1]["momentum"] == "-"  # the factory takes no momentum
    # seed 1's curve, run directly from the trial chosen for it on the other seeds (the
    # cross-fit): start and noise from the seed's key
    trial = int(heavy.chosen[1])
    table = json.loads((out / "results.json").read_text())["trials"][heavy.method]
    key = sweeps.seed_key(jax.random.key(5), jnp.int32(1))
    h = nqm.curvatures(compare.NQM_DIM)
    direct = nqm.sample(
        mo.sgd(table["lr"][trial], table["momentum"][trial]),
        h,
        nqm.start(jax.random.fold_in(key, 0), compare.NQM_DIM),
        jax.random.fold_in(key, 1),
        16,
        40,
        every=10,
    )
    np.testing.assert_allclose(heavy.curves.train_loss[1], direct, rtol=1e-5)
    np.testing.assert_array_equal(heavy.curves.val_loss, heavy.curves.train_loss)
    assert "no accuracy" in (out / "REPORT.md").read_text()
