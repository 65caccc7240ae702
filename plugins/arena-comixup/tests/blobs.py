"""The planted saliency the tests share: what a trained model's looks like (peaked),
where a fresh model's is nearly flat and makes Co-Mixup copy whole images."""

from __future__ import annotations

import torch


def peaked(batch: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``[batch, size, size]``: one or two Gaussian blobs per image at random places over a
    weak noise floor, drawn from ``generator``."""
    axis = torch.arange(size).float()
    sc = 0.01 * torch.rand(batch, size, size, generator=generator)
    for blob in range(2):
        keep = (torch.rand(batch, generator=generator) < (1.0 if blob == 0 else 0.5)).float()
        cy, cx = (torch.rand(2, batch, generator=generator) * size).unbind(0)
        dy = (axis.view(1, -1, 1) - cy.view(-1, 1, 1)) ** 2
        dx = (axis.view(1, 1, -1) - cx.view(-1, 1, 1)) ** 2
        sc += keep.view(-1, 1, 1) * torch.exp(-(dy + dx) / 18.0)
    return sc
