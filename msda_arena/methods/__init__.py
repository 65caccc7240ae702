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

#: The built-in methods, in the order of ``grid.REFERENCE_METHODS`` (their names;
#: tests/test_config.py holds the two together).
BUILTINS: tuple[type[MaskMethod], ...] = (Vanilla, Mixup, CutMix, MixupCutMix, HMix, GMix)


@hookimpl
def register_methods(register):
    """Register the :data:`BUILTINS`."""
    for cls in BUILTINS:
        register(cls)
