"""The built-in mask methods, registered through the same hook as any plugin."""

from __future__ import annotations

from msda_arena.api.contract import MaskMethod, Param
from msda_arena.api.hookspecs import hookimpl
from msda_arena.methods.cutmix import CutMix
from msda_arena.methods.gmix import GMix
from msda_arena.methods.hmix import HMix
from msda_arena.methods.mixup import Mixup, Vanilla
from msda_arena.methods.stochastic import MixupCutMix

__all__ = [
    "BUILTINS",
    "CutMix",
    "GMix",
    "HMix",
    "MaskMethod",
    "Mixup",
    "MixupCutMix",
    "Param",
    "Vanilla",
]

BUILTINS: tuple[type[MaskMethod], ...] = (Vanilla, Mixup, CutMix, HMix, GMix, MixupCutMix)


@hookimpl
def register_methods(register):
    """Register vanilla, mixup, cutmix, hmix, gmix and mixup-cutmix."""
    for cls in BUILTINS:
        register(cls)
