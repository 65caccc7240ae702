"""Where cells run: the executor base and the local executor (:mod:`~msda_arena.execute.base`),
the local worker pool (:mod:`~msda_arena.execute.pool`), Ray (:mod:`~msda_arena.execute.ray`)
and Slurm (:mod:`~msda_arena.execute.slurm`); every one ends in
:func:`msda_arena.execute.worker.run_cell`."""
