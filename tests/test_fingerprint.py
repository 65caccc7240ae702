"""The fingerprint of a mask distribution: pair-weight profile, locality, coverage,
lambda calibration (Park, Yun, Chun, NeurIPS 2022), on the real built-in methods."""

import json
import math

import pytest
import torch
from conftest import run_arena

from msda_arena import get_method
from msda_arena.api.contract import MaskMethod
from msda_arena.theory.fingerprint import fingerprint

N = 1024  # masks per fingerprint: enough for every assertion below, well under a second


class Blocks(MaskMethod):
    """Independent k x k blocks on a randomly shifted grid, each 1 with probability lambda:
    a mask local at the known scale k."""

    name = "blocks"

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def masks(self, lam, height, width, generator):
        n, k = lam.shape[0], self.k
        nb_y, nb_x = height // k + 2, width // k + 2
        keep = torch.rand(n, nb_y, nb_x, generator=generator) < lam.view(-1, 1, 1)
        big = keep.float().repeat_interleave(k, 1).repeat_interleave(k, 2)
        oy = torch.randint(0, k, (n,), generator=generator)
        ox = torch.randint(0, k, (n,), generator=generator)
        rows = torch.arange(height)[None, :] + oy[:, None]
        cols = torch.arange(width)[None, :] + ox[:, None]
        m = big[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        return m.unsqueeze(1)


@pytest.fixture(scope="module")
def fps():
    specs = ["mixup", "cutmix", "hmix(r=0.25)", "hmix(r=0.75)", "gmix"]
    return {s: fingerprint(get_method(s), size=(32, 32), samples=N, seed=0) for s in specs}


def test_pair_map_is_the_definition_by_brute_force():
    # E[(1-M_p)(1-M_q)] averaged over the positions of each offset, on a non-square
    # image, against the FFT route, with the masks drawn the same way.
    from msda_arena.theory.fingerprint import _draw

    h, w, n = 6, 5, 64
    method = get_method("cutmix")
    fp = fingerprint(method, size=(h, w), samples=n, seed=3)
    _, masks = _draw(method, n, h, w, torch.Generator().manual_seed(3), "cpu")
    c = (1.0 - masks.double()).reshape(n, -1)
    second = (c.T @ c) / n  # [HW, HW]: E[(1-M_p)(1-M_q)]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    expected = torch.zeros(2 * h - 1, 2 * w - 1, dtype=torch.float64)
    count = torch.zeros_like(expected)
    for p in range(h * w):
        for q in range(h * w):
            dy, dx = int(ys[q] - ys[p]) + h - 1, int(xs[q] - xs[p]) + w - 1
            expected[dy, dx] += second[p, q]
            count[dy, dx] += 1
    expected /= count
    flat = float(((1.0 - masks.double().mean((1, 2))) ** 2).mean())
    assert fp.flat_level == pytest.approx(flat, rel=1e-6)
    assert torch.allclose(fp.pair_map.double() * flat, expected, atol=1e-5)
    assert torch.allclose(fp.coverage.double(), (1.0 - masks.double()).mean(0), atol=1e-6)
    # the normalised pair weights average to exactly 1 over all pixel pairs
    assert float((fp.pair_map.double() * count).sum() / count.sum()) == pytest.approx(1.0)


def test_mixup_is_flat_and_not_local(fps):
    fp = fps["mixup"]
    assert max(abs(v - 1.0) for v in fp.profile) < 1e-4
    assert abs(fp.locality) < 1e-4
    assert math.isnan(fp.scale)
    assert fp.coverage_max_min == pytest.approx(1.0, abs=1e-5)
    assert fp.calibration_mae < 1e-6
    assert fp.flat_level == pytest.approx(1 / 3, abs=0.03)  # E[(1-lambda)^2], lambda ~ U(0,1)


def test_cutmix_falls_with_distance_and_covers_the_centre(fps):
    fp = fps["cutmix"]
    p = fp.profile
    assert p[0] > p[4] > p[8] > p[16] > p[24] > p[31]
    assert p[1] > 2.0 and fp.far_level < 0.7
    assert fp.locality > 0.6
    cov = fp.coverage
    centre = float(cov[12:20, 12:20].mean())
    corners = float(torch.stack([cov[:4, :4], cov[:4, -4:], cov[-4:, :4], cov[-4:, -4:]]).mean())
    assert centre > 2.0 * corners
    assert fp.coverage_max_min > 2.0
    # clipped boxes: the label weight (the mask mean) is not the drawn lambda
    assert fp.calibration_mae > 0.1 and fp.calibration_bias > 0.1


def test_hmix_lies_between_mixup_and_cutmix_ordered_by_r(fps):
    # r -> 0 is Mixup, r = 1 cuts CutMix's whole box: a larger r puts more of the
    # pair weight on near pairs, so hmix(r=0.75) is more local than hmix(r=0.25).
    low, high, cut = fps["hmix(r=0.25)"], fps["hmix(r=0.75)"], fps["cutmix"]
    assert 0.02 < low.locality < high.locality < cut.locality
    assert 1.0 < low.profile[1] < high.profile[1] < cut.profile[1]
    assert cut.far_level < high.far_level < low.far_level < 1.0
    for fp in (low, high):
        assert fp.calibration_mae < 1e-5  # mean(M) = lambda exactly
        bins = [b for b in fp.calibration_bins if b["count"]]
        assert sum(b["count"] for b in fp.calibration_bins) == N
        assert all(abs(b["weight"] - b["lam"]) < 1e-5 for b in bins)


def test_gmix_label_weight_is_not_lambda(fps):
    fp = fps["gmix"]
    assert fp.calibration_mae > 0.02
    assert 0.0 < fp.locality < fps["cutmix"].locality


@pytest.mark.parametrize("k", [4, 8])
def test_a_block_mask_is_local_at_its_block_size(k):
    fp = fingerprint(Blocks(k), size=(32, 32), samples=N, seed=1)
    p = fp.profile
    assert 0.3 * k <= fp.scale <= 0.55 * k
    assert p[k // 2] - fp.far_level > 0.1  # within a block: still correlated
    assert all(abs(v - fp.far_level) < 0.03 for v in p[k + 1 :])  # beyond it: flat
    assert fp.locality > 0.1


def test_independent_pixels_are_not_local():
    fp = fingerprint(Blocks(1), size=(32, 32), samples=N, seed=1)
    assert abs(fp.locality) < 0.02
    assert fp.scale <= 0.75


def test_same_seed_same_fingerprint_and_json_is_strict():
    a = fingerprint(get_method("gmix"), size=(16, 20), samples=100, seed=5)
    b = fingerprint(get_method("gmix"), size=(16, 20), samples=100, seed=5)
    assert a.profile == b.profile and a.calibration_mae == b.calibration_mae
    assert len(a.distances) == 16 and a.pair_map.shape == (31, 39) and a.coverage.shape == (16, 20)
    json.dumps(fingerprint(get_method("mixup"), samples=16).to_dict(), allow_nan=False)
    with pytest.raises(ValueError, match="never mixes"):
        fingerprint(get_method("vanilla"), samples=16)


def test_cli_fingerprint_json_table_and_plot(tmp_path):
    out = tmp_path / "fp.png"
    proc = run_arena(
        "fingerprint", "-m", "mixup", "-m", "cutmix", "--samples", "256", "--size", "24", "24",
        "--format", "json", "--plot", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [d["method"] for d in data] == ["mixup", "cutmix"]
    assert data[0]["size"] == [24, 24] and len(data[0]["profile"]) == 24
    assert data[0]["scale_px"] is None and data[1]["locality"] > 0.5
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_cli_fingerprint_table_and_errors():
    from typer.testing import CliRunner

    from msda_arena.api.errors import UsageError
    from msda_arena.cli.main import app

    runner = CliRunner()
    table = runner.invoke(app, ["fingerprint", "-m", "hmix(r=0.25)", "-m", "gmix", "-n", "64"])
    assert table.exit_code == 0, table.output
    rows = [line for line in table.stdout.splitlines() if "│" in line]
    assert any("hmix(r=0.25)" in r for r in rows) and any("gmix" in r for r in rows)
    for args, fragment in (
        (["-m", "vanilla", "-n", "8"], "never mixes"),
        (["-m", "mixup", "--format", "csv"], "--format"),
        (["-m", "mixup", "--plot", "x.txt"], ".png"),
        (["-m", "mixup", "--size", "1", "32"], "--size"),
    ):
        bad = runner.invoke(app, ["fingerprint", *args])
        assert isinstance(bad.exception, UsageError) and fragment in str(bad.exception), args
