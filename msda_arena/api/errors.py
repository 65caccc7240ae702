"""Errors the user can act on. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations

__all__ = ["ArenaError", "ConfigError", "PluginError", "StoreError", "UsageError"]


class ArenaError(Exception):
    """Base of errors caused by input the user controls; the message says what to do."""

    exit_code = 1


class UsageError(ArenaError):
    """A wrong command-line value (unknown method, architecture, profile...)."""

    exit_code = 2


class ConfigError(ArenaError):
    """A malformed or inconsistent arena.toml."""

    exit_code = 2


class PluginError(ArenaError):
    """A plugin that cannot be loaded, or two plugins claiming one method name."""


class StoreError(ArenaError):
    """A result store that cannot be read or written (corrupt or foreign file)."""
