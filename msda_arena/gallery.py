"""Mask galleries in the style of Figure 3 of Park et al. (NeurIPS 2022).

For each lambda: the two source images, the mask M and the mixed image
``M * x_i + (1 - M) * x_j``. Images come from the procedural generator, so nothing
is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from msda_arena.contract import MaskMethod

__all__ = ["DEFAULT_LAMS", "gallery_tensors", "save_gallery"]

DEFAULT_LAMS = (0.2, 0.4, 0.6, 0.8)


def _source_images(size: int, seed: int) -> torch.Tensor:
    from msda_arena.data.procedural import generate

    out = generate(2, num_classes=10, image_size=size, object_scale=0.6, seed=seed)
    images = out[0] if isinstance(out, tuple) else out
    return images.to(torch.float32) / 255.0


def gallery_tensors(
    method: MaskMethod, lams: Sequence[float] = DEFAULT_LAMS, size: int = 96, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_i, x_j, masks, mixed)`` for each lambda: ``[L, 3, S, S]``, ``[L, 1, S, S]``..."""
    for lam in lams:
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lambda {lam} is outside [0, 1]")
    images = _source_images(size, seed)
    n = len(lams)
    xi = images[0:1].expand(n, -1, -1, -1)
    xj = images[1:2].expand(n, -1, -1, -1)
    g = torch.Generator().manual_seed(seed)
    masks = method.masks(torch.tensor(list(lams), dtype=torch.float32), size, size, g)
    from msda_arena.mixing import validate_masks

    validate_masks(masks, n, size, size, torch.device("cpu"))
    mixed = masks * xi + (1.0 - masks) * xj
    return xi, xj, masks, mixed


def save_gallery(
    method: MaskMethod,
    out: str | Path,
    lams: Sequence[float] = DEFAULT_LAMS,
    size: int = 96,
    seed: int = 0,
) -> Path:
    """Render the gallery of ``method`` to an image file (format from the suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xi, xj, masks, mixed = gallery_tensors(method, lams, size, seed)
    n = len(lams)
    fig, axes = plt.subplots(n, 4, figsize=(8, 2.1 * n), squeeze=False)
    titles = ("image x_i", "image x_j", "mask M", "mixed")
    for row, lam in enumerate(lams):
        weight = float(masks[row].mean())
        panels = (xi[row], xj[row], masks[row], mixed[row])
        for col, (ax, img) in enumerate(zip(axes[row], panels, strict=True)):
            if img.shape[0] == 1:
                ax.imshow(img[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            else:
                ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=10)
        axes[row][0].set_ylabel(f"λ={lam:g}\nw={weight:.3f}", fontsize=10)
    fig.suptitle(f"{method.spec}: M * x_i + (1 - M) * x_j, label weight w = mean(M)", fontsize=11)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
