"""ResizeMix's own tests: the mixing contract, the defining property (the pasted box is
the partner resized by tau, the rest is x[i], the label weight is 1 - pasted area
exactly), the scale's distribution, and one trained cell."""

import math

import pytest
import torch
import torch.nn.functional as F
from arena_resizemix import ResizeMix

from msda_arena import SpecError, get_method
from msda_arena.testing import assert_conforms, one_cell_run


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(b: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Images whose value ranges are disjoint between samples ([10 i, 10 i + 1]), so a
    pixel's source sample can be read off its value."""
    x = torch.rand(b, c, h, w, generator=_gen(seed))
    return x + 10.0 * torch.arange(b, dtype=torch.float32).view(-1, 1, 1, 1)


def _check_pair(x, mixed, weight, partner, tau, i):
    """The defining property for sample ``i`` pasted with scale ``tau``."""
    _, _, h, w = x.shape
    ph, pw = math.floor(float(tau) * h), math.floor(float(tau) * w)  # int(H * tau)
    changed = (mixed[i] != x[i]).any(dim=0)  # [H, W]
    area = int(changed.sum())
    assert area == ph * pw
    # the label weight is 1 - pasted area / image area, exactly (float32)
    assert float(weight[i]) == pytest.approx(1.0 - area / (h * w), abs=1e-7)
    assert torch.equal(mixed[i][:, ~changed], x[i][:, ~changed])  # the rest is x[i]
    if area == 0:
        return
    rows = changed.any(dim=1).nonzero().flatten()
    cols = changed.any(dim=0).nonzero().flatten()
    top, left = int(rows[0]), int(cols[0])
    assert (int(rows[-1]) - top + 1, int(cols[-1]) - left + 1) == (ph, pw)  # one full box
    expected = F.interpolate(
        x[partner[i]][None], size=(ph, pw), mode="bilinear", align_corners=False
    )[0]
    pasted = mixed[i][:, top : top + ph, left : left + pw]
    torch.testing.assert_close(pasted, expected, atol=1e-5, rtol=1e-6)


def test_resizemix_conforms_to_the_mixing_contract():
    assert_conforms("resizemix")
    assert_conforms("resizemix(scale_low=0.5,scale_high=1.0)")
    assert_conforms("resizemix(scale_low=0.3,scale_high=0.3)")


def test_spec_parameters_are_checked():
    method = get_method("resizemix(scale_low=0.2,scale_high=0.6)")
    assert isinstance(method, ResizeMix)
    assert (method.scale_low, method.scale_high) == (0.2, 0.6)
    assert get_method("resizemix").spec == "resizemix"
    for bad in (
        "resizemix(scale_low=0)",
        "resizemix(scale_high=1.5)",
        "resizemix(scale_low=0.9,scale_high=0.2)",
        "resizemix(alpha=1)",
    ):
        with pytest.raises(SpecError):
            get_method(bad)


def test_sample_lam_draws_tau_uniformly_in_the_range():
    method = ResizeMix(scale_low=0.2, scale_high=0.6)
    tau = method.sample_lam(20000, _gen(0), "cpu")
    assert tau.shape == (20000,) and tau.dtype == torch.float32
    assert float(tau.min()) >= 0.2 and float(tau.max()) <= 0.6
    assert float(tau.mean()) == pytest.approx(0.4, abs=0.005)
    assert float(tau.std()) == pytest.approx(0.4 / 12**0.5, abs=0.005)
    assert torch.equal(tau, method.sample_lam(20000, _gen(0), "cpu"))
    default = ResizeMix().sample_lam(5000, _gen(1), "cpu")
    assert float(default.min()) >= 0.1 and float(default.max()) <= 0.8


@pytest.mark.parametrize(
    ("c", "h", "w"), [(3, 32, 32), (1, 28, 28), (3, 24, 40), (5, 17, 9), (2, 9, 16)]
)
def test_pasted_box_is_the_resized_partner_per_sample(c, h, w):
    b = 64
    x = _batch(b, c, h, w)
    partner = torch.roll(torch.arange(b), 1)  # never its own partner
    method = ResizeMix()
    tau = torch.cat(
        [method.sample_lam(b - 6, _gen(3), "cpu"), torch.tensor([0.0, 0.1, 0.5, 0.8, 0.99, 1.0])]
    )
    mixed, weight = method.mix(x, torch.arange(b), partner, tau, _gen(4))
    assert mixed.shape == x.shape and mixed.dtype == x.dtype
    assert weight.shape == (b,) and weight.dtype == torch.float32
    for i in range(b):
        _check_pair(x, mixed, weight, partner, tau[i], i)


def test_one_tau_per_batch_pastes_one_box_for_all():
    b, c, h, w = 16, 3, 20, 30
    x = _batch(b, c, h, w, seed=1)
    partner = torch.roll(torch.arange(b), 3)
    tau = torch.tensor([0.45])
    mixed, weight = ResizeMix().mix(x, torch.arange(b), partner, tau, _gen(5))
    boxes = (mixed != x).any(dim=1)  # [B, H, W]
    assert all(torch.equal(boxes[0], boxes[i]) for i in range(b))
    assert torch.equal(weight, weight[:1].expand(b))
    for i in range(b):
        _check_pair(x, mixed, weight, partner, tau[0], i)


def test_edge_scales():
    b, c, h, w = 4, 3, 11, 13
    x = _batch(b, c, h, w, seed=2)
    partner = torch.roll(torch.arange(b), 1)
    method = ResizeMix()
    mixed, weight = method.mix(x, torch.arange(b), partner, torch.zeros(b), _gen(0))
    assert torch.equal(mixed, x) and torch.equal(weight, torch.ones(b))
    mixed, weight = method.mix(x, torch.arange(b), partner, torch.ones(b), _gen(0))
    assert torch.equal(mixed, x[partner]) and torch.equal(weight, torch.zeros(b))


def test_positions_cover_the_whole_image():
    """The box's top-left corner is uniform over every position keeping it inside,
    edges included."""
    b, h, w = 4000, 10, 12
    x = _batch(b, 1, h, w, seed=3)
    partner = torch.roll(torch.arange(b), 1)
    tau = torch.full((b,), 0.5)  # 5 x 6 boxes: 6 x 7 positions
    mixed, _ = ResizeMix().mix(x, torch.arange(b), partner, tau, _gen(6))
    changed = (mixed != x)[:, 0]
    top = changed.any(dim=2).int().argmax(dim=1)
    left = changed.any(dim=1).int().argmax(dim=1)
    counts = torch.bincount(top * 7 + left, minlength=42)
    assert counts.shape == (42,) and int(counts.min()) > 0
    assert float(counts.float().std() / counts.float().mean()) < 0.2  # about uniform


def test_other_dtypes_keep_their_dtype():
    x = _batch(6, 3, 16, 16).double()
    partner = torch.roll(torch.arange(6), 1)
    tau = torch.full((6,), 0.6)
    mixed, weight = ResizeMix().mix(x, torch.arange(6), partner, tau, _gen(0))
    assert mixed.dtype == torch.float64
    _check_pair(x, mixed, weight, partner, tau[0], 0)
    mixed16, _ = ResizeMix().mix(x.bfloat16(), torch.arange(6), partner, tau, _gen(0))
    assert mixed16.dtype == torch.bfloat16


def test_resizemix_trains_one_cell(tmp_path):
    assert one_cell_run("resizemix", tmp_path)["status"] == "ok"
