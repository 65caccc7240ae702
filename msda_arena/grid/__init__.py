"""arena.toml to cells: profiles, recipes and scenarios (:mod:`~msda_arena.grid.config`,
with the embedded default ``default_arena.toml``) and the grid of cells with stable keys
(:mod:`~msda_arena.grid.cells`).

The methods a profile runs as baselines and the order of crop scenarios are declared
here, once (no imports: the report reads them without loading arena.toml's parser)."""

__all__ = ["COMPARED_BASELINES", "REFERENCE_METHODS", "SCENARIO_ORDER", "scenario_sort_key"]

#: The arena's own methods (the names of ``methods.BUILTINS``), in the paper's order: what
#: a profile's ``baselines`` run; a report treats any other method as one under test.
REFERENCE_METHODS: tuple[str, ...] = ("vanilla", "mixup", "cutmix", "mixup-cutmix", "hmix", "gmix")
#: The paper's four masks, which every method is measured against (a report's "Δ best
#: baseline" and paired comparison).
COMPARED_BASELINES: tuple[str, ...] = ("mixup", "cutmix", "hmix", "gmix")
#: The order of crop scenarios in every listing (profiles, a leaderboard's columns).
SCENARIO_ORDER: tuple[str, ...] = ("standard", "large-crop", "small-crop")


def scenario_sort_key(scenario: str) -> tuple[int, str]:
    """Sort key putting scenarios in :data:`SCENARIO_ORDER`, any other (a scenario of a
    user's own arena.toml) after them by name."""
    try:
        return SCENARIO_ORDER.index(scenario), scenario
    except ValueError:
        return len(SCENARIO_ORDER), scenario
