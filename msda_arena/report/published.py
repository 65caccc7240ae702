"""Published numbers (the paper's tables) as data, to show beside measured rows.

The numbers ship as package data, ``msda_arena/published/park2022.csv`` (Park, Yun,
Chun, NeurIPS 2022), read through :mod:`importlib.resources`, so they are there in a wheel
install too. CSV files in a store's own ``<results>/published/`` take precedence. Columns:
``dataset, arch, scenario, method, top1, source``. An empty ``arch`` means the paper does
not state the architecture, and matches any.

A published number is shown in a leaderboard column when its dataset and scenario
equal the column's and its architecture equals the column's (or is empty); an exact
architecture wins over an empty one. Rows come in the order their methods first appear
in the files (the shipped file follows the paper's). Published numbers are never ranked,
never marked best and never enter averages or paired tests: they are not measurements
of this arena.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

from msda_arena.api.errors import StoreError

if TYPE_CHECKING:
    import pandas

__all__ = ["PUBLISHED_COLUMNS", "default_published_files", "load_published"]

PUBLISHED_COLUMNS: tuple[str, ...] = ("dataset", "arch", "scenario", "method", "top1", "source")
_PACKAGE_PUBLISHED = "msda_arena/published/"  # where the shipped CSV files live, for messages


def _shipped() -> Traversable:
    return resources.files("msda_arena").joinpath("published")


def default_published_files(
    results_root: str | os.PathLike[str] | None = None,
) -> list[Traversable]:
    """The published CSV files to use: ``<results_root>/published/*.csv`` when there are
    any, else the ones shipped in the package (``msda_arena/published/*.csv``).

    The shipped files are :class:`importlib.resources.abc.Traversable` (a :class:`Path`
    in an ordinary install); :func:`load_published` reads either.
    """
    if results_root:
        directory = Path(results_root) / "published"
        if directory.is_dir():
            files = sorted(p for p in directory.glob("*.csv") if not p.name.startswith("."))
            if files:
                return list(files)
    shipped = _shipped()
    if not shipped.is_dir():
        return []
    return sorted(
        (f for f in shipped.iterdir() if f.name.endswith(".csv") and not f.name.startswith(".")),
        key=lambda f: f.name,
    )


def load_published(
    files: Iterable[str | os.PathLike[str] | Traversable] | None = None,
) -> pandas.DataFrame:
    """Read published numbers into one frame with :data:`PUBLISHED_COLUMNS`.

    Args:
        files: CSV files (paths or package resources); by default
            :func:`default_published_files`.

    Raises:
        StoreError: no file found, or a file lacks a column or has a non-numeric ``top1``.
    """
    import pandas as pd

    paths: list[Path | Traversable] = (
        [f if isinstance(f, Traversable) else Path(f) for f in files]
        if files is not None
        else list(default_published_files())
    )
    if not paths:
        raise StoreError(
            f"no published numbers found; expected CSV files in {_PACKAGE_PUBLISHED} "
            "(reinstall msda-arena) or <results>/published/"
        )
    frames = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            reason = " ".join(str(exc).split())
            raise StoreError(f"{path}: cannot read published numbers ({reason})") from None
        missing = [c for c in PUBLISHED_COLUMNS if c not in frame.columns]
        if missing:
            raise StoreError(f"{path}: published numbers need a column {missing[0]!r}")
        frame = frame[list(PUBLISHED_COLUMNS)].copy()
        for column in PUBLISHED_COLUMNS:
            frame[column] = frame[column].str.strip()
        top1 = pd.to_numeric(frame["top1"], errors="coerce")
        if top1.isna().any():
            line = int(top1.isna().to_numpy().nonzero()[0][0]) + 2
            raise StoreError(f"{path}:{line}: top1 must be a number")
        frame["top1"] = top1.astype("float64")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def match_published(
    published: pandas.DataFrame, method: str, dataset: str, arch: str, scenario: str
) -> tuple[float, str] | None:
    """The published (top1, source) for one method in one column, or ``None``."""
    rows = published[
        (published["method"] == method)
        & (published["dataset"] == dataset)
        & (published["scenario"] == scenario)
    ]
    if len(rows) == 0:
        return None
    exact = rows[rows["arch"] == arch]
    chosen = exact if len(exact) else rows[rows["arch"] == ""]
    if len(chosen) == 0:
        return None
    first = chosen.iloc[0]
    return float(first["top1"]), str(first["source"])
