"""Why a method behaves as it does: pair-weight fingerprints and the locality index
(:mod:`~msda_arena.theory.fingerprint`), input-gradient maps of trained checkpoints
(:mod:`~msda_arena.theory.gradients`), mask galleries (:mod:`~msda_arena.theory.gallery`) and
the probes that recover a mixing method's per-pixel weights (:mod:`~msda_arena.theory.mixprobe`)."""
