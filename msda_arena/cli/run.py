"""``arena run``: benchmark a method across a profile's grid.

The command line's own values are checked first, before anything heavy loads, so a bad
argument is one line at once; arena.toml, the registry and the executors (torch, timm)
load inside the command after that. The report and the store import nothing heavy and
are imported at the top."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import typer

from msda_arena.api.errors import ArenaError, UsageError
from msda_arena.cli._options import resolve_device
from msda_arena.execute.options import OPTION_NAMES, check_options
from msda_arena.track import check_trackers, tracker_help


def run(  # over 80 lines: its signature is the command line (30 options); the body is short
    ctx: typer.Context,
    method: list[str] = typer.Option(
        ..., "--method", "-m", help="Method spec to benchmark, e.g. 'hmix(r=0.25)'. Repeatable."
    ),
    profile: str = typer.Option(
        None,
        "--profile",
        "-p",
        help="Profile in arena.toml (default: cifar100 on a GPU, quick on a CPU).",
    ),
    arch: list[str] = typer.Option(
        None, "--arch", help="Only these architectures (timm names). Repeatable."
    ),
    scenario: list[str] = typer.Option(
        None, "--scenario", help="Only these crop scenarios. Repeatable."
    ),
    seeds: str = typer.Option(
        None, "--seeds", help="Seeds, e.g. 0,1,2 or 0-4 (default: the profile's)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    results: Path = typer.Option(
        None, "--results", help="Result store (default: arena.toml's, ./results)."
    ),
    data_root: str = typer.Option(
        None, "--data-root", help="Where the dataset lives (default: the profile's)."
    ),
    config: Path = typer.Option(
        None, "--config", help="arena.toml to use (default: ./arena.toml, else the embedded one)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List the cells and what is stored; train nothing."
    ),
    force: bool = typer.Option(False, "--force", help="Retrain cells that are already stored."),
    no_baselines: bool = typer.Option(
        False, "--no-baselines", help="Skip the profile's baseline methods."
    ),
    save_checkpoints: bool = typer.Option(
        False, "--save-checkpoints", help="Keep trained weights (safetensors) beside the results."
    ),
    skip_check: bool = typer.Option(
        False,
        "--skip-check",
        help="Train methods that fail the cheap conformance rules (default: failed records).",
    ),
    cell_timeout: float = typer.Option(
        None,
        "--cell-timeout",
        help="Seconds a cell may train (its conformance check: at most 120 s) before it is "
        "stopped and stored as failed; 0: no limit. Default: from the recipe, 2 s per "
        "training step (epochs x steps per epoch; 20 min per epoch where arena.toml does "
        "not give the training set's size), at least 30 min.",
    ),
    threads: int = typer.Option(
        None,
        "--threads",
        help="Torch threads per cell, under every executor (default: the recipe's, 1); "
        "part of the recipe, so results with another count are new cells.",
    ),
    deterministic: bool = typer.Option(
        False,
        "--deterministic",
        help="Torch's deterministic algorithms (on CUDA, cuDNN's too; slower); part of the recipe.",
    ),
    executor_kind: str = typer.Option(
        "local", "--executor", "-x", help="Where cells run: local, ray or slurm."
    ),
    gpus: str = typer.Option(
        None, "--gpus", help="local: CUDA devices to use, e.g. 0,1 (default: all visible)."
    ),
    cells_per_gpu: int = typer.Option(
        1, "--cells-per-gpu", help="local and ray: cells trained at once on one GPU."
    ),
    workers: int = typer.Option(
        1, "--workers", help="local on a CPU: worker processes (cells at once)."
    ),
    ray_address: str = typer.Option(
        None, "--ray-address", help="ray: join this cluster (default: start a local one)."
    ),
    slurm_partition: str = typer.Option(None, "--slurm-partition", help="slurm: partition."),
    slurm_time: int = typer.Option(
        60, "--slurm-time", help="slurm: time limit of each cell's job, in minutes."
    ),
    slurm_gpus: int = typer.Option(1, "--slurm-gpus", help="slurm: GPUs per cell's job."),
    slurm_max_parallel: int = typer.Option(
        0, "--slurm-max-parallel", help="slurm: most array elements running at once (0: no cap)."
    ),
    slurm_extra: list[str] = typer.Option(
        None, "--slurm-extra", help="slurm: extra sbatch setting KEY=VALUE. Repeatable."
    ),
    wait: bool = typer.Option(
        False, "--wait", help="slurm: follow the jobs until every cell is stored."
    ),
    tracker: list[str] = typer.Option(
        None,
        "--tracker",
        help=f"Also log each cell to this experiment tracker: {tracker_help()}. Repeatable; "
        "each needs the msda-arena extra of its name; a missing one warns and is skipped.",
    ),
) -> None:
    """Train a method and the missing baselines across the grid; one parquet file per cell."""
    given = {
        name: ctx.params[name]
        for name in OPTION_NAMES
        if ctx.get_parameter_source(name).name != "DEFAULT"  # given, not typer's default
    }
    check_options(executor_kind, given)  # one line at once, before torch loads
    _check_limits(cell_timeout, threads)
    trackers = check_trackers(tracker or ())
    from msda_arena.execute.plan import plan_run  # torch, timm

    executor, cells = plan_run(
        method,
        resolve_device(device),
        config,
        profile,
        tuple(arch) if arch else None,
        tuple(scenario) if scenario else None,
        seeds,
        results,
        baselines=not no_baselines,
        dry_run=dry_run,
        executor=executor_kind,
        skip_check=skip_check,
        settings=dict(
            force=force,
            data_root=data_root,
            save_checkpoints=save_checkpoints,
            cell_timeout_s=cell_timeout,
            trackers=trackers,
        ),
        recipe=dict(threads=threads, deterministic=deterministic or None),
        **given,
    )
    settings, root = executor.settings, executor.results
    prof = settings.profile
    print(
        f"profile {prof.name} ({prof.dataset}, recipe {prof.recipe}) on {settings.device}: "
        f"{len(cells)} cells, results in {root} ({executor_kind} executor)",
        file=sys.stderr,
    )
    if dry_run:
        _print_plan(executor.pending(cells), force)
        return
    summary = _run(executor, cells)
    if summary.submitted:
        print(summary.submitted, file=sys.stderr)
        _fail_if_failed(summary.failed, " before submission; the others were submitted")
        return
    print(
        f"{len(summary.done)} trained, {len(summary.skipped)} already stored, "
        f"{len(summary.failed)} failed",
        file=sys.stderr,
    )
    from msda_arena.report import leaderboard_after_run  # start-up: --help need not load it

    methods = list(dict.fromkeys(cell.method for cell in cells))  # asked for, then baselines
    leaderboard_after_run(root, prof.name, methods, methods[0])
    _fail_if_failed(summary.failed, "; fix the cause and rerun the same command")


def _check_limits(cell_timeout: float | None, threads: int | None) -> None:
    if cell_timeout is not None and not (math.isfinite(cell_timeout) and cell_timeout >= 0):
        raise UsageError(f"--cell-timeout {cell_timeout}: give seconds >= 0 (0: no limit)")
    if threads is not None and not 1 <= threads <= 1024:
        raise UsageError(f"--threads {threads}: must be between 1 and 1024")


def _run(executor: Any, cells: list) -> Any:
    """Run the grid with the progress display; Ctrl-C exits 130 saying how to resume."""
    from msda_arena.cli.progress import make_reporter  # imports the executors (torch)
    from msda_arena.train import interrupts

    with make_reporter() as reporter, interrupts.watching():
        try:
            return executor.run(cells, reporter)
        except KeyboardInterrupt:
            reporter.stop()
            print(
                "arena: interrupted; every finished cell is stored. "
                "Run the same command to resume.",
                file=sys.stderr,
            )
            raise typer.Exit(130) from None


def _fail_if_failed(failed: list, tail: str) -> None:
    """List the failed cells on stderr and exit 1 with one line, if there are any."""
    if not failed:
        return
    for cell, error in failed:
        print(f"  failed: {cell.label()}: {error}", file=sys.stderr)
    raise ArenaError(f"{len(failed)} cell(s) failed (listed above, stored as failed records){tail}")


def _print_plan(plan: list, force: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Grid cells", title_justify="left")
    for col in ("method", "arch", "scenario", "seed", "stored", "action"):
        table.add_column(col)
    runs = 0
    for cell, status in plan:
        action = "run" if force or status != "ok" else "skip"
        runs += action == "run"
        table.add_row(cell.method, cell.arch, cell.scenario, str(cell.seed), status or "-", action)
    console = Console(highlight=False)
    console.print(table)
    if any(status == "stale" for _, status in plan):
        console.print("stale: the method's code or version changed since that result; it reruns")
    console.print(f"{runs} of {len(plan)} cells would run")
