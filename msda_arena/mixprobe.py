"""Compatibility: the mixing-method probes, now :mod:`msda_arena.theory.mixprobe`. Plugin
packages written before the layered layout import ``msda_arena.mixprobe``; this keeps
them working unchanged (one module object under both names)."""

import sys

from msda_arena.theory import mixprobe as _module

sys.modules[__name__] = _module
