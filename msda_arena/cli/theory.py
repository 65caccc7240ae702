"""``arena fingerprint`` and ``arena gradients``: the theory lens of Park et al. (2022).

``fingerprint`` measures what a mask distribution regularises (pair-weight profile,
locality, coverage, lambda calibration; :mod:`msda_arena.theory.fingerprint`); ``gradients``
draws the input-gradient pair statistic of trained cells (Figure 4;
:mod:`msda_arena.theory.gradients`).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import typer

from msda_arena.api.errors import ArenaError, UsageError
from msda_arena.cli._options import resolve_device

_PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _num(value: float, fmt: str = ".3f") -> str:
    if not math.isfinite(value):
        return "-"
    text = format(value, fmt)
    return text.replace("-", "", 1) if float(text) == 0.0 and "-" in text else text


def _console():
    """stdout console; as wide as the tables need when stdout is not a terminal."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=140)
    return console


def _check_format(fmt: str) -> str:
    if fmt not in ("table", "json"):
        raise UsageError(f"--format {fmt!r}: use table or json")
    return fmt


def _check_plot_path(path: Path, option: str) -> None:
    if path.suffix.lower() not in _PLOT_SUFFIXES:
        raise UsageError(f"{option} {path}: use a .png, .pdf, .svg or .jpg file name")


def fingerprint(
    method: list[str] = typer.Option(
        ..., "--method", "-m", help="Method spec, e.g. 'hmix(r=0.25)'. Repeatable."
    ),
    size: tuple[int, int] = typer.Option((32, 32), "--size", help="Mask height and width (px)."),
    samples: int = typer.Option(
        None, "--samples", "-n", help="Masks to draw (default: 4096 at 32 px, 256 at 224 px)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the lambdas and masks."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json (to stdout)."),
    plot: Path = typer.Option(
        None, "--plot", help="Also draw the profiles and coverage maps to this image file."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda[:N] or auto."),
) -> None:
    """Fingerprint mask methods by Monte Carlo: the pair weights E[(1-M_p)(1-M_q)] against
    distance, a locality index, the coverage map and the lambda calibration."""
    _check_format(fmt)
    h, w = size
    if not (2 <= h <= 4096 and 2 <= w <= 4096):
        raise UsageError(f"--size {h} {w}: both sides must be between 2 and 4096")
    if samples is not None and not 1 <= samples <= 10_000_000:
        raise UsageError(f"--samples {samples}: must be between 1 and 10000000")
    if plot is not None:
        _check_plot_path(plot, "--plot")
    from msda_arena.methods.registry import get_method  # torch: loaded after the checks
    from msda_arena.theory.fingerprint import default_samples, plot_fingerprints
    from msda_arena.theory.fingerprint import fingerprint as measure

    dev = resolve_device(device)
    instances = [get_method(m) for m in method]
    n = samples if samples is not None else default_samples((h, w))
    fps = []
    for inst in instances:
        try:
            fps.append(measure(inst, size=(h, w), samples=n, seed=seed, device=dev))
        except ValueError as exc:
            raise UsageError(f"--method {inst.spec}: {exc}") from None
        except ArenaError:
            raise
        except Exception as exc:  # the method's own code failed
            text = str(exc).strip().splitlines()
            raise UsageError(
                f"--method {inst.spec}: its masks could not be drawn "
                f"({type(exc).__name__}: {text[0] if text else ''}); see `arena check`"
            ) from None
    if fmt == "json":
        json.dump([fp.to_dict() for fp in fps], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _fingerprint_table(fps)
    if plot is not None:
        print(f"wrote {plot_fingerprints(fps, plot)}", file=sys.stderr)


def _fingerprint_table(fps: list) -> None:
    from rich.table import Table

    first = fps[0]
    lo, hi = first.far_band
    table = Table(
        title=f"Mask fingerprints at {first.size[0]}x{first.size[1]} px, "
        f"{first.samples} masks each (seed {first.seed})",
        title_justify="left",
    )
    table.add_column("method")
    for col in (
        "L",
        "scale",
        "P(0)",
        "P(1)",
        "P(far)",
        "cov max/min",
        "cov cv",
        "|w-λ|",
        "w-λ",
        "s",
    ):
        table.add_column(col, justify="right")
    for fp in fps:
        table.add_row(
            fp.method,
            _num(fp.locality),
            _num(fp.scale, ".1f"),
            _num(fp.profile[0]),
            _num(fp.profile[1]),
            _num(fp.far_level),
            _num(fp.coverage_max_min, ".2f") if math.isfinite(fp.coverage_max_min) else "inf",
            _num(fp.coverage_cv),
            _num(fp.calibration_mae, ".4f"),
            _num(fp.calibration_bias, ".4f"),
            _num(fp.seconds, ".2f"),
        )
    console = _console()
    console.print(table)
    console.print(
        "P(r): mean pair weight E[(1-M_p)(1-M_q)] of pixel pairs at distance r (px), over "
        f"E[(1-mean M)^2] (Mixup: 1 at every r); P(far): over {lo:g} <= r <= {hi:g}. "
        "L = 1 - P(far)/P(1): 0 ignores distance, 1 weighs only near pairs. "
        "scale: px where P - P(far) halves. cov: coverage E[1-M](p) over pixels, "
        "cv = std/mean. w = mean(M), the label weight used; s: seconds."
    )


def gradients(
    results: Path = typer.Option(
        ..., "--results", help="Result store with cells trained with --save-checkpoints."
    ),
    method: list[str] = typer.Option(
        None, "--method", "-m", help="Only these methods (specs). Repeatable; default all."
    ),
    profile: str = typer.Option(None, "--profile", "-p", help="Only cells of this profile."),
    arch: str = typer.Option(None, "--arch", help="Only cells of this architecture."),
    scenario: str = typer.Option(None, "--scenario", help="Only cells of this crop scenario."),
    out: Path = typer.Option(Path("gradients.png"), "--out", "-o", help="Image file to write."),
    samples: int = typer.Option(256, "--samples", "-n", help="Test inputs per cell."),
    window: int = typer.Option(8, "--window", help="Largest offset shown, in pixels."),
    config: Path = typer.Option(
        None, "--config", help="arena.toml the cells were trained with (default: ./arena.toml)."
    ),
    data_root: str = typer.Option(
        None, "--data-root", help="Where the dataset lives (default: the profile's)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    fmt: str = typer.Option("table", "--format", "-f", help="Summary as table or json."),
) -> None:
    """Figure 4 of Park et al.: the max over test inputs and positions of |g_v g_(v+p)|,
    g the input-gradient magnitude, per offset p, for each trained method."""
    from msda_arena.theory.gradients import gradient_maps, plot_gradient_maps

    _check_format(fmt)
    _check_plot_path(out, "--out")
    if not 1 <= samples <= 1_000_000:
        raise UsageError(f"--samples {samples}: must be between 1 and 1000000")
    if not 1 <= window <= 256:
        raise UsageError(f"--window {window}: must be between 1 and 256")
    if not results.is_dir():
        raise UsageError(f"--results {results}: no such result store")
    dev = resolve_device(device)
    notes: list[str] = []
    maps = gradient_maps(
        results,
        methods=method or None,
        profile=profile,
        config=config,
        data_root=data_root,
        samples=samples,
        window=window,
        arch=arch,
        scenario=scenario,
        device=dev,
        notes=notes,
    )
    for note in notes:
        print(f"arena: warning: {note}", file=sys.stderr)
    path = plot_gradient_maps(maps, out)
    if fmt == "json":
        json.dump({"out": str(path), "maps": [m.to_dict() for m in maps]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _gradients_table(maps)
    print(f"wrote {path}", file=sys.stderr)


def _gradients_table(maps: list) -> None:
    from rich.table import Table

    w = maps[0].window
    table = Table(
        title="Input-gradient pair statistic (normalised; 1 at p = 0)", title_justify="left"
    )
    for col in ("method", "arch", "scenario", "cells", "inputs", "S(|p|=1)", f"S(|p|={w})"):
        table.add_column(col, justify="left" if col in ("method", "arch", "scenario") else "right")
    for m in maps:
        table.add_row(
            m.method,
            m.arch,
            m.scenario,
            str(len(m.keys)),
            str(m.inputs),
            _num(m.curve[1]) if len(m.curve) > 1 else "-",
            _num(m.curve[-1]),
        )
    _console().print(table)
