"""SaliencyMix against its reference: the official ``saliency_bbox`` (afm-shahab-uddin/
SaliencyMix, ``SaliencyMix_CIFAR/saliencymix.py``, commit 9ee02b8), whose steps
:func:`_official_box` repeats with OpenCV's own ``StaticSaliencyFineGrained`` (from
``opencv-contrib-python-headless``, a test dependency: these tests skip without it).

Inputs: the arena's procedural images, normalised as the harness feeds them, at 32 px
(RGB) and 28 px (grey, as Fashion-MNIST), Fashion-MNIST's test images where Debian's
``dataset-fashion-mnist`` is installed, and random images of other sizes. Run
``python plugins/arena-saliencymix/tests/test_fidelity.py [FASHION_MNIST_DIR]`` to print
the figures the README quotes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from arena_saliencymix import SaliencyMix, fine_grained_saliency, saliency_peaks

from msda_arena.api.errors import UsageError
from msda_arena.data.base import normalize
from msda_arena.data.fashion import load_fashion_mnist
from msda_arena.data.procedural import generate

cv2 = pytest.importorskip("cv2")
if not hasattr(cv2, "saliency"):
    pytest.skip(
        "cv2 has no saliency module (opencv-contrib not installed)", allow_module_level=True
    )

BATCH = 16
#: (channels, height, width, images) of the Gaussian images :func:`_report` measures.
RANDOM_SIZES = ((3, 32, 32, 200), (1, 28, 28, 200), (3, 24, 40, 200), (3, 64, 48, 50))
RANDOM_SIZES += ((3, 96, 96, 20), (3, 224, 224, 6), (3, 64, 17, 30), (3, 7, 5, 50))


def _opencv_map(img: torch.Tensor) -> np.ndarray:
    """OpenCV's fine-grained map of one ``[C, H, W]`` image as the official code calls
    it (float32 ``H x W x C``), quantised to uint8 as it does."""
    detector = cv2.saliency.StaticSaliencyFineGrained_create()
    ok, sal = detector.computeSaliency(np.ascontiguousarray(img.permute(1, 2, 0).numpy()))
    assert ok
    return (sal * 255).astype("uint8")


def _official_box(img: torch.Tensor, lam: float) -> tuple[int, int, int, int]:
    """The official ``saliency_bbox``: ``(y1, y2, x1, x2)`` around the first maximum of
    the uint8 map, CutMix's cut ``int(side * sqrt(1 - lam))``, ``+- cut // 2``, clipped."""
    _, h, w = img.shape
    sal = _opencv_map(img)
    cy, cx = np.unravel_index(np.argmax(sal), sal.shape)
    cut_h, cut_w = int(h * np.sqrt(1.0 - lam)), int(w * np.sqrt(1.0 - lam))
    y1, y2 = np.clip(cy - cut_h // 2, 0, h), np.clip(cy + cut_h // 2, 0, h)
    x1, x2 = np.clip(cx - cut_w // 2, 0, w), np.clip(cx + cut_w // 2, 0, w)
    return int(y1), int(y2), int(x1), int(x2)


def _images(n: int, size: int, grey: bool, seed: int) -> torch.Tensor:
    """``n`` procedural test images, normalised with their own statistics."""
    x = generate(n, 10, size, 0.5, seed)[0]
    if grey:
        x = (x.float().mean(dim=1, keepdim=True)).round().to(torch.uint8)
    xf = x.float() / 255
    mean = xf.mean(dim=(0, 2, 3)).tolist()
    std = xf.std(dim=(0, 2, 3)).tolist()
    return normalize(x, mean, std)


def _batch_boxes(x: torch.Tensor, seed: int) -> tuple[int, int]:
    """Batches of :data:`BATCH`: (images whose box equals the official box, images)."""
    g = torch.Generator().manual_seed(seed)
    method = SaliencyMix()
    same = total = 0
    for start in range(0, x.shape[0] - BATCH + 1, BATCH):
        xb = x[start : start + BATCH]
        partner = torch.randperm(BATCH, generator=g)
        lam = method.sample_lam(1, g)
        mixed, weight = method.mix(xb, None, partner, lam, g)
        y1, y2, x1, x2 = _official_box(xb[partner[0]], float(lam))
        expect = xb.clone()
        expect[:, :, y1:y2, x1:x2] = xb[partner, :, y1:y2, x1:x2]
        area = (y2 - y1) * (x2 - x1) / (xb.shape[-1] * xb.shape[-2])
        ok = (mixed == expect).flatten(1).all(dim=1) & ((weight - (1 - area)).abs() < 1e-6)
        same += int(ok.sum())
        total += BATCH
    return same, total


@pytest.mark.parametrize(("size", "grey"), [(32, False), (28, True)])
def test_boxes_equal_the_official_function(size, grey):
    x = _images(8 * BATCH, size, grey, seed=1)
    same, total = _batch_boxes(x, seed=size)
    assert same >= 0.95 * total, f"{same} of {total} images got the official box"


def _fashion(n: int, root: str | None = None) -> torch.Tensor | None:
    """The first ``n`` Fashion-MNIST test images, normalised as the harness does, or
    None where the data is not installed (Debian's ``dataset-fashion-mnist``)."""
    try:
        data = load_fashion_mnist(Path(root) if root else None)
    except UsageError:
        return None
    return data.normalize(data.test_x[:n])


def test_boxes_equal_the_official_function_on_fashion_mnist():
    x = _fashion(8 * BATCH)
    if x is None:
        pytest.skip("Fashion-MNIST is not installed (dataset-fashion-mnist)")
    same, total = _batch_boxes(x, seed=28)
    assert same >= 0.95 * total, f"{same} of {total} images got the official box"


@pytest.mark.parametrize(
    ("c", "h", "w"), [(3, 32, 32), (1, 28, 28), (3, 24, 40), (3, 64, 48), (3, 1, 8), (1, 8, 1)]
)
def test_maps_equal_opencv(c, h, w):
    g = torch.Generator().manual_seed(h * w + c)
    x = torch.randn(16, c, h, w, generator=g) * torch.rand(16, 1, 1, 1, generator=g) * 3
    ours = fine_grained_saliency(x).numpy()
    same = sum(np.array_equal(_opencv_map(x[i]), ours[i]) for i in range(len(x)))
    assert same >= 0.95 * len(x), f"{same} of {len(x)} maps equal OpenCV's"


def _report(fashion_root: str | None) -> None:
    """Print the agreement figures on 1,024 images per size (the README's)."""
    sets = [
        (f"procedural {size} px", _images(1024, size, grey, seed=1), size)
        for size, grey in ((32, False), (28, True))
    ]
    fashion = _fashion(1024, fashion_root)
    if fashion is not None:
        sets.append(("Fashion-MNIST 28 px", fashion, 28))
    for name, x, size in sets:
        same, total = _batch_boxes(x, seed=size)
        ours = fine_grained_saliency(x).numpy()
        maps = sum(np.array_equal(_opencv_map(x[i]), ours[i]) for i in range(len(x)))
        cy, cx = saliency_peaks(x)
        border = float(((cy == 0) | (cx == 0) | (cy == size - 1) | (cx == size - 1)).float().mean())
        print(
            f"{name}: boxes {same}/{total}, maps {maps}/{len(x)}, peaks on the border {border:.1%}"
        )
    g = torch.Generator().manual_seed(0)
    for c, h, w, n in RANDOM_SIZES:
        x = torch.randn(n, c, h, w, generator=g) * torch.rand(n, 1, 1, 1, generator=g) * 3
        ours = fine_grained_saliency(x).numpy()
        maps = sum(np.array_equal(_opencv_map(x[i]), ours[i]) for i in range(n))
        peaks = sum(_opencv_map(x[i]).argmax() == ours[i].argmax() for i in range(n))
        print(f"{h} x {w} x {c} Gaussian: maps {maps}/{n}, peaks {peaks}/{n}")


if __name__ == "__main__":
    _report(sys.argv[1] if len(sys.argv) > 1 else None)  # optional: Fashion-MNIST's folder
