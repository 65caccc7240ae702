"""SaliencyMix's own tests: the mix contract, the defining property (the box sits on the
partner's saliency peak, per sample), the label weight, and one real training cell."""

from __future__ import annotations

import math

import pytest
import torch
from arena_saliencymix import SaliencyMix, saliency_peaks, spectral_residual_saliency

from msda_arena import get_method
from msda_arena.testing import assert_conforms, one_cell_run

# Far from any value a planted image takes: marks the target images' pixels.
TARGET = -50.0


def test_saliencymix_conforms_to_the_mix_contract():
    assert_conforms("saliencymix")
    assert_conforms("saliencymix(alpha=0.4)")


def test_registered_as_a_mix_method_without_model_saliency():
    method = get_method("saliencymix")
    assert isinstance(method, SaliencyMix)
    assert method.kind == "mix"
    assert method.needs_saliency is False
    assert get_method("saliencymix(alpha=2)").alpha == 2.0


def _planted(
    positions: list[tuple[int, int]], h: int, w: int, channels: int, background: float
) -> torch.Tensor:
    """Flat images (plus a faint smooth periodic wave) with a bright 2x2 object whose
    top-left pixel is at each position, one image per position."""
    n = len(positions)
    yy = torch.arange(h).view(1, -1, 1)
    xx = torch.arange(w).view(1, 1, -1)
    wave = 0.1 * torch.cos(2 * math.pi * yy / h) * torch.cos(2 * math.pi * xx / w)
    r = torch.tensor([p[0] for p in positions]).view(-1, 1, 1)
    c = torch.tensor([p[1] for p in positions]).view(-1, 1, 1)
    obj = (yy >= r) & (yy < r + 2) & (xx >= c) & (xx < c + 2)
    img = torch.where(obj, torch.tensor(background + 3.0), background + wave.expand(n, h, w))
    return img[:, None].expand(n, channels, h, w).contiguous()


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


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("h", "w"), [(32, 32), (28, 28), (24, 40)])
@pytest.mark.parametrize("background", [-1.0, 0.0, 1.5])
def test_box_is_centred_on_each_partners_planted_object(channels, h, w, background):
    # Partners: images with a bright object at known places; targets: a flat TARGET.
    positions = [(6, 8), (6, w - 10), (h - 8, 8), (h - 8, w - 10), (h // 2 - 1, w // 2 - 1)]
    positions += [(8, w // 2 + 3), (h // 2 + 2, 9), (h - 10, w // 2 - 4)]
    n = len(positions)
    partners = _planted(positions, h, w, channels, background)
    x = torch.cat([torch.full_like(partners, TARGET), partners])
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])  # target i <-> object i
    # one lambda per batch, and one per sample
    g = torch.Generator().manual_seed(0)
    lam_b = 0.9 + 0.07 * torch.rand(2 * n, generator=g)
    for lam in (torch.tensor([0.9]), lam_b):
        mixed, weight = SaliencyMix().mix(x, None, partner, lam, g)
        assert mixed.dtype == x.dtype and mixed.shape == x.shape
        boxes = _box(mixed[:n], x[:n])
        for i, ((r, c), (y1, y2, x1, x2)) in enumerate(zip(positions, boxes, strict=True)):
            f = math.sqrt(1.0 - float(lam.expand(2 * n)[i].double()))
            cut_h, cut_w = math.floor(h * f), math.floor(w * f)
            # small boxes away from the borders: never clipped, so full CutMix size
            assert (y2 - y1, x2 - x1) == (cut_h // 2 * 2, cut_w // 2 * 2)
            # the box centre is on the object (its centre is r + 0.5, c + 0.5)
            cy, cx = (y1 + y2) / 2, (x1 + x2) / 2
            assert abs(cy - (r + 1.0)) <= 2 and abs(cx - (c + 1.0)) <= 2, (i, boxes[i], r, c)
            # the box's pixels come from its own partner, the rest is the target's
            assert torch.equal(mixed[i, :, y1:y2, x1:x2], partners[i, :, y1:y2, x1:x2])
            assert float(weight[i]) == pytest.approx(1 - (y2 - y1) * (x2 - x1) / (h * w), abs=1e-7)


def test_peak_finds_the_object_at_every_position():
    # Every placement of a 2x2 object in a 32x32 flat image: the peak is on it or
    # next to it (the 64 px working resolution and the blur limit the precision).
    h = w = 32
    positions = [(r, c) for r in range(1, h - 2, 3) for c in range(1, w - 2, 3)]
    cy, cx = saliency_peaks(_planted(positions, h, w, 1, 0.0))
    r = torch.tensor([p[0] for p in positions])
    c = torch.tensor([p[1] for p in positions])
    assert (cy - (r + 0.5)).abs().max() <= 1.5
    assert (cx - (c + 0.5)).abs().max() <= 1.5


def test_weight_is_one_minus_the_clipped_box_area():
    # Objects in the corners and lambdas down to 0: boxes are clipped by the image.
    h, w = 24, 40
    positions = [(0, 0), (0, w - 2), (h - 2, 0), (h - 2, w - 2), (10, 18)]
    n = len(positions)
    partners = _planted(positions, h, w, 3, 0.5)
    x = torch.cat([torch.full_like(partners, TARGET), partners])
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    peak_y, peak_x = saliency_peaks(partners)
    clipped = 0
    for lam in (torch.tensor([0.0]), torch.tensor([0.3]), torch.linspace(0, 1, 2 * n)):
        mixed, weight = SaliencyMix().mix(x, None, partner, lam, torch.Generator())
        assert weight.dtype == torch.float32 and weight.shape == (2 * n,)
        for i, box in enumerate(_box(mixed[:n], x[:n])):
            f = math.sqrt(1.0 - float(lam.expand(2 * n)[i].double()))
            cut_h, cut_w = math.floor(h * f), math.floor(w * f)
            cy, cx = int(peak_y[i]), int(peak_x[i])
            y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
            x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
            area = max(y2 - y1, 0) * max(x2 - x1, 0)
            assert box == ((y1, y2, x1, x2) if area else (0, 0, 0, 0))
            assert float(weight[i]) == pytest.approx(1 - area / (h * w), abs=1e-7)
            clipped += area < (cut_h // 2 * 2) * (cut_w // 2 * 2)
    assert clipped >= 8  # the corner objects' boxes were clipped


def test_lambda_one_keeps_the_image_and_weight_one():
    x = torch.randn(6, 3, 16, 16)
    partner = torch.arange(5, -1, -1)
    mixed, weight = SaliencyMix().mix(x, None, partner, torch.tensor([1.0]), torch.Generator())
    assert torch.equal(mixed, x)
    assert torch.equal(weight, torch.ones(6))


@pytest.mark.parametrize("value", [0.0, 1.0, -3.0])
def test_flat_images_give_no_nan(value):
    x = torch.full((4, 1, 28, 28), value)
    sal = spectral_residual_saliency(x)
    assert torch.isfinite(sal).all() and float(sal.min()) >= 0 and float(sal.max()) <= 1
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
    x = _planted([(5, 5), (20, 9), (9, 22)], 32, 32, 3, 0.0)
    cpu = saliency_peaks(x)
    gpu = saliency_peaks(x.cuda())
    assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu, gpu, strict=True))


def test_matches_opencv_spectral_residual():
    """The torch port against OpenCV's own StaticSaliencySpectralResidual, where
    opencv-contrib is installed (it is not a dependency)."""
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "saliency"):
        pytest.skip("cv2 has no saliency module (opencv-contrib-python not installed)")
    import numpy as np

    detector = cv2.saliency.StaticSaliencySpectralResidual_create()
    g = torch.Generator().manual_seed(0)
    for h, w in ((32, 32), (28, 28), (24, 40), (96, 96), (50, 17)):
        x = torch.randn(4, 3, h, w, generator=g)
        ours = spectral_residual_saliency(x)
        for i in range(4):
            # OpenCV reads three channels as BGR
            bgr = np.ascontiguousarray(x[i].permute(1, 2, 0).numpy()[:, :, ::-1])
            ok, ref = detector.computeSaliency(bgr)
            assert ok
            assert np.abs(ref - ours[i].numpy()).max() < 1e-3
            assert np.unravel_index(ref.argmax(), ref.shape) == tuple(
                int(v) for v in np.unravel_index(int(ours[i].argmax()), (h, w))
            )


def test_one_cell_trains(tmp_path):
    assert one_cell_run("saliencymix", tmp_path)["status"] == "ok"
