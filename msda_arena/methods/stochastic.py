"""Stochastic Mixup & CutMix: per batch, CutMix with probability p, else Mixup.

The "Stochastic Mixup & CutMix" baseline of Park, Yun, Chun (NeurIPS 2022), as in
timm's ``switch_prob``. One coin is drawn per call of :meth:`masks` (one batch),
on the device, without a host sync.
"""

from __future__ import annotations

from msda_arena.api.contract import ALPHA, MaskMethod, Param
from msda_arena.methods.cutmix import CutMix
from msda_arena.methods.mixup import Mixup

__all__ = ["MixupCutMix"]


class MixupCutMix(MaskMethod):
    """Per batch: CutMix masks with probability ``p``, Mixup masks otherwise."""

    name = "mixup-cutmix"
    params = (
        ALPHA,
        Param(
            "p",
            float,
            0.5,
            "probability of CutMix for a batch",
            lambda p: 0 <= p <= 1,
            "0 <= p <= 1",
        ),
    )
    summary = "per batch CutMix with probability p, else Mixup (Park et al., 2022)"

    def masks(self, lam, height, width, generator):
        import torch  # here, not at the top: `arena methods` lists methods without torch

        coin = torch.rand(1, generator=generator, device=lam.device)
        cut = CutMix.masks(self, lam, height, width, generator)
        mix = Mixup.masks(self, lam, height, width, generator)
        return torch.where(coin < float(self.values["p"]), cut, mix)
