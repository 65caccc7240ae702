"""`arena methods`, `arena check`, `arena masks` as a user runs them."""

import json
import os
import struct
import subprocess
import sys

from conftest import run_arena
from typer.testing import CliRunner

from msda_arena.cli.main import app

runner = CliRunner()


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_methods_lists_every_builtin_with_defaults_and_package():
    result = runner.invoke(app, ["methods", "--format", "table"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("vanilla", "mixup", "cutmix", "hmix", "gmix", "mixup-cutmix"):
        assert name in result.stdout
    row = next(line for line in result.stdout.splitlines() if "│ hmix " in line)
    assert "r=0.5" in row and "msda-arena" in row


def test_methods_off_a_terminal_are_tab_separated_and_never_cut():
    result = run_arena("methods", env={"COLUMNS": "40"})  # stdout is a pipe
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines[0] == [
        "method",
        "kind",
        "parameters (defaults)",
        "package",
        "version",
        "description",
    ]
    rows = {row[0]: row for row in lines[1:]}
    assert {"vanilla", "mixup", "cutmix", "hmix", "gmix", "mixup-cutmix"} <= set(rows)
    assert rows["mixup-cutmix"][:4] == ["mixup-cutmix", "mask", "alpha=1.0, p=0.5", "msda-arena"]
    assert rows["mixup-cutmix"][5].startswith("per batch CutMix with probability p")
    assert all(len(row) == 6 for row in lines)


def test_listing_the_builtin_methods_loads_neither_torch_nor_pandas():
    """`arena methods` must answer in under 2 s; importing torch alone takes longer on a
    small VM, so the built-ins import it only when they compute."""
    code = (
        "import sys\nfrom msda_arena.cli.main import main\ntry:\n    main(['methods'])\n"
        "finally:\n"
        "    print(sorted({'torch', 'pandas', 'timm'} & set(sys.modules)), file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "ARENA_PLUGINS": "only-the-built-ins"},  # no installed plugin
    )
    assert "mixup-cutmix\tmask" in result.stdout
    assert result.stderr.splitlines()[-1] == "[]"


def test_methods_as_json_and_an_unknown_format():
    result = run_arena("methods", "*mix", "--format", "json")
    assert result.returncode == 0, result.stderr
    listed = {m["method"]: m for m in json.loads(result.stdout)}
    assert set(listed) == {"cutmix", "gmix", "hmix", "mixup-cutmix"}
    assert listed["hmix"]["parameters"] == {"alpha": 1.0, "r": 0.5}
    assert listed["hmix"]["kind"] == "mask" and listed["hmix"]["needs_saliency"] is False
    assert listed["hmix"]["package"] == "msda-arena"
    bad = run_arena("methods", "--format", "xml")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "arena: error: unknown --format 'xml'; choose table, tsv or json\n"


def test_methods_pattern_filters_and_no_match_exits_1():
    result = runner.invoke(app, ["methods", "*mix"])
    assert "hmix" in result.stdout and "vanilla" not in result.stdout
    assert runner.invoke(app, ["methods", "zzz*"]).exit_code == 1


def test_masks_writes_a_gallery_png(tmp_path):
    out = tmp_path / "g" / "hmix.png"
    result = runner.invoke(
        app, ["masks", "--method", "hmix(r=0.25)", "--out", str(out), "--lams", "0.3,0.7"]
    )
    assert result.exit_code == 0, result.output
    width, height = png_size(out)
    assert width > 500 and height > 300  # 4 panels per row, 2 rows


def test_bad_input_gets_one_line_errors():
    cases = [
        (["masks", "--method", "gmix", "--out", "x.png", "--lams", "0.5,2"], "--lams"),
        (["masks", "--method", "gmix", "--out", "x.txt"], ".png"),
        (["check", "--method", "hmix(r=2)"], "0 < r <= 1"),
        (["check", "--method", "cutmx"], "Did you mean cutmix"),
        (["check", "--method", "cutmix", "--device", "tpu"], "not a device"),
    ]
    for args, fragment in cases:
        result = run_arena(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr
        assert result.stderr.startswith("arena: error: ")
