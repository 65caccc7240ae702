"""``arena verify``: read every file of a result store and say whether it is sound."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from msda_arena.api.errors import UsageError


def verify(
    results: Path | None = typer.Option(
        None,
        "--results",
        help="The result store (default: [defaults] results of ./arena.toml, else ./results).",
    ),
    repair: bool = typer.Option(
        False,
        "--repair",
        help="Move damaged files under <results>/.quarantine/<time>/ (never deletes) and "
        "rebuild the index.",
    ),
    fmt: str = typer.Option("table", "--format", "-f", help="Output format: table or json."),
) -> None:
    """Check every result file, the index cache, temporaries, checkpoints and claims.

    Exit 1 when damage remains (corrupt, foreign, duplicated or orphaned files, or an
    index that disagrees with them); stale results are listed but are not damage.
    """
    from msda_arena.grid.config import default_results  # torch: not for `--help`
    from msda_arena.store.verify import KINDS
    from msda_arena.store.verify import verify as run_verify

    if fmt not in ("table", "json"):
        raise UsageError(f"--format {fmt!r}: choose table or json")
    root = Path(results) if results else Path(default_results())
    report = run_verify(root, repair=repair)
    counts = report.counts()
    moved = dict(report.moved)
    if fmt == "json":
        doc = {
            "root": str(root),
            "files": report.files,
            "ok": report.ok,
            "failed": report.failed,
            "counts": counts,
            "findings": [
                {
                    "kind": f.kind,
                    "path": str(f.path),
                    "reason": f.reason,
                    "moved_to": str(moved[f.path]) if f.path in moved else None,
                }
                for f in report.findings
            ],
            "index_rebuilt": report.index_rebuilt,
            "damaged": report.damaged,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        out = sys.stdout
        print(
            f"{root}: {report.files} result file(s): {report.ok} ok, {report.failed} failed",
            file=out,
        )
        for f in report.findings:
            where = ""
            if f.path in moved:
                dst = moved[f.path]
                where = " -> released (stale claim)" if dst == f.path else f" -> moved to {dst}"
            print(f"{f.kind:<10} {f.path}: {f.reason}{where}", file=out)
        summary = ", ".join(f"{counts[k]} {k}" for k in KINDS)
        print(f"found: {summary}", file=out)
        if report.index_rebuilt:
            print("index rebuilt from the files that remain", file=out)
    if report.damaged:
        print(
            "arena: the store is damaged; `arena verify --repair` moves the damaged files "
            "aside (nothing is deleted) and rebuilds the index",
            file=sys.stderr,
        )
        raise typer.Exit(1)
