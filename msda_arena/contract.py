"""Compatibility: the method contract, now :mod:`msda_arena.api.contract`. Plugin packages
written before the layered layout import ``msda_arena.contract``; this keeps them
working unchanged (one module object under both names)."""

import sys

from msda_arena.api import contract as _module

sys.modules[__name__] = _module
