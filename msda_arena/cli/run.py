"""``arena run``: benchmark a mask method across a profile's grid."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from msda_arena.cli._options import resolve_device
from msda_arena.errors import ArenaError


class _RichReporter:
    """Progress on stderr: overall cells with ETA, and the current cell's epochs."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True, highlight=False)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.cells_task: Any = None
        self.epoch_task: Any = None

    def __enter__(self) -> _RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, total: int, to_run: int) -> None:
        self.cells_task = self.progress.add_task("cells", total=max(to_run, 1) if to_run else 0)
        self.epoch_task = self.progress.add_task("", total=1, visible=False)
        if total - to_run:
            self.console.print(f"{total - to_run} of {total} cells already stored: skipped")

    def cell_start(self, cell: Any, epochs: int) -> None:
        self.progress.reset(
            self.epoch_task, total=epochs, visible=True, description=f"  {cell.label()}"
        )

    def epoch(self, cell: Any, event: Any) -> None:
        self.progress.update(
            self.epoch_task,
            completed=event.epoch,
            description=f"  {cell.label()} | loss {event.train_loss:.3f}",
        )

    def cell_end(self, cell: Any, record: Any) -> None:
        self.progress.advance(self.cells_task)
        if record.status == "ok":
            self.console.print(
                f"[green]done[/]   {cell.label()}: top-1 {record.top1:.2f}% "
                f"({record.wall_time_s:.1f} s, {record.images_per_s:.0f} img/s)"
            )
        else:
            self.console.print(f"[red]FAILED[/] {cell.label()}: {record.error}")

    def skip(self, cell: Any, status: str) -> None:
        pass

    def note(self, message: str) -> None:
        self.console.print(message)


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
) -> None:
    """Train a mask method (and missing baselines) across the grid; one parquet file per cell."""
    from msda_arena import get_method
    from msda_arena.config import load_config
    from msda_arena.executors import LocalExecutor
    from msda_arena.grid import build_cells, parse_seeds, validate_archs

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
        from msda_arena.store import check_writable

        check_writable(root, create=False)
    executor = LocalExecutor(
        cfg,
        prof,
        root,
        device=dev,
        data_root=data_root,
        save_checkpoints=save_checkpoints,
        force=force,
        skip_check=skip_check,
    )
    err = sys.stderr
    print(
        f"profile {prof.name} ({prof.dataset}, recipe {prof.recipe}) on {dev}: {len(cells)} cells, "
        f"results in {root}",
        file=err,
    )

    if dry_run:
        _print_plan(executor.pending(cells), force)
        return

    from msda_arena import interrupts

    with _RichReporter() as reporter, interrupts.watching():
        try:
            summary = executor.run(cells, reporter)
        except KeyboardInterrupt:
            reporter.progress.stop()
            print(
                "arena: interrupted; every finished cell is stored. "
                "Run the same command to resume.",
                file=err,
            )
            raise typer.Exit(130) from None
    print(
        f"{len(summary.done)} trained, {len(summary.skipped)} already stored, "
        f"{len(summary.failed)} failed",
        file=err,
    )
    _leaderboard(root, prof.name, specs + baselines, specs[0])
    if summary.failed:
        for cell, error in summary.failed:
            print(f"  failed: {cell.label()}: {error}", file=err)
        raise ArenaError(
            f"{len(summary.failed)} cell(s) failed (listed above, stored as failed records); "
            "fix the cause and rerun the same command"
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
        from msda_arena.report import build_report, render
        from msda_arena.store import load_results

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
