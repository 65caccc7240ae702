"""arena.toml -> validated profiles, recipes and crop scenarios.

Lookup: an explicit path (``--config``), else ``./arena.toml``, else the copy embedded
in the package. Every problem raises :class:`~msda_arena.errors.ConfigError` with one
line naming the file, the table and the key.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from msda_arena.errors import ConfigError, UsageError

__all__ = ["ArenaConfig", "Profile", "Recipe", "load_config", "stable_hash"]

CONFIG_NAME = "arena.toml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short, stable hash of plain data (dicts sorted, floats as JSON writes them)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Recipe:
    """How one cell trains: SGD (Nesterov), linear warm-up then cosine decay."""

    name: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: int = 0
    train_subset: int = 0  # 0: the whole training set
    per_sample_masks: bool = False
    pairing: str = "flip"
    compile: bool = False
    eval_batch_size: int = 512

    def to_dict(self) -> dict[str, Any]:
        """Every field but the name: what the recipe hash covers."""
        d = asdict(self)
        d.pop("name")
        return d


_RECIPE_TYPES: dict[str, type | tuple[type, ...]] = {
    "epochs": int,
    "batch_size": int,
    "lr": (int, float),
    "momentum": (int, float),
    "nesterov": bool,
    "weight_decay": (int, float),
    "warmup_epochs": int,
    "train_subset": int,
    "per_sample_masks": bool,
    "pairing": str,
    "compile": bool,
    "eval_batch_size": int,
}
_RECIPE_REQUIRED = ("epochs", "batch_size", "lr")


@dataclass(frozen=True)
class Profile:
    """One grid: a dataset, architectures, scenarios, seeds, a recipe and the baselines."""

    name: str
    dataset: str
    archs: tuple[str, ...]
    scenarios: tuple[str, ...]
    seeds: tuple[int, ...]
    recipe: str
    baselines: tuple[str, ...]
    data_root: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)


_PROFILE_KEYS = {
    "dataset": str,
    "archs": list,
    "scenarios": list,
    "seeds": list,
    "recipe": str,
    "baselines": list,
    "data_root": str,
    "dataset_options": dict,
}
_PROFILE_REQUIRED = ("dataset", "archs", "scenarios", "seeds", "recipe")


@dataclass
class ArenaConfig:
    """A whole arena.toml: defaults, scenarios, recipes and profiles."""

    path: str
    profiles: dict[str, Profile]
    recipes: dict[str, Recipe]
    scenarios: dict[str, Any]  # name -> msda_arena.data.crops.Scenario
    profile_gpu: str = "cifar100"
    profile_cpu: str = "quick"
    results: str = "results"

    def profile(self, name: str | None, cuda: bool) -> Profile:
        """The named profile, or the default for this machine (GPU or CPU)."""
        if name is None:
            name = self.profile_gpu if cuda else self.profile_cpu
        try:
            return self.profiles[name]
        except KeyError:
            raise UsageError(
                f"unknown profile {name!r} in {self.path}; choose one of "
                f"{', '.join(sorted(self.profiles))}"
            ) from None

    def config_hash(self, profile: Profile) -> str:
        """Hash of everything the profile's runs depend on."""
        return stable_hash(
            {
                "profile": asdict(profile),
                "recipe": self.recipes[profile.recipe].to_dict(),
                "scenarios": {s: self.scenarios[s].to_dict() for s in profile.scenarios},
            }
        )


def _fail(where: str, message: str) -> None:
    raise ConfigError(f"{where}: {message}")


def _check_keys(where: str, table: Any, allowed: dict[str, Any], required: tuple[str, ...]) -> None:
    if not isinstance(table, dict):
        _fail(where, "must be a table")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        _fail(where, f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    for key in required:
        if key not in table:
            _fail(where, f"missing required key {key!r}")
    for key, value in table.items():
        expected = allowed[key]
        if expected is None:
            continue
        ok = isinstance(value, expected) and not (
            isinstance(value, bool) and expected in (int, (int, float))
        )
        if not ok:
            name = expected.__name__ if isinstance(expected, type) else "number"
            _fail(where, f"{key!r} must be a {name}, got {value!r}")


def _recipe(path: str, name: str, table: Any) -> Recipe:
    where = f"{path} [recipes.{name}]"
    _check_keys(where, table, _RECIPE_TYPES, _RECIPE_REQUIRED)
    values = dict(table)
    for key in ("lr", "momentum", "weight_decay"):
        if key in values:
            values[key] = float(values[key])
    recipe = Recipe(name=name, **values)
    if recipe.epochs < 1 or recipe.batch_size < 2:
        _fail(where, "epochs must be >= 1 and batch_size >= 2")
    if recipe.lr <= 0 or recipe.weight_decay < 0 or not 0 <= recipe.momentum < 1:
        _fail(where, "need lr > 0, weight_decay >= 0 and 0 <= momentum < 1")
    if recipe.pairing not in ("flip", "permute"):
        _fail(where, f"pairing must be 'flip' or 'permute', got {recipe.pairing!r}")
    if recipe.warmup_epochs < 0 or recipe.warmup_epochs >= recipe.epochs + 1:
        _fail(where, "warmup_epochs must be between 0 and epochs")
    if recipe.train_subset < 0 or recipe.eval_batch_size < 1:
        _fail(where, "train_subset must be >= 0 and eval_batch_size >= 1")
    return recipe


def _profile(path: str, name: str, table: Any, recipes: dict, scenarios: dict) -> Profile:
    where = f"{path} [profiles.{name}]"
    _check_keys(where, table, _PROFILE_KEYS, _PROFILE_REQUIRED)
    for key in ("archs", "scenarios", "baselines"):
        items = table.get(key, [])
        if not all(isinstance(v, str) and v for v in items):
            _fail(where, f"{key!r} must be a list of names")
        if key != "baselines" and not items:
            _fail(where, f"{key!r} must not be empty")
    seeds = table["seeds"]
    if not seeds or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds
    ):
        _fail(where, "'seeds' must be a non-empty list of integers >= 0")
    if table["recipe"] not in recipes:
        _fail(
            where, f"recipe {table['recipe']!r} is not defined; define [recipes.{table['recipe']}]"
        )
    for s in table["scenarios"]:
        if s not in scenarios:
            _fail(where, f"scenario {s!r} is not defined; define [scenarios.{s}]")
    return Profile(
        name=name,
        dataset=table["dataset"],
        archs=tuple(table["archs"]),
        scenarios=tuple(table["scenarios"]),
        seeds=tuple(table["seeds"]),
        recipe=table["recipe"],
        baselines=tuple(table.get("baselines", ())),
        data_root=table.get("data_root"),
        dataset_options=dict(table.get("dataset_options", {})),
    )


def parse_config(text: str, path: str = CONFIG_NAME) -> ArenaConfig:
    """Parse and validate arena.toml text."""
    from msda_arena.data.crops import Scenario

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"defaults", "scenarios", "recipes", "profiles"})
    if unknown:
        _fail(
            path, f"unknown table [{unknown[0]}]; allowed: defaults, scenarios, recipes, profiles"
        )
    defaults = doc.get("defaults", {})
    _check_keys(
        f"{path} [defaults]", defaults, {"profile_gpu": str, "profile_cpu": str, "results": str}, ()
    )
    scenarios = {}
    for name, table in doc.get("scenarios", {}).items():
        if not _NAME.match(name):
            _fail(f"{path} [scenarios.{name}]", "a name may hold only a-z, 0-9, '-' and '_'")
        try:
            scenarios[name] = Scenario.from_dict(name, table)
        except ConfigError as exc:
            raise ConfigError(f"{path} [scenarios.{name}]: {exc}") from None
    for kind in ("recipes", "profiles"):
        for name in doc.get(kind, {}):
            if not _NAME.match(name):
                _fail(f"{path} [{kind}.{name}]", "a name may hold only a-z, 0-9, '-' and '_'")
    recipes = {name: _recipe(path, name, t) for name, t in doc.get("recipes", {}).items()}
    profiles = {
        name: _profile(path, name, t, recipes, scenarios)
        for name, t in doc.get("profiles", {}).items()
    }
    if not profiles:
        _fail(path, "defines no [profiles.NAME]")
    config = ArenaConfig(
        path=path, profiles=profiles, recipes=recipes, scenarios=scenarios, **defaults
    )
    for key in ("profile_gpu", "profile_cpu"):
        if getattr(config, key) not in profiles:
            _fail(
                f"{path} [defaults]", f"{key} names an undefined profile {getattr(config, key)!r}"
            )
    return config


def default_results() -> str:
    """``[defaults] results`` of ./arena.toml (else ``"results"``), read without torch.

    For commands that need only the store's location, not the whole validated config.
    """
    local = Path.cwd() / CONFIG_NAME
    if local.is_file():
        try:
            value = (
                tomllib.loads(local.read_text(encoding="utf-8")).get("defaults", {}).get("results")
            )
        except (tomllib.TOMLDecodeError, AttributeError):
            value = None  # arena run reports a malformed file; the report just needs a folder
        if isinstance(value, str) and value:
            return value
    return "results"


def load_config(path: str | Path | None = None) -> ArenaConfig:
    """Load ``path``, else ``./arena.toml``, else the embedded default."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"config file {p} does not exist; pass an existing arena.toml")
        return parse_config(p.read_text(encoding="utf-8"), str(p))
    local = Path.cwd() / CONFIG_NAME
    if local.is_file():
        return parse_config(local.read_text(encoding="utf-8"), CONFIG_NAME)
    text = resources.files("msda_arena").joinpath("default_arena.toml").read_text(encoding="utf-8")
    return parse_config(text, "arena.toml (embedded default)")
