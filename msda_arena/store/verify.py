"""``arena verify``: prove a result store is sound, or name every file that is not.

Every file is read and checked against the record's rules (:mod:`msda_arena.api.record`)
and its place in the store; the index cache is cross-checked against the files; the
store's other files are accounted for. Findings, by kind:

* ``corrupt``: unreadable, truncated or zero-byte parquet, or a record whose values
  break a rule (NaN or 1e9 top-1 in an ok result, a failed record with no error...).
* ``foreign``: a parquet file that is not a result record (other columns, several
  rows, an older record layout) or that this user cannot read, and every entry no
  store writes: symbolic links (to a result, dangling, loops), folders named
  ``*.parquet``, other files. Dot-entries and ``published/`` are the arena's own.
* ``duplicated``: a copy of a result under another name (its record belongs at a
  path that holds it already), or misplaced (it belongs at a path that is empty).
* ``orphaned``: temporary files left by dead writers, checkpoints without an ok
  result, claims whose owner is gone.
* ``index``: an index-cache row that disagrees with its file.
* ``stale``: an ok result whose method code or version differs from the method
  installed now (``arena run`` retrains it); reported, not damage.

:func:`verify` never changes anything unless ``repair``: then every damaged file is
moved (never deleted) under ``<root>/.quarantine/<UTC time>/`` at the same relative
path, and the index is brought up to date with the files that remain; nothing is
created when nothing is damaged.
"""

from __future__ import annotations

import errno
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from msda_arena.api.errors import StoreError
from msda_arena.api.spec import SpecError
from msda_arena.methods.registry import method_info
from msda_arena.store import claims
from msda_arena.store.results import (
    CHECKPOINT_DIR,
    INDEX_NAME,
    indexed,
    inspect_file,
    load_results,
    reason_kind,
    result_files,
    temporaries,
)

__all__ = ["DAMAGE", "KINDS", "Finding", "VerifyReport", "verify"]

#: Kinds of finding, in display order; all but ``stale`` are damage.
KINDS = ("corrupt", "foreign", "duplicated", "orphaned", "index", "stale")
DAMAGE = frozenset(KINDS) - {"stale"}
QUARANTINE = ".quarantine"


@dataclass(frozen=True)
class Finding:
    """One file that is not sound, and why."""

    kind: str
    path: Path
    reason: str


@dataclass
class VerifyReport:
    """What :func:`verify` found (and, with ``repair``, where it moved things)."""

    root: Path
    files: int = 0
    ok: int = 0
    failed: int = 0
    findings: list[Finding] = field(default_factory=list)
    moved: list[tuple[Path, Path]] = field(default_factory=list)
    index_rebuilt: bool = False

    def counts(self) -> dict[str, int]:
        """Findings per kind, every kind listed."""
        found = Counter(f.kind for f in self.findings)
        return {k: found.get(k, 0) for k in KINDS}

    @property
    def damaged(self) -> bool:
        """Whether any finding is damage that was not moved aside."""
        moved = {src for src, _ in self.moved}
        return any(f.kind in DAMAGE and f.path not in moved for f in self.findings)


def verify(root: str | os.PathLike[str], repair: bool = False, stale: bool = True) -> VerifyReport:
    """Check every file of the store at ``root``; with ``repair``, move damage aside.

    Args:
        repair: move damaged files under ``<root>/.quarantine/<time>/`` and rebuild
            the index.
        stale: compare ok results with the installed methods (loads the plugins).
    """
    root = Path(root)
    report = VerifyReport(root)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise StoreError(f"{root} {what}; point --results at a result store")
    strays: list[str] = []
    files = result_files(root, strays)
    index = indexed(root)
    records: dict[str, dict] = {}
    for rel in sorted(files):
        report.files += 1
        path = root / rel
        record, reason = inspect_file(path, root)
        if record is None:
            assert reason is not None
            kind = reason_kind(reason)
            if kind == "misplaced":  # a copy of a result under another name
                kind = "duplicated"
                copy, _ = inspect_file(path)
                target = copy and f"{copy['dataset']}/{copy['key']}.parquet"
                if target in files:
                    reason = f"duplicate of {target}: {reason}"
            report.findings.append(Finding(kind, path, reason))
        else:
            records[rel] = record
            report.ok += record["status"] == "ok"
            report.failed += record["status"] == "failed"
        if index is not None and rel in index:
            meta, cached, error = index[rel]
            if meta == files[rel] and _disagree(cached, error, record, reason):
                report.findings.append(
                    Finding(
                        "index", root / INDEX_NAME, f"its row for {rel} disagrees with the file"
                    )
                )
    report.findings += [Finding("foreign", root / p, _stray(root / p)) for p in sorted(strays)]
    for path, leftover in temporaries(root):
        if leftover:
            report.findings.append(
                Finding("orphaned", path, "temporary file left by a writer that is gone")
            )
    for path in sorted(root.glob(f"*/{CHECKPOINT_DIR}/*.safetensors")):
        rel = f"{path.parent.parent.name}/{path.stem}.parquet"
        record = records.get(rel)
        if record is None or record["status"] != "ok":
            report.findings.append(
                Finding("orphaned", path, f"checkpoint without an ok result ({rel})")
            )
    for path, _info, why in claims.iter_claims(root):
        if why is not None:
            report.findings.append(Finding("orphaned", path, f"claim of a run that is gone: {why}"))
    bound = claims.resolve_ttl()
    own = f"*/{claims.CLAIM_DIR}/"  # claimers' own files (mtime: refreshed while live)
    for path in sorted([*root.glob(own + ".*.tmp"), *root.glob(own + "*|*")]):
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            continue
        if age > bound:
            report.findings.append(
                Finding("orphaned", path, "temporary file of a claimer that died")
            )
    if stale:
        report.findings += _stale(root, records)
    if repair:
        _repair(report)
    return report


def _disagree(cached: dict | None, error: str, record: dict | None, reason: str | None) -> bool:
    if record is None or cached is None:
        return (record is None) != (cached is None) or (error or None) != reason
    return any(
        cached.get(k) != v and not (_isnan(cached.get(k)) and _isnan(v)) for k, v in record.items()
    )


def _isnan(value: object) -> bool:
    return isinstance(value, float) and value != value


def _stale(root: Path, records: dict[str, dict]) -> list[Finding]:
    codes: dict[str, str | None] = {}
    found = []
    for rel, record in records.items():
        if record["status"] != "ok":
            continue
        spec = record["method"]
        if spec not in codes:
            try:
                codes[spec] = method_info(spec).code
            except SpecError:
                codes[spec] = None  # not installed here: cannot tell
        code = codes[spec]
        if code is not None and record["method_code"] != code:
            found.append(
                Finding(
                    "stale",
                    root / rel,
                    f"{spec} was trained with code {record['method_code'] or '?'}, installed "
                    f"now: {code}; `arena run` retrains it",
                )
            )
    return found


def _stray(path: Path) -> str:
    """Why an entry that is neither a result file, a folder nor a checkpoint is foreign."""
    what = "not a result file"
    if path.is_symlink():
        what = f"a symbolic link to {os.readlink(path)}"
        try:
            path.stat()
        except OSError as exc:
            what += " (a loop)" if exc.errno == errno.ELOOP else " (dangling)"
    elif path.is_dir():
        what = "a folder named like a result file"
    elif not path.is_file():
        what = "not a regular file"
    return f"{what}; a store holds only regular <dataset>/<key>.parquet files"


def _repair(report: VerifyReport) -> None:
    """Move every damaged file (and a disagreeing index) aside; one-line StoreError
    naming what could not be moved and what to do."""
    root = report.root
    bin_ = root / QUARANTINE / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    failed: list[tuple[Path, OSError]] = []
    for src in dict.fromkeys(f.path for f in report.findings if f.kind in DAMAGE):
        claim = src.name.endswith(claims.CLAIM_SUFFIX) and src.parent.name == claims.CLAIM_DIR
        if not claim and not os.path.lexists(src):  # gone (or in a folder moved before)
            continue
        try:
            if claim:  # released through the protocol: a live claim is never moved
                dst = src if claims.clear_stale(src) else None
            else:
                dst = bin_ / src.relative_to(root)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
        except OSError as exc:
            failed.append((src, exc))
            continue
        if dst is not None:
            report.moved.append((src, dst))
    if report.moved:
        load_results(root)  # the index, up to date with the files that remain
        report.index_rebuilt = True
    if failed:
        src, exc = failed[0]
        raise StoreError(
            f"could not move {len(failed)} damaged file(s) aside, the first {src}: "
            f"{exc.strerror or exc}; make the store writable to you (remount a read-only disk, "
            "or ask the files' owner) and rerun `arena verify --repair`"
        )
