"""``arena run``: benchmark a method across a profile's grid.

The command line's own values are checked first, before anything heavy loads, so a bad
argument is one line at once; arena.toml, the registry and the executors (torch, timm)
load inside the command after that. The report and the store import nothing heavy and
are imported at the top."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from msda_arena.api.errors import ArenaError, UsageError
from msda_arena.cli._options import resolve_device
from msda_arena.execute.options import check_options
from msda_arena.report import build_report, render
from msda_arena.store.results import load_results

Methods = Annotated[
    list[str],
    typer.Option(
        "--method", "-m", help="Method spec to benchmark, e.g. 'hmix(r=0.25)'. Repeatable."
    ),
]
ProfileName = Annotated[
    str,
    typer.Option(
        "--profile",
        "-p",
        help="Profile in arena.toml (default: cifar100 on a GPU, quick on a CPU).",
    ),
]
Archs = Annotated[
    list[str], typer.Option("--arch", help="Only these architectures (timm names). Repeatable.")
]
Scenarios = Annotated[
    list[str], typer.Option("--scenario", help="Only these crop scenarios. Repeatable.")
]
Seeds = Annotated[
    str, typer.Option("--seeds", help="Seeds, e.g. 0,1,2 or 0-4 (default: the profile's).")
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")]
Results = Annotated[
    Path, typer.Option("--results", help="Result store (default: arena.toml's, ./results).")
]
DataRoot = Annotated[
    str, typer.Option("--data-root", help="Where the dataset lives (default: the profile's).")
]
Config = Annotated[
    Path,
    typer.Option(
        "--config", help="arena.toml to use (default: ./arena.toml, else the embedded one)."
    ),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="List the cells and what is stored; train nothing.")
]
Force = Annotated[bool, typer.Option("--force", help="Retrain cells that are already stored.")]
NoBaselines = Annotated[
    bool, typer.Option("--no-baselines", help="Skip the profile's baseline methods.")
]
SaveCheckpoints = Annotated[
    bool,
    typer.Option(
        "--save-checkpoints", help="Keep trained weights (safetensors) beside the results."
    ),
]
SkipCheck = Annotated[
    bool,
    typer.Option(
        "--skip-check",
        help="Train methods that fail the cheap conformance rules (default: failed records).",
    ),
]
CellTimeout = Annotated[
    float,
    typer.Option(
        "--cell-timeout",
        help="Seconds a cell may train (its conformance check: at most 120 s) before it is "
        "stopped and stored as failed; 0: no limit. Default: from the recipe, 2 s per "
        "training step (epochs x steps per epoch; 20 min per epoch where arena.toml does "
        "not give the training set's size), at least 30 min.",
    ),
]
Threads = Annotated[
    int,
    typer.Option(
        "--threads", help="Torch threads per cell, under every executor (default: the arena's)."
    ),
]
ExecutorKind = Annotated[
    str, typer.Option("--executor", "-x", help="Where cells run: local, ray or slurm.")
]
Gpus = Annotated[
    str, typer.Option("--gpus", help="local: CUDA devices to use, e.g. 0,1 (default: all visible).")
]
CellsPerGpu = Annotated[
    int, typer.Option("--cells-per-gpu", help="local and ray: cells trained at once on one GPU.")
]
Workers = Annotated[
    int, typer.Option("--workers", help="local on a CPU: worker processes (cells at once).")
]
RayAddress = Annotated[
    str, typer.Option("--ray-address", help="ray: join this cluster (default: start a local one).")
]
SlurmPartition = Annotated[str, typer.Option("--slurm-partition", help="slurm: partition.")]
SlurmTime = Annotated[
    int, typer.Option("--slurm-time", help="slurm: time limit of each cell's job, in minutes.")
]
SlurmGpus = Annotated[int, typer.Option("--slurm-gpus", help="slurm: GPUs per cell's job.")]
SlurmMaxParallel = Annotated[
    int,
    typer.Option(
        "--slurm-max-parallel", help="slurm: most array elements running at once (0: no cap)."
    ),
]
SlurmExtra = Annotated[
    list[str],
    typer.Option("--slurm-extra", help="slurm: extra sbatch setting KEY=VALUE. Repeatable."),
]
Wait = Annotated[
    bool, typer.Option("--wait", help="slurm: follow the jobs until every cell is stored.")
]

#: The executor options among the parameters: handed to the chosen executor as given.
EXECUTOR_OPTIONS = (
    "gpus", "cells_per_gpu", "workers", "ray_address", "slurm_partition", "slurm_time",
    "slurm_gpus", "slurm_max_parallel", "slurm_extra", "wait",
)  # fmt: skip


def run(
    ctx: typer.Context,
    method: Methods,
    profile: ProfileName = None,
    arch: Archs = None,
    scenario: Scenarios = None,
    seeds: Seeds = None,
    device: Device = "auto",
    results: Results = None,
    data_root: DataRoot = None,
    config: Config = None,
    dry_run: DryRun = False,
    force: Force = False,
    no_baselines: NoBaselines = False,
    save_checkpoints: SaveCheckpoints = False,
    skip_check: SkipCheck = False,
    cell_timeout: CellTimeout = None,
    threads: Threads = None,
    executor_kind: ExecutorKind = "local",
    gpus: Gpus = None,
    cells_per_gpu: CellsPerGpu = 1,
    workers: Workers = 1,
    ray_address: RayAddress = None,
    slurm_partition: SlurmPartition = None,
    slurm_time: SlurmTime = 60,
    slurm_gpus: SlurmGpus = 1,
    slurm_max_parallel: SlurmMaxParallel = 0,
    slurm_extra: SlurmExtra = None,
    wait: Wait = False,
) -> None:
    """Train a mask method (and missing baselines) across the grid; one parquet file per cell."""
    given = {
        name: ctx.params[name]
        for name in EXECUTOR_OPTIONS
        if ctx.get_parameter_source(name).name != "DEFAULT"  # given, not typer's default
    }
    check_options(executor_kind, given)  # one line at once, before torch loads
    _check_limits(cell_timeout, threads)
    from msda_arena.execute.plan import plan_run  # torch, timm

    grid = plan_run(
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
            threads=threads,
        ),
        **given,
    )
    print(grid.describe(), file=sys.stderr)
    if dry_run:
        _print_plan(grid.pending(), force)
        return
    summary = _run(grid)
    if summary.submitted:
        print(summary.submitted, file=sys.stderr)
        _fail_if_failed(summary.failed, " before submission; the others were submitted")
        return
    print(
        f"{len(summary.done)} trained, {len(summary.skipped)} already stored, "
        f"{len(summary.failed)} failed",
        file=sys.stderr,
    )
    _leaderboard(grid.executor.results, grid.profile.name, grid.methods, grid.methods[0])
    _fail_if_failed(summary.failed, "; fix the cause and rerun the same command")


def _check_limits(cell_timeout: float | None, threads: int | None) -> None:
    if cell_timeout is not None and not (math.isfinite(cell_timeout) and cell_timeout >= 0):
        raise UsageError(f"--cell-timeout {cell_timeout}: give seconds >= 0 (0: no limit)")
    if threads is not None and not 1 <= threads <= 1024:
        raise UsageError(f"--threads {threads}: must be between 1 and 1024")


def _run(grid: Any) -> Any:
    """Run the grid with the progress display; Ctrl-C exits 130 saying how to resume."""
    from msda_arena.cli.progress import make_reporter  # imports the executors (torch)
    from msda_arena.train import interrupts

    with make_reporter() as reporter, interrupts.watching():
        try:
            return grid.run(reporter)
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


def _leaderboard(root: Path, profile: str, methods: list[str], compare: str) -> None:
    """Print the leaderboard of what is stored (stdout), or say how to get it."""
    hint = f"arena report --profile {profile} --results {root}"
    try:
        frame, warnings = load_results(root)
        rep = build_report(
            frame, profile=profile, methods=methods, compare=compare, warnings=warnings
        )
        sys.stdout.write(render(rep, "table", color=sys.stdout.isatty()))
        sys.stdout.flush()
    except Exception as exc:  # the run's results are stored whatever the report does
        print(
            f"arena: could not render the leaderboard ({type(exc).__name__}: {exc}); run `{hint}`",
            file=sys.stderr,
        )
    else:
        print(f"More: {hint} --format html --out leaderboard.html --plots plots/", file=sys.stderr)
