"""The result store: one parquet file per cell and the index
(:mod:`~msda_arena.store.results`), per-cell claims (:mod:`~msda_arena.store.claims`),
``arena verify`` (:mod:`~msda_arena.store.verify`) and provenance
(:mod:`~msda_arena.store.provenance`).

Usable without the CLI: ``from msda_arena.store import load_results``.
"""

from msda_arena.store.results import load_results

__all__ = ["load_results"]
