"""arena.toml -> validated profiles, recipes and crop scenarios.

Lookup: an explicit path (``--config``), else ``./arena.toml``, else the copy embedded
in the package. Every problem raises :class:`~msda_arena.api.errors.ConfigError` with one
line naming the file, the table and the key.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from msda_arena.api.errors import ConfigError, UsageError
from msda_arena.api.record import MAX_SEED
from msda_arena.api.spec import parse_spec

__all__ = [
    "ARCH_PATTERN",
    "ARCH_RULE",
    "MAX_SEED",
    "MAX_SEEDS",
    "ArenaConfig",
    "Profile",
    "Recipe",
    "default_results",
    "load_config",
    "parse_config",
    "stable_hash",
]

CONFIG_NAME = "arena.toml"
#: Profile, recipe and scenario names (they become parts of result file names).
_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")
_NAME_RULE = (
    "a name may hold only a-z, 0-9, '-' and '_' (1 to 64 characters, the first a letter or digit)"
)
#: Architecture (timm) names, checked before any lookup: they become file-name parts.
ARCH_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
ARCH_RULE = "1 to 100 of A-Z, a-z, 0-9, '_', '.' and '-', starting with a letter or digit"
#: Seeds: each in 0 .. MAX_SEED (what every random generator takes), at most MAX_SEEDS a run.
MAX_SEEDS = 10_000


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short, stable hash of plain data (dicts sorted, floats as JSON writes them)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


#: Torch threads a cell trains with unless the recipe or ``arena run --threads`` says
#: otherwise: the thread count changes the order of the arithmetic, and so the numbers.
DEFAULT_THREADS = 1


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
    compile: bool | str = "auto"  # true, false, or "auto": on for CUDA, off elsewhere
    eval_batch_size: int = 512
    #: Torch threads and deterministic algorithms: the numbers depend on them, so they
    #: are part of the recipe (and its hash), the same under every executor.
    threads: int = DEFAULT_THREADS
    deterministic: bool = False
    #: Evaluate test top-1 every this many epochs for the learning curve (0: only at the
    #: end). It changes no trained number (the evaluation touches no training state), so
    #: it is not part of the recipe hash: turning it on makes no new cells.
    eval_every: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Every field that decides a cell's numbers (all but the name and
        ``eval_every``): what the recipe hash covers."""
        d = asdict(self)
        d.pop("name")
        d.pop("eval_every")
        return d


_RECIPE_TYPES: dict[str, type | tuple[type, ...] | None] = {
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
    "compile": None,  # true, false or "auto": checked in _recipe
    "eval_batch_size": int,
    "threads": int,
    "deterministic": bool,
    "eval_every": int,
}
_RECIPE_REQUIRED = ("epochs", "batch_size", "lr")
#: Inclusive ranges of the recipe's whole numbers.
_RECIPE_INTS: dict[str, tuple[int, int]] = {
    "epochs": (1, 10_000),
    "batch_size": (2, 65_536),
    "eval_batch_size": (1, 65_536),
    "warmup_epochs": (0, 10_000),
    "train_subset": (0, 100_000_000),
    "threads": (1, 1024),
    "eval_every": (0, 10_000),
}


@dataclass(frozen=True)
class Profile:
    """One grid: a dataset, architectures, scenarios, seeds, a recipe and the baselines
    (of :data:`~msda_arena.grid.REFERENCE_METHODS`, in that order)."""

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


def _fail(where: str, message: str) -> NoReturn:
    raise ConfigError(f"{where}: {message}")


def _brief(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for a one-line message (escaped), cut when very long."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _bare(name: str) -> str:
    """A name as written in a table header, escaped if it holds control characters."""
    return name if name.isprintable() and len(name) <= 80 else _brief(name)


def _printable_path(path: str | Path) -> str:
    """A path for a one-line message (escaped only if it holds control characters)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _check_keys(where: str, table: Any, allowed: dict[str, Any], required: tuple[str, ...]) -> None:
    if not isinstance(table, dict):
        _fail(where, "must be a table")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        _fail(
            where,
            f"unknown key {_brief(unknown[0])}; allowed: {', '.join(sorted(allowed))}",
        )
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
            _fail(where, f"{key!r} must be a {name}, got {_brief(value)}")


def _number(where: str, key: str, value: float, ok: bool, rule: str) -> None:
    """Refuse a non-finite ``value`` (nan, inf; TOML reads 1e400 as inf), or one not ``ok``."""
    if not math.isfinite(value):
        _fail(where, f"{key} = {value} is not a finite number; need {rule}")
    if not ok:
        _fail(where, f"{key} = {value!r} is out of range; need {rule}")


def _plain_text(where: str, key: str, value: str) -> None:
    """Refuse an empty string, or one with control characters (a path, a folder)."""
    if not value.strip():
        _fail(where, f"{key!r} is empty; write a folder path")
    if not value.isprintable():
        bad = next(ch for ch in value if not ch.isprintable())
        _fail(where, f"{key!r} holds the control character {bad!r}; write a plain path")


def _recipe(path: str, name: str, table: Any) -> Recipe:
    where = f"{path} [recipes.{name}]"
    _check_keys(where, table, _RECIPE_TYPES, _RECIPE_REQUIRED)
    values = dict(table)
    for key, (lo, hi) in _RECIPE_INTS.items():
        if key in values:
            ok = lo <= values[key] <= hi
            _number(where, key, values[key], ok, f"{lo} <= {key} <= {hi}")
    for key in ("lr", "momentum", "weight_decay"):
        if key in values:
            values[key] = float(values[key])
    recipe = Recipe(name=name, **values)
    lr, momentum, decay = recipe.lr, recipe.momentum, recipe.weight_decay
    _number(where, "lr", lr, 0 < lr <= 10, "0 < lr <= 10")
    _number(where, "momentum", momentum, 0 <= momentum < 1, "0 <= momentum < 1")
    _number(where, "weight_decay", decay, 0 <= decay <= 1, "0 <= weight_decay <= 1")
    if not (isinstance(recipe.compile, bool) or recipe.compile == "auto"):
        _fail(where, f'compile must be true, false or "auto", got {_brief(recipe.compile)}')
    if recipe.pairing not in ("flip", "permute"):
        _fail(where, f"pairing must be 'flip' or 'permute', got {_brief(recipe.pairing)}")
    if recipe.warmup_epochs > recipe.epochs:
        _fail(
            where,
            f"warmup_epochs = {recipe.warmup_epochs} is more than epochs = {recipe.epochs}; "
            "need 0 <= warmup_epochs <= epochs",
        )
    if 0 < recipe.train_subset < recipe.batch_size:
        _fail(
            where,
            f"train_subset = {recipe.train_subset} is smaller than batch_size "
            f"{recipe.batch_size}; use 0 (every image) or at least batch_size images",
        )
    return recipe


def _names(where: str, key: str, items: list[Any], pattern: re.Pattern[str], rule: str) -> None:
    """Every item a name that fully matches ``pattern``, none twice."""
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, str) or not pattern.fullmatch(item):
            _fail(where, f"{key!r} holds {_brief(item)}, not a valid name: {rule}")
        if item in seen:
            _fail(where, f"{key!r} names {item!r} twice; list each once")
        seen.add(item)


def _seeds(where: str, seeds: list[Any]) -> None:
    if not seeds:
        _fail(where, "'seeds' must be a non-empty list of integers >= 0")
    if len(seeds) > MAX_SEEDS:
        _fail(where, f"'seeds' lists {len(seeds)} seeds; at most {MAX_SEEDS} per run")
    seen: set[int] = set()
    for seed in seeds:
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
            _fail(
                where,
                f"'seeds' holds {_brief(seed)}; each seed must be an integer "
                f"0 <= seed <= {MAX_SEED}",
            )
        if seed in seen:
            _fail(where, f"'seeds' lists {seed} twice; list each seed once")
        seen.add(seed)


def _profile(path: str, name: str, table: Any, recipes: dict, scenarios: dict) -> Profile:

    where = f"{path} [profiles.{name}]"
    _check_keys(where, table, _PROFILE_KEYS, _PROFILE_REQUIRED)
    for key in ("archs", "scenarios", "baselines"):
        items = table.get(key, [])
        if not all(isinstance(v, str) and v for v in items):
            _fail(where, f"{key!r} must be a list of names")
        if key != "baselines" and not items:
            _fail(where, f"{key!r} must not be empty")
    _names(where, "archs", table["archs"], ARCH_PATTERN, ARCH_RULE)
    _names(where, "scenarios", table["scenarios"], _NAME, _NAME_RULE)
    for spec in table.get("baselines", []):
        try:
            parse_spec(spec)
        except UsageError as exc:
            _fail(where, f"'baselines': {exc}")
    _seeds(where, table["seeds"])
    recipe_name = table["recipe"]
    if recipe_name not in recipes:
        _fail(
            where,
            f"recipe {_brief(recipe_name)} is not defined; define [recipes.{_bare(recipe_name)}]",
        )
    for s in table["scenarios"]:
        if s not in scenarios:
            _fail(where, f"scenario {s!r} is not defined; define [scenarios.{s}]")
    if "data_root" in table:
        _plain_text(where, "data_root", table["data_root"])
    options = dict(table.get("dataset_options", {}))
    try:
        # Here, not at the top: the data modules import torch, and `arena report` and
        # `arena verify` read arena.toml's [defaults] without it.
        from msda_arena.data import check_dataset_options

        n_train = check_dataset_options(table["dataset"], options)
    except UsageError as exc:
        _fail(where, str(exc))
    recipe = recipes[recipe_name]
    if n_train is not None:
        n = min(n_train, recipe.train_subset) if recipe.train_subset else n_train
        if n < recipe.batch_size:
            _fail(
                where,
                f"{n} training images (dataset_options train_size) is fewer than batch_size "
                f"{recipe.batch_size} of [recipes.{recipe.name}]; raise train_size or lower "
                "batch_size",
            )
    return Profile(
        name=name,
        dataset=table["dataset"],
        archs=tuple(table["archs"]),
        scenarios=tuple(table["scenarios"]),
        seeds=tuple(table["seeds"]),
        recipe=recipe_name,
        baselines=tuple(table.get("baselines", ())),
        data_root=table.get("data_root"),
        dataset_options=options,
    )


def _toml(text: str, path: str) -> dict[str, Any]:
    """Parse TOML; a syntax error names the file, line and column in one line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split("\n"))
        at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if at:
            where, message = f"{path}:{at[1]}:{at[2]}", message[: at.start()]
        else:
            end = re.search(r"\s*\(at end of document\)$", message)
            where = f"{path}:{max(1, len(text.splitlines()))}"
            if end:
                message = message[: end.start()] + " at the end of the file"
        raise ConfigError(
            f"{where}: invalid TOML: {message}; fix the syntax there (see https://toml.io)"
        ) from None


def _read(path: Path) -> str:
    shown = _printable_path(path)
    if path.is_dir():
        raise UsageError(f"config file {shown} is a folder; pass an arena.toml file")
    if not path.is_file():
        raise UsageError(f"config file {shown} does not exist; pass an existing arena.toml")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {shown}: {exc.strerror or exc}") from None


_TOP_TABLES = ("defaults", "scenarios", "recipes", "profiles")
_DEFAULT_KEYS = {"profile_gpu": str, "profile_cpu": str, "results": str}


def parse_config(text: str, path: str = CONFIG_NAME) -> ArenaConfig:
    """Parse and validate arena.toml text."""

    doc = _toml(text, path)
    unknown = sorted(set(doc) - set(_TOP_TABLES))
    if unknown:
        _fail(path, f"unknown table [{_bare(unknown[0])}]; allowed: {', '.join(_TOP_TABLES)}")
    defaults = doc.get("defaults", {})
    _check_keys(f"{path} [defaults]", defaults, _DEFAULT_KEYS, ())
    if "results" in defaults:
        _plain_text(f"{path} [defaults]", "results", defaults["results"])
    for kind in ("scenarios", "recipes", "profiles"):
        group = doc.get(kind, {})
        if not isinstance(group, dict):
            _fail(f"{path} [{kind}]", f"must be tables such as [{kind}.NAME]")
        for name, table in group.items():
            if not _NAME.fullmatch(name):
                _fail(f"{path} [{kind}.{_bare(name)}]", _NAME_RULE)
            if not isinstance(table, dict):
                _fail(f"{path} [{kind}.{name}]", f"must be a table, got {_brief(table)}")
    scenarios = {}
    for name, table in doc.get("scenarios", {}).items():
        try:
            from msda_arena.data.crops import Scenario  # torch: see _profile

            scenarios[name] = Scenario.from_dict(name, table)
        except ConfigError as exc:
            raise ConfigError(f"{path} [scenarios.{name}]: {exc}") from None
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


def default_results(config: str | Path | None = None) -> str:
    """The default result store, read without torch (for ``arena report``).

    With ``config`` (``--config FILE``): that file's ``[defaults] results`` (else
    ``"results"``); a missing file, invalid TOML or an invalid ``results`` is an error.
    Without: ``[defaults] results`` of ./arena.toml, else ``"results"``; a malformed
    ./arena.toml is passed over here (``arena run`` reports it).
    """
    if config is not None:
        shown = _printable_path(config)
        doc = _toml(_read(Path(config)), shown)
        defaults = doc.get("defaults", {})
        if not isinstance(defaults, dict):
            _fail(f"{shown} [defaults]", "must be a table")
        value = defaults.get("results", "results")
        if not isinstance(value, str):
            _fail(f"{shown} [defaults]", f"'results' must be a str, got {_brief(value)}")
        _plain_text(f"{shown} [defaults]", "results", value)
        return value
    local = Path.cwd() / CONFIG_NAME
    if local.is_file():
        try:
            value = (
                tomllib.loads(local.read_text(encoding="utf-8")).get("defaults", {}).get("results")
            )
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError, AttributeError):
            value = None  # arena run reports a malformed file; the report just needs a folder
        if isinstance(value, str) and value.strip() and value.isprintable():
            return value
    return "results"


def load_config(path: str | Path | None = None) -> ArenaConfig:
    """Load ``path``, else ``./arena.toml``, else the embedded default."""
    if path is not None:
        p = Path(path)
        return parse_config(_read(p), _printable_path(p))
    local = Path.cwd() / CONFIG_NAME
    if local.is_file():
        return parse_config(_read(local), CONFIG_NAME)
    embedded = resources.files("msda_arena.grid").joinpath("default_arena.toml")
    text = embedded.read_text(encoding="utf-8")
    return parse_config(text, "arena.toml (embedded default)")
