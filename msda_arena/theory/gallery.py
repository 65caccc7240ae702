"""Mask galleries in the style of Figure 3 of Park et al. (NeurIPS 2022).

For each lambda: the two source images, the mask M and the mixed image
``M * x_i + (1 - M) * x_j``. Images come from the procedural generator, so nothing
is downloaded.

A mixing method has no mask: its panel shows each mixed pixel's weight on ``x_i``,
recovered with a code channel (:mod:`msda_arena.theory.mixprobe`), and the label weight is
the one the method returned; a saliency method gets a stand-in model's saliency.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from msda_arena.api.contract import FeatureMixMethod, Method, MixMethod
from msda_arena.api.errors import UsageError
from msda_arena.data.procedural import generate
from msda_arena.theory.mixprobe import code_batch, pixel_weights, stand_in_saliency, with_lams
from msda_arena.train.mixing import Mixer, validate_masks

__all__ = ["DEFAULT_LAMS", "gallery_tensors", "save_gallery"]

DEFAULT_LAMS = (0.2, 0.4, 0.6, 0.8)


def _source_images(size: int, seed: int) -> torch.Tensor:
    out = generate(2, num_classes=10, image_size=size, object_scale=0.6, seed=seed)
    images = out[0] if isinstance(out, tuple) else out
    return images.to(torch.float32) / 255.0


def gallery_tensors(
    method: Method, lams: Sequence[float] = DEFAULT_LAMS, size: int = 96, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_i, x_j, masks, mixed, weights)`` for each lambda: ``[L, 3, S, S]``,
    ``[L, 1, S, S]``..., and the label weights ``[L]``. For a mixing method ``masks``
    are the per-pixel weights on ``x_i`` its mixed images show.

    Raises:
        UsageError: a feature method (it mixes inside the model: nothing to draw).
    """
    if isinstance(method, FeatureMixMethod):
        raise UsageError(
            f"{method.spec} is a feature method: it mixes inside the model (at a stage it "
            "picks, with label weights of its own), so its mixing cannot be drawn; "
            "check it with `arena check`"
        )
    for lam in lams:
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lambda {lam} is outside [0, 1]")
    images = _source_images(size, seed)
    n = len(lams)
    xi = images[0:1].expand(n, -1, -1, -1)
    xj = images[1:2].expand(n, -1, -1, -1)
    if isinstance(method, MixMethod):
        return _mix_gallery(method, lams, xi, xj, seed)
    g = torch.Generator().manual_seed(seed)
    masks = method.masks(torch.tensor(list(lams), dtype=torch.float32), size, size, g)

    validate_masks(masks, n, size, size, torch.device("cpu"))
    mixed = masks * xi + (1.0 - masks) * xj
    return xi, xj, masks, mixed, masks.mean(dim=(1, 2, 3))


def _mix_gallery(
    method: MixMethod, lams: Sequence[float], xi: torch.Tensor, xj: torch.Tensor, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A mixing method on a batch ``[x_i] * L + [x_j] * L`` paired by the harness's
    ``flip`` (row r with its x_j copy), at lambdas ``lams`` then reversed."""
    n = len(lams)
    coded = code_batch(torch.cat([xi, xj]), seed=seed)
    lam = torch.tensor([*lams, *reversed(lams)], dtype=torch.float32)
    y = torch.arange(2 * n)
    saliency = stand_in_saliency(y, coded.images.shape[1]) if method.needs_saliency else None
    mixer = Mixer(with_lams(method, lam), per_sample=True, pairing="flip")
    out = mixer(coded.images, y, torch.Generator().manual_seed(seed), saliency)
    weights = pixel_weights(out.inputs, coded, out.partner_targets)[:n].clamp(0, 1)
    mixed = out.inputs[:n, : xi.shape[1]]
    return xi, xj, weights.unsqueeze(1), mixed, out.weight[:n]


def save_gallery(
    method: Method,
    out: str | Path,
    lams: Sequence[float] = DEFAULT_LAMS,
    size: int = 96,
    seed: int = 0,
) -> Path:
    """Render the gallery of ``method`` to an image file (format from the suffix)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display

    xi, xj, masks, mixed, weights = gallery_tensors(method, lams, size, seed)
    n = len(lams)
    mix_kind = isinstance(method, MixMethod)
    fig = Figure(figsize=(8, 2.1 * n))
    axes = fig.subplots(n, 4, squeeze=False)
    titles = ("image x_i", "image x_j", "weight of x_i" if mix_kind else "mask M", "mixed")
    for row, lam in enumerate(lams):
        weight = float(weights[row])
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
    if mix_kind:
        title = f"{method.spec}: mix(x_i, x_j), label weight w as the method returns it"
    else:
        title = f"{method.spec}: M * x_i + (1 - M) * x_j, label weight w = mean(M)"
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
