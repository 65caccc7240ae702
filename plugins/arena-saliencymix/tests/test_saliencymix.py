"""SaliencyMix's own tests: the mix contract, the defining property (the box sits on the
first partner's saliency peak, or each partner's with ``boxes=sample``), the label
weight, and one real training cell. Agreement with OpenCV and with the official code:
``test_fidelity.py``."""

from __future__ import annotations

import math

import pytest
import torch
from arena_saliencymix import SaliencyMix, fine_grained_saliency, peak_boxes, saliency_peaks

from msda_arena import SpecError, get_method
from msda_arena.testing import assert_conforms, one_cell_run

# Far from any value a random image takes: marks the target images' pixels.
TARGET = -50.0


def test_saliencymix_conforms_to_the_mix_contract():
    assert_conforms("saliencymix")
    assert_conforms("saliencymix(alpha=0.4)")
    assert_conforms("saliencymix(boxes=sample)")


def test_registered_as_a_mix_method_without_model_saliency():
    method = get_method("saliencymix")
    assert isinstance(method, SaliencyMix)
    assert method.kind == "mix"
    assert method.needs_saliency is False
    assert get_method("saliencymix(alpha=2)").alpha == 2.0
    assert get_method("saliencymix").boxes == "batch"
    with pytest.raises(SpecError, match="batch or sample"):
        get_method("saliencymix(boxes=each)")


def _box(mixed: torch.Tensor, x: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """Each sample's pasted box ``(y1, y2, x1, x2)`` (end exclusive) from the pixels
    that changed; every pasted pixel differs from the target's TARGET value."""
    changed = (mixed != x).any(dim=1)  # [B, H, W]
    boxes = []
    for m in changed:
        rows = m.any(dim=1).nonzero().flatten()
        cols = m.any(dim=0).nonzero().flatten()
        if rows.numel() == 0:
            boxes.append((0, 0, 0, 0))
            continue
        y1, y2, x1, x2 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        assert bool(m[y1:y2, x1:x2].all()), "the changed pixels are not one rectangle"
        assert int(m.sum()) == (y2 - y1) * (x2 - x1)
        boxes.append((y1, y2, x1, x2))
    return boxes


def _expected_box(lam: float, cy: int, cx: int, h: int, w: int) -> tuple[int, int, int, int]:
    f = math.sqrt(1.0 - lam)
    cut_h, cut_w = math.floor(h * f), math.floor(w * f)
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    return (y1, y2, x1, x2) if y2 > y1 and x2 > x1 else (0, 0, 0, 0)


@pytest.mark.parametrize("boxes", ["batch", "sample"])
@pytest.mark.parametrize(("h", "w", "channels"), [(32, 32, 3), (28, 28, 1), (24, 40, 3)])
def test_box_sits_on_the_first_or_each_partners_peak(boxes, h, w, channels):
    # Partners: random images; targets: a flat TARGET, so the pasted box is visible.
    n = 8
    g = torch.Generator().manual_seed(h + channels)
    partners = torch.randn(n, channels, h, w, generator=g)
    x = torch.cat([torch.full_like(partners, TARGET), partners])
    partner = torch.cat([torch.arange(n, 2 * n).flip(0), torch.arange(n)])
    peak_y, peak_x = saliency_peaks(x[partner])
    method = get_method(f"saliencymix(boxes={boxes})")
    for lam in (torch.tensor([0.6]), 0.5 + 0.4 * torch.rand(2 * n, generator=g)):
        mixed, weight = method.mix(x, None, partner, lam, g)
        assert mixed.dtype == x.dtype and mixed.shape == x.shape
        for i, box in enumerate(_box(mixed[:n], x[:n])):
            k = i if boxes == "sample" else 0  # batch: the first partner's peak for all
            cy, cx = int(peak_y[k]), int(peak_x[k])
            expect = _expected_box(float(lam.expand(2 * n)[i].double()), cy, cx, h, w)
            assert box == expect
            y1, y2, x1, x2 = box
            assert torch.equal(mixed[i, :, y1:y2, x1:x2], x[partner[i], :, y1:y2, x1:x2])
            area = (y2 - y1) * (x2 - x1)
            assert float(weight[i]) == pytest.approx(1 - area / (h * w), abs=1e-7)
    if boxes == "sample":
        assert len({(int(a), int(b)) for a, b in zip(peak_y[:n], peak_x[:n], strict=False)}) > 1


def test_peak_is_the_first_maximum_of_the_uint8_map():
    # The official code takes np.argmax of the uint8 map: ties go to raster order.
    x = torch.randn(12, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    sal = fine_grained_saliency(x)
    assert sal.dtype == torch.uint8 and sal.shape == (12, 32, 32)
    cy, cx = saliency_peaks(x)
    for i in range(12):
        flat = sal[i].flatten()
        first = int((flat == flat.max()).nonzero()[0])
        assert (int(cy[i]), int(cx[i])) == divmod(first, 32)


def test_boxes_at_the_borders_are_clipped():
    # Centres in the corners and lambdas down to 0: the box loses what lies outside.
    h, w = 24, 40
    cy = torch.tensor([0, 0, h - 1, h - 1, 10])
    cx = torch.tensor([0, w - 1, 0, w - 1, 18])
    for lam in (torch.tensor([0.0]), torch.tensor([0.3]), torch.linspace(0, 1, 5)):
        inside, area = peak_boxes(lam, cy, cx, h, w)
        for i in range(5):
            y1, y2, x1, x2 = _expected_box(
                float(lam.expand(5)[i].double()), int(cy[i]), int(cx[i]), h, w
            )
            assert int(area[i]) == (y2 - y1) * (x2 - x1) == int(inside[i].sum())
            assert bool(inside[i, y1:y2, x1:x2].all())
    assert int(peak_boxes(torch.tensor([0.0]), cy[:1], cx[:1], h, w)[1]) == (h // 2) * (w // 2)


def test_lambda_one_keeps_the_image_and_weight_one():
    x = torch.randn(6, 3, 16, 16)
    partner = torch.arange(5, -1, -1)
    mixed, weight = SaliencyMix().mix(x, None, partner, torch.tensor([1.0]), torch.Generator())
    assert torch.equal(mixed, x)
    assert torch.equal(weight, torch.ones(6))


@pytest.mark.parametrize("value", [0.0, 1.0, -3.0])
def test_flat_images_give_no_nan(value):
    x = torch.full((4, 1, 28, 28), value)
    assert fine_grained_saliency(x).shape == (4, 28, 28)
    mixed, weight = SaliencyMix().mix(
        x, None, torch.arange(3, -1, -1), torch.tensor([0.5]), torch.Generator()
    )
    assert torch.isfinite(mixed).all() and torch.isfinite(weight).all()
    assert bool(((weight >= 0) & (weight <= 1)).all())


def test_any_channel_count_and_dtype():
    for c in (1, 2, 3, 4, 5):
        x = torch.randn(7, c, 20, 12)
        mixed, weight = SaliencyMix().mix(
            x, None, torch.randperm(7), torch.rand(7), torch.Generator()
        )
        assert mixed.shape == x.shape and weight.shape == (7,)
    x = torch.randn(4, 3, 16, 16, dtype=torch.bfloat16)
    mixed, _ = SaliencyMix().mix(
        x, None, torch.arange(3, -1, -1), torch.tensor([0.5]), torch.Generator()
    )
    assert mixed.dtype == torch.bfloat16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_cuda_matches_cpu():
    assert_conforms("saliencymix", device="cuda")
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fine_grained_saliency(x), fine_grained_saliency(x.cuda()).cpu())
    cpu = saliency_peaks(x)
    gpu = saliency_peaks(x.cuda())
    assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu, gpu, strict=True))


def test_one_cell_trains(tmp_path):
    assert one_cell_run("saliencymix", tmp_path)["status"] == "ok"
