"""HMix: CutMix's box with Mixup outside it.

Park, Yun, Chun, "A Unified Analysis of Mixed Sample Data Augmentation: A Loss
Function Perspective", NeurIPS 2022. https://arxiv.org/abs/2208.09913

The box is as CutMix's (the reference ``centre +- cut // 2`` span) with side ratio
``sqrt(1 - lambda) * sqrt(r)``, clipped. With
``lam_cut = 1 - box_area / (H * W)`` and ``lam_mix = lambda / lam_cut``, the mask is
``lam_mix`` outside the box and 0 inside, so ``mean(M) = lambda`` exactly.
``r = 0.5`` is the paper's setting; ``r = 1`` is almost CutMix; ``r -> 0`` is Mixup.
"""

from __future__ import annotations

from msda_arena.api.contract import ALPHA, MaskMethod, Param
from msda_arena.methods.cutmix import box_inside

__all__ = ["HMix"]


class HMix(MaskMethod):
    """HMix: a zero box (ratio r of CutMix's area) in a Mixup field (Park et al., 2022)."""

    name = "hmix"
    params = (
        ALPHA,
        Param(
            "r",
            float,
            0.5,
            "share of the CutMix box area that is cut",
            lambda r: 0 < r <= 1,
            "0 < r <= 1",
        ),
    )
    summary = "CutMix box of area ratio r inside Mixup (Park et al., NeurIPS 2022)"

    def masks(self, lam, height, width, generator):
        import torch  # here, not at the top: `arena methods` lists methods without torch

        lam64 = lam.to(torch.float64)
        side = torch.sqrt((1.0 - lam64) * float(self.values["r"]))
        inside = box_inside(side, height, width, generator)
        lam_cut = 1.0 - inside.sum(dim=(1, 2)).to(torch.float64) / (height * width)
        lam_mix = torch.where(
            lam_cut > 0, lam64 / lam_cut.clamp_min(1e-12), torch.zeros_like(lam64)
        )
        lam_mix = lam_mix.clamp(0.0, 1.0)
        m = torch.where(inside, 0.0, lam_mix.view(-1, 1, 1))
        return m.to(torch.float32).unsqueeze(1)
