"""Input-gradient pair statistic (Figure 4 of Park et al., NeurIPS 2022): closed-form
checks on a linear model, and `arena gradients` on two cells trained on the CPU."""

import json
import struct

import pytest
import torch
from conftest import TINY_TOML, run_arena

from msda_arena.theory.gradients import distance_curve, input_gradients, pair_statistic

H, W = 10, 12


def linear_model(pattern: torch.Tensor) -> torch.nn.Module:
    """Two logits: 0 and <pattern, x> + 0.3. For the cross-entropy loss the input
    gradient is (softmax_1 - [y == 1]) * pattern."""
    c, h, w = pattern.shape
    lin = torch.nn.Linear(c * h * w, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[1] = pattern.flatten()
        lin.bias.copy_(torch.tensor([0.0, 0.3]))
    return torch.nn.Sequential(torch.nn.Flatten(), lin)


@pytest.fixture
def pattern():
    p = torch.zeros(2, H, W)
    p[0, 2, 3], p[1, 2, 3] = 1.5, -0.5  # sum over channels of |.|: 2 at (2, 3)
    p[0, 5, 7] = -3.0  # 3 at (5, 7): offset (3, 4) from (2, 3)
    return p


def test_input_gradient_of_a_linear_model_is_its_weight_pattern(pattern):
    model = linear_model(pattern)
    x = torch.randn(5, 2, H, W, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 1, 0, 1])
    g = input_gradients(model, x, y)
    p1 = torch.softmax(model(x), dim=1)[:, 1].detach()
    scale = (p1 - (y == 1).float()).abs()
    expected = scale[:, None, None] * pattern.abs().sum(0)
    assert g.shape == (5, H, W)
    assert torch.allclose(g, expected, atol=1e-6)


def test_pair_statistic_of_a_linear_model_by_hand(pattern):
    model = linear_model(pattern)
    x = torch.randn(7, 2, H, W, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 2, (7,), generator=torch.Generator().manual_seed(2))
    g = input_gradients(model, x, y)
    s = pair_statistic(g, window=5)
    # normalised: every input's g is c_b * a with a = 2 at (2, 3), 3 at (5, 7), 0 elsewhere,
    # so S(0) = max c^2 * 9 -> 1, S(+-(3, 4)) = max c^2 * 6 -> 6 / 9, every other offset 0.
    expected = torch.zeros(11, 11, dtype=torch.float64)
    expected[5, 5] = 1.0
    expected[5 + 3, 5 + 4] = expected[5 - 3, 5 - 4] = 6 / 9
    assert s.shape == (11, 11)
    assert torch.allclose(s, expected, atol=1e-6)
    raw = pair_statistic(g, window=5, normalize=False)
    c_max = float(g.amax() / 3.0)
    assert float(raw[5, 5]) == pytest.approx(9 * c_max**2, rel=1e-6)
    distances, curve = distance_curve(s)
    assert distances == [0, 1, 2, 3, 4, 5]
    ring5 = sum(
        1 for dy in range(-5, 6) for dx in range(-5, 6) if round((dy * dy + dx * dx) ** 0.5) == 5
    )
    assert curve[0] == 1.0 and curve[5] == pytest.approx(2 * (6 / 9) / ring5)
    assert curve[1] == curve[2] == curve[3] == curve[4] == 0.0


def test_pair_statistic_never_pairs_pixels_of_different_inputs():
    g = torch.zeros(2, 6, 6)
    g[0, 0, 0] = g[0, 0, 1] = 1.0  # a neighbour pair of product 1
    g[1, 4, 4] = 2.0  # S(0) = 4 from this input alone
    s = pair_statistic(g, window=2)
    assert float(s[2, 2]) == 1.0
    assert float(s[2, 3]) == float(s[2, 1]) == 0.25  # 1 / 4, not 2 * 1 across inputs
    assert float(s.sum()) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="window"):
        pair_statistic(g, window=6)


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny cells (mixup, cutmix) trained on the CPU with --save-checkpoints."""
    root = tmp_path_factory.mktemp("grad")
    config = root / "arena.toml"
    config.write_text(TINY_TOML)
    results = root / "results"
    proc = run_arena(
        "run", "-m", "mixup", "-m", "cutmix", "--no-baselines", "--scenario", "small-crop",
        "--save-checkpoints", "--config", str(config), "--results", str(results),
        "--device", "cpu", "--profile", "tiny",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(list((results / "procedural" / "checkpoints").glob("*.safetensors"))) == 2
    return config, results


def test_arena_gradients_draws_both_methods(trained, tmp_path):
    from typer.testing import CliRunner

    from msda_arena.cli.main import app

    config, results = trained
    out = tmp_path / "maps" / "grad.png"
    args = [
        "gradients", "--results", str(results), "--config", str(config), "-m", "mixup",
        "-m", "cutmix", "--out", str(out), "--samples", "32", "--window", "4",
        "--device", "cpu",
    ]  # fmt: skip
    proc = CliRunner().invoke(app, [*args, "--format", "json"])
    assert proc.exit_code == 0, proc.output
    summary = json.loads(proc.stdout)
    assert [m["method"] for m in summary["maps"]] == ["mixup", "cutmix"]
    for m in summary["maps"]:
        assert m["arch"] == "resnet8_cifar" and m["scenario"] == "small-crop"
        assert m["inputs"] == 32 and len(m["cells"]) == 1 and m["window"] == 4
        stat = torch.tensor(m["stat"])
        assert stat.shape == (9, 9) and float(stat[4, 4]) == 1.0
        assert float(stat.min()) >= 0.0 and float(stat.max()) == 1.0
        assert torch.allclose(stat, stat.flip(0).flip(1))  # S(p) = S(-p)
        assert len(m["curve"]) == 5 and m["curve"][0] == 1.0
    assert summary["out"] == str(out)
    assert png_size(out) == (880, 836)  # 8 x 7.6 inches at 110 dpi
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0, table.output
    rows = [line for line in table.stdout.splitlines() if "resnet8_cifar" in line]
    assert [r.split("│")[1].strip() for r in rows] == ["mixup", "cutmix"]


def test_gradient_maps_library_and_errors(trained):
    from msda_arena.api.errors import UsageError
    from msda_arena.theory.gradients import gradient_maps

    config, results = trained
    maps = gradient_maps(results, config=config, samples=16, window=3)
    assert [m.method for m in maps] == ["cutmix", "mixup"]  # by name without --method
    assert all(m.stat.shape == (7, 7) and m.dataset == "procedural" for m in maps)
    with pytest.raises(UsageError, match="hmix"):
        gradient_maps(results, methods=["hmix"], config=config)
    with pytest.raises(UsageError, match="--scenario large-crop"):
        gradient_maps(results, scenario="large-crop", config=config)
    with pytest.raises(UsageError, match="save-checkpoints"):
        gradient_maps(results.parent / "empty", config=config)


def test_gradient_maps_leave_out_checkpoints_of_older_method_code(trained, tmp_path):
    """Seen before: a checkpoint trained by an older version of a method was averaged
    with the current one's; the report leaves such results out, so must the maps."""
    import shutil

    from msda_arena.api.record import cell_key
    from msda_arena.store.results import checkpoint_path, load_results, write_result
    from msda_arena.theory.gradients import gradient_maps

    config, pristine = trained
    results = tmp_path / "results"
    shutil.copytree(pristine, results)
    frame, _ = load_results(results)
    current = frame[frame.method == "mixup"].iloc[0].to_dict()
    old = dict(current, seed=1, method_code="0.0.1:older", finished_at="2020-01-01T00:00:00+00:00")
    parts = ("profile", "arch", "scenario", "method", "seed", "recipe_hash")
    old["key"] = cell_key(*(old[p] for p in parts))
    write_result(results, old)
    shutil.copy(
        checkpoint_path(results, current["dataset"], current["key"]),
        checkpoint_path(results, old["dataset"], old["key"]),
    )
    notes: list[str] = []
    (mixup,) = gradient_maps(results, methods=["mixup"], config=config, samples=8, notes=notes)
    assert len(mixup.keys) == 1  # the older code's seed-1 cell is not averaged in
    assert len(notes) == 1 and "older code of the method" in notes[0]
