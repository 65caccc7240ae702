"""Learning curves: stored per epoch with every cell, drawn by `arena report` (HTML page and
`--plots`), and stores written before curves existed still report."""

from __future__ import annotations

import base64
import math
import re
import shutil
import struct
from dataclasses import replace

import pyarrow.parquet as pq
import pytest
import typer
from conftest import TINY_TOML
from typer.testing import CliRunner

from msda_arena import get_method
from msda_arena.api.record import (
    SCHEMA_VERSION,
    EpochPoint,
    RecordError,
    ResultRecord,
    cell_key,
    decode_curve,
    encode_curve,
)
from msda_arena.cli.report import report
from msda_arena.data import load_dataset
from msda_arena.execute.local import LocalExecutor
from msda_arena.execute.worker import RunSettings
from msda_arena.grid.cells import build_cells
from msda_arena.grid.config import load_config
from msda_arena.report.build import build_report
from msda_arena.report.curves import plateau_epoch
from msda_arena.store.results import load_results, result_files, write_result
from msda_arena.store.verify import verify
from msda_arena.train.loop import train_cell


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "arena.toml"
    path.write_text(TINY_TOML.replace("seeds = [0]", "seeds = [0, 1]"))
    cfg = load_config(path)
    return cfg, cfg.profiles["tiny"]


@pytest.fixture(scope="module")
def store(tiny, tmp_path_factory):
    """Four real cells (mixup and vanilla, two seeds, one scenario) of two epochs."""
    cfg, prof = tiny
    root = tmp_path_factory.mktemp("store") / "results"
    cells = build_cells(cfg, prof, ["mixup"], scenarios=("large-crop",), baselines=["vanilla"])
    summary = LocalExecutor(RunSettings(cfg, prof, root)).run(cells)
    assert len(summary.done) == 4
    return root


def _cli(*args):
    app = typer.Typer()
    app.command("report")(report)
    app.callback()(lambda: None)
    result = CliRunner().invoke(app, ["report", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def _png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", data[16:20])[0]


def test_every_cell_stores_one_curve_entry_per_epoch(store):
    frame, warnings = load_results(store)
    assert warnings == [] and len(frame) == 4
    for row in frame.itertuples():
        curve = decode_curve(row.curve)
        assert curve["epoch"] == [1.0, 2.0] == [float(e + 1) for e in range(row.epochs)]
        assert curve["train_loss"][-1] == row.train_loss  # the record's is the last epoch's
        assert curve["top1"][-1] == row.top1 and math.isnan(curve["top1"][0])  # no eval_every
        assert all(s > 0 for s in curve["seconds"])
        # warm-up to 0.05 over epoch 1, then cosine decay: the last step's rate falls
        assert curve["lr"][0] == pytest.approx(0.05) and 0 < curve["lr"][1] < 0.05


def test_eval_every_adds_test_top1_per_epoch_and_changes_no_trained_number(tiny):
    cfg, prof = tiny
    data = load_dataset(prof.dataset, **prof.dataset_options)
    recipe = cfg.recipes["tiny"]

    def run(r):
        return train_cell(
            "resnet8_cifar", get_method("cutmix"), data, r, cfg.scenarios["small-crop"], seed=0
        )

    plain, evaluated = run(recipe), run(replace(recipe, eval_every=1))
    a, b = decode_curve(plain.curve), decode_curve(evaluated.curve)
    assert all(0.0 <= t <= 100.0 for t in b["top1"]) and math.isnan(a["top1"][0])
    assert a["train_loss"] == b["train_loss"] and plain.top1 == evaluated.top1
    # not part of the recipe hash: turning it on makes no new cells
    assert recipe.to_dict() == replace(recipe, eval_every=1).to_dict()


def test_a_curve_that_breaks_the_rules_is_refused(store):
    frame, _ = load_results(store)
    record = ResultRecord.from_dict(frame.iloc[0].to_dict())
    three = [EpochPoint(epoch=e, train_loss=1.0, lr=0.1, seconds=1.0) for e in (1, 2, 3)]
    with pytest.raises(RecordError, match="'curve' has 3 epochs, the record 2"):
        record.replace(curve=encode_curve(three))
    with pytest.raises(RecordError, match="'curve' is not JSON"):
        record.replace(curve="[1, 2")
    with pytest.raises(RecordError, match="'curve' must hold a list for each of epoch"):
        record.replace(curve='{"epoch": [1, 2]}')
    assert record.replace(curve="").curve == ""  # not recorded is allowed


def test_report_draws_the_curves_on_the_html_page_and_with_plots(store, tmp_path):
    from matplotlib.image import imread

    page = tmp_path / "page.html"
    _cli("--results", store, "-f", "html", "-o", page, "--plots", tmp_path / "plots")
    png = tmp_path / "plots" / "curves.png"
    image = imread(str(png))[..., :3]
    assert image.shape[0] > 200 and image.shape[1] > 300
    # the lines and bands of two methods: many colours, not a blank canvas
    assert len({tuple(p) for p in (image.reshape(-1, 3) * 255).astype(int)}) > 50
    text = page.read_text(encoding="utf-8")
    found = re.search(r'<figure id="fig-curves"><img alt="([^"]*)" src="data:image/png;base64,'
                      r'([^"]+)"', text)  # fmt: skip
    assert found, "no learning-curve figure on the page"
    assert "Learning curves" in found.group(1) and "mean over seeds" in found.group(1)
    assert _png_width(base64.b64decode(found.group(2))) > 400


def test_a_store_written_before_curves_still_reports(store, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(store, old)
    (old / ".index.parquet").unlink(missing_ok=True)
    for rel in result_files(old):
        table = pq.read_table(old / rel)
        pq.write_table(table.drop_columns(["curve"]), old / rel)  # the pre-curve layout
    frame, warnings = load_results(old)
    assert warnings == [] and len(frame) == 4 and set(frame["curve"]) == {""}
    checked = verify(old, stale=False)
    assert checked.ok == 4 and not checked.findings
    page = tmp_path / "page.html"
    _cli("--results", old, "-f", "html", "-o", page, "--plots", tmp_path / "plots")
    assert "fig-accuracy" in page.read_text(encoding="utf-8")
    assert "fig-curves" not in page.read_text(encoding="utf-8")  # nothing to draw
    assert (tmp_path / "plots" / "accuracy.png").exists()
    assert not (tmp_path / "plots" / "curves.png").exists()


def test_plateau_epoch_is_where_training_loss_stopped_falling():
    assert plateau_epoch([2.0, 1.2, 1.19, 1.185, 1.19]) == 2
    assert plateau_epoch([2.0, 1.5, 1.0]) is None  # still falling at the end
    assert plateau_epoch([1.0]) is None


def _record(method, seed, top1, losses):
    profile, arch, scenario, recipe = "quick", "resnet8_cifar", "standard", "r"
    points = [
        EpochPoint(epoch=e, train_loss=v, lr=0.1, seconds=1.0) for e, v in enumerate(losses, 1)
    ]
    return ResultRecord.from_dict({
        "schema_version": SCHEMA_VERSION,
        "key": cell_key(profile, arch, scenario, method, seed, recipe),
        "status": "ok", "error": "", "profile": profile, "dataset": "cifar10", "arch": arch,
        "scenario": scenario, "method": method, "method_name": method, "seed": seed,
        "recipe_hash": recipe, "top1": top1, "top5": 90.0, "ece": 0.05, "fgsm_top1": 20.0,
        "train_loss": losses[-1], "locality": 0.0,
        "epochs": len(losses), "wall_time_s": 1.0, "images_per_s": 1.0, "peak_mem_mb": 1.0,
        "method_package": "msda-arena", "method_version": "0.1.0", "method_code": "0.1.0:abc",
        "plugins": "", "torch_version": "2", "timm_version": "1", "cuda_version": "",
        "device_name": "cpu", "host": "box", "arena_version": "0.1.0", "git_commit": "",
        "config_hash": "c", "notes": "", "curve": encode_curve(points),
        "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T00:01:00+00:00",
    })  # fmt: skip


@pytest.mark.parametrize(
    ("vanilla", "says"),
    [
        ([2.0, 1.5, 1.0, 0.6], "(its loss was still falling in the last epoch, 1 to 0.6)"),
        (
            [2.0, 0.08, 0.079, 0.0785],
            "; its loss stopped improving after epoch 2 of 4, never falling more than 2%",
        ),
    ],
)
def test_the_vanilla_leads_note_says_where_the_unmixed_model_stopped_improving(
    tmp_path, vanilla, says
):
    for seed in (0, 1):
        write_result(tmp_path, _record("vanilla", seed, 70.0, vanilla))
        for method in ("mixup", "cutmix"):
            write_result(tmp_path, _record(method, seed, 60.0, [2.0, 1.8, 1.6, 1.5]))
    frame, _ = load_results(tmp_path)
    note = build_report(frame).regime_note
    assert note is not None and says in note
