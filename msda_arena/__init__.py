"""msda-arena: benchmark Mixed Sample Data Augmentation methods on one honest leaderboard.

Public API::

    from msda_arena import get_method, list_methods, hookimpl, MaskMethod, MixMethod, Param

    method = get_method("hmix(r=0.25)")
    lam = method.sample_lam(8, generator, "cpu")
    masks = method.masks(lam, 32, 32, generator)   # [8, 1, 32, 32] in [0, 1]

A :class:`MixMethod` (the second kind) mixes the batch itself:
``mixed, weight = method.mix(x, y, partner, lam, generator, saliency)``; a
:class:`FeatureMixMethod` (the third) mixes features at a stage of the model it picks:
``mixed, sources, weights = method.mix(h, y, partner, lam, generator, model)``.

Any method in your own training loop, in place of timm's ``Mixup``::

    mix = mixer("hmix(r=0.25)", num_classes=100, label_smoothing=0.1)
    x, target = mix(x, y)                          # target: soft, [B, 100]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msda_arena.api import __version__
from msda_arena.api.contract import (
    FeatureMixMethod,
    MaskMethod,
    Method,
    MixMethod,
    ModelView,
    Param,
    Saliency,
    Stage,
)
from msda_arena.api.hookspecs import hookimpl
from msda_arena.api.spec import SpecError

if TYPE_CHECKING:
    from msda_arena.methods.registry import get_method, list_methods, method_info
    from msda_arena.train.mixer import mixer

__all__ = [
    "FeatureMixMethod",
    "MaskMethod",
    "Method",
    "MixMethod",
    "ModelView",
    "Param",
    "Saliency",
    "SpecError",
    "Stage",
    "__version__",
    "get_method",
    "hookimpl",
    "list_methods",
    "method_info",
    "mixer",
]

_REGISTRY_NAMES = ("get_method", "list_methods", "method_info")


def __getattr__(name: str) -> Any:
    """``get_method``, ``list_methods`` and ``method_info`` load the registry (and with the
    plugins, often torch), ``mixer`` the trainer's mixing, on first use: every
    ``import msda_arena.x`` runs this package first, and ``arena --help`` must stay instant."""
    if name in _REGISTRY_NAMES:
        from msda_arena.methods import registry

        return getattr(registry, name)
    if name == "mixer":
        from msda_arena.train import mixer

        return mixer.mixer
    raise AttributeError(f"module 'msda_arena' has no attribute {name!r}")
