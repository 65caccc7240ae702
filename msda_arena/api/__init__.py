"""The contracts everything else is written against: the method kinds
(:mod:`~msda_arena.api.contract`), the plugin hook (:mod:`~msda_arena.api.hookspecs`),
method specs (:mod:`~msda_arena.api.spec`), the result record
(:mod:`~msda_arena.api.record`) and the errors (:mod:`~msda_arena.api.errors`).
Imports nothing else of the package."""

__version__ = "0.1.0"
