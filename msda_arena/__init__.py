"""msda-arena: benchmark Mixed Sample Data Augmentation masks on one honest leaderboard.

Public API::

    from msda_arena import get_method, list_methods, hookimpl, MaskMethod, MixMethod, Param

    method = get_method("hmix(r=0.25)")
    lam = method.sample_lam(8, generator, "cpu")
    masks = method.masks(lam, 32, 32, generator)   # [8, 1, 32, 32] in [0, 1]

A :class:`MixMethod` (the second kind) mixes the batch itself:
``mixed, weight = method.mix(x, y, partner, lam, generator, saliency)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msda_arena.contract import MaskMethod, Method, MixMethod, Param, Saliency
from msda_arena.hookspecs import hookimpl
from msda_arena.spec import SpecError

if TYPE_CHECKING:
    from msda_arena.plugins import MethodInfo

__version__ = "0.1.0"

__all__ = [
    "MaskMethod",
    "Method",
    "MixMethod",
    "Param",
    "Saliency",
    "SpecError",
    "__version__",
    "get_method",
    "hookimpl",
    "list_methods",
    "method_info",
]


def get_method(spec: str) -> Method:
    """Build the method a spec names, e.g. ``"cutmix"`` or ``"hmix(r=0.25)"``.

    Raises :class:`SpecError` for a malformed spec, an unknown method or parameter,
    or a bad value.
    """
    from msda_arena.plugins import registry
    from msda_arena.spec import parse_spec

    parsed = parse_spec(spec)
    info = registry().get(parsed.name)
    return info.cls(**parsed.params)


def method_info(spec_or_name: str) -> MethodInfo:
    """The registered method (class, package, version) a spec or name refers to."""
    from msda_arena.plugins import registry
    from msda_arena.spec import parse_spec

    return registry().get(parse_spec(spec_or_name).name)


def list_methods(pattern: str | None = None) -> list[MethodInfo]:
    """Installed methods whose names match the shell-style ``pattern``, sorted by name."""
    from msda_arena.plugins import registry

    return registry().select(pattern)
