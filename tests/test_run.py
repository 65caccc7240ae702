"""`arena run` end to end on the procedural data, with a seconds-long profile."""

import os
import signal

import pytest
import torch
from conftest import install_fake_plugin, run_arena

from msda_arena import get_method
from msda_arena.data import load_dataset
from msda_arena.execute.base import Reporter
from msda_arena.execute.local import LocalExecutor
from msda_arena.execute.worker import RunSettings
from msda_arena.grid.cells import build_cells
from msda_arena.grid.config import load_config
from msda_arena.store.results import cell_path, load_results, read_result
from msda_arena.train import interrupts
from msda_arena.train.loop import DEFAULT_THREADS, train_cell


@pytest.fixture
def tiny(tiny_config):
    cfg = load_config(tiny_config)
    return cfg, cfg.profiles["tiny"]


def data_of(prof):
    return load_dataset(prof.dataset, **prof.dataset_options)


def test_a_cell_trains_and_is_reproducible(tiny):
    cfg, prof = tiny
    data = data_of(prof)
    events = []
    run = lambda: train_cell(  # noqa: E731
        "resnet8_cifar",
        get_method("cutmix"),
        data,
        cfg.recipes["tiny"],
        cfg.scenarios["small-crop"],
        seed=3,
        progress=events.append,
    )
    a, b = run(), run()
    assert [e.epoch for e in events] == [1, 2, 1, 2]
    assert 0.0 <= a.top1 <= a.top5 <= 100.0
    assert a.top1 == b.top1 and a.train_loss == b.train_loss  # same seed, same result
    assert a.images_per_s > 0 and a.epochs == 2
    other = train_cell(
        "resnet8_cifar",
        get_method("cutmix"),
        data,
        cfg.recipes["tiny"],
        cfg.scenarios["small-crop"],
        seed=4,
    )
    assert other.train_loss != a.train_loss


def test_a_cell_trains_with_the_thread_count_it_is_given_and_records_it(tiny):
    """The thread count (and deterministic algorithms) is part of what a cell runs
    with: set for the cell, recorded with its result, restored after; same seed and
    threads, same numbers (issue 15: 47.85 with one thread, 46.68 with two)."""
    cfg, prof = tiny
    data = data_of(prof)
    before = torch.get_num_threads()
    run = lambda **kw: train_cell(  # noqa: E731
        "resnet8_cifar", get_method("cutmix"), data, cfg.recipes["tiny"],
        cfg.scenarios["small-crop"], seed=3, **kw,
    )  # fmt: skip
    a, b = run(threads=2), run(threads=2)
    assert (a.threads, a.deterministic) == (2, 0) and "2 threads" in a.device_name
    assert a.top1 == b.top1 and a.train_loss == b.train_loss
    assert torch.get_num_threads() == before
    c = run(deterministic=True)
    assert (c.threads, c.deterministic) == (DEFAULT_THREADS, 1)
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(ValueError, match="threads must be at least 1, got 0"):
        run(threads=0)


def test_run_stores_one_record_per_cell_and_resume_runs_nothing_twice(tiny, tmp_path):
    cfg, prof = tiny
    cells = build_cells(cfg, prof, ["hmix"], baselines=["vanilla"])
    ex = LocalExecutor(RunSettings(cfg, prof, tmp_path / "res"))
    first = ex.run(cells)
    assert len(first.done) == 4 and not first.failed
    frame, warnings = load_results(tmp_path / "res")
    assert warnings == [] and len(frame) == 4
    row = frame[frame.method == "hmix"].iloc[0]
    assert (
        row.status == "ok"
        and row.method_package == "msda-arena"
        and row.torch_version == torch.__version__
    )
    assert row.profile == "tiny" and row.dataset == "procedural" and row.epochs == 2
    assert (row.threads, row.deterministic) == (DEFAULT_THREADS, 0)  # the arena's default
    mtimes = {
        c.key: os.stat(cell_path(tmp_path / "res", c.dataset, c.key)).st_mtime_ns for c in cells
    }

    class Count(Reporter):
        trained = 0

        def cell_start(self, cell, epochs):
            Count.trained += 1

    second = LocalExecutor(RunSettings(cfg, prof, tmp_path / "res")).run(cells, Count())
    assert Count.trained == 0 and len(second.skipped) == 4
    assert mtimes == {
        c.key: os.stat(cell_path(tmp_path / "res", c.dataset, c.key)).st_mtime_ns for c in cells
    }
    forced = LocalExecutor(RunSettings(cfg, prof, tmp_path / "res", force=True)).run(cells[:1])
    assert len(forced.done) == 1


RAISES_AT_EPOCH_TIME = """
import torch
from msda_arena import MaskMethod, hookimpl

class Flaky(MaskMethod):
    name = "flaky"

    def masks(self, lam, height, width, generator):
        raise RuntimeError("flaky mask exploded")

@hookimpl
def register_mask_methods(register):
    register(Flaky)
"""


def test_a_failing_plugin_fails_only_its_cells(plugin_site, tiny_config, tmp_path):
    install_fake_plugin(plugin_site, "arena-flaky", RAISES_AT_EPOCH_TIME)
    result = run_arena(
        "run",
        "--method",
        "flaky",
        "--config",
        str(tiny_config),
        "--results",
        str(tmp_path / "res"),
        "--device",
        "cpu",
    )
    assert result.returncode == 1
    assert "2 cell(s) failed" in result.stderr.strip().splitlines()[-1]
    frame, _ = load_results(tmp_path / "res")
    by_method = frame.groupby("method").status.agg(set).to_dict()
    assert by_method == {"flaky": {"failed"}, "vanilla": {"ok"}, "cutmix": {"ok"}}
    assert frame[frame.method == "flaky"].error.str.contains("flaky mask exploded").all()
    assert "Traceback" not in result.stderr


def test_a_plugin_returning_bad_masks_fails_its_cells_with_the_rule(tiny, tmp_path):
    from msda_arena.api.contract import MaskMethod

    cfg, prof = tiny

    class Overshoot(MaskMethod):
        name = "overshoot"

        def masks(self, lam, height, width, generator):
            return torch.full((lam.shape[0], 1, height, width), 2.0)

    ex = LocalExecutor(RunSettings(cfg, prof, tmp_path / "res"))
    cell = build_cells(cfg, prof, ["vanilla"])[0]
    from msda_arena.execute import worker  # the worker resolves methods through get_method

    real = worker.get_method
    worker.get_method = lambda spec: Overshoot()
    try:
        record = ex.run_cell(cell)
    finally:
        worker.get_method = real
    assert record.status == "failed"
    assert "rule 'range'" in record.error
    assert read_result(cell_path(tmp_path / "res", cell.dataset, cell.key))["status"] == "failed"


def test_ctrl_c_leaves_no_partial_file_and_keeps_finished_cells(tiny, tmp_path):
    cfg, prof = tiny
    cells = build_cells(cfg, prof, ["mixup"], baselines=["vanilla"])

    class InterruptSecondCell(Reporter):
        started = 0

        def cell_start(self, cell, epochs):
            InterruptSecondCell.started += 1

        def epoch(self, cell, event):
            if InterruptSecondCell.started == 2:
                os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C

    with pytest.raises(KeyboardInterrupt), interrupts.watching():
        LocalExecutor(RunSettings(cfg, prof, tmp_path / "res")).run(cells, InterruptSecondCell())
    files = sorted(p.name for p in (tmp_path / "res").rglob("*") if p.is_file())
    assert files == [f"{cells[0].key}.parquet"]  # no temp file, no partial second cell


def test_cli_dry_run_lists_cells_and_what_is_stored(tiny_config, tmp_path):
    res = tmp_path / "res"
    args = [
        "run",
        "--method",
        "mixup",
        "--config",
        str(tiny_config),
        "--results",
        str(res),
        "--device",
        "cpu",
    ]
    dry = run_arena(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "6 of 6 cells would run" in dry.stdout
    assert not res.exists()
    first = run_arena(*args, "--scenario", "small-crop", "--no-baselines", "--save-checkpoints")
    assert first.returncode == 0, first.stderr
    ckpts = list(res.rglob("*.safetensors"))
    assert len(ckpts) == 1
    from safetensors.torch import load_file

    assert any(k.endswith("weight") for k in load_file(ckpts[0]))
    again = run_arena(*args, "--dry-run")
    assert "5 of 6 cells would run" in again.stdout
    assert again.stdout.count("skip") == 1


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--arch", "resnet9000"], "unknown architecture 'resnet9000'"),
        (["--profile", "huge"], "unknown profile 'huge'"),
        (["--scenario", "standard"], "unknown scenario 'standard'"),
        (["--seeds", "x"], "--seeds"),
        (
            ["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "tpu"],
            "--device",
        ),
    ],
)
def test_cli_bad_input_is_one_line(tiny_config, tmp_path, extra, fragment):
    result = run_arena(
        "run",
        "--method",
        "mixup",
        "--config",
        str(tiny_config),
        "--results",
        str(tmp_path / "r"),
        *extra,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("arena: error:") and fragment in result.stderr
    assert result.stderr.count("\n") == 1


def test_cli_unknown_method_and_malformed_config(tmp_path):
    bad = tmp_path / "arena.toml"
    bad.write_text(
        '[profiles.x]\ndataset = 3\narchs = ["a"]\nscenarios = []\nseeds = [0]\nrecipe = "r"\n'
    )
    result = run_arena("run", "--method", "mixup", "--config", str(bad))
    assert result.returncode == 2 and "'dataset' must be a str" in result.stderr
    result = run_arena("run", "--method", "mixupp", "--dry-run")
    assert result.returncode == 2 and "unknown method 'mixupp'" in result.stderr


def test_a_failed_forced_retrain_keeps_the_stored_result(tiny, tmp_path):
    from msda_arena.execute import worker

    cfg, prof = tiny
    cell = build_cells(cfg, prof, ["vanilla"])[0]
    ex = LocalExecutor(RunSettings(cfg, prof, tmp_path / "res", force=True))
    assert ex.run_cell(cell).status == "ok"
    before = read_result(cell_path(tmp_path / "res", cell.dataset, cell.key))

    def broken(spec):
        raise RuntimeError("transient failure")

    real, worker.get_method = worker.get_method, broken
    try:
        record = ex.run_cell(cell)
    finally:
        worker.get_method = real
    assert record.status == "failed" and "kept" in record.error
    after = read_result(cell_path(tmp_path / "res", cell.dataset, cell.key))
    assert after.keys() == before.keys()
    assert all(after[k] == v or (v != v and after[k] != after[k]) for k, v in before.items())


def test_profiles_sharing_a_dataset_never_share_files(tiny):
    from conftest import TINY_TOML

    from msda_arena.grid.config import parse_config

    copy = TINY_TOML[TINY_TOML.index("[profiles.tiny]") :].replace(
        "[profiles.tiny]", "[profiles.copy]"
    )
    cfg = parse_config(TINY_TOML + copy)
    a = build_cells(cfg, cfg.profiles["tiny"], ["mixup"])[0]
    b = build_cells(cfg, cfg.profiles["copy"], ["mixup"])[0]
    assert a.recipe_hash == b.recipe_hash and a.key != b.key


def test_a_cell_trains_on_an_imagefolder_tree_through_the_dataloader(tmp_path):
    from PIL import Image

    from msda_arena.data.crops import DEFAULT_SCENARIOS
    from msda_arena.grid.config import Recipe

    for split in ("train", "val"):
        for k, colour in enumerate(((200, 30, 30), (30, 30, 200))):
            folder = tmp_path / "tree" / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(8):
                Image.new("RGB", (20 + i, 18), colour).save(folder / f"{i}.png")
    data = load_dataset("imagenet100", tmp_path / "tree", image_size=16)
    recipe = Recipe(name="t", epochs=2, batch_size=4, lr=0.05, eval_batch_size=8)
    events = []
    result = train_cell(
        "resnet8_tiny_cifar",
        get_method("cutmix"),
        data,
        recipe,
        DEFAULT_SCENARIOS["small-crop"],
        seed=0,
        progress=events.append,
    )
    assert [e.images for e in events] == [16, 32]  # 16 training images, full batches
    assert 0.0 <= result.top1 <= 100.0 and result.epochs == 2


@pytest.mark.gpu
def test_a_cell_trains_on_cuda_with_bf16_and_channels_last(tiny):
    """The eager CUDA path (compiling is tested in test_gpu_path.py)."""
    import dataclasses

    cfg, prof = tiny
    data = data_of(prof).to("cuda")
    result = train_cell(
        "resnet8_cifar",
        get_method("gmix"),
        data,
        dataclasses.replace(cfg.recipes["tiny"], compile=False),
        cfg.scenarios["large-crop"],
        seed=0,
        device="cuda",
    )
    assert 0.0 <= result.top1 <= 100.0 and result.peak_mem_mb > 0
    assert "cpu" not in result.device_name and result.notes == ""


def test_ctrl_c_on_the_command_stops_cleanly_and_resume_finishes(tiny_config, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    res = tmp_path / "res"
    args = [sys.executable, "-m", "msda_arena.cli.main", "run", "--method", "mixup",
            "--config", str(tiny_config), "--results", str(res), "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(res.glob("procedural/*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; every finished cell is stored" in err and "Traceback" not in err
    stored = list(res.glob("procedural/*.parquet"))
    assert 1 <= len(stored) < 6
    assert not [p for p in res.rglob("*") if p.name.startswith(".") and p.suffix == ".tmp"]
    resumed = run_arena(*args[3:])
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(stored)} of 6 cells already stored: skipped" in resumed.stderr
    assert len(list(res.glob("procedural/*.parquet"))) == 6


def test_missing_data_stops_before_training_with_one_line(tmp_path):
    where = ["--data-root", str(tmp_path / "nowhere"), "--results", str(tmp_path / "r")]
    result = run_arena(
        "run", "--method", "mixup", "--profile", "imagenet100", "--device", "cpu", *where
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("arena: error: imagenet100: no train/ folder") and "--profile quick" in last
    )
    assert "eta" not in result.stderr and not (tmp_path / "r").exists()  # no progress display
