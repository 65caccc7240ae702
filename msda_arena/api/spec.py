"""Method specs: ``"hmix(r=0.25)"`` <-> a method name plus typed parameters.

A spec is what a user types after ``--method``. A value is a number, ``true`` or
``false``, a word (letters, digits and ``_``: ``batch``, ``2_4``), a quoted string
without spaces (``'2,4'``), or a tuple of those (``(2,4,8)`` or ``[2,4,8]``; one
element ``(2,)`` or ``(2)``). Parsing is strict: an unknown
parameter, a value of the wrong type, or malformed syntax raises :class:`SpecError`
with a message that says what to write instead. Every (method, parameters) pair
has exactly one canonical string, used as part of each result's key and safe to
embed in a file name.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import Any

from msda_arena.api.errors import UsageError

__all__ = [
    "MAX_SPEC_LENGTH",
    "ParsedSpec",
    "SpecError",
    "canonical",
    "format_value",
    "parse_spec",
    "parse_value",
    "slug",
]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]*$")
#: The longest method spec :func:`parse_spec` reads (specs become parts of file names).
MAX_SPEC_LENGTH = 200
_KEY = re.compile(r"^[a-z_][a-z0-9_]*$")
_WORD = re.compile(r"\w+", re.ASCII)
_QUOTABLE = re.compile(r"[^\s'\"\\]*")  # a string value is written '...' when not bare
# A comma separates values when the rest of the text closes each bracket and quote it opens.
_COMMA = re.compile(r""",(?=(?:[^'"()\[\]]|'[^']*'|"[^"]*"|\([^()]*\)|\[[^\[\]]*\])*$)""")
_VALUES = "write a number, true/false, a word, a quoted string or a tuple such as (2,4,8)"


class SpecError(UsageError, ValueError):
    """A method spec that cannot be parsed or does not fit its method."""


@dataclass(frozen=True)
class ParsedSpec:
    """The syntactic parts of a spec, before its values are checked against a method."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


def _bare(text: str) -> Any:
    """A token of letters, digits and ``_``: a number unless it holds ``_`` (``2_4`` is
    a word), ``true``/``false``, else the word itself."""
    try:
        value = ast.literal_eval(text) if "_" not in text else None
    except (ValueError, SyntaxError):
        value = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return text.lower() == "true" if text.lower() in ("true", "false") else text


def _scalar(text: str, spec: str, key: str) -> Any:
    where = f"method spec {spec!r}: {key!r}"
    if not text:
        raise SpecError(f"{where} has no value")
    try:
        value = _bare(text) if _WORD.fullmatch(text) else ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError):  # TypeError: {[]: 1}
        raise SpecError(f"{where}: cannot read {text!r}; {_VALUES}") from None
    if isinstance(value, str) and not _QUOTABLE.fullmatch(value):
        raise SpecError(f"{where}: the string {value!r} may not hold spaces, quotes or '\\'")
    finite = not isinstance(value, float) or math.isfinite(value)
    if not (isinstance(value, (int, float, str)) and finite):
        raise SpecError(f"{where}: {text!r} is not a finite number; {_VALUES}")
    return value


def parse_value(text: str, spec: str = "", key: str = "") -> Any:
    """One parameter value as a spec writes it: a scalar, or a tuple ``(2,4,8)`` or
    ``[2,4,8]`` (``spec`` and ``key`` name it in the :class:`SpecError`)."""
    text = text.strip()
    if len(text) < 2 or text[0] + text[-1] not in ("()", "[]"):
        return _scalar(text, spec, key)
    items = [item.strip() for item in _COMMA.split(text[1:-1])]
    if items[-1] == "":  # (2,) and ()
        items.pop()
    return tuple(_scalar(item, spec, key) for item in items)


def parse_spec(spec: str) -> ParsedSpec:
    """Split ``"name(k=v, ...)"`` into its name and raw parameter values.

    >>> parse_spec("hmix(r=0.25)")
    ParsedSpec(name='hmix', params={'r': 0.25})
    """
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError("empty method spec; write a method name such as 'cutmix' or 'hmix(r=0.25)'")
    if len(spec) > MAX_SPEC_LENGTH:
        raise SpecError(
            f"method spec {spec[:40]!r}... is {len(spec)} characters long; "
            f"a spec may have at most {MAX_SPEC_LENGTH}"
        )
    bad = next((ch for ch in spec if not ch.isprintable() and ch not in " \t\r\n"), None)
    if bad is not None:
        raise SpecError(
            f"method spec {spec!r} holds the control character {bad!r} "
            f"(U+{ord(bad):04X}); remove it"
        )
    text = spec.strip()
    match = re.fullmatch(r"([^()\s]+)\s*(?:\((.*)\))?", text, flags=re.S)
    if not match:
        raise SpecError(f"method spec {spec!r} is malformed; write NAME or NAME(key=value, ...)")
    name = match.group(1).lower()
    if not NAME_PATTERN.match(name):
        raise SpecError(
            f"method spec {spec!r}: {name!r} is not a method name "
            "(lower-case letters, digits, '-' and '_')"
        )
    params: dict[str, Any] = {}
    body = match.group(2)
    if body is not None and body.strip():
        for part in _COMMA.split(body):
            if "=" not in part:
                raise SpecError(f"method spec {spec!r}: {part.strip()!r} needs the form key=value")
            key, _, raw = part.partition("=")
            key = key.strip().lower()
            if not _KEY.match(key):
                raise SpecError(f"method spec {spec!r}: {key!r} is not a parameter name")
            if key in params:
                raise SpecError(f"method spec {spec!r}: parameter {key!r} is given twice")
            params[key] = parse_value(raw, spec, key)
    return ParsedSpec(name=name, params=params)


def format_value(value: Any) -> str:
    """The canonical text of one parameter value (floats in shortest round-trip form,
    tuples ``(2,4,8)``, strings bare when they read back as themselves, else quoted)."""
    if isinstance(value, tuple):
        return "(" + ",".join(map(format_value, value)) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, str) and not (_WORD.fullmatch(value) and _bare(value) == value):
        return f"'{value}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return f"{int(value)}.0"
        return repr(value)
    return str(value)


def canonical(name: str, values: dict[str, Any], defaults: dict[str, Any]) -> str:
    """The one canonical spec string: parameters that differ from their defaults, sorted.

    >>> canonical("hmix", {"r": 0.5, "alpha": 1.0}, {"r": 0.5, "alpha": 1.0})
    'hmix'
    >>> canonical("hmix", {"r": 0.25, "alpha": 1.0}, {"r": 0.5, "alpha": 1.0})
    'hmix(r=0.25)'
    """
    changed = {k: v for k, v in values.items() if defaults.get(k, object()) != v}
    if not changed:
        return name
    inner = ",".join(f"{k}={format_value(changed[k])}" for k in sorted(changed))
    return f"{name}({inner})"


def slug(spec: str) -> str:
    """A file-name-safe form of a canonical spec: ``hmix(r=0.25)`` -> ``hmix_r=0.25``."""
    out = spec.replace("(", "_").replace(")", "").replace(",", "_")
    return re.sub(r"[^A-Za-z0-9_.=\-]", "-", out)
