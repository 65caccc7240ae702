"""`arena run --tracker`: each cell a run of MLflow (its local store, no server), TensorBoard
(event files) and W&B (offline); a tracker that fails or is missing never fails a cell.
The cells run serially (a pool's start-up costs more than the rest of this file); the
pool's workers log through the same :func:`~msda_arena.execute.worker.run_cell`. Each
tracker's test skips where its package is not installed (the extras mlflow, tensorboard,
wandb)."""

from __future__ import annotations

import importlib.util
import os

import pytest
from conftest import TINY_TOML, run_arena

from msda_arena.api.errors import UsageError
from msda_arena.api.record import decode_curve
from msda_arena.execute.local import LocalExecutor
from msda_arena.execute.worker import RunSettings, failed_record
from msda_arena.grid.cells import build_cells
from msda_arena.grid.config import load_config
from msda_arena.store.results import load_results
from msda_arena.track import TRACKERS, Tracker, check_trackers, log_cell, prepare_trackers

pytestmark = pytest.mark.slow


def _needs(package):
    return pytest.mark.skipif(
        importlib.util.find_spec(package) is None, reason=f"needs {package} (its extra)"
    )


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """Two cells logged to every installed tracker, in a working directory of their own."""
    work = tmp_path_factory.mktemp("work")
    (work / "arena.toml").write_text(TINY_TOML)
    cfg = load_config(work / "arena.toml")
    prof = cfg.profiles["tiny"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "WANDB_DIR"):
            mp.delenv(name, raising=False)
        trackers = tuple(n for n, t in TRACKERS.items() if importlib.util.find_spec(t.package))
        settings = RunSettings(cfg, prof, work / "results", trackers=trackers)
        cells = build_cells(cfg, prof, ["mixup"], scenarios=("large-crop",), baselines=["vanilla"])
        summary = LocalExecutor(settings).run(cells)
    assert len(summary.done) == 2
    frame, _ = load_results(work / "results")
    return work, frame.set_index("key"), cfg, prof


@_needs("mlflow")
def test_mlflow_local_store_has_one_run_per_cell_with_its_epoch_history(tracked):
    from mlflow.tracking import MlflowClient

    work, frame, _, _ = tracked
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)  # the default store, in the working directory the run had
        client = MlflowClient()
        experiment = client.get_experiment_by_name("msda-arena")
        runs = client.search_runs([experiment.experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert sorted(by_name) == sorted(frame.index)  # one run per cell, named by its key
    for key, run in by_name.items():
        record = frame.loc[key]
        assert run.data.tags["status"] == "ok" and run.info.status == "FINISHED"
        assert run.data.params["method"] == record["method"]
        assert run.data.params["recipe.epochs"] == "2" and run.data.params["seed"] == "0"
        assert run.data.params["torch_version"] == record["torch_version"]
        assert run.data.metrics["final/top1"] == pytest.approx(record["top1"])
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(work)
            history = client.get_metric_history(run.info.run_id, "curve/train_loss")
        curve = decode_curve(record["curve"])
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == pytest.approx(curve["train_loss"])


@_needs("tensorboard")
def test_tensorboard_event_files_read_back_with_its_reader(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work, frame, _, _ = tracked
    assert sorted(p.name for p in (work / "runs").iterdir()) == sorted(frame.index)
    for key, record in frame.iterrows():
        events = EventAccumulator(str(work / "runs" / key))
        events.Reload()
        losses = events.Scalars("curve/train_loss")
        assert [e.step for e in losses] == [1, 2]
        assert [e.value for e in losses] == pytest.approx(
            decode_curve(record["curve"])["train_loss"]
        )
        assert events.Scalars("final/top1")[0].value == pytest.approx(record["top1"])
        assert [e.step for e in events.Scalars("curve/lr")] == [1, 2]


@_needs("wandb")
def test_wandb_offline_writes_a_run_folder_per_cell(tracked):
    work, frame, _, _ = tracked
    runs = sorted((work / "wandb").glob("offline-run-*"))
    assert len(runs) == len(frame)
    for run in runs:
        assert list(run.glob("*.wandb")), f"no run data in {run}"


@_needs("mlflow")
@_needs("tensorboard")
def test_trackers_that_fail_warn_once_and_leave_the_cell_ok(tmp_path, monkeypatch, capfd):
    (tmp_path / "arena.toml").write_text(TINY_TOML.replace("seeds = [0]", "seeds = [0, 1]"))
    cfg = load_config(tmp_path / "arena.toml")
    prof = cfg.profiles["tiny"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")  # fails to start
    (tmp_path / "runs").write_text("a file where TensorBoard's folder goes")  # fails to log
    settings = RunSettings(cfg, prof, tmp_path / "results", trackers=("mlflow", "tensorboard"))
    cells = build_cells(cfg, prof, ["vanilla"], scenarios=("large-crop",), baselines=[])
    summary = LocalExecutor(settings).run(cells)
    assert len(summary.done) == 2 and not summary.failed
    frame, _ = load_results(tmp_path / "results")
    assert list(frame["status"]) == ["ok", "ok"]
    err = capfd.readouterr().err.splitlines()
    mlflow = [line for line in err if line.startswith("arena: tracker mlflow failed to start")]
    board = [line for line in err if line.startswith("arena: tracker tensorboard failed logging")]
    assert len(mlflow) == 1 and len(board) == 1  # once each: not tried for the second cell
    assert board[0].endswith("not used again in this process, the results are stored")


@_needs("mlflow")
def test_a_failed_cell_is_a_failed_run_tagged_with_its_error(tracked, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    work, _, cfg, prof = tracked
    monkeypatch.chdir(work)  # the store the run made, an experiment of its own
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "failures")
    prepare_trackers(["mlflow"])  # as a run does first
    cell = build_cells(cfg, prof, ["mixup"], scenarios=("small-crop",), baselines=[])[0]
    settings = RunSettings(cfg, prof, tmp_path / "results")
    record = failed_record(cell, settings, "MethodError: the mask was upside down")
    log_cell(["mlflow"], record, settings.recipe)
    client = MlflowClient()
    experiment = client.get_experiment_by_name("failures")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == cell.key and run.info.status == "FAILED"
    assert run.data.tags["status"] == "failed"
    assert run.data.tags["error"] == "MethodError: the mask was upside down"


def test_a_missing_tracker_package_warns_in_one_line_and_is_skipped(monkeypatch, capfd):
    monkeypatch.setitem(
        TRACKERS, "absent", Tracker("absent", "no_such_tracker_pkg", "absent", "x:y")
    )
    assert check_trackers(["absent"]) == ()
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [
        "arena: --tracker absent: no_such_tracker_pkg is not installed; cells are not logged "
        'to it (pip install "msda-arena[absent]")'
    ]
    with pytest.raises(UsageError, match="--tracker 'mlfow': choose from mlflow, tensorboard"):
        check_trackers(["mlfow"])
    assert os.environ.get("WANDB_MODE") != "offline"  # the module fixture restored it


@_needs("tensorboard")
def test_arena_run_tracker_logs_each_cell_and_refuses_an_unknown_name(tmp_path):
    (tmp_path / "arena.toml").write_text(TINY_TOML)
    args = ["run", "-m", "vanilla", "--no-baselines", "--scenario", "large-crop"]
    args += ["--config", str(tmp_path / "arena.toml"), "--results", str(tmp_path / "results")]
    bad = run_arena(*args, "--tracker", "tensorbord", cwd=tmp_path)
    assert bad.returncode != 0
    assert "--tracker 'tensorbord': choose from mlflow, tensorboard, wandb" in bad.stderr
    assert not (tmp_path / "results").exists()  # refused before anything ran
    done = run_arena(*args, "--tracker", "tensorboard", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    frame, _ = load_results(tmp_path / "results")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == list(frame["key"])


@_needs("wandb")
def test_wandb_online_without_a_key_warns_instead_of_asking(tmp_path):
    (tmp_path / "arena.toml").write_text(TINY_TOML)
    args = ["run", "-m", "vanilla", "--no-baselines", "--scenario", "large-crop"]
    args += ["--config", str(tmp_path / "arena.toml"), "--results", str(tmp_path / "results")]
    env = {"HOME": str(tmp_path), "NETRC": str(tmp_path / "none"), "WANDB_MODE": "online"}
    env.update(WANDB_API_KEY="", WANDB_CONFIG_DIR=str(tmp_path / "cfg"))
    done = run_arena(*args, "--tracker", "wandb", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]  # the cell is stored ok
    assert "tracker wandb failed logging" in done.stderr
    assert "no W&B API key here: run `wandb login` once, or set WANDB_MODE=offline" in done.stderr
