"""The local executor's worker pool: same results as serial, dead workers replaced."""

from __future__ import annotations

import pytest
from conftest import install_fake_plugin, run_arena

from msda_arena.api.errors import UsageError
from msda_arena.execute.local import LocalExecutor, slot_devices
from msda_arena.execute.options import LocalOptions
from msda_arena.execute.worker import RunSettings
from msda_arena.grid.cells import build_cells
from msda_arena.grid.config import load_config
from msda_arena.store.results import load_results

pytestmark = pytest.mark.slow


def _top1(root):
    frame, warnings = load_results(root)
    assert warnings == []
    return dict(zip(frame["key"], frame["top1"], strict=True))


def test_two_cpu_workers_give_the_same_results_as_serial(tiny_config, tmp_path):
    """Seen failing when each worker drew its own seeds: top-1 differed per cell."""
    cfg = load_config(tiny_config)
    prof = cfg.profiles["tiny"]
    cells = build_cells(cfg, prof, ["hmix"], baselines=["vanilla", "cutmix"])
    serial = LocalExecutor(RunSettings(cfg, prof, tmp_path / "serial")).run(cells)
    pool = LocalExecutor(RunSettings(cfg, prof, tmp_path / "pool"), workers=2).run(cells)
    assert len(serial.done) == len(pool.done) == len(cells) == 6
    assert _top1(tmp_path / "serial") == _top1(tmp_path / "pool")


def test_every_slot_trains_with_the_recipes_thread_count(tiny_config, tmp_path):
    """Seen before: the local executor trained with every core and pool workers with
    cores // workers threads, so one cell's numbers depended on --workers (issue 15);
    now each cell runs with its recipe's threads, recorded with the result."""
    cfg = load_config(tiny_config)
    prof = cfg.profiles["tiny"]
    cells = build_cells(cfg, prof, ["vanilla"], baselines=[])
    LocalExecutor(RunSettings(cfg, prof, tmp_path / "serial")).run(cells)
    LocalExecutor(RunSettings(cfg, prof, tmp_path / "pool"), workers=2).run(cells)
    for where in ("serial", "pool"):
        frame, _ = load_results(tmp_path / where)
        assert list(frame["threads"]) == [cfg.recipes[prof.recipe].threads] * 2 == [1, 1]
        assert all(name.endswith("1 threads)") for name in frame["device_name"])


KILLER = """
import multiprocessing, os, signal
from msda_arena import MaskMethod, hookimpl

class Killer(MaskMethod):
    # Dies (SIGKILL, like the out-of-memory killer) on its first batch in a pool worker.
    name = "killer"
    params = ()

    def masks(self, lam, height, width, generator):
        if multiprocessing.current_process().name.startswith("arena-worker"):
            os.kill(os.getpid(), signal.SIGKILL)
        return lam.view(-1, 1, 1, 1).expand(lam.shape[0], 1, height, width).clone()

@hookimpl
def register_mask_methods(register):
    register(Killer)
"""


def test_a_worker_killed_mid_cell_is_a_failed_record_and_its_slot_is_refilled(
    tiny_config, tmp_path, plugin_site
):
    """Seen failing with the guard removed: without the sentinel check the driver
    waited forever on the dead worker's pipe."""
    install_fake_plugin(plugin_site, "arena-killer", KILLER)
    res = tmp_path / "res"
    result = run_arena(
        "run", "--method", "killer", "--config", str(tiny_config), "--results", str(res),
        "--workers", "2", "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    frame, _ = load_results(res)
    by = frame.groupby("method")["status"].apply(list).to_dict()
    assert by["killer"] == ["failed", "failed"]  # both killer cells, one per worker death
    assert by["vanilla"] == ["ok", "ok"] and by["cutmix"] == ["ok", "ok"]  # slots refilled
    errors = frame[frame["method"] == "killer"]["error"].tolist()
    assert all("worker process died of SIGKILL" in e for e in errors), errors
    assert "2 cell(s) failed" in result.stderr
    assert not list(res.rglob("*.tmp")) and not list(res.rglob("*.claim"))


def test_slots_follow_the_options():
    assert slot_devices("cpu", LocalOptions()) == ["cpu"]
    assert slot_devices("cpu", LocalOptions(workers=3)) == ["cpu"] * 3
    assert LocalOptions(gpus="1,0,1").gpus == (1, 0)
    with pytest.raises(UsageError, match="--gpus needs CUDA"):
        slot_devices("cpu", LocalOptions(gpus=(0,)))
    with pytest.raises(UsageError, match="--workers 0: must be between 1 and 100000"):
        LocalOptions(workers=0)


def test_pool_workers_may_start_dataloader_processes(tmp_path):
    """An ImageFolder tree goes through a DataLoader with worker processes. Seen failing
    with daemon worker processes: every cell a failed record ("daemonic processes are
    not allowed to have children")."""
    from PIL import Image

    from msda_arena.grid.config import parse_config

    for split in ("train", "val"):
        for k, colour in enumerate(((200, 30, 30), (30, 30, 200))):
            folder = tmp_path / "tree" / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(8):
                Image.new("RGB", (20 + i, 18), colour).save(folder / f"{i}.png")
    cfg = parse_config(
        f"""
[defaults]
profile_gpu = "folder"
profile_cpu = "folder"
[scenarios.small-crop]
scale = [0.25, 0.5]
[recipes.t]
epochs = 1
batch_size = 4
lr = 0.05
eval_batch_size = 8
[profiles.folder]
dataset = "imagenet100"
data_root = "{tmp_path / "tree"}"
dataset_options = {{ image_size = 16 }}
archs = ["resnet8_tiny_cifar"]
scenarios = ["small-crop"]
seeds = [0]
recipe = "t"
"""
    )
    prof = cfg.profiles["folder"]
    cells = build_cells(cfg, prof, ["cutmix"], baselines=[])
    summary = LocalExecutor(RunSettings(cfg, prof, tmp_path / "res"), workers=2).run(cells)
    assert summary.failed == [] and len(summary.done) == 1  # trained in a pool worker
