"""The model's input gradients: the saliency the harness hands mixing methods that ask
for it (PuzzleMix), the FGSM-free part of the gradient maps, and the probes' stand-in."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from msda_arena.api.contract import Saliency

__all__ = ["class_activation_maps", "evaluating", "input_gradients", "model_saliency"]


def input_gradients(
    model: Any, x: torch.Tensor, y: torch.Tensor, channels: str = "l1"
) -> torch.Tensor:
    """Per-pixel input-gradient magnitude ``[B, H, W]`` (float32) of the cross-entropy loss.

    ``g_b(v) = sum_c |d loss_b / d x_b[c, v]|`` for each input ``b`` (``channels="l1"``,
    the gradient maps'), or ``sqrt(mean_c (d loss_b / d x_b[c, v])^2)`` (``"rms"``, the
    saliency PuzzleMix uses and the harness gives mixing methods). The loss is summed
    over the batch, so each input's gradient is its own; the model's mode is left as
    the caller set it (use ``model.eval()`` for per-input independence). Only the
    input's gradient is computed: the parameters' ``.grad`` are left untouched.
    """
    if channels not in ("l1", "rms"):
        raise ValueError(f"channels must be 'l1' or 'rms', got {channels!r}")
    inputs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(inputs)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, inputs)
    grad = grad.float()
    if channels == "rms":
        return grad.square().mean(dim=1).sqrt()
    return grad.abs().sum(dim=1)


@contextlib.contextmanager
def evaluating(
    model: torch.nn.Module,
    y: torch.Tensor,
    images: torch.Tensor,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    memory_format: torch.memory_format | None = None,
    what: str = "saliency()",
) -> Iterator[torch.Tensor]:
    """``images`` (the batch's, labels ``y``; in ``memory_format`` if given) for a pass of
    ``model`` in evaluation mode under ``autocast()``, as PuzzleMix's reference computes
    saliency: BatchNorm's running statistics are not updated, and the model's mode is
    restored after. ``what`` names the caller in the one-line error for other images."""
    if images.ndim != 4 or images.shape[0] != y.shape[0]:
        raise ValueError(
            f"{what} takes the batch's {y.shape[0]} images [B, C, H, W], "
            f"got shape {list(images.shape)}"
        )
    if memory_format is not None:
        images = images.contiguous(memory_format=memory_format)
    was_training = model.training
    model.eval()
    try:
        with autocast():
            yield images
    finally:
        model.train(was_training)


def model_saliency(
    model: torch.nn.Module,
    y: torch.Tensor,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    memory_format: torch.memory_format | None = None,
) -> Saliency:
    """The :data:`~msda_arena.api.contract.Saliency` callable of a batch with labels ``y``:
    ``model``'s input-gradient magnitude (RMS over channels, as PuzzleMix) on the images
    it is given, :func:`evaluating` them. One forward and backward per call; the
    parameters' gradients are not touched. What the trainer and :func:`msda_arena.mixer`
    hand a mixing method that sets ``needs_saliency``."""

    def saliency(images: torch.Tensor) -> torch.Tensor:
        with evaluating(model, y, images, autocast, memory_format) as x:
            return input_gradients(model, x, y, "rms")

    return saliency


def class_activation_maps(model: Any, x: torch.Tensor) -> torch.Tensor:
    """Class activation maps ``[B, num_classes, h, w]`` (float32, no gradient) of a timm
    model whose ``forward_features`` returns a feature map ``[B, C, h, w]`` and whose
    classifier (``get_classifier()``) is one ``nn.Linear`` on the pooled features:
    ``cam[b, k] = W_k . features[b, :, p] + bias_k`` at each position ``p`` (Zhou et al.,
    CVPR 2016, as SnapMix computes it). The model's mode is left as the caller set it.

    Raises:
        ValueError: the model has no such feature map or classifier (one line).
    """
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(classifier, torch.nn.Linear):
        raise ValueError(
            f"class activation maps need a model whose get_classifier() is one nn.Linear; "
            f"{type(model).__name__} has {type(classifier).__name__}"
        )
    with torch.no_grad():
        features = model.forward_features(x)
        if features.ndim != 4 or features.shape[1] != classifier.in_features:
            raise ValueError(
                f"class activation maps need forward_features() to return [B, "
                f"{classifier.in_features}, h, w]; {type(model).__name__} returns "
                f"{list(features.shape)}"
            )
        cam = torch.einsum("bchw,kc->bkhw", features.float(), classifier.weight.float())
        if classifier.bias is not None:
            cam = cam + classifier.bias.float().view(1, -1, 1, 1)
    return cam
