"""Manifold Mixup for msda-arena: Mixup of hidden features at a stage drawn per batch.

Verma, Lamb, Beckham, Najafi, Mitliagkas, Lopez-Paz, Bengio, "Manifold Mixup: Better
Representations by Interpolating Hidden States", ICML 2019. Reference code:
https://github.com/vikasverma1077/manifold_mixup (``supervised/models/preresnet.py``,
``PreActResNet.forward``; ``supervised/utils.py``, ``mixup_process`` and ``get_lambda``).

Per batch, a stage ``k`` is drawn uniformly from ``layers`` (the reference:
``random.randint(0, 2)``, i.e. the input, the output of the first residual stage or of
the second) and one ``lambda ~ Beta(alpha, alpha)``; the features ``h`` there become
``lambda * h + (1 - lambda) * h[partner]`` and the label ``lambda * y + (1 - lambda) *
y[partner]``. Stage 0 is the input images (input Mixup); stage ``s >= 1`` is the
output of the module the timm model lists as ``feature_info[s - 1]``, so the method
works on any timm model, the arena's CIFAR ResNets included (there stage ``s`` is the
output of residual stage ``s``, the reference's ``layer{s}``).
"""

from __future__ import annotations

import torch

from msda_arena import FeatureMixMethod, Param, Stage, hookimpl

__all__ = ["ManifoldMixup", "mix_hidden"]

__version__ = "0.1.0"


def _layers_ok(layers: tuple[int, ...]) -> bool:
    return len(layers) > 0 and min(layers) >= 0 and len(set(layers)) == len(layers)


def mix_hidden(h: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``lam * h + (1 - lam) * h[partner]`` in float32 (the reference's arithmetic, in that
    order), returned in ``h``'s dtype; ``lam`` ``[1]`` or ``[B]``."""
    lam = lam.float().view(-1, *([1] * (h.ndim - 1)))
    return (h.float() * lam + h[partner].float() * (1.0 - lam)).to(h.dtype)


class ManifoldMixup(FeatureMixMethod):
    """Manifold Mixup: input or hidden-feature Mixup at a stage drawn per batch."""

    name = "manifold-mixup"
    params = (
        Param(
            "alpha",
            float,
            2.0,
            "Beta(alpha, alpha) concentration of lambda (the paper's CIFAR setting)",
            lambda a: 0 < a < float("inf"),
            "alpha > 0",
        ),
        Param(
            "layers",
            tuple[int, ...],
            (0, 1, 2),
            "stages drawn from, uniformly per batch: 0 the input, s the output of the "
            "model's s-th timm feature stage",
            _layers_ok,
            "distinct stages >= 0",
        ),
    )
    summary = "Mixup of the input or hidden features at a stage drawn per batch"

    def stage(self, stages: tuple[Stage, ...], generator: torch.Generator) -> int:
        """One of ``layers``, uniformly, from the CPU ``generator``."""
        layers: tuple[int, ...] = self.values["layers"]
        if max(layers) >= len(stages):
            raise ValueError(
                f"manifold-mixup: layer {max(layers)} does not exist; this model has "
                f"stages 0 to {len(stages) - 1} (set layers=(...) within them)"
            )
        return layers[int(torch.randint(len(layers), (1,), generator=generator))]

    def mix(self, h, y, partner, lam, generator, model=None):
        """``(mixed, sources, weights)``: :func:`mix_hidden`, sources ``[i, partner[i]]``,
        weights ``[lambda, 1 - lambda]``."""
        b = h.shape[0]
        mixed = mix_hidden(h, partner, lam)
        sources = torch.stack([torch.arange(b, device=h.device), partner], dim=1)
        w = lam.float().expand(b) if lam.numel() == 1 else lam.float()
        return mixed, sources, torch.stack([w, 1.0 - w], dim=1)


@hookimpl
def register_methods(register):
    """Register ``manifold-mixup``."""
    register(ManifoldMixup)
