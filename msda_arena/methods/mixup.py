"""No mixing, and Mixup.

* vanilla: M = 1, the un-mixed baseline.
* mixup: M = lambda everywhere. Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond
  Empirical Risk Minimization", ICLR 2018. https://arxiv.org/abs/1710.09412
"""

from __future__ import annotations

from msda_arena.api.contract import MaskMethod

__all__ = ["Mixup", "Vanilla"]


class Vanilla(MaskMethod):
    """No mixing: every mask is 1, so each sample keeps its own image and label."""

    name = "vanilla"
    params = ()
    summary = "no mixing (M = 1)"

    def sample_lam(self, n, generator, device=None):
        import torch  # here, not at the top: `arena methods` lists methods without torch

        return torch.ones(n, device=device if device is not None else generator.device)

    def masks(self, lam, height, width, generator):
        import torch  # here, not at the top: `arena methods` lists methods without torch

        return torch.ones(lam.shape[0], 1, height, width, device=lam.device)


class Mixup(MaskMethod):
    """Mixup: a constant mask, M = lambda at every pixel (Zhang et al., ICLR 2018)."""

    name = "mixup"
    summary = "M = lambda everywhere (Zhang et al., ICLR 2018)"

    def masks(self, lam, height, width, generator):
        return lam.float().view(-1, 1, 1, 1).expand(-1, 1, height, width)
