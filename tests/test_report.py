"""``arena report``: every number of a hand-computed leaderboard, the paired statistics,
each output format, published numbers, plots, the other metrics (ECE, FGSM top-1), the
locality column, the page's pair-weight profiles, and the command's errors.

The store built by ``store`` (one dataset, three columns, seeds 0-2; each method's
records store the locality index of LOCALITY):

    column               P = preactresnet10_cifar/standard, A = resnet8_cifar/standard,
                         B = resnet8_cifar/large-crop
    vanilla   P [50]              A [70, 71, 72]        B [60, 62, 64]
    mixup     P [55, 56, 57]      A [72, 73, 74]        B [63, 63, 66]
    cutmix    P [54, 55, 56]      A [73, 74, 75]        B [66, 67, 68]
    hmix      P [55, 56, failed]  A [73.5, 74.5, 74]    B [65, 66, 67]
    gmix      P [57, 58, 59]      A [72, 73, 74]        B [failed, failed]
    mymask    P (never run)       A [75, 76, 77]        B [67, 68, 69]
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import shutil
from html.parser import HTMLParser

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from msda_arena.api.errors import StoreError, UsageError
from msda_arena.api.record import SCHEMA_VERSION, cell_key
from msda_arena.cli.report import report
from msda_arena.report import build_report, load_published, paired_test, render
from msda_arena.report.show import _canonical
from msda_arena.report.text import _tex
from msda_arena.store.results import load_results, write_result

NAN = float("nan")
P = ("preactresnet10_cifar", "standard")
A = ("resnet8_cifar", "standard")
B = ("resnet8_cifar", "large-crop")
VALUES = {
    "vanilla": {P: [50], A: [70, 71, 72], B: [60, 62, 64]},
    "mixup": {P: [55, 56, 57], A: [72, 73, 74], B: [63, 63, 66]},
    "cutmix": {P: [54, 55, 56], A: [73, 74, 75], B: [66, 67, 68]},
    "hmix": {P: [55, 56, NAN], A: [73.5, 74.5, 74], B: [65, 66, 67]},
    "gmix": {P: [57, 58, 59], A: [72, 73, 74], B: [NAN, NAN]},
    "mymask": {A: [75, 76, 77], B: [67, 68, 69]},
}
# mixup's is 0 up to Monte Carlo rounding: it must print as 0.00, never -0.00
LOCALITY = {"vanilla": NAN, "mixup": -1e-9, "cutmix": 0.79, "hmix": 0.12, "gmix": 0.17,
            "mymask": 0.333}  # fmt: skip


def make_record(**overrides):
    record = {
        "schema_version": SCHEMA_VERSION, "key": "k", "status": "ok", "error": "",
        "profile": "quick", "dataset": "cifar10", "arch": "resnet8_cifar",
        "scenario": "standard", "method": "mixup", "method_name": "mixup", "seed": 0,
        "recipe_hash": "r1", "top1": 70.0, "top5": 90.0, "ece": 0.1, "fgsm_top1": 10.0,
        "train_loss": 1.0, "epochs": 2,
        "wall_time_s": 1.0, "images_per_s": 10.0, "peak_mem_mb": 1.0,
        "method_package": "msda-arena", "method_version": "0.1.0",
        "method_code": "0.1.0:abc", "locality": 0.1, "plugins": "msda-arena==0.1.0",
        "torch_version": "2",
        "timm_version": "1", "cuda_version": "", "device_name": "cpu", "host": "box",
        "arena_version": "0.1.0", "git_commit": "", "config_hash": "c", "notes": "",
        "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T00:01:00+00:00",
    }  # fmt: skip
    record.update(overrides)
    if "key" not in overrides:  # the key of the record's own cell
        record["key"] = cell_key(
            *(record[c] for c in ("profile", "arch", "scenario", "method", "seed")),
            record["recipe_hash"],
        )
    return record


def add(root, method, arch, scenario, seed, top1, **extra):
    failed = isinstance(top1, float) and math.isnan(top1)
    fields = {
        "method": method,
        "method_name": method.split("(")[0],
        "arch": arch,
        "scenario": scenario,
        "seed": seed,
        "top1": float(top1),
        "status": "failed" if failed else "ok",
        "error": "RuntimeError: out of memory" if failed else "",
    }
    fields.update(extra)
    return write_result(root, make_record(**fields))


def fill(root, values=VALUES, **extra):
    for method, cells in values.items():
        for (arch, scenario), tops in cells.items():
            for seed, top1 in enumerate(tops):
                more = {"locality": LOCALITY.get(method, NAN), **extra}
                add(root, method, arch, scenario, seed, top1, **more)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("store") / "results"
    fill(root)
    return root


@pytest.fixture
def store(pristine, tmp_path):
    """A private copy of the store of the module docstring (tests may damage it)."""
    root = tmp_path / "results"
    shutil.copytree(pristine, root)
    return root


@pytest.fixture(scope="module")
def rep(pristine):
    frame, warnings = load_results(pristine)
    assert warnings == []
    return build_report(frame)


@pytest.fixture(scope="module")
def html_run(pristine, tmp_path_factory):
    """``arena report -f html -o page.html --plots plots/`` on the store, run once."""
    out = tmp_path_factory.mktemp("html")
    result = invoke(
        "--results", pristine, "-f", "html", "-o", out / "page.html", "--plots", out / "plots"
    )
    assert result.exit_code == 0, result.output
    return out


def app() -> typer.Typer:
    application = typer.Typer()
    application.command("report")(report)

    @application.callback()
    def _root() -> None:
        """A local stand-in for the arena app."""

    return application


def invoke(*args):
    return CliRunner().invoke(app(), ["report", *map(str, args)])


# The hand-computed table: (method, P, A, B, avg, avg rank, delta best baseline,
# locality), in order.
EXPECTED = [
    ("cutmix", "55.00 ± 1.00 (n=3)", "74.00 ± 1.00 (n=3)", "67.00 ± 1.00 (n=3)",
     "65.33", "2.83", "-1.00", "0.79"),
    ("hmix", "55.50 ± 0.71 (n=2, 1 failed)", "74.00 ± 0.50 (n=3)", "66.00 ± 1.00 (n=3)",
     "65.17", "2.83", "-1.17", "0.12"),
    ("mixup", "56.00 ± 1.00 (n=3)", "73.00 ± 1.00 (n=3)", "64.00 ± 1.73 (n=3)",
     "64.33", "3.50", "-2.00", "0.00"),
    ("vanilla", "50.00 (n=1)", "71.00 ± 1.00 (n=3)", "62.00 ± 2.00 (n=3)",
     "61.00", "5.33", "-5.33", "—"),
    ("mymask", "—", "76.00 ± 1.00 (n=3)", "68.00 ± 1.00 (n=3)", "72.00†", "1.00†", "+1.50†",
     "0.33"),
    ("gmix", "58.00 ± 1.00 (n=3)", "73.00 ± 1.00 (n=3)", "failed (n=2)",
     "65.50†", "2.75†", "-0.50†", "0.17"),
]  # fmt: skip
BEST = {("mymask", 1), ("mymask", 2), ("gmix", 0)}  # (method, column index)
HEADERS = [
    "method",
    "preactresnet10_cifar / standard",
    "resnet8_cifar / standard",
    "resnet8_cifar / large-crop",
    "avg",
    "avg rank",
    "Δ best baseline",
    "locality",
]


# --------------------------------------------------------------------------- numbers


def test_every_number_of_the_leaderboard(rep):
    board = rep.leaderboard
    assert [(c.arch, c.scenario) for c in board.columns] == [P, A, B]
    assert [r.method for r in board.rows] == [e[0] for e in EXPECTED]
    mymask = board.row("mymask")
    assert [c.status for c in mymask.cells] == ["missing", "ok", "ok"]
    assert mymask.average == pytest.approx(72.0) and not mymask.complete
    assert mymask.avg_rank == pytest.approx(1.0)
    assert mymask.delta == pytest.approx(1.5) and not mymask.delta_complete
    hmix = board.row("hmix")
    assert (hmix.cells[0].n, hmix.cells[0].n_failed, hmix.cells[0].status) == (2, 1, "partial")
    assert hmix.cells[0].std == pytest.approx(math.sqrt(0.5))
    assert hmix.average == pytest.approx((74 + 66 + 55.5) / 3) and hmix.complete
    gmix = board.row("gmix")
    assert (gmix.cells[2].n, gmix.cells[2].n_failed, gmix.cells[2].status) == (0, 2, "failed")
    assert gmix.average == pytest.approx(65.5)  # over P and A only, never the failed B
    mixup = board.row("mixup")
    assert mixup.cells[2].std == pytest.approx(math.sqrt(3))
    assert mixup.delta == pytest.approx(-2.0) and mixup.delta_complete
    vanilla = board.row("vanilla")
    assert (vanilla.cells[0].n, math.isnan(vanilla.cells[0].std)) == (1, True)
    assert vanilla.delta == pytest.approx((-3 - 5 - 8) / 3)


def test_ranks_share_ties_and_skip_missing_cells(rep):
    ranks = {r.method: [c.rank for c in r.cells] for r in rep.leaderboard.rows}
    nan = pytest.approx(NAN, nan_ok=True)
    assert ranks == {
        "vanilla": [5.0, 6.0, 5.0],
        "mixup": [2.0, 4.5, 4.0],
        "cutmix": [4.0, 2.5, 2.0],
        "hmix": [3.0, 2.5, 3.0],
        "gmix": [1.0, 4.5, nan],
        "mymask": [nan, 1.0, 1.0],
    }
    avg = {r.method: r.avg_rank for r in rep.leaderboard.rows}
    assert avg == pytest.approx(
        {
            "vanilla": 16 / 3,
            "mixup": 3.5,
            "cutmix": 8.5 / 3,
            "hmix": 8.5 / 3,
            "gmix": 2.75,
            "mymask": 1.0,
        }
    )


def test_best_per_column(rep):
    best = {(r.method, j) for r in rep.leaderboard.rows for j, c in enumerate(r.cells) if c.best}
    assert best == BEST


def test_paired_comparison_against_hand_computed_statistics(rep):
    from scipy import stats

    assert rep.compare_method == "mymask"  # the only method that is not built in
    got = {r.baseline: r for r in rep.comparisons}
    assert list(got) == ["mixup", "cutmix", "hmix", "gmix"]
    # mymask - mixup on (A, seeds 0-2) and (B, seeds 0-2): d = 3, 3, 3, 4, 5, 3
    mixup = got["mixup"]
    assert (mixup.n, mixup.wins, mixup.ties, mixup.losses) == (6, 6, 0, 0)
    assert mixup.mean_diff == pytest.approx(3.5)
    # sd(d) = sqrt(3.5 / 5); t(0.975, 5) = 2.570582; half-width = t * sd / sqrt(6)
    half = 2.5705818366 * math.sqrt(0.7) / math.sqrt(6)
    assert (mixup.ci_low, mixup.ci_high) == pytest.approx((3.5 - half, 3.5 + half))
    t = 3.5 / (math.sqrt(0.7) / math.sqrt(6))
    assert t == pytest.approx(10.2470, abs=1e-4)
    assert mixup.p_value == pytest.approx(2 * stats.t.sf(t, 5))
    assert mixup.p_value == pytest.approx(1.5206e-4, rel=1e-3)
    assert mixup.verdict == "mymask is better than mixup (p < 0.05)"
    # d = 2, 2, 2, 1, 1, 1: mean 1.5, sd sqrt(0.3)
    cutmix = got["cutmix"]
    assert cutmix.mean_diff == pytest.approx(1.5)
    half = 2.5705818366 * math.sqrt(0.3) / math.sqrt(6)
    assert (cutmix.ci_low, cutmix.ci_high) == pytest.approx((1.5 - half, 1.5 + half))
    reference = stats.ttest_rel([75, 76, 77, 67, 68, 69], [73, 74, 75, 66, 67, 68])
    assert cutmix.p_value == pytest.approx(reference.pvalue)
    # d = 1.5, 1.5, 3, 2, 2, 2
    assert got["hmix"].mean_diff == pytest.approx(2.0)
    assert got["hmix"].p_value == pytest.approx(
        stats.ttest_rel([75, 76, 77, 67, 68, 69], [73.5, 74.5, 74, 65, 66, 67]).pvalue
    )
    # gmix failed on B: only the three A seeds pair, each d = 3 exactly
    gmix = got["gmix"]
    assert (gmix.n, gmix.wins) == (3, 3)
    assert math.isnan(gmix.p_value)
    assert gmix.verdict == "every pair differs by exactly +3.00; no variance to test"


def test_too_few_seeds_is_said_plainly():
    few = paired_test("new", "cutmix", [75.0, 76.5], [74.0, 74.9])
    assert few.n == 2 and not few.conclusive
    assert few.verdict == "too few seeds to conclude (n=2; need at least 3 matched pairs)"
    assert not math.isnan(few.p_value)  # computed, but not used for a conclusion
    none = paired_test("new", "cutmix", [], [])
    assert none.n == 0 and "no matched results" in none.verdict
    tie = paired_test("new", "cutmix", [75.0, 76.0, 74.0], [75.004, 75.0, 74.5])
    assert (tie.wins, tie.ties, tie.losses) == (1, 1, 1)
    assert tie.verdict == "no significant difference (p >= 0.05)"


def test_paired_comparison_matches_on_seed_not_position(tmp_path):
    root = tmp_path / "r"
    for seed, (a, b) in enumerate([(71.0, 70.0), (72.0, 70.5), (73.0, 71.0)]):
        add(root, "newmask", *A, seed + 10, a)
        add(root, "cutmix", *A, seed + 10, b)
    add(root, "cutmix", *A, 99, 10.0)  # no partner: ignored
    frame, _ = load_results(root)
    rep = build_report(frame, compare="newmask")
    (result,) = [r for r in rep.comparisons if r.baseline == "cutmix"]
    assert result.n == 3 and result.mean_diff == pytest.approx((1 + 1.5 + 2) / 3)
    assert [r.n for r in rep.comparisons if r.baseline != "cutmix"] == [0, 0, 0]


# --------------------------------------------------------------------------- other metrics

# A second store for --metric ece and fgsm (columns A and B, seeds 0-2). ECE is stored as
# a fraction and shown in % (x 100); "-" is a successful result stored before the metric
# existed (NaN): missing for that metric only. Top-1 is 70 everywhere (a tie).
#
#            ECE (fraction)                              FGSM top-1 (%)
#   mixup    A [.05, .06, .07]  B [.04, .05, .06]        A [20, 21, 22]  B [30, 31, 32]
#   cutmix   A [.08, .09, .10]  B [.03, .04, -]          A [25, 26, 27]  B [28, 29, 30]
#   mymask   A [.02, .03, .04]  B [.02, .03, .04]        A [24, 25, 26]  B [33, 34, 35]
#   vanilla  A [.12, .13, .14]  B [-, -, -]              A [10, 11, 12]  B [-, -, -]
METRIC_VALUES = {
    "mixup": {A: ([0.05, 0.06, 0.07], [20, 21, 22]), B: ([0.04, 0.05, 0.06], [30, 31, 32])},
    "cutmix": {A: ([0.08, 0.09, 0.10], [25, 26, 27]), B: ([0.03, 0.04, NAN], [28, 29, 30])},
    "mymask": {A: ([0.02, 0.03, 0.04], [24, 25, 26]), B: ([0.02, 0.03, 0.04], [33, 34, 35])},
    "vanilla": {A: ([0.12, 0.13, 0.14], [10, 11, 12]), B: ([NAN] * 3, [NAN] * 3)},
}


@pytest.fixture(scope="module")
def metric_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics") / "results"
    for method, cells in METRIC_VALUES.items():
        for (arch, scenario), (eces, fgsms) in cells.items():
            for seed, (ece, fgsm) in enumerate(zip(eces, fgsms, strict=True)):
                add(root, method, arch, scenario, seed, 70.0, ece=ece, fgsm_top1=float(fgsm),
                    locality=LOCALITY[method])  # fmt: skip
    return root


def _board(rep):
    """{method: ([cell texts], avg, avg rank, delta, locality)} as every format shows it."""
    from msda_arena.report.text import _lines

    return [(ln.label, *[p.text for p in ln.pieces]) for ln in _lines(rep)]


def test_ece_leaderboard_ranks_the_lowest_first(metric_store):
    from scipy import stats

    frame, _ = load_results(metric_store)
    rep = build_report(frame, metric="ece")
    assert _board(rep) == [
        ("mymask", "3.00 ± 1.00 (n=3)", "3.00 ± 1.00 (n=3)", "3.00", "1.00", "-1.75", "0.33"),
        ("mixup", "6.00 ± 1.00 (n=3)", "5.00 ± 1.00 (n=3)", "5.50", "2.50", "+0.75", "0.00"),
        ("cutmix", "9.00 ± 1.00 (n=3)", "3.50 ± 0.71 (n=2)", "6.25", "2.50", "+1.50", "0.79"),
        ("vanilla", "13.00 ± 1.00 (n=3)", "—", "13.00†", "4.00†", "+7.00†", "—"),
    ]  # fmt: skip
    board = rep.leaderboard
    # the star and rank 1 go to the lowest ECE; mixup and cutmix tie on rank, mixup's
    # lower average puts it first; the best baseline is the lowest (B: cutmix's 3.50)
    best = {(r.method, j) for r in board.rows for j, c in enumerate(r.cells) if c.best}
    assert best == {("mymask", 0), ("mymask", 1)}
    assert [c.rank for c in board.row("mymask").cells] == [1.0, 1.0]
    assert [c.rank for c in board.row("cutmix").cells] == [3.0, 2.0]
    assert board.row("mymask").delta == pytest.approx(((3 - 6) + (3 - 3.5)) / 2)
    assert board.row("vanilla").cells[1].status == "missing"  # not measured, not failed
    assert rep.warnings == [
        "4 successful result(s) have no ECE (not measured: stored before the metric "
        "existed); they count as missing for --metric ece, never averaged; rerun "
        "`arena run --force` on those cells to measure it"
    ]
    assert "ECE, 15 bins) in %, the stored fraction × 100 (lower is better)" in rep.title
    # paired: d = mymask - baseline in ECE points; lower wins
    got = {r.baseline: r for r in rep.comparisons}
    mixup = got["mixup"]  # d = -3, -3, -3, -2, -2, -2
    assert (mixup.n, mixup.wins, mixup.ties, mixup.losses) == (6, 6, 0, 0)
    assert mixup.mean_diff == pytest.approx(-2.5)
    assert mixup.verdict == "mymask is better than mixup (p < 0.05)"
    cutmix = got["cutmix"]  # cutmix's unmeasured B seed 2 has no pair: d = -6 x 3, -1 x 2
    assert (cutmix.n, cutmix.wins) == (5, 5)
    reference = stats.ttest_rel([2, 3, 4, 2, 3], [8, 9, 10, 3, 4])
    assert cutmix.p_value == pytest.approx(reference.pvalue) and cutmix.p_value < 0.05
    assert cutmix.verdict == "mymask is better than cutmix (p < 0.05)"
    assert [r.n for r in rep.comparisons] == [6, 5, 0, 0]  # no hmix, gmix results
    text = render(rep, "markdown")
    header, body = _markdown_grid(text.split("####")[0])
    assert header[-1] == "locality"
    assert body[0][:3] == ["mymask", "**3.00 ± 1.00 (n=3)** ★", "**3.00 ± 1.00 (n=3)** ★"]
    assert "ECE % over successful seeds (n); lower is better" in text
    assert "Paired comparison on ECE (lower is better)" in text
    # the published numbers are top-1: left out, and said so
    with_pub = build_report(frame, metric="ece", published=load_published())
    assert with_pub.leaderboard.published == []
    assert with_pub.warnings[-1] == (
        "published numbers are top-1 accuracy; not shown for --metric ece"
    )


def test_ece_plots_follow_the_metric(metric_store):
    from msda_arena.report.plots import accuracy_figure, scenario_figure

    rep = build_report(load_results(metric_store)[0], metric="ece")
    assert accuracy_figure(rep).axes[0].get_xlabel() == "ECE (%, lower is better)"
    (ax,) = [a for a in scenario_figure(rep).axes if a.get_visible()]
    assert ax.get_ylabel() == "ECE difference (points)"
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    # cutmix - mixup: A +3, B -1 (seeds 0-1); mymask - mixup: A -3, B -2; vanilla: A +7
    assert heights == [-3.0, -2.0, -1.0, 3.0, 7.0]


def test_fgsm_leaderboard(metric_store):
    rep = build_report(load_results(metric_store)[0], metric="fgsm")
    assert _board(rep) == [
        ("mymask", "25.00 ± 1.00 (n=3)", "34.00 ± 1.00 (n=3)", "29.50", "1.50", "+1.00", "0.33"),
        ("cutmix", "26.00 ± 1.00 (n=3)", "29.00 ± 1.00 (n=3)", "27.50", "2.00", "-1.00", "0.79"),
        ("mixup", "21.00 ± 1.00 (n=3)", "31.00 ± 1.00 (n=3)", "26.00", "2.50", "-2.50", "0.00"),
        ("vanilla", "11.00 ± 1.00 (n=3)", "—", "11.00†", "4.00†", "-15.00†", "—"),
    ]  # fmt: skip
    assert rep.warnings == [
        "3 successful result(s) have no FGSM top-1 (not measured: stored before the metric "
        "existed); they count as missing for --metric fgsm, never averaged; rerun "
        "`arena run --force` on those cells to measure it"
    ]  # cutmix's B seed 2 has FGSM but no ECE: missing is per metric
    got = {r.baseline: r for r in rep.comparisons}
    assert got["mixup"].mean_diff == pytest.approx(3.5) and got["mixup"].wins == 6
    assert got["mixup"].verdict == "mymask is better than mixup (p < 0.05)"
    assert got["cutmix"].verdict == "no significant difference (p >= 0.05)"  # -1 x 3, +5 x 3
    assert "top-1 accuracy under FGSM (ε = 8/255) in % (higher is better)" in rep.title


def test_lower_is_better_turns_wins_and_verdicts_around():
    lower = [2.0, 2.5, 3.0, 2.2]
    higher = [3.0, 3.4, 4.1, 3.0]
    good = paired_test("new", "mixup", lower, higher, higher_is_better=False)
    assert (good.wins, good.losses) == (4, 0) and good.mean_diff < 0
    assert good.verdict == "new is better than mixup (p < 0.05)"
    bad = paired_test("new", "mixup", higher, lower, higher_is_better=False)
    assert (bad.wins, bad.losses) == (0, 4)
    assert bad.verdict == "new is worse than mixup (p < 0.05)"


def test_cli_metric_option(metric_store):
    result = invoke("--results", metric_store, "--metric", "ece", "-f", "csv")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("arena: warning:") == 1
    assert "arena: warning: 4 successful result(s) have no ECE" in result.stderr
    rows = {(r["method"], r["scenario"]): r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert {r["metric"] for r in rows.values()} == {"ece"}
    assert float(rows[("mymask", "standard")]["mean"]) == pytest.approx(3.0)
    assert rows[("vanilla", "large-crop")]["status"] == "missing"
    assert rows[("mymask", "large-crop")]["best"] == "true"
    result = invoke("--results", metric_store, "--metric", "fgsm", "-f", "json")
    data = json.loads(result.stdout)
    assert data["metric"]["name"] == "fgsm" and data["metric"]["column"] == "fgsm_top1"
    assert data["rows"][0]["method"] == "mymask" and data["rows"][0]["locality"] == 0.333
    result = invoke("--results", metric_store)  # top1 by default: every result measured it
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert "top-1 accuracy in % (higher is better)" in result.stdout


def test_only_the_html_page_imports_torch(metric_store):
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from msda_arena.cli.main import main\n"
        "try:\n"
        f"    main(['report', '--results', {str(metric_store)!r}, '--metric', 'ece', '-f', 'json',"
        " '--plots', sys.argv[1]])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, file=sys.stderr)\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(metric_store.parent / "plots")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stderr.splitlines()[-1] == "False", result.stderr
    assert json.loads(result.stdout)["metric"]["name"] == "ece"


def test_one_list_of_metrics_for_the_cli_and_the_library(pristine):
    from msda_arena.api.metrics import METRICS
    from msda_arena.report.selection import REPORT_COLUMNS

    assert list(METRICS) == ["top1", "ece", "fgsm"]
    assert {m.column for m in METRICS.values()} | {"locality"} <= set(REPORT_COLUMNS)
    help_text = CliRunner().invoke(app(), ["report", "--help"]).stdout
    assert all(name in help_text for name in METRICS)
    result = invoke("--results", pristine, "--metric", "top5")
    assert isinstance(result.exception, UsageError)
    assert str(result.exception).startswith(
        "unknown --metric 'top5'; choose one of top1 (top-1 %, higher is better), "
        "ece (ECE %, lower is better), fgsm (FGSM top-1 %, higher is better)"
    )
    with pytest.raises(UsageError, match="unknown --metric 'acc'"):
        build_report(load_results(pristine)[0], metric="acc")


# --------------------------------------------------------------------------- formats


def _markdown_grid(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    grid = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return grid[0], grid[2:]


def test_markdown_shows_every_cell_as_computed(rep):
    text = render(rep, "markdown")
    header, body = _markdown_grid(text.split("####")[0])
    assert header == HEADERS
    expected = []
    for row in EXPECTED:
        cells = list(row)
        for j in range(3):
            if (row[0], j) in BEST:
                cells[1 + j] = f"**{cells[1 + j]}** ★"
        expected.append(cells)
    assert body == expected
    comp_header, comp = _markdown_grid(text.split("####")[1])
    assert comp_header[:4] == ["baseline", "pairs", "W / T / L", "mean diff"]
    assert comp[0][:6] == ["mixup", "6", "6 / 0 / 0", "+3.50", "[+2.62, +4.38]", "<0.001"]
    assert comp[1][:5] == ["cutmix", "6", "6 / 0 / 0", "+1.50", "[+0.93, +2.07]"]
    assert "† = over the columns this method has results in only" in text


def test_terminal_table_shows_the_same_cells(rep):
    text = render(rep, "table")
    rows = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("│")[1:-1]]
        if parts and parts[0] in {e[0] for e in EXPECTED}:
            rows.setdefault(parts[0], parts)
    for row in EXPECTED:
        cells = list(row)
        for j in range(3):
            if (row[0], j) in BEST:
                cells[1 + j] += " ★"
        assert rows[row[0]] == cells
    assert "too few seeds" not in text and "mymask is better than mixup" in text
    assert "\x1b[" not in text  # no colour codes unless asked
    assert "\x1b[" in render(rep, "table", color=True)


def test_csv_round_trips_every_cell(rep):
    rows = list(csv.DictReader(io.StringIO(render(rep, "csv"))))
    assert len(rows) == 6 * 3
    by_key = {(r["method"], r["arch"], r["scenario"]): r for r in rows}
    for row in rep.leaderboard.rows:
        for col, cell in zip(rep.leaderboard.columns, row.cells, strict=False):
            got = by_key[(row.method, col.arch, col.scenario)]
            assert got["source"] == "measured" and got["dataset"] == "cifar10"
            assert int(got["n"]) == cell.n and int(got["n_failed"]) == cell.n_failed
            assert got["status"] == cell.status
            assert (got["best"] == "true") == cell.best
            for field, value in (
                ("mean", cell.mean),
                ("std", cell.std),
                ("rank", cell.rank),
                ("delta_best_baseline", cell.delta),
                ("row_average", row.average),
                ("row_avg_rank", row.avg_rank),
            ):
                if math.isnan(value):
                    assert got[field] == "", field
                else:
                    assert float(got[field]) == value, field
            assert (got["row_complete"] == "true") == row.complete
            assert got["metric"] == "top1"
            assert got["locality"] == ("" if math.isnan(row.locality) else repr(row.locality))
    assert by_key[("mymask", *P)]["status"] == "missing"
    locality = {r["method"]: float(r["locality"] or "nan") for r in rows}
    assert locality == pytest.approx(LOCALITY, nan_ok=True)  # the mean of the stored values
    assert float(by_key[("mixup", *B)]["std"]) == pytest.approx(math.sqrt(3))


def test_json_round_trips_every_number(rep):
    data = json.loads(render(rep, "json"))
    assert data["profile"] == "quick" and data["n_results"] == 48
    assert data["metric"] == {
        "name": "top1", "column": "top1", "label": "top-1 accuracy", "unit": "%",
        "scale": 1.0, "higher_is_better": True,
    }  # fmt: skip
    locality = {r["method"]: r["locality"] for r in data["rows"]}
    assert locality.pop("vanilla") is None  # vanilla never mixes: no locality index
    assert locality == pytest.approx({m: v for m, v in LOCALITY.items() if m != "vanilla"})
    assert [(c["arch"], c["scenario"]) for c in data["columns"]] == [P, A, B]
    for got, row in zip(data["rows"], rep.leaderboard.rows, strict=False):
        assert got["method"] == row.method and got["source"] == "measured"
        assert got["average_complete"] == row.complete
        assert got["average"] == pytest.approx(row.average)
        assert got["avg_rank"] == pytest.approx(row.avg_rank)
        for c_got, cell in zip(got["cells"], row.cells, strict=False):
            assert c_got["n"] == cell.n and c_got["best"] == cell.best
            for field, value in (("mean", cell.mean), ("std", cell.std), ("rank", cell.rank)):
                assert c_got[field] == (None if math.isnan(value) else value)
    against = {c["baseline"]: c for c in data["comparison"]["against"]}
    assert data["comparison"]["method"] == "mymask"
    assert against["mixup"]["mean_diff"] == pytest.approx(3.5)
    assert against["gmix"]["p_value"] is None and against["gmix"]["conclusive"]
    assert against["cutmix"]["ci95"][0] == pytest.approx(rep.comparisons[1].ci_low)


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.images, self._cell, self._classes = {}, [], None, None
        self._table = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell, self._classes = [], attrs.get("class", "")
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append(("".join(self._cell).strip(), self._classes))
            self._cell = None
        elif tag == "table":
            self._table = None


def test_html_page_parses_and_holds_the_table_and_plots(html_run):
    page = (html_run / "page.html").read_text(encoding="utf-8")
    parser = _Tables()
    parser.feed(page)
    board = parser.tables["leaderboard"]
    assert [t for t, _ in board[0]] == HEADERS
    for got, row in zip(board[1:], EXPECTED, strict=False):
        cells = list(row)
        for j in range(3):
            if (row[0], j) in BEST:
                cells[1 + j] += " ★"
                assert "best" in got[1 + j][1]
        assert [t for t, _ in got] == cells
    assert [r[0][0] for r in parser.tables["comparison"][1:]] == ["mixup", "cutmix", "hmix", "gmix"]
    assert len(parser.images) == 3  # accuracy, scenarios, pair-weight profiles
    assert all(src.startswith("data:image/png;base64,iVBORw0KGgo") for src in parser.images)
    assert "http://" not in page and "https://" not in page  # nothing fetched


def test_html_page_shows_the_pair_weight_profiles_of_the_installed_methods(html_run):
    import base64

    from matplotlib.image import imread

    page = (html_run / "page.html").read_text(encoding="utf-8")
    figure = page.split('<figure id="fig-profiles">', 1)[1].split("</figure>", 1)[0]
    src = figure.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    image = imread(io.BytesIO(base64.b64decode(src)))
    assert image.shape[1] > 800 and image.shape[0] > 400 and image[..., :3].std() > 0.05
    # drawn: the installed mixing methods, in leaderboard order; vanilla never mixes and
    # mymask is not installed here: each left out with a note, the page still whole
    assert "Pair-weight profiles of cutmix, hmix, mixup, gmix at 32×32 px" in figure
    notes = page.split('<ul class="notes" id="profiles-notes">', 1)[1].split("</ul>", 1)[0]
    assert "<li>vanilla: not drawn (ValueError: vanilla never mixes" in notes
    assert "<li>mymask: not drawn, not installed here (SpecError: unknown method" in notes


def test_html_page_renders_with_a_note_when_no_profile_can_be_drawn(rep, monkeypatch):
    import msda_arena.theory.fingerprint

    def broken(*args, **kwargs):
        raise RuntimeError("no torch here")

    monkeypatch.setattr(msda_arena.theory.fingerprint, "fingerprint", broken)
    page = render(rep, "html", figures={})
    assert 'id="fig-profiles"' not in page and "<img" not in page
    assert "<li>cutmix: not drawn (RuntimeError: no torch here)</li>" in page
    assert "<li>no method of this report could be fingerprinted</li>" in page
    assert page.rstrip().endswith("</body></html>") and 'id="leaderboard"' in page


def test_latex_is_tabular_shaped(rep):
    text = render(rep, "latex")
    tabulars = text.split(r"\begin{tabular}")[1:]
    # leaderboard, comparison, and the (standard, large-crop) scenario interaction
    assert len(tabulars) == 3
    body = tabulars[0].split(r"\end{tabular}")[0]
    spec = body[body.index("{") + 1 : body.index("}")]
    assert spec == "l" + "r" * 7
    rows = [ln for ln in body.splitlines() if ln.rstrip().endswith(r"\\")]
    assert len(rows) == 1 + 6
    assert all(row.count("&") == 7 for row in rows)
    assert r"resnet8\_cifar / large-crop" in rows[0] and r"$\Delta$" in rows[0]
    assert r"\textbf{76.00 $\pm$ 1.00 (n=3)}" in text
    assert r"72.00$^\dagger$" in text
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}")
    assert "_" not in "".join(r.replace(r"\_", "") for r in rows)


def test_render_refuses_an_unknown_format(rep):
    with pytest.raises(UsageError, match="choose one of table, markdown"):
        render(rep, "xlsx")


# --------------------------------------------------------------------------- selection


def test_several_profiles_need_a_choice_and_are_never_mixed(tmp_path):
    root = tmp_path / "r"
    add(root, "mixup", *A, 0, 70.0, profile="quick")
    add(root, "mixup", *A, 0, 90.0, profile="paper", recipe_hash="r2")
    frame, _ = load_results(root)
    with pytest.raises(UsageError, match=r"several profiles \(paper, quick\).*--profile"):
        build_report(frame)
    paper = build_report(frame, profile="paper")
    assert paper.leaderboard.row("mixup").cells[0].mean == 90.0
    with pytest.raises(UsageError, match="no results for profile 'nightly'"):
        build_report(frame, profile="nightly")


def test_a_newer_result_for_the_same_cell_replaces_the_older(tmp_path):
    # one cell in two stores, merged in Python (frames of two load_results calls)
    add(tmp_path / "a", "mixup", *A, 0, 70.0, finished_at="2025-01-01T00:00:00+00:00")
    add(tmp_path / "b", "mixup", *A, 0, 72.0, finished_at="2025-02-01T00:00:00+00:00")
    add(tmp_path / "b", "mixup", *A, 1, 74.0)
    frame = pd.concat([load_results(tmp_path / n)[0] for n in "ab"], ignore_index=True)
    rep = build_report(frame)
    cell = rep.leaderboard.row("mixup").cells[0]
    assert (cell.n, cell.mean) == (2, 73.0)
    assert rep.warnings == [
        "1 older result(s) for cells that have a newer one (same dataset, arch, scenario, "
        "method and seed) were left out"
    ]


def test_a_copy_under_another_file_name_is_refused_as_misplaced(tmp_path):
    path = add(tmp_path, "mixup", *A, 0, 70.0)
    shutil.copy(path, path.parent / "copied-in.parquet")
    frame, warnings = load_results(tmp_path)
    assert len(frame) == 1
    assert warnings == [
        f"{path.parent / 'copied-in.parquet'}: misplaced: its record belongs at "
        f"{path.relative_to(tmp_path).as_posix()} (a copy or a renamed file)"
    ]


def test_method_selection_keeps_the_baselines(pristine):
    frame, _ = load_results(pristine)
    chosen = build_report(frame, methods=["mymask"])
    assert sorted(r.method for r in chosen.leaderboard.rows) == [
        "cutmix", "gmix", "hmix", "mixup", "mymask"
    ]  # fmt: skip
    with pytest.raises(UsageError, match=r"no results for method 'nomask'.*methods there: cutmix"):
        build_report(frame, methods=["nomask"])
    with pytest.raises(UsageError, match="--compare 'nomask'"):
        build_report(frame, compare="nomask")


def test_published_numbers_sit_beside_matching_columns(tmp_path):
    root = tmp_path / "r"
    for seed, top1 in enumerate([74.0, 75.0, 76.0]):
        add(root, "cutmix", "resnet56_cifar", "standard", seed, top1, dataset="cifar100")
        add(root, "mixup", "resnet56_cifar", "standard", seed, top1 - 1, dataset="cifar100")
        add(root, "cutmix", "tiny_net", "large-crop", seed, top1 - 10, dataset="imagenet100")
    frame, _ = load_results(root)
    rep = build_report(frame, published=load_published())
    cols = [(c.dataset, c.arch, c.scenario) for c in rep.leaderboard.columns]
    assert cols == [
        ("cifar100", "resnet56_cifar", "standard"),
        ("imagenet100", "tiny_net", "large-crop"),
    ]
    pub = {p.method: p.values for p in rep.leaderboard.published}
    assert pub["cutmix"] == [74.83, 64.4]  # an empty published arch matches any arch
    assert pub["mixup"] == [73.12, 58.3]
    assert pub["gmix"][0] == 75.75 and math.isnan(pub["gmix"][1])
    assert "puzzlemix" not in pub  # no ResNet-56 number in the paper
    # published numbers never win a column or enter a rank
    assert rep.leaderboard.row("cutmix").cells[0].best
    assert [r.method for r in rep.leaderboard.rows] == ["cutmix", "mixup"]
    text = render(rep, "markdown")
    assert "| cutmix (published)" in text and "*74.83*" in text
    assert "Park et al. NeurIPS 2022: CIFAR-100" in text
    data = json.loads(render(rep, "json"))
    assert {p["source"] for p in data["published"]} == {"published"}
    rows = list(csv.DictReader(io.StringIO(render(rep, "csv"))))
    assert {(r["method"], r["mean"]) for r in rows if r["source"] == "published"} >= {
        ("cutmix", "74.83"),
        ("cutmix", "64.4"),
        ("gmix", "75.75"),
    }


def test_plots_mark_published_and_missing_results(tmp_path):
    from msda_arena.report.plots import accuracy_figure, scenario_figure

    root = tmp_path / "r"
    for seed in range(2):
        for method, top1 in (("mixup", 73.0), ("cutmix", 75.0), ("mymask", 76.0)):
            add(root, method, "wrn28_2_cifar", "standard", seed, top1 + seed, dataset="cifar100")
        add(root, "cutmix", "wrn28_2_cifar", "large-crop", seed, 70.0, dataset="cifar100")
    frame, _ = load_results(root)
    rep = build_report(frame, published=load_published())
    fig = accuracy_figure(rep)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [
        "wrn28_2_cifar / standard",
        "wrn28_2_cifar / large-crop",
    ]
    labels = [t.get_text() for t in panels[1].get_yticklabels()]
    assert "mixup (missing)" in labels and "puzzlemix (paper)" in labels
    scen = scenario_figure(rep)
    (ax,) = [a for a in scen.axes if a.get_visible()]
    bars = {t.get_text() for t in ax.get_legend().get_texts()}
    assert bars == {"cutmix − mixup", "mymask − mixup", "cutmix − mixup (paper)"}
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [2.0, 3.0]  # cutmix - mixup = 75.5 - 73.5, mymask - mixup = 3


def test_published_csv_holds_the_papers_numbers():
    frame = load_published()
    assert len(frame) == 34 + 6 + 4
    cifar = frame[frame["dataset"] == "cifar100"].set_index(["method", "arch"])["top1"]
    assert cifar[("gmix", "resnet56_cifar")] == 75.75
    assert cifar[("puzzlemix", "preactresnet50_cifar")] == 82.46
    assert cifar[("mixup-cutmix", "wrn28_2_cifar")] == 75.49
    assert ("puzzlemix", "resnet56_cifar") not in cifar.index
    inet = frame[frame["dataset"] == "imagenet1k"].set_index("method")["top1"]
    assert inet["hmix"] == 78.38 and set(frame[frame["dataset"] == "imagenet1k"]["arch"]) == {
        "resnet50"
    }
    crops = frame[frame["dataset"] == "imagenet100"]
    assert set(crops["arch"]) == {""}
    assert set(zip(crops["scenario"], crops["method"], crops["top1"], strict=False)) == {
        ("large-crop", "mixup", 58.3), ("large-crop", "cutmix", 64.4),
        ("small-crop", "mixup", 67.7), ("small-crop", "cutmix", 67.0),
    }  # fmt: skip


@pytest.mark.slow
def test_a_built_wheel_ships_the_published_numbers(tmp_path):
    """The CSV is package data: in the wheel, and found with no repository checkout."""
    import os
    import subprocess
    import sys
    import zipfile

    from conftest import REPO

    assert not (REPO / "results" / "published").exists()  # one copy: the package's
    src = tmp_path / "src"  # build from a copy: nothing is written into the checkout
    shutil.copytree(
        REPO / "msda_arena", src / "msda_arena", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    build = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-q", "-w", str(tmp_path / "dist")], check=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("msda_arena-*.whl")
    assert "msda_arena/published/park2022.csv" in zipfile.ZipFile(wheel).namelist()
    # Import the package from the wheel itself (zipimport), from a folder with no checkout.
    script = (
        "import msda_arena.report.published as p; "
        "files = p.default_published_files(); "
        f"print(p.__file__.startswith({str(wheel)!r}), [f.name for f in files], "
        "len(p.load_published()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(wheel)},
        timeout=120,
    )
    assert result.stdout.split(maxsplit=1) == ["True", "['park2022.csv'] 44\n"], result


# --------------------------------------------------------------------------- the command


def test_cli_prints_the_table_to_stdout(pristine):
    result = invoke("--results", pristine)
    assert result.exit_code == 0, result.output
    assert "76.00 ± 1.00 (n=3) ★" in result.stdout
    assert "mymask is better than mixup (p < 0.05)" in result.stdout
    assert "warning" not in result.stderr


def test_cli_formats_to_stdout_and_out_file(pristine, rep, tmp_path):
    result = invoke("--results", pristine, "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert result.stdout == render(rep, "markdown")
    out = tmp_path / "out" / "report.tex"
    result = invoke("--results", pristine, "-f", "latex", "--out", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert out.read_text(encoding="utf-8") == render(rep, "latex")
    assert f"wrote {out}" in result.stderr


def test_cli_plots_are_real_images_of_the_right_shape(html_run):
    import base64

    from matplotlib.image import imread

    page = (html_run / "page.html").read_text(encoding="utf-8")
    for name in ("accuracy", "scenarios"):
        data = (html_run / "plots" / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        image = imread(io.BytesIO(data))
        height, width = image.shape[:2]
        assert width > 400 and height > 200
        assert image[..., :3].std() > 0.05  # not a blank canvas
        # the page embeds the same pictures
        assert base64.b64encode(data).decode() in page
    # one accuracy panel per column: 3 columns -> 3 panels side by side (wider than tall)
    acc = imread(str(html_run / "plots" / "accuracy.png"))
    assert acc.shape[1] > 2 * acc.shape[0]


def test_cli_corrupt_file_warns_or_fails_with_strict(store):
    bad = store / "cifar10" / "zz-broken.parquet"
    bad.write_bytes(b"not parquet")
    result = invoke("--results", store, "-f", "csv")
    assert result.exit_code == 0
    assert f"arena: warning: skipped {bad}: not a readable parquet file" in result.stderr
    assert len(result.stdout.splitlines()) == 1 + 18
    result = invoke("--results", store, "--strict")
    assert isinstance(result.exception, StoreError)
    assert str(bad) in str(result.exception) and "without --strict" in str(result.exception)


def test_cli_method_and_compare_options(pristine):
    store = pristine
    result = invoke("--results", store, "--method", " mymask ", "-f", "json")
    data = json.loads(result.stdout)
    assert sorted(r["method"] for r in data["rows"]) == [
        "cutmix",
        "gmix",
        "hmix",
        "mixup",
        "mymask",
    ]
    assert data["comparison"]["method"] == "mymask"
    result = invoke("--results", store, "--compare", "cutmix", "-f", "json")
    against = json.loads(result.stdout)["comparison"]["against"]
    assert [a["baseline"] for a in against] == ["mixup", "hmix", "gmix"]
    # cutmix - mixup: P -1, -1, -1; A +1, +1, +1; B +3, +4, +2
    assert (against[0]["n"], against[0]["wins"], against[0]["losses"]) == (9, 6, 3)
    assert against[0]["mean_diff"] == pytest.approx(9 / 9)


def test_cli_published_uses_the_stores_own_csv_first(tmp_path):
    root = tmp_path / "r"
    for seed in range(3):
        add(root, "cutmix", "resnet56_cifar", "standard", seed, 74.0 + seed, dataset="cifar100")
    result = invoke("--results", root, "--published", "-f", "json")
    published = json.loads(result.stdout)["published"]
    assert {p["method"]: p["cells"][0]["top1"] for p in published}["cutmix"] == 74.83
    (root / "published").mkdir()
    (root / "published" / "mine.csv").write_text(
        "dataset,arch,scenario,method,top1,source\n"
        "cifar100,resnet56_cifar,standard,cutmix,77.7,my rerun\n"
    )
    result = invoke("--results", root, "--published", "-f", "markdown")
    assert "| cutmix (published)" in result.stdout and "*77.70*" in result.stdout
    assert "my rerun" in result.stdout and "74.83" not in result.stdout
    (root / "published" / "mine.csv").write_text("dataset,arch\ncifar100,x\n")
    result = invoke("--results", root, "--published")
    assert isinstance(result.exception, StoreError)
    assert "mine.csv: published numbers need a column 'scenario'" in str(result.exception)


def test_cli_bad_input_errors_say_what_to_do(store, tmp_path):
    cases = [
        (("--results", store, "--format", "xlsx"), UsageError, "choose one of table"),
        (("--results", store, "--profile", "paper"), UsageError, "profiles in the store: quick"),
        (("--results", store, "--method", "nomask"), UsageError, "no results for method"),
        (("--results", tmp_path / "none"), StoreError, "run `arena run` first"),
        (("--results", tmp_path / "empty"), StoreError, "no results in"),
    ]
    (tmp_path / "empty").mkdir()
    for args, error, message in cases:
        result = invoke(*args)
        assert isinstance(result.exception, error), (args, result.output)
        assert message in str(result.exception) and "\n" not in str(result.exception)


def test_cli_says_when_nothing_is_compared(tmp_path):
    root = tmp_path / "r"
    fill(root, {m: v for m, v in VALUES.items() if m != "mymask"})
    result = invoke("--results", root)
    assert result.exit_code == 0
    assert "no paired comparison: name the method to test with --compare SPEC" in result.stderr
    assert "Paired comparison" not in result.stdout


def test_canonical_strips_spaces_and_keeps_known_specs():
    assert _canonical(" hmix( r = 0.25 ) ", {"hmix(r=0.25)"}) == "hmix(r=0.25)"
    assert _canonical("not-installed(x=1)") == "not-installed(x=1)"


def test_one_seed_is_too_few_to_conclude_however_many_pairs():
    from msda_arena.report import paired_test

    new = [75.0, 76.1, 74.2, 77.0, 75.5]
    base = [74.0, 75.0, 73.9, 75.2, 74.1]
    assert paired_test("new", "cutmix", new, base, seeds=2).conclusive
    one = paired_test("new", "cutmix", new, base, seeds=1)
    assert not one.conclusive and one.verdict.startswith("too few seeds")


def test_results_of_an_older_recipe_are_left_out_with_a_warning():
    import pandas as pd

    from msda_arena.report.selection import select_results

    rows = []
    for recipe, finished, top1 in (
        ("old", "2026-01-01T00:00:00", 50.0),
        ("new", "2026-02-01T00:00:00", 70.0),
    ):
        for method in ("mixup", "cutmix"):
            rows.append(
                dict(
                    status="ok",
                    profile="p",
                    dataset="d",
                    arch="a",
                    scenario="s",
                    method=method,
                    seed=0,
                    top1=top1,
                    finished_at=finished,
                    recipe_hash=recipe,
                )
            )
    sel = select_results(pd.DataFrame(rows), profile="p")
    assert set(sel.frame.recipe_hash) == {"new"} and set(sel.frame.top1) == {70.0}
    assert any("older recipe" in w for w in sel.warnings)


def test_the_store_defaults_to_the_results_folder_of_the_local_arena_toml(tmp_path, monkeypatch):
    add(tmp_path / "mystore", "mixup", *A, 0, 70.0)
    add(tmp_path / "mystore", "cutmix", *A, 0, 72.0)
    (tmp_path / "arena.toml").write_text('[defaults]\nresults = "mystore"\n')
    monkeypatch.chdir(tmp_path)
    result = invoke("--format", "csv")
    assert result.exit_code == 0, result.output
    assert "cutmix" in result.stdout and "72" in result.stdout
    (tmp_path / "arena.toml").unlink()
    missing = invoke("--format", "csv")
    assert missing.exit_code == 1 and "no result store at results" in str(missing.exception)


# ---------------------------------------------------------------- scenario interaction

# (dataset, arch, seed) -> {(method, scenario): top1}; i = (c_L - m_L) - (c_S - m_S)
INTERACTION_VALUES = {
    ("resnet8_cifar", 0): {("cutmix", "large-crop"): 66.0, ("mixup", "large-crop"): 63.0,
                           ("cutmix", "small-crop"): 70.0, ("mixup", "small-crop"): 71.0},  # 4
    ("resnet8_cifar", 1): {("cutmix", "large-crop"): 67.0, ("mixup", "large-crop"): 64.5,
                           ("cutmix", "small-crop"): 70.5, ("mixup", "small-crop"): 70.0},  # 2
    ("resnet8_cifar", 2): {("cutmix", "large-crop"): 68.0, ("mixup", "large-crop"): 64.0,
                           ("cutmix", "small-crop"): 69.0, ("mixup", "small-crop"): 70.0},  # 5
    ("preactresnet10_cifar", 0): {("cutmix", "large-crop"): 60.0,
                                  ("mixup", "large-crop"): 58.0,
                                  ("cutmix", "small-crop"): 62.0,
                                  ("mixup", "small-crop"): 61.0},  # 1
}  # fmt: skip
INTERACTION_I = [1.0, 4.0, 2.0, 5.0]  # sorted by (dataset, arch, seed)


def interaction_store(root, values=INTERACTION_VALUES, skip=()):
    for (arch, seed), cells in values.items():
        for (method, scenario), top1 in cells.items():
            if (method, scenario) not in skip:
                add(root, method, arch, scenario, seed, top1, locality=LOCALITY[method])
    # a failed run and an unmatched seed are left out of the pairs
    add(root, "cutmix", "resnet8_cifar", "large-crop", 3, 70.0, locality=LOCALITY["cutmix"])
    add(root, "mixup", "resnet8_cifar", "large-crop", 3, NAN, locality=LOCALITY["mixup"])
    return root


def test_scenario_interaction_against_hand_computed_statistics(tmp_path):
    from scipy import stats

    frame, _ = load_results(interaction_store(tmp_path / "r"))
    rep = build_report(frame)
    (it,) = rep.interactions
    assert (it.method_a, it.method_b, it.first, it.second) == (
        "cutmix", "mixup", "large-crop", "small-crop",
    )  # fmt: skip
    assert it.pairs["interaction"].tolist() == INTERACTION_I
    # by hand: mean 3, sd = sqrt(((-2)^2 + 1 + 1 + 4) / 3) = sqrt(10/3)
    sd = math.sqrt(10 / 3)
    half = stats.t.ppf(0.975, 3) * sd / 2
    assert it.n == 4
    assert it.mean == pytest.approx(3.0)
    assert (it.ci_low, it.ci_high) == pytest.approx((3.0 - half, 3.0 + half))
    assert it.p_value == pytest.approx(stats.ttest_1samp(INTERACTION_I, 0.0).pvalue)
    assert it.p_value < 0.05
    assert it.verdict == (
        "cutmix gains over mixup with large-crop relative to small-crop (p < 0.05), "
        "as the paper predicts"
    )
    assert rep.interaction_notes == ()
    # the other way round: the same numbers with A and B swapped
    (swapped,) = build_report(frame, interaction=("mixup", "cutmix")).interactions
    assert swapped.mean == pytest.approx(-3.0)
    assert swapped.verdict.endswith("as the paper predicts")
    assert build_report(frame, interaction=None).interactions == ()


def test_scenario_interaction_verdicts_follow_the_metric_direction():
    from msda_arena.report.interaction import _verdict

    lower = _verdict("cutmix", "mixup", "large-crop", "small-crop", 4, 3.0, 0.01, False, False)
    assert lower.startswith("mixup gains over cutmix")
    assert lower.endswith("the opposite of the paper's prediction")
    upper = _verdict("cutmix", "mixup", "large-crop", "small-crop", 4, -3.0, 0.01, False, True)
    assert upper.endswith("the opposite of the paper's prediction")
    assert _verdict("cutmix", "mixup", "L", "S", 4, 3.0, 0.2, False, True) == (
        "no significant interaction (p >= 0.05)"
    )
    assert _verdict("cutmix", "mixup", "L", "S", 2, 3.0, 0.01, False, True).startswith(
        "too few pairs to conclude"
    )
    other = _verdict("hmix", "mixup", "L", "S", 4, 3.0, 0.01, False, True)
    assert other == "hmix gains over mixup with L relative to S (p < 0.05)"


def test_scenario_interaction_on_ece(tmp_path):
    root = tmp_path / "r"
    for (arch, seed), cells in INTERACTION_VALUES.items():
        for (method, scenario), top1 in cells.items():
            add(root, method, arch, scenario, seed, 70.0, ece=top1 / 1000,
                locality=LOCALITY[method])  # fmt: skip
    (it,) = build_report(load_results(root)[0], metric="ece").interactions
    assert it.pairs["interaction"].tolist() == pytest.approx([i / 10 for i in INTERACTION_I])
    # a larger ECE gap with large crops: cutmix loses ground there, against the paper
    assert it.verdict.startswith("mixup gains over cutmix")
    assert it.verdict.endswith("the opposite of the paper's prediction")


def test_scenario_interaction_is_omitted_with_a_reason(tmp_path, pristine):
    # the module's store has large-crop but no small-crop (and standard: the interaction
    # of that pair is there, the paper's is not)
    frame, _ = load_results(pristine)
    rep = build_report(frame)
    assert [(it.first, it.second) for it in rep.interactions] == [("standard", "large-crop")]
    assert rep.interaction_notes == ("scenario interaction omitted: no small-crop results",)
    assert rep.warnings == []  # a note, not a warning: nothing is wrong with the store
    assert "Scenario interaction omitted: no small-crop results." in render(rep, "markdown")
    data = json.loads(render(rep, "json"))
    assert data["interaction_notes"] == list(rep.interaction_notes)
    assert [(d["first"], d["second"]) for d in data["interactions"]] == [("standard", "large-crop")]
    # both scenarios, but mixup never ran small-crop: no complete (dataset, arch, seed)
    skip = {("mixup", "small-crop")}
    frame, _ = load_results(interaction_store(tmp_path / "r", skip=skip))
    rep = build_report(frame)
    assert rep.interactions == ()
    assert rep.interaction_notes == (
        "scenario interaction omitted: no (dataset, arch, seed) with top-1 results of both "
        "cutmix and mixup in both large-crop and small-crop",
    )
    table = render(rep, "table")
    assert "Scenario interaction on" not in table
    assert "Scenario interaction omitted: no (dataset, arch, seed)" in table
    # neither scenario: not a crop-scenario report, nothing to say
    add(tmp_path / "s", "mixup", *A, 0, 70.0)
    rep = build_report(load_results(tmp_path / "s")[0])
    assert rep.interactions == () and rep.interaction_notes == () and rep.warnings == []


def test_every_format_shows_the_scenario_interaction(tmp_path):
    frame, _ = load_results(interaction_store(tmp_path / "r"))
    rep = build_report(frame)
    table = render(rep, "table")
    assert "Scenario interaction on top-1" in table
    row = next(line for line in table.splitlines() if "(cutmix - mixup) on large-crop" in line)
    (it,) = rep.interactions
    ci = f"[{it.ci_low:+.2f}, {it.ci_high:+.2f}]"
    for text in ("4", "+3.00", ci, f"{it.p_value:.3f}", "as the paper predicts"):
        assert text in row
    assert "Scenario interaction: i = (cutmix - mixup on large-crop)" in table
    assert "as the paper predicts" in render(rep, "markdown")
    assert "as the paper predicts" in render(rep, "latex")
    from msda_arena.report import ProfilePlot

    page = render(rep, "html", figures={}, profiles=ProfilePlot(None))
    assert 'id="interaction"' in page and "as the paper predicts" in page
    (data,) = json.loads(render(rep, "json"))["interactions"]
    assert data["n"] == 4 and data["mean"] == pytest.approx(3.0)
    assert [p["interaction"] for p in data["pairs"]] == INTERACTION_I
    assert data["verdict"] == it.verdict


def test_the_interaction_scenarios_are_the_arenas_own():
    import tomllib
    from importlib.resources import files

    from msda_arena.report import INTERACTION_SCENARIOS

    toml = tomllib.loads(files("msda_arena.grid").joinpath("default_arena.toml").read_text())
    assert set(INTERACTION_SCENARIOS) <= set(toml["scenarios"])


# (arch, seed) -> {method: top1} in the standard scenario, beside INTERACTION_VALUES:
# cutmix - mixup there (d_std) is 2, 0.5, 0 (resnet8 seeds 0-2) and -1 (preactresnet10)
STANDARD_VALUES = {
    ("resnet8_cifar", 0): {"cutmix": 75.0, "mixup": 73.0},
    ("resnet8_cifar", 1): {"cutmix": 76.0, "mixup": 75.5},
    ("resnet8_cifar", 2): {"cutmix": 74.0, "mixup": 74.0},
    ("preactresnet10_cifar", 0): {"cutmix": 71.0, "mixup": 72.0},
}
# i per (dataset, arch, seed), sorted: preactresnet10 s0, resnet8 s0, s1, s2. With
# d_L = 2, 3, 2.5, 4 and d_S = 1, -1, 0.5, -1 (INTERACTION_VALUES):
THREE_PAIRS = {
    ("large-crop", "small-crop"): INTERACTION_I,  # d_L - d_S
    ("standard", "large-crop"): [-3.0, -1.0, -2.0, -4.0],  # d_std - d_L
    ("standard", "small-crop"): [-2.0, 3.0, 0.0, 1.0],  # d_std - d_S
}


def three_scenario_store(root):
    interaction_store(root)
    for (arch, seed), cells in STANDARD_VALUES.items():
        for method, top1 in cells.items():
            add(root, method, arch, "standard", seed, top1, locality=LOCALITY[method])
    return root


def test_every_pair_of_three_scenarios_has_its_interaction(tmp_path):
    from scipy import stats

    rep = build_report(load_results(three_scenario_store(tmp_path / "r"))[0])
    # the paper's pair first, then the grid's order
    assert [(it.first, it.second) for it in rep.interactions] == list(THREE_PAIRS)
    assert rep.interaction_notes == ()
    for it, values in zip(rep.interactions, THREE_PAIRS.values(), strict=True):
        assert (it.method_a, it.method_b, it.n) == ("cutmix", "mixup", 4)
        assert it.pairs["interaction"].tolist() == pytest.approx(values)
        half = stats.t.ppf(0.975, 3) * stats.tstd(values) / 2
        mean = sum(values) / 4
        assert it.mean == pytest.approx(mean)
        assert (it.ci_low, it.ci_high) == pytest.approx((mean - half, mean + half))
        assert it.p_value == pytest.approx(stats.ttest_1samp(values, 0.0).pvalue)
    paper, std_large, std_small = rep.interactions
    assert paper.verdict == (
        "cutmix gains over mixup with large-crop relative to small-crop (p < 0.05), "
        "as the paper predicts"
    )
    # by hand: mean -2.5, sd sqrt(5/3), t = -2.5 / (sd / 2) = -3.87 on 3 df: p = 0.030
    assert std_large.mean == pytest.approx(-2.5) and std_large.p_value < 0.05
    assert std_large.verdict == (
        "mixup gains over cutmix with standard relative to large-crop (p < 0.05)"
    )  # method-neutral: the paper says nothing about this pair
    assert std_small.mean == pytest.approx(0.5)
    assert std_small.verdict == "no significant interaction (p >= 0.05)"


def test_every_format_shows_every_pair_of_scenarios(tmp_path):
    from msda_arena.report import ProfilePlot

    rep = build_report(load_results(three_scenario_store(tmp_path / "r"))[0])
    labels = [f"(cutmix - mixup) on {s1} - (cutmix - mixup) on {s2}" for s1, s2 in THREE_PAIRS]
    verdicts = [it.verdict for it in rep.interactions]
    table = render(rep, "table")
    rows = [line for line in table.splitlines() if "(cutmix - mixup) on" in line]
    assert len(rows) == 3
    for row, label, it in zip(rows, labels, rep.interactions, strict=True):
        assert label in row and f"{it.mean:+.2f}" in row and it.verdict in row
    note = "Scenario interactions: for each pair of scenarios (S1, S2), i = (cutmix - mixup on S1)"
    assert note in table and "p not corrected for the 3 pairs" in table
    assert "positive i for cutmix - mixup on large-crop against small-crop" in table
    markdown = render(rep, "markdown")
    assert markdown.count("#### Scenario interaction on top-1") == 1  # one table, three rows
    latex = render(rep, "latex")
    page = render(rep, "html", figures={}, profiles=ProfilePlot(None))
    assert page.count('id="interaction"') == 1
    for text, esc in ((markdown, str), (latex, _tex), (page, html.escape)):
        positions = [text.index(esc(label)) for label in labels]
        assert positions == sorted(positions)  # in the report's order
        assert all(esc(v) in text for v in verdicts)
    data = json.loads(render(rep, "json"))
    assert [(d["first"], d["second"]) for d in data["interactions"]] == list(THREE_PAIRS)
    for d, values in zip(data["interactions"], THREE_PAIRS.values(), strict=True):
        assert [p["interaction"] for p in d["pairs"]] == pytest.approx(values)
    assert data["interaction_notes"] == [] and data["scenarios"] is None


def test_interaction_pairs_follow_the_grid_order_with_the_papers_first():
    from msda_arena.report import interaction_pairs

    assert interaction_pairs(["small-crop", "standard", "large-crop"]) == [
        ("large-crop", "small-crop"), ("standard", "large-crop"), ("standard", "small-crop"),
    ]  # fmt: skip
    # a scenario of a user's own arena.toml comes after the grid's, by name
    assert interaction_pairs(["tiny", "standard", "huge"]) == [
        ("standard", "huge"), ("standard", "tiny"), ("huge", "tiny"),
    ]  # fmt: skip
    assert interaction_pairs(["standard"]) == []


# --------------------------------------------------------------------------- --scenario


def test_the_scenario_filter_keeps_only_those_cells(pristine):
    from scipy import stats

    frame, _ = load_results(pristine)
    rep = build_report(frame, scenarios=["large-crop"])
    assert set(rep.frame["scenario"]) == {"large-crop"}
    assert [(c.arch, c.scenario) for c in rep.leaderboard.columns] == [B]
    # column B alone: mymask 68, cutmix 67, hmix 66, mixup 64, vanilla 62, gmix failed
    board = rep.leaderboard
    assert [r.method for r in board.rows] == [
        "mymask", "cutmix", "hmix", "mixup", "vanilla", "gmix"
    ]  # fmt: skip
    assert [r.average for r in board.rows[:5]] == pytest.approx([68, 67, 66, 64, 62])
    assert board.row("mymask").delta == pytest.approx(1.0)  # over cutmix, the best baseline
    assert board.row("mymask").complete  # every column of the report
    # the paired tests: large-crop only. mymask - mixup: d = 4, 5, 3
    got = {r.baseline: r for r in rep.comparisons}
    assert got["mixup"].n == 3 and got["mixup"].mean_diff == pytest.approx(4.0)
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (got["mixup"].ci_low, got["mixup"].ci_high) == pytest.approx((4 - half, 4 + half))
    reference = stats.ttest_rel([67, 68, 69], [63, 63, 66])
    assert got["mixup"].p_value == pytest.approx(reference.pvalue)
    assert got["cutmix"].verdict == "every pair differs by exactly +1.00; no variance to test"
    assert got["gmix"].n == 0  # gmix failed on large-crop
    # one scenario: no interaction, and no note about small-crop (left out on purpose)
    assert rep.interactions == () and rep.interaction_notes == ()
    assert rep.title == (
        "msda-arena leaderboard: cifar10 (profile quick; scenario large-crop only): "
        f"{rep.metric.caption}"
    )
    # standard only: two columns, the paired tests over their 6 pairs, not the 9 of all
    std = build_report(frame, scenarios=["standard"], compare="cutmix")
    assert [(c.arch, c.scenario) for c in std.leaderboard.columns] == [P, A]
    # cutmix - mixup: P -1, -1, -1; A +1, +1, +1
    mixup = next(r for r in std.comparisons if r.baseline == "mixup")
    assert (mixup.n, mixup.wins, mixup.losses) == (6, 3, 3)
    assert mixup.mean_diff == pytest.approx(0.0)
    assert "scenario standard only" in std.title


def test_the_scenario_filter_names_the_kept_scenarios_in_every_format(tmp_path):
    from msda_arena.report import ProfilePlot

    root = three_scenario_store(tmp_path / "r")
    rep = build_report(load_results(root)[0], scenarios=["small-crop", "standard"])
    assert rep.scenarios == ("standard", "small-crop")  # the grid's order
    kept = "(profile quick; scenarios standard, small-crop only)"
    assert kept in rep.title
    # only the kept pair's interaction, and nothing said of large-crop, left out on purpose
    assert [(it.first, it.second) for it in rep.interactions] == [("standard", "small-crop")]
    assert rep.interaction_notes == ()
    page = render(rep, "html", figures={}, profiles=ProfilePlot(None))
    for text in (render(rep, "table"), render(rep, "markdown"), page):
        assert kept in text
    assert kept in render(rep, "latex").splitlines()[0]
    data = json.loads(render(rep, "json"))
    assert kept in data["title"] and data["scenarios"] == ["standard", "small-crop"]
    rows = list(csv.DictReader(io.StringIO(render(rep, "csv"))))
    assert {r["scenario"] for r in rows} == {"standard", "small-crop"}
    # the plots' title too
    from msda_arena.report.plots import accuracy_figure, scenario_figure

    assert kept in accuracy_figure(rep).get_suptitle().replace("\n", " ")
    ticks = {t.get_text() for ax in scenario_figure(rep).axes for t in ax.get_xticklabels()}
    assert ticks == {"standard", "small-crop"}
    # the paper's pair alone reads as a two-scenario report always did
    two = build_report(load_results(root)[0], scenarios=["large-crop", "small-crop"])
    (only,) = two.interactions
    assert only.papers_pair and only.pairs["interaction"].tolist() == INTERACTION_I
    # every scenario named: the whole grid, and the title says nothing
    every = ["standard", "large-crop", "small-crop"]
    assert build_report(load_results(root)[0], scenarios=every).scenarios is None


def test_an_unknown_scenario_is_one_line_naming_the_stores(pristine):
    frame, _ = load_results(pristine)
    with pytest.raises(UsageError) as caught:
        build_report(frame, scenarios=["standard", "tiny-crop"])
    assert str(caught.value) == (
        "no results for scenario 'tiny-crop' in profile 'quick'; "
        "scenarios there: standard, large-crop"
    )
    result = invoke("--results", pristine, "--scenario", "small-crop")
    assert isinstance(result.exception, UsageError)
    assert "scenarios there: standard, large-crop" in str(result.exception)
    assert "\n" not in str(result.exception)


def test_cli_compare_within_one_scenario(pristine):
    result = invoke(
        "--results", pristine, "--compare", "mymask", "--scenario", "large-crop", "-f", "json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["scenarios"] == ["large-crop"]
    assert [c["scenario"] for c in data["columns"]] == ["large-crop"]
    against = {a["baseline"]: a for a in data["comparison"]["against"]}
    assert against["mixup"]["n"] == 3 and against["mixup"]["mean_diff"] == pytest.approx(4.0)
    assert "scenario large-crop only" in data["title"]
    # repeated: both scenarios, the title names them
    result = invoke("--results", pristine, "--scenario", "standard", "--scenario", "large-crop")
    assert result.exit_code == 0, result.output
    assert "(profile quick): top-1" in result.stdout  # the whole store: nothing to point out


def test_scenario_plot_draws_an_interval_only_from_two_pairs_or_more(tmp_path):
    from matplotlib.container import ErrorbarContainer

    from msda_arena.report.plots import scenario_figure

    rep = build_report(load_results(interaction_store(tmp_path / "r"))[0])
    fig = scenario_figure(rep)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    bars = {
        title: [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        for title, ax in panels.items()
    }
    assert bars["cifar10 / preactresnet10_cifar"] == []  # one seed: a bar, no interval
    (errs,) = bars["cifar10 / resnet8_cifar"]  # three seeds in both scenarios
    assert len(errs.lines[2][0].get_segments()) == 2
    assert "bars without one had fewer than 2 pairs" in fig.get_suptitle()


def _lead_store(root, vanilla_loss):
    """vanilla first in both columns, with the given last-epoch training loss."""
    values = {"vanilla": [80, 81], "mixup": [75, 76], "cutmix": [74, 77]}
    for method, tops in values.items():
        for scenario in ("large-crop", "small-crop"):
            for seed, top1 in enumerate(tops):
                loss = vanilla_loss if method == "vanilla" else 1.3
                add(root, method, "resnet8_cifar", scenario, seed, top1, train_loss=loss, epochs=4)
    frame, _ = load_results(root)
    return frame


def test_when_vanilla_leads_the_terminal_says_why_in_one_line(tmp_path):
    frame = _lead_store(tmp_path / "short", vanilla_loss=0.62)
    report = build_report(frame)
    assert report.regime_note.startswith("vanilla leads because training is too short")
    assert (
        "after 4 epoch(s) the un-mixed model's training loss is 0.62, and it takes a loss "
        "below 0.1 to fit the training set, so there is no overfitting" in report.regime_note
    )
    result = invoke("--results", tmp_path / "short")
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if "Vanilla leads" in line]
    assert len(said) == 1 and "trains longer (fashion, cifar100)" in said[0]
    from msda_arena.report.text import to_json

    assert json.loads(to_json(report))["regime_note"] == report.regime_note

    on_fashion = build_report(frame.assign(profile="fashion"))
    assert on_fashion.regime_note.endswith("a profile that trains longer (cifar100)")
    fitted = build_report(_lead_store(tmp_path / "fitted", vanilla_loss=0.02))
    assert fitted.regime_note.startswith("vanilla leads although it fits its training set")
    # no note when a mixing method leads, or on a lower-is-better metric
    assert build_report(frame, metric="ece").regime_note is None


def test_no_vanilla_note_when_a_mixing_method_leads(rep):
    assert rep.leaderboard.rows[0].method != "vanilla" and rep.regime_note is None


def test_a_method_whose_every_cell_failed_is_said_to_have_failed_with_its_error(tmp_path):
    """Not "run X and mixup on the same ... seed": they were run, and failed."""
    root = tmp_path / "r"
    for method in ("mixup", "cutmix"):
        for seed in range(3):
            add(root, method, "resnet8_cifar", "standard", seed, 70.0 + seed)
    for seed in range(3):
        add(root, "broken", "resnet8_cifar", "standard", seed, NAN,
            error="MaskContractError: masks must lie in [0, 1]")  # fmt: skip
    result = invoke("--results", root, "--compare", "broken", "-f", "json")
    assert result.exit_code == 0, result.output
    verdicts = {
        c["baseline"]: c["verdict"] for c in json.loads(result.stdout)["comparison"]["against"]
    }
    for baseline in ("mixup", "cutmix"):
        assert verdicts[baseline].startswith("every broken cell failed (3 failed result(s))")
        assert "the first error: MaskContractError: masks must lie in [0, 1]" in verdicts[baseline]
        assert "`arena run` lists them" in verdicts[baseline]
        assert "no matched results" not in verdicts[baseline]


def test_the_locality_note_covers_mixing_methods_not_only_vanilla(tmp_path):
    """A mixing method has no locality index either (no mask of lambda alone)."""
    root = tmp_path / "r"
    for method, locality in (("mixup", 0.0), ("saliencymix", NAN), ("vanilla", NAN)):
        for seed in range(2):
            add(root, method, "resnet8_cifar", "standard", seed, 70.0 + seed, locality=locality)
    result = invoke("--results", root, "-f", "markdown")
    assert result.exit_code == 0, result.output
    note = next(line for line in result.stdout.splitlines() if line.startswith("- locality = "))
    assert "vanilla never mixes, and a mixing method mixes through the images" in note
    assert "with no mask of lambda alone to measure" in note
    row = next(line for line in result.stdout.splitlines() if line.startswith("| saliencymix"))
    assert row.rstrip(" |").endswith("—")  # no locality shown
