"""arena.toml to cells: profiles, recipes and scenarios (:mod:`~msda_arena.grid.config`,
with the embedded default ``default_arena.toml``) and the grid of cells with stable keys
(:mod:`~msda_arena.grid.cells`)."""
