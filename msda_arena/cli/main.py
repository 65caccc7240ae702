"""The ``arena`` app: one Typer app, one module per command group.

Heavy libraries (torch, timm, pandas) are imported inside the commands that need
them, so ``arena --help`` is instant. Errors the user caused print one line on
stderr and exit non-zero; ``ARENA_DEBUG=1`` shows the full traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from msda_arena.api import __version__
from msda_arena.api.errors import ArenaError
from msda_arena.cli import methods as methods_cmd
from msda_arena.cli import report as report_cmd
from msda_arena.cli import run as run_cmd
from msda_arena.cli import theory as theory_cmd
from msda_arena.cli import verify as verify_cmd

app = typer.Typer(
    name="arena",
    help="Benchmark Mixed Sample Data Augmentation methods against Mixup, CutMix, HMix and GMix.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("methods")(methods_cmd.methods)
app.command("plugins")(methods_cmd.plugins)
app.command("check")(methods_cmd.check)
app.command("masks")(methods_cmd.masks)
app.command("new-plugin")(methods_cmd.new_plugin)
app.command("run")(run_cmd.run)
app.command("report")(report_cmd.report)
app.command("verify")(verify_cmd.verify)
app.command("fingerprint")(theory_cmd.fingerprint)
app.command("gradients")(theory_cmd.gradients)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point with one-line errors."""
    try:
        app(args=argv, standalone_mode=True)
    except ArenaError as exc:
        if os.environ.get("ARENA_DEBUG"):
            raise
        print(f"arena: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
