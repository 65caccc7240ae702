"""GMix: a Gaussian blob of the partner image.

Park, Yun, Chun, "A Unified Analysis of Mixed Sample Data Augmentation: A Loss
Function Perspective", NeurIPS 2022. https://arxiv.org/abs/2208.09913

Centre ``c`` uniform over pixels; ``lam_k = min(lambda, 1 - lambda)``;
``G(p) = exp(-pi * |p - c|^2 / (lam_k * H * W))`` (peak 1, integral ``lam_k * H * W``
over the plane); ``M = G`` if ``lambda < 0.5`` else ``1 - G``. The label weight is the
true ``mean(M)``, which differs from lambda where the blob is clipped by the border.
The reference code assumes square images (``H**2``); ``H * W`` here works for any shape.
"""

from __future__ import annotations

import math

from msda_arena.api.contract import MaskMethod

__all__ = ["GMix"]


class GMix(MaskMethod):
    """GMix: M is a Gaussian bump (or one minus it) of area lambda (Park et al., 2022)."""

    name = "gmix"
    summary = "Gaussian blob mask (Park et al., NeurIPS 2022)"

    def masks(self, lam, height, width, generator):
        import torch  # here, not at the top: `arena methods` lists methods without torch

        device = lam.device
        n = lam.shape[0]
        lam32 = lam.to(torch.float32)
        cy = torch.randint(0, height, (n,), generator=generator, device=device).to(torch.float32)
        cx = torch.randint(0, width, (n,), generator=generator, device=device).to(torch.float32)
        lam_k = torch.minimum(lam32, 1.0 - lam32).clamp_min(1e-8)
        dy2 = (torch.arange(height, device=device, dtype=torch.float32) - cy[:, None]) ** 2
        dx2 = (torch.arange(width, device=device, dtype=torch.float32) - cx[:, None]) ** 2
        d2 = dy2[:, :, None] + dx2[:, None, :]
        g = torch.exp(-math.pi * d2 / (lam_k * height * width).view(-1, 1, 1))
        m = torch.where((lam32 < 0.5).view(-1, 1, 1), g, 1.0 - g)
        return m.unsqueeze(1)
