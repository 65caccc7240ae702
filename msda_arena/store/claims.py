"""Per-cell claims, so that concurrent runs on one store never train a cell twice.

Before training a cell a run calls :func:`try_claim`: a :class:`Claim` (train, store,
:meth:`Claim.release`) or None (another live run holds the cell: skip it). Runs may be
processes, Ray or Slurm workers, on one host or on hosts sharing the store over NFS.

A claim is a `flufl.lock <https://flufllock.readthedocs.io>`_ lock file
``<root>/<dataset>/.claims/<key>.claim``, a hard link (NFS-safe) to its owner's file
``<key>.claim|<host>|<pid>|<random>`` (also its content); its mtime, the end of its
lifetime (the TTL), is pushed on by a heartbeat (flufl's ``refresh``) every
``min(ttl / 10, 60)`` s. What the arena adds:

* Staleness (:func:`stale_reason`): at once when the owner is on this host and its pid
  is gone, a zombie or reused (now a process started after the claim's last refresh);
  else once the lifetime has ended. Hosts are named by ``gethostname()``, not flufl's
  ``getfqdn()`` (``localhost`` on many nodes).
* Take-over without races (flufl breaks a lock unchecked: two takers can both win): a
  taker holds the flufl lock ``<key>.takeover`` (lifetime ``min(max(ttl, 10), 60)`` s),
  re-reads the claim, removes it only if unchanged and still stale, then claims as
  anyone does; :meth:`Claim.release` holds it too. A takeover lock whose holder is gone
  is removed if unchanged on a second look (only two takers breaking one dead taker's
  lock within microseconds could both go on).
* Claims of earlier versions (JSON: host, pid, token; mtime: last refresh) are judged
  as then: stale once their pid on this host is gone (or started after that mtime) or
  older than the TTL, else respected; unreadable files once older than the TTL.

The TTL is :data:`DEFAULT_TTL_S`, ``$ARENA_CLAIM_TTL`` or ``ttl_s``, in increasing
priority. Limits: hard links needed; hosts need distinct names and clocks that agree
within a few seconds; a process stopped for longer than the TTL can be taken over while
alive (it then finds :meth:`Claim.lost`). This module does not import torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flufl.lock import Lock, NotLockedError, TimeOutError

from msda_arena.api.errors import StoreError, UsageError
from msda_arena.api.record import KEY_PATTERN
from msda_arena.store.hosts import host_tag, pid_alive
from msda_arena.store.hosts import process_started as _started

__all__ = [
    "CLAIM_DIR",
    "CLAIM_SUFFIX",
    "DEFAULT_TTL_S",
    "TTL_ENV",
    "Claim",
    "ClaimInfo",
    "claim_path",
    "clean_leftovers",
    "clear_dead_claims",
    "clear_stale",
    "host_tag",
    "iter_claims",
    "pid_alive",
    "read_claim",
    "resolve_ttl",
    "stale_reason",
    "try_claim",
]

#: Directory, inside a dataset's directory of the store, that holds the claims.
CLAIM_DIR = ".claims"
#: Suffix of a claim file: ``<key>.claim``.
CLAIM_SUFFIX = ".claim"
#: Seconds after which a claim that has not been refreshed is stale.
DEFAULT_TTL_S = 600.0
#: Environment variable that overrides :data:`DEFAULT_TTL_S` (seconds).
TTL_ENV = "ARENA_CLAIM_TTL"

_TAKEOVER_SUFFIX = ".takeover"
_MAX_HEARTBEAT_S = 60.0
_MAX_BYTES = 64 * 1024
_SLOP_S = 10.0  # pid reuse: the process under the pid started this long after the refresh
_BACKOFF_S = [min(0.01 * 2**i, 0.25) for i in range(12)]  # ~2 s against a busy taker
_TRY_ONCE = timedelta(seconds=-1)  # a lock() timeout already over: one attempt, no wait

# flufl.lock logs a lock held by someone else (for us: skip the cell) as an error.
logging.getLogger("flufl.lock").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class ClaimInfo:
    """Who holds a claim: the owner's host (:func:`socket.gethostname`), its pid there
    and the random token of this one claim."""

    host: str
    pid: int
    token: str


@dataclass(frozen=True)
class _Seen:
    info: ClaimInfo | None
    legacy: bool  # an earlier version's (or unreadable): the mtime is the last refresh
    st: os.stat_result
    identity: str


class _Lock(Lock):
    @property
    def hostname(self) -> str:  # flufl's getfqdn() is "localhost" on many hosts
        return socket.gethostname()


def resolve_ttl(ttl_s: float | None = None) -> float:
    """The TTL in seconds: ``ttl_s`` if given, else ``$ARENA_CLAIM_TTL``, else
    :data:`DEFAULT_TTL_S`; :class:`~msda_arena.api.errors.UsageError` for a value that is
    not a finite number of seconds above zero."""
    value, what = math.nan, f"claim TTL {ttl_s!r}"
    if ttl_s is None:
        raw = os.environ.get(TTL_ENV, "").strip()
        if not raw:
            return DEFAULT_TTL_S
        what = f"{TTL_ENV}={raw[:40]!r}"
        with contextlib.suppress(ValueError):
            value = float(raw)
    elif isinstance(ttl_s, int | float) and not isinstance(ttl_s, bool):
        value = float(ttl_s)
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{what} is not a number of seconds above 0")
    return value


def _parse(data: bytes) -> tuple[ClaimInfo | None, bool]:
    """The owner a claim's content names; whether it is an earlier version's (JSON) or
    unreadable."""
    parts = data.decode("utf-8", "replace").rsplit("|", 3)
    if len(parts) == 4 and parts[2].isdigit() and parts[1] and parts[3]:
        return ClaimInfo(parts[1], int(parts[2]), parts[3]), False  # flufl.lock's
    with contextlib.suppress(ValueError, AttributeError):
        obj = json.loads(data)
        host, pid, token = obj.get("host"), obj.get("pid"), obj.get("token")
        if isinstance(host, str) and type(pid) is int and isinstance(token, str) and token:
            return ClaimInfo(host, pid, token), True
    return None, True


def _observe(path: Path) -> _Seen | None:
    """Content, stat and identity of the file at ``path``; None when there is none."""
    try:
        with open(path, "rb") as f:  # content and stat of one inode
            st, data = os.fstat(f.fileno()), f.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError:  # unreadable: judged by its mtime
        try:
            st, data = os.stat(path), b""
        except OSError:
            return None
    info, legacy = _parse(data) if 0 < len(data) <= _MAX_BYTES else (None, True)
    identity = data.decode("utf-8", "replace") if info else f"{st.st_ino}:{st.st_mtime_ns}"
    return _Seen(info, legacy, st, identity)


def read_claim(path: str | os.PathLike[str]) -> ClaimInfo | None:
    """The owner a claim file names; None when the file is missing, unreadable or garbled."""
    seen = _observe(Path(path))
    return seen.info if seen else None


def _judge(path: Path, seen: _Seen, ttl: float, now: float) -> str | None:
    info, st = seen.info, seen.st
    if info is not None and info.host == socket.gethostname():
        where = f"owner process {info.pid} on host {info.host}"
        started = _started(info.pid) if info.pid > 0 else None
        if started is None:
            return f"{where} is gone"
        refreshed = st.st_mtime if seen.legacy else st.st_ctime  # flufl's mtime: the end
        if started > refreshed + _SLOP_S:
            return f"{where} is gone (pid {info.pid} now belongs to a process started later)"
    if not seen.legacy:
        if now > st.st_mtime + 1.0:  # flufl.lock writes whole seconds
            return f"not refreshed: its lifetime ended {now - st.st_mtime:.0f} s ago"
        return None
    age = now - st.st_mtime
    if age <= ttl:
        return None
    if info is None:
        return f"unreadable claim file {path} (not refreshed for {age:.0f} s, bound {ttl:g} s)"
    return f"not refreshed for {age:.0f} s (bound {ttl:g} s)"


def stale_reason(
    path: str | os.PathLike[str],
    info: ClaimInfo | None,
    ttl_s: float | None = None,
    now: float | None = None,
) -> str | None:
    """Why the claim at ``path`` may be taken over (e.g. ``"owner process 123 on host h
    is gone"``), or None while it is live (or gone). The file is read again (``info`` is
    kept for callers); ``ttl_s`` (for earlier versions' claims) defaults as in
    :func:`resolve_ttl`, ``now`` to :func:`time.time`."""
    ttl, seen = resolve_ttl(ttl_s), _observe(Path(path))
    return _judge(Path(path), seen, ttl, now or time.time()) if seen else None


def _check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or not KEY_PATTERN.match(name):
        raise StoreError(f"{what} {str(name)[:80]!r} is not a file-name-safe store name")


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _try_lock(lock: _Lock) -> bool:
    try:
        lock.lock(timeout=_TRY_ONCE)
        return True
    except TimeOutError:
        return False


def _remove(path: Path, seen: _Seen) -> None:
    """Remove the lock at ``path`` and, for a flufl lock, its owner's own file."""
    _unlink(path)
    if seen.info is not None and not seen.legacy:
        info = seen.info
        _unlink(path.with_name(f"{path.name}|{info.host}|{info.pid}|{info.token}"))


def _takeover_lock(path: Path, ttl: float) -> _Lock | None:
    """The takeover lock of the claim at ``path``; None while a live taker holds it."""
    name = path.with_name(path.name[: -len(CLAIM_SUFFIX)] + _TAKEOVER_SUFFIX)
    bound = min(max(ttl, 10.0), 60.0)
    for _ in range(2):
        guard = _Lock(str(name), timedelta(seconds=bound))
        if _try_lock(guard):
            return guard
        seen = _observe(name)
        if seen is not None and _judge(name, seen, bound, time.time()) is None:
            return None
        if seen is not None and getattr(_observe(name), "identity", None) == seen.identity:
            _remove(name, seen)  # its holder is gone
    return None


def _remove_if(path: Path, identity: str, ttl: float, stale: bool) -> str:
    """Under its takeover lock, remove the claim at ``path`` if it still has ``identity``
    (and, with ``stale``, is stale): "removed", "changed" (gone or another claim),
    "live" (not stale) or "busy" (another taker holds the lock)."""
    guard = _takeover_lock(path, ttl)
    if guard is None:
        return "busy"
    try:
        seen = _observe(path)
        if seen is None or seen.identity != identity:
            return "changed"
        if stale and _judge(path, seen, ttl, time.time()) is None:
            return "live"
        if not guard.is_locked:  # this process was stopped past the lock's lifetime
            return "busy"
        _remove(path, seen)
        return "removed"
    finally:
        guard.unlock(unconditionally=True)


class Claim:
    """A claim this process holds on one cell, kept alive by a heartbeat thread until
    :meth:`release` (also on leaving a ``with`` block)."""

    def __init__(self, path: Path, lock: _Lock, ttl_s: float) -> None:
        self.path = path
        """The claim file."""
        self.info = ClaimInfo(lock.hostname, os.getpid(), lock.claimfile.rsplit("|", 1)[1])
        """What the claim file says (our host, pid and token)."""
        self.ttl_s = ttl_s
        self.heartbeat_s = min(ttl_s / 10.0, _MAX_HEARTBEAT_S)
        """Seconds between two refreshes of the claim's lifetime."""
        self._lock, self._released, self._lost = lock, False, False
        self._mutex, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"claim {path.name}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Claim({str(self.path)!r}, token={self.info.token!r})"

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self._lock.refresh()  # touches our own file: never someone else's claim
            except NotLockedError:
                self._lost = True
                return
            except OSError:
                continue  # transient (NFS): the next beat tries again

    def lost(self) -> bool:
        """Whether the claim was taken over (or removed) by someone else. After
        :meth:`release`, whether that had happened by then."""
        if not (self._released or self._lost) and read_claim(self.path) != self.info:
            self._lost = True
        return self._lost

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file if it is still ours (under its
        takeover lock, so never a claim a taker has put in place). Idempotent; a claim
        taken over is left alone (and :meth:`lost` then says True)."""
        with self._mutex:
            if self._released:
                return
            self._released = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        for delay in _BACKOFF_S:
            outcome = _remove_if(self.path, self._lock.claimfile, self.ttl_s, stale=False)
            if outcome != "busy":
                break
            time.sleep(delay)
        # Still "busy": a live taker is replacing our (expired) claim or will find it
        # stale once this process has exited. Our own file goes in any case.
        self._lost = self._lost or outcome == "changed"
        _unlink(Path(self._lock.claimfile))

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def claim_path(root: str | os.PathLike[str], dataset: str, key: str) -> Path:
    """Where the claim of cell ``key`` of ``dataset`` lives: ``root/dataset/.claims/key.claim``."""
    _check_name("dataset", dataset)
    _check_name("key", key)
    return Path(root) / dataset / CLAIM_DIR / f"{key}{CLAIM_SUFFIX}"


def try_claim(
    root: str | os.PathLike[str], dataset: str, key: str, ttl_s: float | None = None
) -> Claim | None:
    """Claim cell ``key`` of ``dataset`` in the store at ``root``: a :class:`Claim`
    (held, heartbeat running), or None while someone else holds a live claim; a stale
    claim is taken over. ``ttl_s`` defaults as in :func:`resolve_ttl`. Raises
    :class:`~msda_arena.api.errors.StoreError` for a name that is not file-name safe,
    :class:`~msda_arena.api.errors.UsageError` for a bad TTL, :class:`OSError` when the
    store cannot be written (or has no hard links)."""
    ttl = resolve_ttl(ttl_s)
    path = claim_path(root, dataset, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    for delay in _BACKOFF_S:
        lock = _Lock(str(path), timedelta(seconds=ttl))
        if _try_lock(lock):
            return Claim(path, lock, ttl)
        seen = _observe(path)
        if seen is None:
            continue  # released in between
        if _judge(path, seen, ttl, time.time()) is None:
            return None
        outcome = _remove_if(path, seen.identity, ttl, stale=True)
        if outcome == "live":
            return None
        if outcome == "busy":
            time.sleep(delay)
    return None


def iter_claims(
    root: str | os.PathLike[str], ttl_s: float | None = None
) -> Iterator[tuple[Path, ClaimInfo | None, str | None]]:
    """Every claim under the store at ``root``: its path, its owner (None when
    unreadable) and why it is stale (None while live). ``ttl_s`` as in :func:`resolve_ttl`."""
    ttl = resolve_ttl(ttl_s)
    for path in sorted(Path(root).glob(f"[!.]*/{CLAIM_DIR}/[!.]*{CLAIM_SUFFIX}")):
        seen = _observe(path)
        if seen is not None:
            yield path, seen.info, _judge(path, seen, ttl, time.time())


def clean_leftovers(root: str | os.PathLike[str], ttl_s: float | None = None) -> list[Path]:
    """Remove, and return, the files claimers left when they died: flufl.lock's own
    files ``<key>.claim|<host>|<pid>|<random>`` (also of takeover locks) and earlier
    versions' ``.<key>.<host>.<pid>.<token>.tmp``: at once when they name a process of
    this host that is gone, else once not refreshed within the TTL.

    Seen before the names were checked for the process: a SIGKILL between writing and
    linking left the file for the whole TTL, after the resumed run had finished."""
    ttl, now, removed = resolve_ttl(ttl_s), time.time(), []
    for path in Path(root).glob(f"*/{CLAIM_DIR}/*"):
        if "|" in path.name:
            parts = path.name.rsplit("|", 3)
        elif path.name.startswith(".") and path.name.endswith(".tmp"):
            parts = path.name[: -len(".tmp")].rsplit(".", 3)
        else:
            continue
        host, pid = parts[1:3] if len(parts) == 4 else ("", "")
        here = host in (socket.gethostname(), host_tag())
        with contextlib.suppress(OSError):
            if (here and pid.isdigit() and not pid_alive(int(pid))) or (
                now - path.stat().st_mtime > ttl
            ):
                path.unlink()
                removed.append(path)
    return removed


def clear_dead_claims(root: str | os.PathLike[str], ttl_s: float | None = None) -> list[Path]:
    """Remove every stale claim under the store at ``root`` through :func:`clear_stale`
    (a live claim is never touched); returns the paths removed.

    Seen in the SIGKILL fault test: a run killed after storing a cell's result but
    before releasing its claim left the claim for good, since a resumed run skips
    stored cells and never claims them again."""
    stale = [path for path, _info, reason in iter_claims(root, ttl_s) if reason is not None]
    return [path for path in stale if clear_stale(path, ttl_s)]


def clear_stale(path: str | os.PathLike[str], ttl_s: float | None = None) -> bool:
    """Remove the stale claim at ``path`` by taking it over and releasing it, so a claim
    that became live meanwhile is never touched; True when it was removed (or gone)."""
    path = Path(path)
    if not path.name.endswith(CLAIM_SUFFIX) or path.parent.name != CLAIM_DIR:
        raise ValueError(f"{path} is not a claim file")
    key = path.name[: -len(CLAIM_SUFFIX)]
    claim = try_claim(path.parent.parent.parent, path.parent.parent.name, key, ttl_s)
    if claim is not None:
        claim.release()
    return claim is not None
