"""The loggers of :data:`msda_arena.track.TRACKERS`: one function per tracker that logs a
:class:`~msda_arena.track.CellRun` and raises on any failure (the caller warns).

Each tracker library is an optional dependency (an extra of msda-arena), so each is
imported inside its function; each writes where it does by default:

* MLflow: its default local store in the working directory (``mlflow.db`` in MLflow 3,
  ``mlruns/`` before), no server needed, unless ``MLFLOW_TRACKING_URI`` names another;
  experiment ``msda-arena`` unless ``MLFLOW_EXPERIMENT_NAME`` says otherwise.
* TensorBoard: ``runs/<key>/`` in the working directory (torch's ``SummaryWriter``
  default folder, one subfolder per cell); ``tensorboard --logdir runs``.
* W&B: project ``msda-arena`` unless ``WANDB_PROJECT`` says otherwise; ``WANDB_MODE``
  (``offline``: ``./wandb/offline-run-*``, synced later with ``wandb sync``) and
  ``WANDB_DIR`` are W&B's own. Online without an API key it fails (one warning) rather
  than ask for one: a prompt would stop the grid.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from msda_arena.track import CellRun

__all__ = ["log_mlflow", "log_tensorboard", "log_wandb", "prepare_mlflow"]

#: MLflow's limits per log_batch call.
_MLFLOW_METRICS, _MLFLOW_PARAMS = 1000, 100


def _mlflow_experiment(client: Any, experiment: str) -> str:
    """The id of the run's MLflow experiment, created if need be."""
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another process created it meanwhile
        return client.get_experiment_by_name(name).experiment_id


def prepare_mlflow(experiment: str) -> None:
    """Create MLflow's store and the experiment once, before workers log to it (two
    processes creating the default SQLite store at once collide)."""
    # optional dependency (the mlflow extra): imported only when asked for
    from mlflow.tracking import MlflowClient

    _mlflow_experiment(MlflowClient(), experiment)


def log_mlflow(run: CellRun) -> None:
    """One MLflow run: params, tags, the curve per epoch and the final metrics."""
    # optional dependency (the mlflow extra): imported only when a cell is logged
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    created = client.create_run(_mlflow_experiment(client, run.experiment), run_name=run.name)
    run_id = created.info.run_id
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"curve/{series}", value, now, epoch)
        for series, points in run.curve.items()
        for epoch, value in points
    ]
    last = max((e for points in run.curve.values() for e, _ in points), default=0)
    metrics += [Metric(key, value, now, last) for key, value in run.metrics.items()]
    params = [Param(k, v[:6000]) for k, v in run.params.items()]
    tags = [RunTag(k, v) for k, v in run.tags.items()]
    client.log_batch(run_id, params=params[:_MLFLOW_PARAMS], tags=tags)
    for i in range(_MLFLOW_PARAMS, len(params), _MLFLOW_PARAMS):
        client.log_batch(run_id, params=params[i : i + _MLFLOW_PARAMS])
    for i in range(0, len(metrics), _MLFLOW_METRICS):
        client.log_batch(run_id, metrics=metrics[i : i + _MLFLOW_METRICS])
    client.set_terminated(run_id, status="FINISHED" if run.ok else "FAILED")


def log_tensorboard(run: CellRun) -> None:
    """Event files in ``runs/<key>/``: the curve per epoch, the final metrics at the
    last epoch, the parameters as hyperparameters and the tags as text."""
    # optional dependency (the tensorboard extra): torch's writer needs the package
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(Path("runs") / run.name)) as writer:
        for series, points in run.curve.items():
            for epoch, value in points:
                writer.add_scalar(f"curve/{series}", value, epoch)
        last = max((e for points in run.curve.values() for e, _ in points), default=0)
        for key, value in run.metrics.items():
            writer.add_scalar(key, value, last)
        for key, value in run.tags.items():
            writer.add_text(key, value)
        writer.add_text("params", "\n".join(f"    {k}: {v}" for k, v in run.params.items()))


def log_wandb(run: CellRun) -> None:
    """One W&B run: the parameters as config, the curve per epoch (step = epoch), the
    final metrics and the error in the summary, the status as a tag."""
    # optional dependency (the wandb extra): imported only when a cell is logged
    import wandb

    mode = os.environ.get("WANDB_MODE") or wandb.setup().settings.mode
    # online without a key, wandb.init would stop the grid at an interactive prompt
    if mode in ("online", "shared", "run") and not wandb.login(prompt=False, verify=False):
        raise RuntimeError("no W&B API key here: run `wandb login` once, or set WANDB_MODE=offline")
    project = os.environ.get("WANDB_PROJECT") or run.experiment
    active = wandb.init(
        project=project,
        name=run.name,
        config=run.params,
        tags=[run.tags["status"]],
        notes=run.tags.get("error"),
        reinit="create_new",
        settings=wandb.Settings(console="off", silent=True),
    )
    try:
        epochs = sorted({e for points in run.curve.values() for e, _ in points})
        for epoch in epochs:
            values = {
                f"curve/{series}": v for series, points in run.curve.items() for e, v in points
                if e == epoch
            }  # fmt: skip
            active.log({**values, "epoch": epoch}, step=epoch)
        active.summary.update({**run.metrics, **run.tags})
    finally:
        active.finish(exit_code=0 if run.ok else 1)
