"""Compatibility: helpers for plugin tests, now :mod:`msda_arena.pluginkit.conformance`.
Plugin packages written before the layered layout import ``msda_arena.testing``; this
keeps them working unchanged (one module object under both names)."""

import sys

from msda_arena.pluginkit import conformance as _module

sys.modules[__name__] = _module
