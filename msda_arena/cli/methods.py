"""``arena methods``, ``arena plugins``, ``arena check`` and ``arena masks``: inspect
installed methods and the packages that provide them; ``arena new-plugin``: start one.

The registry (with the plugins, which may load torch), the conformance checks and the
gallery (torch) are imported inside each command: ``arena --help`` stays instant."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from msda_arena.api.errors import ArenaError, UsageError
from msda_arena.api.spec import format_value
from msda_arena.cli._options import resolve_device


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


_COLUMNS = ("method", "kind", "parameters (defaults)", "package", "version", "description")


def methods(
    pattern: str = typer.Argument(None, help="Shell-style filter on method names, e.g. 'h*'."),
    fmt: str = typer.Option(None, "--format", "-f", help="table, tsv (off a terminal) or json."),
) -> None:
    """List installed methods: name, kind (mask, mix or feature), parameters with defaults,
    package and version. Names are never cut; the format is a table on a terminal, else
    tsv (tab-separated, a header row)."""
    fmt = fmt or ("table" if sys.stdout.isatty() else "tsv")
    if fmt not in ("table", "tsv", "json"):
        raise UsageError(f"unknown --format {fmt!r}; choose table, tsv or json")
    from msda_arena.methods.registry import list_methods, registry

    infos = [
        {
            "method": info.name,
            "kind": info.cls.kind,
            "needs_saliency": bool(getattr(info.cls, "needs_saliency", False)),
            "needs_model": bool(getattr(info.cls, "needs_model", False)),
            "parameters": {p.name: p.default for p in info.cls.params},
            "package": info.package,
            "version": info.version,
            "description": info.cls.summary,
        }
        for info in list_methods(pattern)
    ]
    rows = []
    for m in infos:
        params = ", ".join(f"{k}={format_value(v)}" for k, v in m["parameters"].items())
        kind = m["kind"] + " (saliency)" * m["needs_saliency"] + " (model)" * m["needs_model"]
        rows.append(
            (m["method"], kind, params or "-", m["package"], m["version"], m["description"])
        )
    if fmt == "json":
        print(json.dumps(infos, indent=2, default=str))  # a default of a plugin's own type
    elif fmt == "tsv":
        for row in (_COLUMNS, *rows):  # one line per method: tabs and newlines become spaces
            print("\t".join(" ".join(cell.split()) for cell in row))
    else:
        from rich.table import Table

        table = Table(title="Installed methods", title_justify="left")
        longest = max((len(row[0]) for row in rows), default=0)
        for col in _COLUMNS:
            table.add_column(col, min_width=longest if col == "method" else None)
        for row in rows:
            table.add_row(*row)
        _console().print(table)
    if pattern and not infos:
        print(f"arena: no method matches {pattern!r}", file=sys.stderr)
        raise typer.Exit(1)
    if registry().broken:
        print(
            f"arena: {len(registry().broken)} plugin(s) failed to load (see warnings above)",
            file=sys.stderr,
        )


def plugins() -> None:
    """List installed plugin packages: version, the methods each provides, and those
    that failed to load (with the reason) or claim a name another package claims."""
    from rich.table import Table

    from msda_arena.methods.registry import BUILTIN_PACKAGE, registry

    reg = registry()
    provided: dict[str, list[str]] = {}
    versions: dict[str, str] = {}
    for info in reg.methods.values():
        provided.setdefault(info.package, []).append(info.name)
        versions[info.package] = info.version
    for package, version in reg.packages.items():
        provided.setdefault(package, [])
        versions[package] = version
    for name, packages in reg.conflicts.items():
        for package in packages:
            provided.setdefault(package, []).append(f"{name} (disabled: claimed twice)")
    table = Table(title="Plugin packages", title_justify="left")
    for col in ("package", "version", "status", "methods"):
        table.add_column(col)
    order = [BUILTIN_PACKAGE, *sorted(p for p in provided if p != BUILTIN_PACKAGE)]
    for package in order:
        if package not in provided:
            continue
        status = "built in" if package == BUILTIN_PACKAGE else "loaded"
        table.add_row(
            package, versions.get(package, "?"), status, ", ".join(sorted(provided[package])) or "-"
        )
    for item in reg.broken:
        table.add_row(item.package, "?", "[red]failed[/]", item.error)
    _console().print(table)
    if reg.broken or reg.conflicts:
        raise typer.Exit(1)


def check(
    method: str = typer.Option(..., "--method", "-m", help="Method spec, e.g. 'hmix(r=0.25)'."),
    device: str = typer.Option("cpu", help="Device to check on: cpu, cuda, auto."),
) -> None:
    """Check a method against its kind's contract (mask, mix or feature); exit 1 naming any
    failed rule."""
    from rich.table import Table

    from msda_arena.methods.registry import get_method
    from msda_arena.pluginkit.conformance import run_checks

    dev = resolve_device(device)
    instance = get_method(method)
    results = run_checks(instance, dev)
    table = Table(title=f"Contract check of {instance.spec} on {dev}", title_justify="left")
    table.add_column("rule")
    table.add_column("result")
    table.add_column("detail")
    for r in results:
        table.add_row(r.rule, "[green]pass[/]" if r.passed else "[red]FAIL[/]", r.detail)
    _console().print(table)
    failed = [r.rule for r in results if not r.passed]
    if failed:
        raise ArenaError(
            f"{instance.spec} fails the {instance.kind} contract: rule(s) {', '.join(failed)}"
        )
    print(f"{instance.spec}: all {len(results)} rules pass", file=sys.stderr)


def masks(
    method: str = typer.Option(..., "--method", "-m", help="Method spec, e.g. 'gmix'."),
    out: Path = typer.Option(..., "--out", "-o", help="Image file to write (.png, .pdf, .svg)."),
    lams: str = typer.Option("0.2,0.4,0.6,0.8", help="Comma-separated lambdas, one row each."),
    size: int = typer.Option(96, min=8, max=1024, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Seed of the images and masks."),
) -> None:
    """Draw a gallery of a method's masks and mixed images (Figure 3 style)."""
    from msda_arena.methods.registry import get_method
    from msda_arena.theory.gallery import save_gallery

    try:
        values = [float(v) for v in lams.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--lams {lams!r}: write numbers in [0, 1] separated by commas") from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise UsageError(f"--lams {lams!r}: write numbers in [0, 1] separated by commas")
    if out.suffix.lower() not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        raise UsageError(f"--out {out}: use a .png, .pdf, .svg or .jpg file name")
    instance = get_method(method)
    path = save_gallery(instance, out, values, size=size, seed=seed)
    print(path)


def new_plugin(
    name: str = typer.Argument(
        ...,
        help="Method name: lower-case letters, digits, '-' and '_', starting with a letter.",
    ),
    kind: str = typer.Option(
        "mask",
        "--kind",
        help="mask (a MaskMethod: masks from lambda), mix (a MixMethod: mixes the images) "
        "or feature (a FeatureMixMethod: mixes at a stage of the model).",
    ),
    param: list[str] = typer.Option(
        [],
        "--param",
        "-p",
        help="NAME:TYPE=DEFAULT; TYPE float, int, bool, str or tuple[T] of one (repeatable).",
    ),
    directory: Path = typer.Option(
        Path("."), "--dir", help="Folder to write arena-NAME into (default: the current one)."
    ),
) -> None:
    """Write a plugin package arena-NAME whose placeholder method already passes
    `arena check`; print its path and the next commands."""
    import shlex

    from msda_arena.pluginkit.scaffold import write_plugin

    path = write_plugin(name, kind=kind, params=param, directory=directory)
    print(path)
    print("next:")
    print(f"    pip install -e {shlex.quote(str(path))}")
    print(f"    arena check --method {name}")
    print(f"    arena run --method {name}")
