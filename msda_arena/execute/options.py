"""Each executor's options: one dataclass per executor, named as ``arena run``'s flags
(``cells_per_gpu`` is ``--cells-per-gpu``) and checked in ``__post_init__``; kept in
this light module so that ``arena run`` checks its flags before torch loads."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from msda_arena.api.errors import UsageError

__all__ = [
    "EXECUTORS",
    "OPTION_NAMES",
    "LocalOptions",
    "RayOptions",
    "SlurmOptions",
    "check_options",
    "flag",
]

#: ``--executor`` name -> "module:Class", imported only when chosen (Ray, submitit are optional).
EXECUTORS: dict[str, str] = {
    "local": "msda_arena.execute.local:LocalExecutor",
    "ray": "msda_arena.execute.ray:RayExecutor",
    "slurm": "msda_arena.execute.slurm:SlurmExecutor",
}


def flag(option: str) -> str:
    """The command-line flag of an option: ``cells_per_gpu`` -> ``--cells-per-gpu``."""
    return "--" + option.replace("_", "-")


def _in_range(option: str, value: int, low: int, high: int = 100_000) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{flag(option)} {value}: must be between {low} and {high}")


@dataclass(frozen=True)
class LocalOptions:
    """``gpus``: CUDA device indices ("0,1" or a tuple; None: every visible one)."""

    gpus: str | tuple[int, ...] | None = None
    cells_per_gpu: int = 1
    workers: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.gpus, str):
            if not re.fullmatch(r"[0-9]+(,[0-9]+)*", self.gpus.strip()):
                raise UsageError(f"--gpus {self.gpus!r}: write CUDA device indices like 0,1")
            gpus = tuple(dict.fromkeys(int(g) for g in self.gpus.split(",")))
            object.__setattr__(self, "gpus", gpus)
        _in_range("cells_per_gpu", self.cells_per_gpu, 1)
        _in_range("workers", self.workers, 1)


@dataclass(frozen=True)
class RayOptions:
    """``workers``: CPUs of a local Ray instance (1: every core)."""

    cells_per_gpu: int = 1
    workers: int = 1
    ray_address: str | None = None

    def __post_init__(self) -> None:
        _in_range("cells_per_gpu", self.cells_per_gpu, 1)
        _in_range("workers", self.workers, 1)


@dataclass(frozen=True)
class SlurmOptions:
    """``slurm_time`` in minutes; ``slurm_extra``: "KEY=VALUE" strings or pairs."""

    slurm_partition: str | None = None
    slurm_time: int = 60
    slurm_gpus: int = 1
    slurm_max_parallel: int = 0
    slurm_extra: tuple[tuple[str, str], ...] | list[str] = ()
    wait: bool = False

    def __post_init__(self) -> None:
        _in_range("slurm_time", self.slurm_time, 1)
        _in_range("slurm_gpus", self.slurm_gpus, 0)
        _in_range("slurm_max_parallel", self.slurm_max_parallel, 0)
        extra = []
        for item in self.slurm_extra:
            key, sep, value = (
                item.partition("=") if isinstance(item, str) else (item[0], "=", item[1])
            )
            if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]*", key):
                raise UsageError(f"--slurm-extra {item!r}: write KEY=VALUE, e.g. account=myproject")
            extra.append((key, value))
        object.__setattr__(self, "slurm_extra", tuple(extra))


_OPTIONS: dict[str, type] = {"local": LocalOptions, "ray": RayOptions, "slurm": SlurmOptions}
#: Every executor's options: what ``arena run`` hands to the chosen one when given.
OPTION_NAMES = tuple(dict.fromkeys(f.name for o in _OPTIONS.values() for f in fields(o)))
_REFUSED = {
    ("ray", "gpus"): "--gpus is for --executor local; a Ray run uses the GPUs its cluster has "
    "(limit them with `ray start --num-gpus N` or CUDA_VISIBLE_DEVICES)",
}


def check_options(kind: str, options: dict[str, Any]) -> Any:
    """Executor ``kind``'s options built from ``options``; one line for an unknown
    executor, an option it does not take or a bad value."""
    if kind not in EXECUTORS:
        raise UsageError(f"--executor {kind!r}: choose one of {', '.join(EXECUTORS)}")
    known = [f.name for f in fields(_OPTIONS[kind])]
    for option in options:
        if option not in known:
            raise UsageError(
                _REFUSED.get((kind, option))
                or f"{flag(option)} is not an option of --executor {kind} "
                f"(its options: {', '.join(map(flag, known))})"
            )
    return _OPTIONS[kind](**options)
