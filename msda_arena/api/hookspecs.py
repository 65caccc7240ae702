"""The pluggy hooks of msda-arena: the one place a plugin author needs to read.

A plugin is a module (or object) with functions marked ``@msda_arena.hookimpl``,
exposed through the entry-point group ``msda_arena`` in its package metadata
(usually one, :func:`register_methods`)::

    [project.entry-points.msda_arena]
    mymask = "mymask_plugin"

The built-in methods register through these same hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from msda_arena.api.contract import MethodBase

PROJECT = "msda_arena"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register: Callable[[type[MethodBase]], None]) -> None:
    """Register methods, of any kind, by calling ``register`` once per method class.

    Args:
        register: call it with a :class:`msda_arena.MaskMethod`,
            :class:`msda_arena.MixMethod` or :class:`msda_arena.FeatureMixMethod`
            subclass; its ``name``
            becomes the method name used in specs (``arena run --method NAME``).
            Registering a name that another package already registered is an error
            that names both packages.

    Every implementation is called (no first-result-wins); the return value is ignored.
    """


@hookspec
def register_mask_methods(register: Callable[[type[MethodBase]], None]) -> None:
    """The first name of :func:`register_methods` (when only mask methods existed); still
    called, so the plugins written for it keep working."""
