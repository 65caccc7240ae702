"""CutMix: paste a box of the partner image.

Yun, Han, Oh, Chun, Choe, Yoo, "CutMix: Regularization Strategy to Train Strong
Classifiers with Localizable Features", ICCV 2019. https://arxiv.org/abs/1905.04899

The cut lengths are ``cut_h = floor(H * sqrt(1 - lambda))`` and
``cut_w = floor(W * sqrt(1 - lambda))``, the centre ``(cy, cx)`` uniform over all
pixels, and the box spans rows ``cy - cut_h // 2`` to ``cy + cut_h // 2`` and columns
``cx - cut_w // 2`` to ``cx + cut_w // 2`` (end exclusive), clipped to the image,
exactly as the reference code (Yun et al.'s, timm's, and the HMix/GMix authors'), so an
odd cut loses one row or column; M = 0 inside, 1 outside. The harness weighs labels
with the true mean of M, ``1 - clipped_area / (H * W)``, as the reference code does
after clipping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msda_arena.api.contract import MaskMethod

if TYPE_CHECKING:
    import torch

__all__ = ["CutMix", "box_inside"]


def box_inside(
    side_frac: torch.Tensor, height: int, width: int, generator: torch.Generator
) -> torch.Tensor:
    """Boolean ``[B, H, W]``: inside a box per sample, vectorised.

    ``side_frac[b]`` scales both cut lengths, ``cut = floor(H * f)`` (and W), around a
    centre pixel drawn uniformly; the box spans ``centre - cut // 2`` to
    ``centre + cut // 2`` (end exclusive, the reference geometry), clipped.
    """
    import torch  # here, not at the top: `arena methods` lists methods without torch

    device = side_frac.device
    n = side_frac.shape[0]
    f = side_frac.to(torch.float64).clamp(0.0, 1.0)
    cut_h = torch.floor(height * f).long()
    cut_w = torch.floor(width * f).long()
    cy = torch.randint(0, height, (n,), generator=generator, device=device)
    cx = torch.randint(0, width, (n,), generator=generator, device=device)
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_y = (rows >= (cy - cut_h // 2)[:, None]) & (rows < (cy + cut_h // 2)[:, None])
    in_x = (cols >= (cx - cut_w // 2)[:, None]) & (cols < (cx + cut_w // 2)[:, None])
    return in_y[:, :, None] & in_x[:, None, :]


class CutMix(MaskMethod):
    """CutMix: a binary mask with a box of the partner image (Yun et al., ICCV 2019)."""

    name = "cutmix"
    summary = "binary box mask (Yun et al., ICCV 2019)"

    def masks(self, lam, height, width, generator):
        inside = box_inside((1.0 - lam.double()).sqrt(), height, width, generator)
        return (~inside).float().unsqueeze(1)
