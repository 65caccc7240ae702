"""StripeMix: an example third-party mask method for msda-arena.

The mask is a set of parallel bands of period ``period`` pixels with a random phase
per sample; in each period a share ``lambda`` of the pixels keeps the first image,
so ``mean(M)`` is close to lambda. It exists to show the plugin contract end to end:
a ``MaskMethod`` subclass, one ``register_mask_methods`` hook implementation, and an
entry point in the ``msda_arena`` group (see pyproject.toml).
"""

from __future__ import annotations

import torch

from msda_arena import MaskMethod, Param, hookimpl
from msda_arena.contract import ALPHA

__version__ = "0.1.0"


class StripeMix(MaskMethod):
    """Binary bands: in every ``period`` pixels a share lambda keeps image x_i."""

    name = "stripes"
    params = (
        ALPHA,
        Param("period", int, 8, "band period in pixels", lambda p: p >= 2, "period >= 2"),
        Param("vertical", bool, True, "vertical bands (else horizontal)"),
    )
    summary = "binary bands of a fixed period (example plugin)"

    def masks(self, lam, height, width, generator):
        n = lam.shape[0]
        period = self.values["period"]
        length = width if self.values["vertical"] else height
        phase = torch.randint(0, period, (n, 1), generator=generator, device=lam.device)
        pos = torch.arange(length, device=lam.device)[None, :] + phase
        frac = (pos % period).to(torch.float32) / period
        band = (frac < lam.to(torch.float32)[:, None]).to(torch.float32)  # [n, length]
        if self.values["vertical"]:
            return band[:, None, None, :].expand(n, 1, height, width)
        return band[:, None, :, None].expand(n, 1, height, width)


@hookimpl
def register_mask_methods(register):
    """Register StripeMix as ``stripes``."""
    register(StripeMix)
