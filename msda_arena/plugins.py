"""Compatibility: the method registry, now :mod:`msda_arena.methods.registry`. Plugin
packages written before the layered layout import ``msda_arena.plugins``; this keeps
them working unchanged (one module object under both names)."""

import sys

from msda_arena.methods import registry as _module

sys.modules[__name__] = _module
