"""``arena run``: benchmark a method across a profile's grid.

The command line's own values are checked first, before anything heavy loads, so a bad
argument is one line at once; arena.toml, the registry and the executors (torch, timm)
load inside the command after that. The report and the store import nothing heavy and
are imported at the top."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import typer

from msda_arena.api.errors import ArenaError, UsageError
from msda_arena.cli._options import resolve_device
from msda_arena.report import build_report, render
from msda_arena.store.results import check_writable, load_results


def run(
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
) -> None:
    """Train a mask method (and missing baselines) across the grid; one parquet file per cell."""
    options = _executor_options(
        gpus,
        cells_per_gpu,
        workers,
        ray_address,
        slurm_partition,
        slurm_time,
        slurm_gpus,
        slurm_max_parallel,
        slurm_extra or [],
        wait,
    )
    from msda_arena.execute.base import ExecutorOptions, create_executor
    from msda_arena.grid.cells import build_cells, parse_seeds, validate_archs
    from msda_arena.grid.config import load_config
    from msda_arena.methods.registry import get_method

    dev = resolve_device(device)
    cfg = load_config(config)
    prof = cfg.profile(profile, cuda=dev.startswith("cuda"))
    specs = [get_method(m).spec for m in method]
    baselines = [] if no_baselines else [get_method(b).spec for b in prof.baselines]
    archs = tuple(arch) if arch else None
    validate_archs(archs or prof.archs)
    cells = build_cells(
        cfg,
        prof,
        specs,
        archs=archs,
        scenarios=tuple(scenario) if scenario else None,
        seeds=parse_seeds(seeds) if seeds else None,
        baselines=baselines,
    )
    root = Path(results) if results else Path(cfg.results)
    if not dry_run:
        check_writable(root, create=False)
    executor = create_executor(
        executor_kind,
        cfg,
        prof,
        root,
        device=dev,
        data_root=data_root,
        save_checkpoints=save_checkpoints,
        force=force,
        skip_check=skip_check,
        options=ExecutorOptions(**options),
    )
    err = sys.stderr
    print(
        f"profile {prof.name} ({prof.dataset}, recipe {prof.recipe}) on {dev}: {len(cells)} cells, "
        f"results in {root} ({executor_kind} executor)",
        file=err,
    )

    if dry_run:
        _print_plan(executor.pending(cells), force)
        return

    from msda_arena.cli.progress import make_reporter  # imports the executors (torch)
    from msda_arena.train import interrupts

    with make_reporter() as reporter, interrupts.watching():
        try:
            summary = executor.run(cells, reporter)
        except KeyboardInterrupt:
            reporter.stop()
            print(
                "arena: interrupted; every finished cell is stored. "
                "Run the same command to resume.",
                file=err,
            )
            raise typer.Exit(130) from None
    if summary.submitted:
        print(summary.submitted, file=err)
        _fail_if_failed(summary.failed, " before submission; the others were submitted")
        return
    print(
        f"{len(summary.done)} trained, {len(summary.skipped)} already stored, "
        f"{len(summary.failed)} failed",
        file=err,
    )
    _leaderboard(root, prof.name, specs + baselines, specs[0])
    _fail_if_failed(summary.failed, "; fix the cause and rerun the same command")


def _fail_if_failed(failed: list, tail: str) -> None:
    """List the failed cells on stderr and exit 1 with one line, if there are any."""
    if not failed:
        return
    for cell, error in failed:
        print(f"  failed: {cell.label()}: {error}", file=sys.stderr)
    raise ArenaError(f"{len(failed)} cell(s) failed (listed above, stored as failed records){tail}")


def _executor_options(
    gpus: str | None,
    cells_per_gpu: int,
    workers: int,
    ray_address: str | None,
    slurm_partition: str | None,
    slurm_time: int,
    slurm_gpus: int,
    slurm_max_parallel: int,
    slurm_extra: list[str],
    wait: bool,
) -> dict[str, Any]:
    """The command line's executor options, checked (one-line errors), as the keyword
    arguments of :class:`~msda_arena.execute.base.ExecutorOptions`."""
    parsed_gpus = None
    if gpus is not None:
        if not re.fullmatch(r"[0-9]+(,[0-9]+)*", gpus.strip()):
            raise UsageError(f"--gpus {gpus!r}: write CUDA device indices like 0,1")
        parsed_gpus = tuple(dict.fromkeys(int(g) for g in gpus.split(",")))
    for name, value, low in (
        ("--cells-per-gpu", cells_per_gpu, 1),
        ("--workers", workers, 1),
        ("--slurm-time", slurm_time, 1),
        ("--slurm-gpus", slurm_gpus, 0),
        ("--slurm-max-parallel", slurm_max_parallel, 0),
    ):
        if value < low or value > 100_000:
            raise UsageError(f"{name} {value}: must be between {low} and 100000")
    extra = []
    for item in slurm_extra:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]*", key):
            raise UsageError(f"--slurm-extra {item!r}: write KEY=VALUE, e.g. account=myproject")
        extra.append((key, value))
    return dict(
        gpus=parsed_gpus,
        cells_per_gpu=cells_per_gpu,
        workers=workers,
        ray_address=ray_address,
        slurm_partition=slurm_partition,
        slurm_time_min=slurm_time,
        slurm_gpus=slurm_gpus,
        slurm_max_parallel=slurm_max_parallel,
        slurm_extra=tuple(extra),
        wait=wait,
    )


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
