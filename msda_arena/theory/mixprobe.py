"""Probing a mixing method (:class:`~msda_arena.api.contract.MixMethod`) from outside.

A mixing method returns mixed images, not masks, so what it did to each pixel is not
given. These probes recover it, for ``arena check`` and ``arena masks``:

* :func:`with_code_channel` appends a channel that is constant per image and different
  between images (its *code*). If each mixed pixel is a convex combination of pixels of
  ``x_i`` and ``x_j`` with one set of weights for all channels (taken from any
  positions: a resized or transported partner counts), the code channel of the mixed
  image is ``a * c_i + (1 - a) * c_j``, where ``a`` is the pixel's total weight on
  ``x_i``; :func:`pixel_weights` solves for ``a``.
* A second code channel ``2 * x[0] + k`` (``k`` another constant per image) makes the
  check sharp: for a combination of pixels of the two images it must equal
  ``2 * mixed[0] + a * k_i + (1 - a) * k_j``; pixels from a third image, noise added,
  or a rescaled image break that (:func:`convexity_error`).
* :func:`with_lams` runs a method at chosen lambdas;
* :func:`stand_in_saliency` is a fixed, seeded small CNN's input-gradient saliency, the
  same function of the images the trainer gives (:func:`msda_arena.train.saliency.input_gradients`
  with ``"rms"``), for calling a saliency method without a trained model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from msda_arena.train.saliency import input_gradients

if TYPE_CHECKING:
    from msda_arena.api.contract import MixMethod

__all__ = [
    "CodedBatch",
    "code_batch",
    "convexity_error",
    "pixel_weights",
    "stand_in_saliency",
    "with_lams",
]


class CodedBatch:
    """Images with two code channels appended (see the module docstring).

    Attributes:
        images: ``[B, C + 2, H, W]`` float32: the original channels, then
            ``2 * x[:, 0] + k`` and the constant ``c``.
        c, k: the two codes ``[B]``; ``c`` is spread so any two differ by >= 0.1.
        channels: C, the number of original channels.
    """

    def __init__(self, x: torch.Tensor, seed: int = 0) -> None:
        b = x.shape[0]
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(b, generator=g)
        self.c = (order.float() * 0.1 - 0.05 * (b - 1)).to(x.device)
        self.k = (torch.rand(b, generator=g) * 2 - 1).to(x.device)
        self.channels = x.shape[1]
        shape = (b, 1, *x.shape[2:])
        first = x[:, :1].float()
        self.images = torch.cat(
            [
                x.float(),
                2 * first + self.k.view(-1, 1, 1, 1).expand(shape),
                self.c.view(-1, 1, 1, 1).expand(shape),
            ],
            dim=1,
        )


def code_batch(x: torch.Tensor, seed: int = 0) -> CodedBatch:
    """``x`` ``[B, C, H, W]`` with its two code channels (:class:`CodedBatch`)."""
    return CodedBatch(x, seed)


def pixel_weights(mixed: torch.Tensor, coded: CodedBatch, partner: torch.Tensor) -> torch.Tensor:
    """Each mixed pixel's total weight on ``x_i``, ``[B, H, W]``, from the ``c`` channel.

    Where a sample is its own partner the weight is 1 (the pixel's source is that image).
    """
    ci = coded.c.view(-1, 1, 1)
    cj = coded.c[partner].view(-1, 1, 1)
    denom = ci - cj
    same = denom.abs() < 1e-12
    a = (mixed[:, -1].float() - cj) / torch.where(same, torch.ones_like(denom), denom)
    return torch.where(same, torch.ones_like(a), a)


def convexity_error(
    mixed: torch.Tensor, coded: CodedBatch, partner: torch.Tensor
) -> tuple[float, float]:
    """How far ``mixed`` is from per-pixel convex combinations of its two sources:
    ``(outside, residual)`` where ``outside`` is how far the largest weight lies outside
    ``[0, 1]`` (0 if none) and ``residual`` the largest violation of the second code
    channel's identity (0 up to rounding for a convex combination)."""
    a = pixel_weights(mixed, coded, partner)
    if not (torch.isfinite(a).all() and torch.isfinite(mixed).all()):
        return float("inf"), float("inf")
    if a.numel() == 0:
        return 0.0, 0.0
    outside = float(torch.maximum(-a, a - 1).clamp(min=0).max())
    ki = coded.k.view(-1, 1, 1)
    kj = coded.k[partner].view(-1, 1, 1)
    expected = 2 * mixed[:, 0].float() + a * ki + (1 - a) * kj
    residual = float((mixed[:, coded.channels].float() - expected).abs().max())
    return outside, residual


def stand_in_saliency(
    y: torch.Tensor, channels: int, num_classes: int = 10, seed: int = 0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A :data:`~msda_arena.api.contract.Saliency` callable for labels ``y``: the input-gradient
    saliency (RMS over channels) of a fixed, seeded two-layer CNN on ``channels`` inputs.

    Deterministic for given images, so a method using it can be checked for determinism.
    """
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, num_classes),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    net = net.to(y.device)
    labels = y % num_classes

    def saliency(images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[0] != labels.shape[0] or images.shape[1] != channels:
            raise ValueError(
                f"saliency() takes the batch's {labels.shape[0]} images with {channels} "
                f"channels, got shape {list(images.shape)}"
            )
        return input_gradients(net, images, labels, "rms")

    return saliency


def with_lams(method: MixMethod, lam: torch.Tensor) -> MixMethod:
    """A copy of ``method`` whose ``sample_lam`` returns ``lam`` (its first n values),
    to run it through the harness at chosen lambdas."""
    probe = copy.copy(method)
    probe.sample_lam = lambda n, generator, device=None: lam[:n]  # type: ignore[method-assign]
    return probe
