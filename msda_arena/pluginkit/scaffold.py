"""``arena new-plugin``: write a plugin package that already passes ``arena check``.

:func:`write_plugin` writes ``<directory>/arena-<name>/``, a package that is complete
on its own (like ``plugins/arena-stripes/``)::

    arena-<name>/
      pyproject.toml             setuptools, version 0.1.0, the msda_arena entry point
      README.md                  install, check, run
      arena_<name>/__init__.py   the method class (marked TODO) and its hook
      tests/test_<name>.py       assert_conforms and a one-cell training run

The method is a working placeholder: a mask method (:class:`~msda_arena.MaskMethod`)
whose masks split each image vertically with ``mean(M) == lambda`` exactly, a mixing
method (:class:`~msda_arena.MixMethod`) that mixes the same split from the two images
and returns its weight, or a feature method (:class:`~msda_arena.FeatureMixMethod`)
that mixes the features of the input or the model's first stage, drawn per batch, with
its partner's (Mixup of features). All conform to their contract, so the author starts
from green checks and replaces the marked code.

Nothing is ever overwritten: the target must not exist or be an empty folder, and the
package is written into a temporary sibling folder that is renamed into place only when
complete. Every mistake the user can make raises a one-line
:class:`~msda_arena.api.errors.UsageError`.
"""

from __future__ import annotations

import keyword
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msda_arena.api.contract import KINDS, FeatureMixMethod, MaskMethod, MixMethod, Param
from msda_arena.api.errors import UsageError
from msda_arena.api.spec import NAME_PATTERN, SpecError, parse_value
from msda_arena.methods.registry import BUILTIN_PACKAGE, registry

__all__ = ["KINDS", "PARAM_TYPES", "PluginParam", "parse_param", "write_plugin"]

#: The method kinds a plugin can be written for.
_SCALARS = {"float": float, "int": int, "bool": bool, "str": str}
#: The parameter types ``--param`` accepts, as written on the command line -> the type.
PARAM_TYPES: dict[str, Any] = _SCALARS | {f"tuple[{n}]": tuple[t, ...] for n, t in _SCALARS.items()}
_EXAMPLES = {"float": "0.5", "int": "3", "bool": "true", "str": "batch"}

#: The longest method name accepted (it becomes part of folder and file names).
MAX_NAME_LENGTH = 64

_PARAM_SYNTAX = re.compile(r"\s*([^:=\s]+)\s*:\s*([^=\s]+)\s*=(.*)", re.S)
_PARAM_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_SYNTAX_HELP = "write NAME:TYPE=DEFAULT, e.g. --param r:float=0.5 or --param grids:tuple[int]=2,4,8"


@dataclass(frozen=True)
class PluginParam:
    """One ``--param NAME:TYPE=DEFAULT``, parsed and checked.

    Attributes:
        name: the key used in specs (``demo(k=3)``).
        type: a key of :data:`PARAM_TYPES`: ``"float"``, ``"int"``, ``"bool"``, ``"str"``
            or a tuple of one, ``"tuple[int]"``.
        default: the default, already of that type.
    """

    name: str
    type: str
    default: Any

    def source(self) -> str:
        """The ``Param(...)`` expression the generated package declares."""
        if self.name == "alpha":
            args = [
                '"alpha"',
                "float",
                repr(self.default),
                '"Beta(alpha, alpha) concentration of lambda"',
                "lambda a: a > 0",
                '"alpha > 0"',
            ]
        else:
            kind = PARAM_TYPES[self.type]
            args = [
                f'"{self.name}"',
                kind.__name__ if isinstance(kind, type) else str(kind),
                _literal(self.default),
                f'"TODO: describe {self.name}"',
            ]
        one_line = f"Param({', '.join(args)})"
        if len(one_line) <= 70:  # fits the generated module's lines (8 spaces + ',')
            return one_line
        inner = "".join(f"            {arg},\n" for arg in args)
        return f"Param(\n{inner}        )"


def _literal(value: Any) -> str:
    """``value`` as Python source (strings hold no quotes nor backslashes, so double
    quotes suffice)."""
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_literal, value)) + ("," if len(value) == 1 else "") + ")"
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _reserved_names() -> set[str]:
    """Attribute names a parameter must not take: the method classes set every
    parameter as an attribute of the instance, beside their own (``values`` is set
    in ``__init__``)."""

    return {"values"} | {attr for cls in (MaskMethod, MixMethod) for attr in dir(cls)}


def parse_param(text: str) -> PluginParam:
    """Parse ``NAME:TYPE=DEFAULT`` (``r:float=0.5``, ``k:int=3``, ``flip:bool=true``,
    ``mode:str=batch``, ``grids:tuple[int]=2,4,8``).

    The name follows the spec rules (lower case, digits and ``_``); the default is
    written as in a spec (:func:`~msda_arena.api.spec.parse_value`: a finite number,
    ``true``/``false``, a word or a quoted string without spaces; a tuple's items
    separated by commas, brackets optional). A parameter called ``alpha`` is lambda's
    Beta(alpha, alpha) concentration: a float above 0.

    Raises:
        UsageError: one line saying what to write instead.
    """
    match = _PARAM_SYNTAX.fullmatch(text)
    if not match:
        raise UsageError(f"--param {text!r}: {_SYNTAX_HELP}")
    name, type_name, raw = match.group(1), match.group(2), match.group(3).strip()
    if not _PARAM_NAME.fullmatch(name):
        raise UsageError(
            f"--param {text!r}: {name!r} is not a parameter name; use lower-case letters, "
            "digits and '_', starting with a letter or '_'"
        )
    if name in _reserved_names():
        raise UsageError(
            f"--param {text!r}: {name!r} is reserved by the method classes; choose another name"
        )
    if keyword.iskeyword(name):
        raise UsageError(f"--param {text!r}: {name!r} is a Python keyword; choose another name")
    kind = PARAM_TYPES.get(type_name)
    if kind is None:
        raise UsageError(
            f"--param {text!r}: unknown type {type_name!r}; use {', '.join(PARAM_TYPES)}"
        )
    if not raw:
        raise UsageError(f"--param {text!r}: the default is missing; {_SYNTAX_HELP}")
    item = type_name.removeprefix("tuple[").removesuffix("]")
    spelled = f"({raw},)" if item != type_name and raw[0] not in "([" else raw  # 2,4 -> (2,4,)
    try:
        default = Param(name, kind, None).convert(parse_value(spelled), "")
    except SpecError:
        example = _EXAMPLES[item] if item == type_name else ",".join([_EXAMPLES[item]] * 2)
        raise UsageError(
            f"--param {text!r}: the default {raw!r} does not read as {type_name}; write it "
            f"as in a spec, e.g. {name}:{type_name}={example}"
        ) from None
    if name == "alpha" and (type_name != "float" or default <= 0):
        raise UsageError(
            f"--param {text!r}: alpha is lambda's Beta(alpha, alpha) concentration; "
            "write alpha:float=A with A > 0"
        )
    return PluginParam(name, type_name, default)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a method name; use lower-case letters, digits, '-' and '_', "
            "starting with a letter (e.g. 'my-mix')"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise UsageError(
            f"the method name {name[:20]!r}... is {len(name)} characters long; "
            f"use at most {MAX_NAME_LENGTH}"
        )


def _check_free(name: str) -> None:
    """Refuse a name a built-in or an installed plugin already uses, suggesting one."""

    reg = registry()
    taken = set(reg.methods) | set(reg.conflicts)
    if name not in taken:
        return
    if name in reg.conflicts:
        owner = "installed packages " + " and ".join(reg.conflicts[name])
    elif reg.methods[name].package == BUILTIN_PACKAGE:
        owner = "a built-in method"
    else:
        owner = f"the installed package {reg.methods[name].package!r}"
    candidates = [f"my-{name}", *(f"{name}{i}" for i in range(2, 100))]
    free = next(
        (c for c in candidates if c not in taken and len(c) <= MAX_NAME_LENGTH), "my-method"
    )
    raise UsageError(f"the method name {name!r} is taken by {owner}; choose another, e.g. {free!r}")


def _class_name(name: str) -> str:
    """``demo-mask`` -> ``DemoMask``; never one of the names the module imports."""
    camel = "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]+", name) if part)
    imported = ("ALPHA", "FeatureMixMethod", "MaskMethod", "MixMethod", "ModelView", "Param")
    if camel in (*imported, "Saliency", "Stage"):
        camel += "Method"
    return camel


def _params_source(kind: str, params: list[PluginParam]) -> str:
    entries = [p.source() for p in params]
    if kind == MaskMethod.kind and not any(p.name == "alpha" for p in params):
        entries.insert(0, "ALPHA")
    if not entries:
        return "    params = ()\n"
    if len(entries) == 1 and "\n" not in entries[0]:  # a 1-tuple's comma is not "magic"
        return f"    params = ({entries[0]},)\n"
    body = "".join(f"        {entry},\n" for entry in entries)
    return f"    params = (\n{body}    )\n"


_MASK_BODY = '''\
    def masks(
        self, lam: torch.Tensor, height: int, width: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Masks ``[B, 1, H, W]``, float in ``[0, 1]`` on ``lam``'s device, for
        the ratios ``lam`` ``[B]``: the weight of the first image of each pair."""
        # TODO: replace this placeholder with your mask. It splits each image
        # vertically: the left columns keep the first image, and the border column is
        # fractional, so that mean(M) == lambda exactly. Keep it batched (no loop per
        # sample), and draw any randomness from `generator`, e.g.
        # torch.rand(n, generator=generator, device=lam.device).
        lam = lam.to(torch.float32)
        columns = torch.arange(width, device=lam.device, dtype=torch.float32)
        row = (lam[:, None] * width - columns[None, :]).clamp(0.0, 1.0)  # [B, W]
        return row[:, None, None, :].expand(-1, 1, height, width)
'''

_MIX_BODY = '''\
    def mix(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        partner: torch.Tensor,
        lam: torch.Tensor,
        generator: torch.Generator,
        saliency: Saliency | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix the batch ``x`` ``[B, C, H, W]`` with ``x[partner]``; return the mixed
        images (like ``x``) and the weight ``[B]`` of each sample's own label."""
        # TODO: replace this placeholder with your mixing. It is a convex per-pixel
        # mix: the left columns come from x[i], the rest from x[partner[i]], with a
        # fractional border column so that the weight is exactly lambda. Use one
        # weight per pixel for all channels, keep it batched (no loop per sample) and
        # draw any randomness from `generator`. Lambda is drawn by sample_lam
        # (Beta(alpha, alpha), alpha 1.0 unless you add msda_arena.api.contract.ALPHA or
        # an alpha parameter); it is [1] (one per batch) or [B].
        # Set needs_saliency = True to receive the model's saliency.
        width = x.shape[-1]
        lam = lam.to(torch.float32).reshape(-1)
        columns = torch.arange(width, device=x.device, dtype=torch.float32)
        m = (lam[:, None] * width - columns[None, :]).clamp(0.0, 1.0)[:, None, None, :]
        mixed = (m * x + (1.0 - m) * x[partner]).to(x.dtype)
        weight = m.mean(dim=(1, 2, 3)).expand(x.shape[0])  # [1] -> [B] when one lambda
        return mixed, weight
'''


_FEATURE_BODY = '''\
    def stage(self, stages: tuple[Stage, ...], generator: torch.Generator) -> int:
        """Where to mix this batch: an index into ``stages``."""
        # TODO: choose where to mix. stages[0] is the input images, stages[s] the output
        # of the model's s-th timm feature stage (stages[s].module names the module).
        # This placeholder draws the input or the first stage, from `generator` (a CPU
        # generator: the stage must be known on the host, without a device sync).
        top = min(1, len(stages) - 1)
        return int(torch.randint(top + 1, (1,), generator=generator))

    def mix(
        self,
        h: torch.Tensor,
        y: torch.Tensor,
        partner: torch.Tensor,
        lam: torch.Tensor,
        generator: torch.Generator,
        model: ModelView | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mix the features ``h`` ``[B, ...]`` at the chosen stage; return the mixed
        features (like ``h``), the source rows ``[B, k]`` and their label weights."""
        # TODO: replace this placeholder with your mixing. It is Mixup of the features:
        # lambda * h[i] + (1 - lambda) * h[partner[i]], labels weighted lambda and
        # 1 - lambda. Return sources [B, k] (long: the rows each output mixes, k >= 1)
        # and weights [B, k] (finite, >= 0; they need not sum to 1): the loss is
        # sum_j weights[:, j] * CE(logits, y[sources[:, j]]). Mix each element from the
        # listed sources only, one weight for all channels; keep it batched (no loop per
        # sample) and draw any randomness from `generator`. Set needs_model = True to
        # receive `model`: model.saliency(images) and model.cam(images).
        b = h.shape[0]
        w = lam.to(torch.float32).reshape(-1).expand(b)
        wv = w.view(-1, *([1] * (h.ndim - 1)))
        mixed = (wv * h.float() + (1.0 - wv) * h[partner].float()).to(h.dtype)
        sources = torch.stack([torch.arange(b, device=h.device), partner], dim=1)
        return mixed, sources, torch.stack([w, 1.0 - w], dim=1)
'''


def _module_source(name: str, kind: str, params: list[PluginParam]) -> str:
    cls = _class_name(name)
    if kind == MaskMethod.kind:
        imports = "from msda_arena import MaskMethod, Param, hookimpl\n"
        if not any(p.name == "alpha" for p in params):
            imports += "from msda_arena.api.contract import ALPHA\n"
        base, body = "MaskMethod", _MASK_BODY
        what = "It returns masks M(lambda); the harness mixes the images and the labels."
    elif kind == MixMethod.kind:
        imports = "from msda_arena import MixMethod, Param, Saliency, hookimpl\n"
        base, body = "MixMethod", _MIX_BODY
        what = "It mixes the batch itself and returns the weight of each sample's label."
    else:
        imports = "from msda_arena import FeatureMixMethod, ModelView, Param, Stage, hookimpl\n"
        base, body = "FeatureMixMethod", _FEATURE_BODY
        what = (
            "It mixes features at a stage of the model it picks and returns the source rows\n"
            "and label weights of each output."
        )
    if not params:
        imports = imports.replace("Param, ", "")
    summary = "placeholder feature Mixup" if kind == "feature" else "placeholder vertical split"
    return (
        f'"""{name}: a {kind} method for msda-arena (written by `arena new-plugin`).\n'
        "\n"
        f"{what}\n"
        "TODO: describe the method and cite its paper.\n"
        '"""\n'
        "\n"
        "from __future__ import annotations\n"
        "\n"
        "import torch\n"
        f"{imports}"
        "\n"
        '__version__ = "0.1.0"\n'
        "\n"
        "\n"
        f"class {cls}({base}):\n"
        f'    """TODO: what {name} does."""\n'
        "\n"
        f'    name = "{name}"\n'
        f"{_params_source(kind, params)}"
        f'    summary = "{summary} (TODO: describe the method in one line)"\n'
        "\n"
        f"{body}"
        "\n"
        "\n"
        "@hookimpl\n"
        "def register_methods(register):\n"
        f'    """Register {cls} as ``{name}``."""\n'
        f"    register({cls})\n"
    )


def _pyproject(name: str, kind: str, module: str) -> str:
    return f"""\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "arena-{name}"
version = "0.1.0"
description = "msda-arena plugin: the {kind} method {name}."
requires-python = ">=3.11"
# msda-arena (and torch) are not declared: install this beside them
# (pip install -e .), so that pip never replaces the torch already installed.
dependencies = []

[project.entry-points.msda_arena]
{name} = "{module}"

[tool.setuptools]
packages = ["{module}"]
"""


def _tests(name: str, kind: str) -> str:
    ident = name.replace("-", "_")
    return f'''\
"""The plugin's own tests, with the conformance checks msda-arena exports."""

from msda_arena.pluginkit.conformance import assert_conforms, one_cell_run


def test_{ident}_conforms_to_the_{kind}_contract():
    assert_conforms("{name}")


def test_{ident}_trains_one_cell(tmp_path):
    record = one_cell_run("{name}", tmp_path)
    assert record["status"] == "ok", record["error"]
'''


def _readme(name: str, kind: str, module: str) -> str:
    what = {MaskMethod.kind: "masks()", FeatureMixMethod.kind: "stage() and mix()"}.get(
        kind, "mix()"
    )
    return f"""\
# arena-{name}: an msda-arena plugin

The {kind} method `{name}`, written by `arena new-plugin`. Its `{what}` in
`{module}/__init__.py` is a working placeholder (a vertical split) marked TODO:
replace it with your method, and keep `arena check` green.

Install it beside msda-arena (from this folder; add `--no-build-isolation` offline):

    pip install -e .

Check it against the {kind} contract, train it on the default grid next to the
baselines, and run its tests:

    arena check --method {name}
    arena run --method {name}
    python -m pytest tests
"""


def _occupied(target: Path) -> bool:
    """Whether writing ``target`` would replace something: anything but a missing path
    or an empty real folder."""
    if target.is_symlink():
        return True
    if not target.exists():
        return False
    try:
        return not target.is_dir() or any(target.iterdir())
    except OSError:
        return True


def write_plugin(
    name: str,
    kind: str = "mask",
    params: Iterable[str] = (),
    directory: str | os.PathLike[str] = ".",
) -> Path:
    """Write the plugin package ``arena-<name>`` into ``directory``; return its path.

    Args:
        name: the method name (:data:`msda_arena.api.spec.NAME_PATTERN`); the package is
            ``arena-<name>``, its module ``arena_<name>`` (``-`` becomes ``_``). It must
            not be a built-in or installed method's name.
        kind: ``"mask"`` (a :class:`~msda_arena.MaskMethod`), ``"mix"`` (a
            :class:`~msda_arena.MixMethod`) or ``"feature"`` (a
            :class:`~msda_arena.FeatureMixMethod`).
        params: parameters as ``"NAME:TYPE=DEFAULT"`` strings (:func:`parse_param`). A
            mask method gets :data:`~msda_arena.api.contract.ALPHA` too, unless ``alpha``
            is among them.
        directory: the folder to write into (created if missing).

    Returns:
        The absolute path of the package folder, ``<directory>/arena-<name>``.

    Raises:
        UsageError: a bad name or kind, a taken name, a bad parameter, or a target
            folder that exists and is not empty (nothing is ever overwritten).
    """
    _check_name(name)
    if kind not in KINDS:
        *first, last = KINDS
        raise UsageError(f"--kind {kind!r}: use {', '.join(first)} or {last}")
    parsed = [parse_param(text) for text in params]
    seen: set[str] = set()
    for p in parsed:
        if p.name in seen:
            raise UsageError(f"--param {p.name!r} is given twice")
        if kind == FeatureMixMethod.kind and p.name in dir(FeatureMixMethod):
            raise UsageError(
                f"--param {p.name!r} is reserved by FeatureMixMethod; choose another name"
            )
        seen.add(p.name)
    _check_free(name)

    parent = Path(directory).expanduser().resolve()
    target = parent / f"arena-{name}"
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"--dir {parent}: not a folder")
    if _occupied(target):
        raise UsageError(
            f"{target} already exists and is not empty; nothing was written "
            "(choose another --dir or remove it)"
        )
    module = "arena_" + name.replace("-", "_")
    files = {
        "pyproject.toml": _pyproject(name, kind, module),
        "README.md": _readme(name, kind, module),
        f"{module}/__init__.py": _module_source(name, kind, parsed),
        f"tests/test_{name.replace('-', '_')}.py": _tests(name, kind),
    }
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f".arena-{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        staging.mkdir()
    except OSError as exc:
        raise UsageError(f"--dir {parent}: cannot write there ({exc.strerror or exc})") from None
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if target.is_dir():
            target.rmdir()  # empty (checked above); fails, and so refuses, if filled since
        os.rename(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UsageError(
            f"cannot write {target}: {exc.strerror or exc}; nothing was written"
        ) from None
    return target
