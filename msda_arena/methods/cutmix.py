"""CutMix: paste a box of the partner image.

Yun, Han, Oh, Chun, Choe, Yoo, "CutMix: Regularization Strategy to Train Strong
Classifiers with Localizable Features", ICCV 2019. https://arxiv.org/abs/1905.04899

The box has height ``floor(H * sqrt(1 - lambda))`` and width
``floor(W * sqrt(1 - lambda))``, its centre uniform over all pixels, and is clipped
to the image; M = 0 inside, 1 outside. The harness weighs labels with the true mean
of M, i.e. ``1 - clipped_area / (H * W)``, as the reference code does after clipping.
(The reference code spans ``centre +- cut // 2``, which drops a row or column for
odd sizes; here the box is exactly ``cut`` wide before clipping, as the paper says.)
"""

from __future__ import annotations

import torch

from msda_arena.contract import MaskMethod

__all__ = ["CutMix", "box_inside"]


def box_inside(
    side_frac: torch.Tensor, height: int, width: int, generator: torch.Generator
) -> torch.Tensor:
    """Boolean ``[B, H, W]``: inside a box per sample, vectorised.

    ``side_frac[b]`` scales both sides: the box is ``floor(H * f) x floor(W * f)``,
    centred at a pixel drawn uniformly, clipped to the image.
    """
    device = side_frac.device
    n = side_frac.shape[0]
    f = side_frac.to(torch.float64).clamp(0.0, 1.0)
    cut_h = torch.floor(height * f).long()
    cut_w = torch.floor(width * f).long()
    cy = torch.randint(0, height, (n,), generator=generator, device=device)
    cx = torch.randint(0, width, (n,), generator=generator, device=device)
    y1 = cy - cut_h // 2
    x1 = cx - cut_w // 2
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_y = (rows >= y1[:, None]) & (rows < (y1 + cut_h)[:, None])
    in_x = (cols >= x1[:, None]) & (cols < (x1 + cut_w)[:, None])
    return in_y[:, :, None] & in_x[:, None, :]


class CutMix(MaskMethod):
    """CutMix: a binary mask with a box of the partner image (Yun et al., ICCV 2019)."""

    name = "cutmix"
    summary = "binary box mask (Yun et al., ICCV 2019)"

    def masks(self, lam, height, width, generator):
        inside = box_inside(torch.sqrt(1.0 - lam.to(torch.float64)), height, width, generator)
        return (~inside).to(torch.float32).unsqueeze(1)
