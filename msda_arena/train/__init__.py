"""One cell's training: the step and the loop (:mod:`~msda_arena.train.loop`), mixing a
batch with any method (:mod:`~msda_arena.train.mixing`), evaluation metrics
(:mod:`~msda_arena.train.evaluate`) and Ctrl-C handling (:mod:`~msda_arena.train.interrupts`).
Knows nothing of stores or executors."""
