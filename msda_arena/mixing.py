"""The harness's mixing step, identical for every method.

Given a batch ``(x, y)`` and a method, :class:`Mixer` pairs each sample with a
partner (the reversed batch, as the reference code does, or a random permutation),
draws lambdas and masks (one per batch, as the reference code does, or one per
sample), mixes ``x~ = M * x_i + (1 - M) * x_j`` and weighs the labels with each mask's
true mean ``w = mean(M)``. Everything stays on the batch's device; nothing syncs with
the host except the one-off contract check of the first batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from msda_arena.contract import MaskMethod
from msda_arena.errors import ArenaError

__all__ = ["MaskContractError", "MixedBatch", "Mixer", "pair_indices", "validate_masks"]

Pairing = Literal["flip", "permute"]


class MaskContractError(ArenaError):
    """A method returned masks that break the contract; the message names the rule."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"mask contract rule '{rule}' failed: {message}")
        self.rule = rule
        self.detail = message


def validate_masks(
    masks: object, batch: int, height: int, width: int, device: torch.device
) -> None:
    """Raise :class:`MaskContractError` unless ``masks`` honours the contract.

    Rules, in order: ``type`` (a tensor), ``shape`` (``[batch, 1, H, W]``), ``dtype``
    (floating point), ``device`` (the lambdas' device), ``finite`` and ``range``
    (``[0, 1]``). The value checks sync with the device once.
    """
    if not isinstance(masks, torch.Tensor):
        raise MaskContractError(
            "type", f"masks() returned {type(masks).__name__}, not a torch.Tensor"
        )
    if tuple(masks.shape) != (batch, 1, height, width):
        raise MaskContractError(
            "shape", f"expected [{batch}, 1, {height}, {width}], got {list(masks.shape)}"
        )
    if not masks.is_floating_point():
        raise MaskContractError("dtype", f"expected a floating-point tensor, got {masks.dtype}")
    if masks.device != torch.device(device):
        raise MaskContractError("device", f"expected masks on {device}, got {masks.device}")
    if not bool(torch.isfinite(masks).all()):
        raise MaskContractError("finite", "masks contain NaN or infinity")
    lo, hi = float(masks.min()), float(masks.max())
    if lo < 0.0 or hi > 1.0:
        raise MaskContractError(
            "range", f"mask values must lie in [0, 1], found [{lo:.4g}, {hi:.4g}]"
        )


def pair_indices(
    n: int, mode: Pairing, generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """Partner index of each sample: ``flip`` (reversed batch) or ``permute`` (random)."""
    if mode == "flip":
        return torch.arange(n - 1, -1, -1, device=device)
    if mode == "permute":
        return torch.randperm(n, generator=generator, device=device)
    raise ValueError(f"pairing must be 'flip' or 'permute', got {mode!r}")


@dataclass
class MixedBatch:
    """A mixed batch: inputs plus both label sets and the weight of the first."""

    inputs: torch.Tensor
    targets: torch.Tensor
    partner_targets: torch.Tensor
    weight: torch.Tensor  # [B], mean of each sample's mask = weight of ``targets``
    lam: torch.Tensor  # the drawn lambdas, [B] per sample or [1] per batch
    masks: torch.Tensor  # [B or 1, 1, H, W]

    def soft_targets(self, num_classes: int) -> torch.Tensor:
        """``w * onehot(y_i) + (1 - w) * onehot(y_j)`` as float ``[B, num_classes]``."""
        a = F.one_hot(self.targets, num_classes).to(torch.float32)
        b = F.one_hot(self.partner_targets, num_classes).to(torch.float32)
        w = self.weight.view(-1, 1)
        return w * a + (1.0 - w) * b

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy against the soft targets (computed without one-hot)."""
        logp = F.log_softmax(logits.float(), dim=1)
        la = -logp.gather(1, self.targets.view(-1, 1)).squeeze(1)
        lb = -logp.gather(1, self.partner_targets.view(-1, 1)).squeeze(1)
        return (self.weight * la + (1.0 - self.weight) * lb).mean()


class Mixer:
    """Mixes batches with one method under the harness's fixed rules.

    Args:
        method: the mask method.
        per_sample: one lambda and mask per sample; default one per batch, as the
            reference implementations do.
        pairing: ``"flip"`` pairs sample i with sample B-1-i (reference); ``"permute"``
            pairs with a random permutation.
        validate: check the first batch's masks against the contract.
    """

    def __init__(
        self,
        method: MaskMethod,
        per_sample: bool = False,
        pairing: Pairing = "flip",
        validate: bool = True,
    ) -> None:
        if pairing not in ("flip", "permute"):
            raise ValueError(f"pairing must be 'flip' or 'permute', got {pairing!r}")
        self.method = method
        self.per_sample = per_sample
        self.pairing = pairing
        self._validate = validate

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> MixedBatch:
        """Mix ``x`` ``[B, C, H, W]`` with labels ``y`` ``[B]`` drawing from ``generator``."""
        b, _, h, w = x.shape
        n = b if self.per_sample else 1
        lam = self.method.sample_lam(n, generator, x.device)
        masks = self.method.masks(lam, h, w, generator)
        if self._validate:
            if not isinstance(lam, torch.Tensor) or tuple(lam.shape) != (n,):
                raise MaskContractError(
                    "lam",
                    f"sample_lam({n}) must return a tensor of shape [{n}], "
                    f"got {getattr(lam, 'shape', lam)!r}",
                )
            validate_masks(masks, n, h, w, x.device)
            self._validate = False
        idx = pair_indices(b, self.pairing, generator, x.device)
        weight = masks.mean(dim=(1, 2, 3), dtype=torch.float32).expand(b)  # [1] -> [B] per batch
        mixed = torch.lerp(x[idx], x, masks.to(x.dtype))
        return MixedBatch(mixed, y, y[idx], weight, lam, masks)
