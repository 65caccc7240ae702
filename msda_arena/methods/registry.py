"""The plugin manager: built-ins, entry points, and reports of broken plugins.

Plugins load on first use, once per process (:func:`registry`), never at import of
the CLI. A plugin that fails to import, or whose hook raises or registers something
that is not a method, is reported by package name and skipped, so every other
method keeps working; with ``ARENA_STRICT_PLUGINS=1`` that becomes a
:class:`~msda_arena.api.errors.PluginError`. Two packages registering one method name is
an error naming both that disables only that name (every other method keeps working);
a plugin registering a built-in name is refused and the built-in kept; a module in the
entry-point group without a hook implementation gets a warning.
``ARENA_PLUGINS=pkg1,pkg2`` loads only the listed entry-point packages (the built-ins
always load); an entry that matches nothing gets a warning.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import inspect
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

import msda_arena.methods as builtins
from msda_arena.api import __version__, hookspecs
from msda_arena.api.contract import KINDS, FeatureMixMethod, MaskMethod, Method, MixMethod
from msda_arena.api.errors import PluginError
from msda_arena.api.spec import NAME_PATTERN, SpecError, parse_spec

__all__ = [
    "BrokenPlugin",
    "MethodInfo",
    "Registry",
    "implementation_hash",
    "loaded_packages",
    "registry",
    "reset",
]

ENTRY_POINT_GROUP = "msda_arena"
BUILTIN_PACKAGE = "msda-arena"


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: its class and the package that provides it."""

    name: str
    cls: type[MaskMethod] | type[MixMethod] | type[FeatureMixMethod]
    package: str
    version: str

    @property
    def defaults(self) -> dict[str, Any]:
        """Parameter name -> default value."""
        return {p.name: p.default for p in self.cls.params}

    @property
    def code(self) -> str:
        """The identity of this method's implementation: ``VERSION:HASH``.

        HASH covers the source of every module in the class's MRO and every ``.py`` file
        of the top-level package that defines the class (the built-ins: all of
        ``msda_arena/methods/``), so editing a method's code or its helpers, or bumping
        its package's version, makes its stored results stale.
        """
        return f"{self.version}:{implementation_hash(self.cls)}"


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin package that could not be loaded or registered, and why."""

    package: str
    entry_point: str
    error: str

    def __str__(self) -> str:
        return (
            f"plugin {self.package!r} ({self.entry_point}) is broken and was skipped: {self.error}"
        )


@dataclass
class Registry:
    """Every method that loaded, plus the plugins that did not."""

    methods: dict[str, MethodInfo] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)
    #: Every package whose entry point loaded (name -> version), methods or not.
    packages: dict[str, str] = field(default_factory=dict)
    #: Method names two or more plugin packages registered: disabled, with the packages.
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    #: Problems that disabled nothing but deserve a look (printed once per process).
    warnings: list[str] = field(default_factory=list)

    def get(self, name: str) -> MethodInfo:
        """The method called ``name``, or a :class:`SpecError` suggesting close names
        (a :class:`PluginError` naming the packages for a name two of them claim)."""
        if name in self.conflicts:
            raise PluginError(_conflict_message(name, self.conflicts[name]))
        try:
            return self.methods[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(name, list(self.methods), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            broken = (
                f" ({len(self.broken)} plugin(s) failed to load; see `arena methods`.)"
                if self.broken
                else ""
            )
            raise SpecError(
                f"unknown method {name!r}.{hint} Run `arena methods` to list installed "
                f"methods.{broken}"
            ) from None

    def select(self, pattern: str | None = None) -> list[MethodInfo]:
        """Methods whose names match the shell-style ``pattern`` (all if None), sorted."""
        names = sorted(self.methods)
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return [self.methods[n] for n in names]


_HERE = Path(__file__).resolve()


@functools.cache
def implementation_hash(cls: type) -> str:
    """12 hex digits of the SHA-256 of the source files behind ``cls`` (see
    :attr:`MethodInfo.code`); ``"unknown"`` when no source file can be found."""
    files: set[Path] = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        try:
            source = inspect.getsourcefile(klass)
        except (TypeError, OSError):
            source = None
        if source is None:
            continue
        path = Path(source).resolve()
        files.add(path)
        if klass is cls and (path.parent / "__init__.py").is_file():
            # The whole top-level package that defines the method (helpers included;
            # never a bare site-packages); for the built-ins, msda_arena/methods/.
            top = path.parent
            while (top.parent / "__init__.py").is_file():
                top = top.parent
            if top == Path(__file__).resolve().parents[1]:
                top = path.parent  # a built-in: msda_arena/methods/, not this registry
            files.update(p.resolve() for p in top.rglob("*.py") if p.resolve() != _HERE)
    if not files:
        return "unknown"
    digest = hashlib.sha256()
    for path in sorted(files):
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:
            digest.update(path.name.encode() + b"\0unreadable\0")
    return digest.hexdigest()[:12]


def loaded_packages() -> str:
    """Every package whose plugin loaded in this process, ``"name==version; ..."``
    (msda-arena itself first): plugins can patch the harness in-process, so a result
    records all of them, not only its method's."""

    reg = registry()
    seen = {BUILTIN_PACKAGE: __version__}
    for info in reg.methods.values():
        seen.setdefault(info.package, info.version)
    for name, version in reg.packages.items():
        seen.setdefault(name, version)
    return "; ".join(f"{name}=={version}" for name, version in seen.items())


def _strict() -> bool:
    return os.environ.get("ARENA_STRICT_PLUGINS", "").strip().lower() not in (
        "",
        "0",
        "no",
        "false",
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _entry_points() -> list[metadata.EntryPoint]:
    group = metadata.entry_points(group=ENTRY_POINT_GROUP)
    seen: set[tuple[str, str]] = set()
    unique = []
    for ep in group:
        dist = getattr(ep, "dist", None)
        ident = (dist.name if dist else "", ep.value)
        if ident not in seen:  # one distribution found twice on sys.path
            seen.add(ident)
            unique.append(ep)
    return unique


def _load() -> Registry:
    reg = Registry()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtins, name="msda_arena.methods")
    origin = {"msda_arena.methods": (BUILTIN_PACKAGE, __version__, "builtins")}
    origin.update(_register_plugins(pm, reg))
    hooks = (pm.hook.register_methods, pm.hook.register_mask_methods)  # the new name, the old
    for impl in [impl for hook in hooks for impl in hook.get_hookimpls()]:
        package, version, ep_name = origin.get(impl.plugin_name, (impl.plugin_name, "unknown", "?"))
        _collect(reg, impl, package, version, ep_name)
    for name, packages in reg.conflicts.items():
        reg.warnings.append(_conflict_message(name, packages) + " (the name is disabled)")
    return reg


def _register_plugins(pm: pluggy.PluginManager, reg: Registry) -> dict[str, tuple[str, str, str]]:
    """Load every entry point (those ``ARENA_PLUGINS`` names, if set) into ``pm``; a
    broken one is recorded in ``reg``. Returns plugin name -> (package, version, entry point)."""
    origin: dict[str, tuple[str, str, str]] = {}
    only = {p.strip().lower() for p in os.environ.get("ARENA_PLUGINS", "").split(",") if p.strip()}
    matched: set[str] = set()
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        package = dist.name if dist else ep.value.split(":")[0].split(".")[0]
        version = dist.version if dist else "unknown"
        if only:
            hits = {package.lower(), ep.name.lower()} & only
            if not hits:
                continue
            matched |= hits
        plugin_name = f"{package}:{ep.name}"
        try:
            obj = ep.load()
            pm.register(obj, name=plugin_name)
        except Exception as exc:  # a broken plugin must not break the others
            _broken(reg, BrokenPlugin(package, f"{ep.name} = {ep.value}", _describe(exc)))
            continue
        origin[plugin_name] = (package, version, ep.name)
        reg.packages[package] = version
        if not pm.get_hookcallers(obj):
            reg.warnings.append(
                f"plugin {package!r} ({ep.name} = {ep.value}) has no hook implementation; "
                "decorate its register_methods(register) with @msda_arena.hookimpl"
            )
    for name in sorted(only - matched):
        reg.warnings.append(
            f"ARENA_PLUGINS names {name!r}, which matches no installed plugin package "
            "(see `arena plugins`)"
        )
    return origin


def _collect(reg: Registry, impl: Any, package: str, version: str, ep_name: str) -> None:
    """Call one hook implementation and add what it registers to ``reg``: all or, if it
    raises, none; a name two packages register is disabled; a built-in name is refused."""
    staged: list[MethodInfo] = []

    def register(cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, tuple(KINDS.values()))):
            raise TypeError(
                "register() takes a MaskMethod, MixMethod or FeatureMixMethod subclass, "
                f"got {cls!r}"
            )
        if not isinstance(cls.name, str) or not NAME_PATTERN.match(cls.name):
            raise TypeError(
                f"{cls.__name__}.name must be lower-case letters, digits, '-' and '_' "
                f"starting with a letter, got {cls.name!r}"
            )
        staged.append(MethodInfo(cls.name, cls, package, version))

    try:
        impl.function(register=register)
    except Exception as exc:
        _broken(reg, BrokenPlugin(package, ep_name, _describe(exc)))
        return
    for info in staged:
        other = reg.methods.get(info.name)
        if info.name in reg.conflicts:
            reg.conflicts[info.name].append(info.package)
        elif other is not None and other.cls is not info.cls:
            if other.package == BUILTIN_PACKAGE:  # the built-in stays
                refused = f"it registers {info.name!r}, a built-in method name; refused "
                _broken(
                    reg,
                    BrokenPlugin(info.package, ep_name, refused + "(rename the plugin's method)"),
                )
                continue
            reg.conflicts[info.name] = [other.package, info.package]
            del reg.methods[info.name]
        else:
            reg.methods[info.name] = info


def _conflict_message(name: str, packages: list[str]) -> str:
    return (
        f"method name {name!r} is registered by two packages: {' and '.join(packages)}; "
        "uninstall one of them"
    )


def _broken(reg: Registry, item: BrokenPlugin) -> None:
    if _strict():
        raise PluginError(f"{item} (ARENA_STRICT_PLUGINS is set)")
    reg.broken.append(item)


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, loading plugins on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _load()
        for item in _REGISTRY.broken:
            print(f"arena: warning: {item}", file=sys.stderr)
        for text in _REGISTRY.warnings:
            print(f"arena: warning: {text}", file=sys.stderr)
    return _REGISTRY


def reset() -> None:
    """Forget the loaded plugins; the next :func:`registry` call loads them again."""
    global _REGISTRY
    _REGISTRY = None


def get_method(spec: str) -> Method:
    """Build the method a spec names, e.g. ``"cutmix"`` or ``"hmix(r=0.25)"``.

    Raises :class:`SpecError` for a malformed spec, an unknown method or parameter,
    or a bad value.
    """
    parsed = parse_spec(spec)
    return registry().get(parsed.name).cls(**parsed.params)


def method_info(spec_or_name: str) -> MethodInfo:
    """The registered method (class, package, version) a spec or name refers to."""
    return registry().get(parse_spec(spec_or_name).name)


def list_methods(pattern: str | None = None) -> list[MethodInfo]:
    """Installed methods whose names match the shell-style ``pattern``, sorted by name."""
    return registry().select(pattern)
