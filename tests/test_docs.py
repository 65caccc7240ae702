"""The README documents every command and every option a user can type."""

import re

import typer.main
from conftest import REPO

from msda_arena.cli.main import app


def test_every_command_and_option_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    group = typer.main.get_command(app)
    missing = []
    for name, command in group.commands.items():
        if f"arena {name}" not in readme:
            missing.append(f"arena {name}")
        for param in command.params:
            for opt in param.opts:
                documented = re.search(re.escape(opt) + r"(?![\w-])", readme)
                if opt.startswith("--") and opt != "--help" and not documented:
                    missing.append(f"arena {name} {opt}")
    assert missing == [], f"undocumented in README.md: {missing}"
