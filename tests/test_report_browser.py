"""The HTML report opens in a real browser (headless Chromium) and shows the table and plots
(accuracy, scenarios, the learning curves and the pair-weight profiles).

Slow, and skipped where Debian's ``chromium`` is not installed
(``apt-get install -y chromium``). By hand::

    arena report -f html -o report.html
    chromium --headless --no-sandbox --disable-gpu --screenshot=shot.png \\
        --window-size=1400,2000 file://$PWD/report.html
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from msda_arena.api.record import SCHEMA_VERSION, EpochPoint, cell_key, encode_curve
from msda_arena.cli.report import report
from msda_arena.store.results import write_result

CHROMIUM = Path("/usr/bin/chromium")
LOCALITY = {"mixup": 0.0, "cutmix": 0.79, "hmix": 0.12, "gmix": 0.17, "mymask": 0.4}
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
]
# Injected into a copy of the page: records what the browser actually laid out and decoded.
PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.map.call(document.images, function (i) {
    return i.complete ? i.naturalWidth : 0; });
  var rows = document.querySelectorAll("#leaderboard tbody tr");
  var table = document.getElementById("leaderboard").getBoundingClientRect();
  var curves = document.querySelector("#fig-curves img");
  document.body.setAttribute("data-probe", JSON.stringify(
    {images: imgs, rows: rows.length, tableWidth: table.width, tableHeight: table.height,
     curves: curves && curves.complete ? curves.naturalWidth : 0}));
});
</script>"""


def _record(method, arch, scenario, seed, top1):
    profile, recipe = "quick", "r"
    losses = [1.4 - 0.2 * e - (top1 - 60) / 50 + 0.02 * seed for e in range(3)]
    curve = encode_curve(
        [EpochPoint(epoch=e + 1, train_loss=v, lr=0.1, seconds=1.0) for e, v in enumerate(losses)]
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "key": cell_key(profile, arch, scenario, method, seed, recipe),
        "status": "ok", "error": "", "profile": profile, "dataset": "cifar10", "arch": arch,
        "scenario": scenario, "method": method, "method_name": method, "seed": seed,
        "recipe_hash": recipe, "top1": top1, "top5": 90.0, "ece": 0.05, "fgsm_top1": 20.0,
        "train_loss": losses[-1], "epochs": 3, "curve": curve, "wall_time_s": 1.0,
        "images_per_s": 1.0, "peak_mem_mb": 1.0, "method_package": "msda-arena",
        "method_version": "0.1.0",
        "method_code": "0.1.0:abc", "locality": LOCALITY.get(method, float("nan")),
        "plugins": "msda-arena==0.1.0", "torch_version": "2", "timm_version": "1",
        "cuda_version": "", "device_name": "cpu", "host": "box", "arena_version": "0.1.0",
        "git_commit": "", "config_hash": "c", "notes": "",
        "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T00:01:00+00:00",
    }  # fmt: skip


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    base = {
        "vanilla": 60.0,
        "mixup": 63.0,
        "cutmix": 64.0,
        "hmix": 64.5,
        "gmix": 64.2,
        "mymask": 65.0,
    }
    for method, acc in base.items():
        for scenario, shift in (("standard", 0.0), ("large-crop", 2.0), ("small-crop", -1.0)):
            for seed in range(3):
                top1 = acc + shift + 0.3 * seed + (3.0 if method == "cutmix" and shift else 0)
                write_result(
                    root / "results", _record(method, "resnet8_cifar", scenario, seed, top1)
                )
    app = typer.Typer()
    app.command("report")(report)
    app.callback()(lambda: None)
    out = root / "report.html"
    result = CliRunner().invoke(
        app, ["report", "--results", str(root / "results"), "-f", "html", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def _chromium(*args, cwd):
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_chromium_lays_out_the_table_and_decodes_every_plot(page, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    result = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri(), cwd=tmp_path)
    dom = result.stdout
    assert "<table" in dom, result.stderr[-2000:]
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the page's load event never ran"
    data = json.loads(found.group(1).replace("&quot;", '"'))
    assert data["rows"] == 6  # six methods
    assert data["tableWidth"] > 600 and data["tableHeight"] > 100
    # accuracy, scenarios, learning curves, pair-weight profiles
    assert len(data["images"]) == 4 and all(w > 400 for w in data["images"])
    assert data["curves"] > 400  # the learning-curve panels, decoded


def test_chromium_screenshot_shows_a_page_with_plots(page, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    result = _chromium(
        f"--screenshot={shot}", "--window-size=1400,2600", page.as_uri(), cwd=tmp_path
    )
    assert shot.exists(), result.stderr[-2000:]
    image = imread(str(shot))[..., :3]
    assert image.shape[:2] == (2600, 1400)
    # CutMix's orange (#ff7f0e) from the plots is on screen, and the best-cell green tint.
    orange = (
        (abs(image[..., 0] - 1.0) < 0.05)
        & (abs(image[..., 1] - 0.5) < 0.06)
        & (image[..., 2] < 0.15)
    )
    assert orange.sum() > 200
    tint = (abs(image[..., 0] - 0xE4 / 255) < 0.02) & (abs(image[..., 1] - 0xF5 / 255) < 0.02)
    assert tint.sum() > 500
