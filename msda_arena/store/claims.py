"""Per-cell claims, so that concurrent runs on one store never train a cell twice.

A run that wants to train a cell first calls :func:`try_claim`; it gets a :class:`Claim`
(train, write the result, :meth:`Claim.release`) or ``None`` (someone else holds a live
claim: skip the cell). Runs may be separate ``arena run`` processes, Ray or Slurm
workers, on one host or on several hosts sharing the store over NFS.

Files
-----
``<root>/<dataset>/.claims/<key>.claim`` holds one JSON object: the owner's host, pid,
the process start time (``/proc/<pid>/stat`` field 22, ``''`` where unavailable), a
start timestamp and a random token (:class:`ClaimInfo`). The store's scanner skips
dot-directories, so ``.claims`` is invisible to it. Next to the claims live short-lived
takeover locks ``<key>.<digest>.takeover`` (same JSON) and, for a moment,
``.<key>.<host>.<pid>.<token>.tmp`` files. A claim file's content never changes once created; only
its mtime does.

Creation
--------
The JSON is written to a unique temporary file in ``.claims`` and fsynced, then
``os.link(tmp, claim)``: the link fails with EEXIST when the cell is claimed, so a
reader never sees a partial claim and at most one creator wins. Where a link's reply
is lost (NFS), the temporary file's link count (2 = the link was made) decides.

Liveness
--------
While held, a daemon thread refreshes the claim's mtime every ``min(ttl / 10, 60)``
seconds. It opens the claim, checks that the token is ours and refreshes that very
inode (``os.utime`` on the descriptor), so it never keeps someone else's claim alive;
when the token is not ours the claim is marked lost (:meth:`Claim.lost`). A claim is
stale (:func:`stale_reason`) when

* its owner is on this host and its pid is not alive, is a zombie, or belongs to a
  process with another start time (pid reuse); or
* its mtime is older than the TTL (any host; the only test across hosts); or
* it cannot be read or parsed (only outside damage does that) and its mtime is older
  than the TTL.

The TTL is :data:`DEFAULT_TTL_S`, the environment variable ``ARENA_CLAIM_TTL``
(seconds) or the ``ttl_s`` argument, in increasing priority.

Takeover
--------
Deleting "the claim path" after judging it stale is a race: between the judgement and
the unlink another taker may have replaced the stale claim with a fresh one. So a claim
is only removed under a takeover lock, and the judgement is repeated under it:

1. A taker who judged the claim with identity ``T`` (its token; for an unreadable file,
   device, inode, mtime and size) stale creates the lock ``<key>.<digest(T)>.takeover``
   the same atomic way (temporary file + ``os.link``). At most one process holds that
   name. A lock whose holder is alive stops the taker (it retries for about two
   seconds, then reports the cell as held).
2. Holding the lock, the taker re-reads the claim. If it is gone, it links its own; if
   its identity is no longer ``T``, it starts over; if it is no longer stale (the owner
   refreshed it), it gives up; otherwise it unlinks it and links its own claim (which
   can still lose against a plain creator: the link is atomic either way).
3. Nobody but its holder ever deletes a lock while ``T`` exists. A stale lock (holder
   gone, or older than ``min(max(ttl, 10), 60)`` seconds) is not deleted: a taker
   instead creates the next lock of the chain, named after the stale lock's identity,
   and step 2 happens under that one. The chain gives one holder per name, and a lock
   holder checks that its own lock has no successor before it unlinks the claim.
4. Once ``T`` is gone it never comes back (tokens are random), so every lock of its
   chain is inert: whoever gets one re-reads the claim, finds another identity and
   stops. Only then are the chain's files cleaned up.

:meth:`Claim.release` takes the same lock on its own token before it unlinks the claim,
and unlinks only a claim that still carries its token; it is idempotent, stops the
heartbeat and is what the context manager calls.

Limits: the filesystem must support hard links (local filesystems and NFS do; some
FUSE, SMB or object-store mounts do not, where ``os.link`` raises an error instead of
claiming). Hosts must agree on the time within a small part of the TTL (NFS mtimes are
the server's), and on the TTL itself. Two hosts with one hostname (e.g. containers in
separate pid namespaces) must not share a store. As with any lease, a process stopped
for longer than the TTL (or a takeover-lock holder for longer than the lock bound) can
be taken over while alive; :meth:`Claim.lost` tells it afterwards.

This module does not import torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from msda_arena.api.errors import StoreError, UsageError
from msda_arena.api.record import KEY_PATTERN

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

_LOCK_SUFFIX = ".takeover"
_MAX_HEARTBEAT_S = 60.0
_MAX_BYTES = 64 * 1024
_MAX_CHAIN = 16
_MAX_ROUNDS = 12  # with the back-off below: about two seconds against a live lock


@dataclass(frozen=True)
class ClaimInfo:
    """What a claim file says about its owner."""

    host: str
    """Host name of the owner (:func:`socket.gethostname`)."""
    pid: int
    """Process id of the owner on ``host``."""
    pid_start: str
    """Start time of that process in clock ticks since boot (``/proc/<pid>/stat``
    field 22), ``''`` where unavailable; tells a reused pid apart."""
    started_at: str
    """When the claim was made, ISO 8601 in UTC."""
    token: str
    """Random token that identifies this one claim."""


@dataclass(frozen=True)
class _Seen:
    """One look at a claim (or lock) file: content, mtime and identity of one inode."""

    info: ClaimInfo | None
    mtime: float
    identity: str


def resolve_ttl(ttl_s: float | None = None) -> float:
    """The TTL in seconds: ``ttl_s`` if given, else ``$ARENA_CLAIM_TTL``, else
    :data:`DEFAULT_TTL_S`.

    Raises :class:`~msda_arena.api.errors.UsageError` for a value that is not a finite
    number of seconds above zero.
    """
    if ttl_s is None:
        raw = os.environ.get(TTL_ENV, "").strip()
        if not raw:
            return DEFAULT_TTL_S
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"{TTL_ENV}={raw[:40]!r} is not a number of seconds above 0")
        return value
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float):
        raise UsageError(f"claim TTL {ttl_s!r} is not a number of seconds above 0")
    if not (math.isfinite(ttl_s) and ttl_s > 0):
        raise UsageError(f"claim TTL {ttl_s!r} is not a number of seconds above 0")
    return float(ttl_s)


def _lock_bound(ttl_s: float) -> float:
    """Age after which a takeover lock is stale (its holder needs a few file operations)."""
    return min(max(ttl_s, 10.0), 60.0)


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in ticks) of a process from ``/proc``; None where unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = data.rpartition(")")[2].split()
    if len(fields) < 20:
        return None
    return fields[0], fields[19]  # field 3 (state) and field 22 (starttime)


def _pid_start(pid: int) -> str:
    stat = _proc_stat(pid)
    return stat[1] if stat else ""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    except OSError:
        return True
    stat = _proc_stat(pid)
    return not (stat is not None and stat[0] in ("Z", "X"))


def _new_info() -> ClaimInfo:
    pid = os.getpid()
    return ClaimInfo(
        host=socket.gethostname(),
        pid=pid,
        pid_start=_pid_start(pid),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        token=uuid.uuid4().hex,
    )


def _encode(info: ClaimInfo) -> bytes:
    fields = {
        "host": info.host,
        "pid": info.pid,
        "pid_start": info.pid_start,
        "started_at": info.started_at,
        "token": info.token,
    }
    return (json.dumps(fields, sort_keys=True) + "\n").encode()


def _parse(data: bytes) -> ClaimInfo | None:
    if not data or len(data) > _MAX_BYTES:
        return None
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    host, pid, pid_start = obj.get("host"), obj.get("pid"), obj.get("pid_start")
    started_at, token = obj.get("started_at"), obj.get("token")
    if not (
        isinstance(host, str)
        and isinstance(pid, int)
        and not isinstance(pid, bool)
        and isinstance(pid_start, str)
        and isinstance(started_at, str)
        and isinstance(token, str)
        and token
    ):
        return None
    return ClaimInfo(host, pid, pid_start, started_at, token)


def read_claim(path: str | os.PathLike[str]) -> ClaimInfo | None:
    """The owner a claim (or takeover lock) file names; None when the file is missing,
    unreadable or garbled."""
    try:
        with open(path, "rb") as f:
            return _parse(f.read(_MAX_BYTES + 1))
    except OSError:
        return None


def _observe(path: Path) -> _Seen | None:
    """Content, mtime and identity of the inode at ``path``; None when there is none."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError:
        try:
            st = os.stat(path)
        except OSError:
            return None
        data = b""
    info = _parse(data)
    if info is not None:
        identity = f"token:{info.token}"
    else:
        identity = f"bad:{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"
    return _Seen(info, st.st_mtime, identity)


def _judge(
    path: Path, info: ClaimInfo | None, mtime: float, bound: float, now: float
) -> str | None:
    if info is not None and info.host == socket.gethostname():
        where = f"owner process {info.pid} on host {info.host}"
        if not pid_alive(info.pid):
            return f"{where} is gone"
        current = _pid_start(info.pid) if info.pid_start else ""
        if current and current != info.pid_start:
            return (
                f"{where} is gone (pid {info.pid} now belongs to a process started at "
                f"tick {current}, not {info.pid_start})"
            )
    age = now - mtime
    if age > bound:
        if info is None:
            return (
                f"unreadable claim file {path} (not refreshed for {age:.0f} s, bound {bound:g} s)"
            )
        return f"not refreshed for {age:.0f} s (bound {bound:g} s)"
    return None


def stale_reason(
    path: str | os.PathLike[str],
    info: ClaimInfo | None,
    ttl_s: float | None = None,
    now: float | None = None,
) -> str | None:
    """Why the claim at ``path`` (whose content is ``info``, None when unreadable) may be
    taken over, or None while it is live (or gone).

    E.g. ``"owner process 123 on host h is gone"``, ``"not refreshed for 900 s (bound
    600 s)"`` or ``"unreadable claim file PATH (...)"``. ``ttl_s`` defaults as in
    :func:`resolve_ttl`; ``now`` to :func:`time.time`.
    """
    bound = resolve_ttl(ttl_s)
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    return _judge(Path(path), info, mtime, bound, time.time() if now is None else now)


def _check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or not KEY_PATTERN.match(name):
        raise StoreError(f"{what} {str(name)[:80]!r} is not a file-name-safe store name")


def host_tag() -> str:
    """This host's name as temporary file names carry it (letters, digits and ``-``,
    at most 32 characters), so a reader on the same host can tell a dead writer's
    leftovers from a live writer's files."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def _dead_writer(name: str) -> bool:
    """Whether the temporary file ``name`` (``.<...>.<host>.<pid>.<token>.tmp``) was
    written by a process of this host that is gone."""
    parts = name[: -len(".tmp")].rsplit(".", 3)
    return (
        len(parts) == 4
        and parts[1] == host_tag()
        and parts[2].isdigit()
        and not pid_alive(int(parts[2]))
    )


def _write_tmp(directory: Path, key: str, data: bytes) -> Path:
    """Write ``data`` to a new, unique, fsynced dot-file in ``directory``, named with
    this host and process (:func:`clean_leftovers` removes a dead writer's at once)."""
    tmp = directory / f".{key}.{host_tag()}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _link(tmp: Path, target: Path) -> bool:
    """Hard-link ``tmp`` to ``target``: True if made, False if ``target`` exists."""
    try:
        os.link(tmp, target)
        return True
    except FileExistsError:
        error: OSError | None = None
    except OSError as exc:
        error = exc
    # Over NFS a retransmitted LINK may report EEXIST (or fail) although the first one
    # succeeded: the temporary file's link count tells.
    try:
        if os.stat(tmp).st_nlink >= 2:
            return True
    except OSError:
        pass
    if error is not None:
        raise error
    return False


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _lock_name(directory: Path, key: str, identity: str) -> Path:
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return directory / f"{key}.{digest}{_LOCK_SUFFIX}"


@dataclass
class _Lock:
    path: Path
    identity: str
    chain: list[Path]


def _acquire_lock(directory: Path, key: str, identity: str, bound: float) -> _Lock | None:
    """The takeover lock for the claim with ``identity``, or None while a live process
    holds it. Stale locks are not removed: the next lock of the chain is taken."""
    info = _new_info()
    tmp = _write_tmp(directory, key, _encode(info))
    chain: list[Path] = []
    try:
        target = identity
        for _ in range(_MAX_CHAIN):
            lock = _lock_name(directory, key, target)
            if lock not in chain:
                chain.append(lock)
            if _link(tmp, lock):
                return _Lock(lock, f"token:{info.token}", chain)
            seen = _observe(lock)
            if seen is None:
                continue  # released in between: try the same name again
            if _judge(lock, seen.info, seen.mtime, bound, time.time()) is None:
                return None
            target = seen.identity
        return None
    finally:
        _unlink(tmp)


def _release_lock(directory: Path, key: str, lock: _Lock, cleanup: bool) -> None:
    """Drop ``lock``; with ``cleanup`` (the claim it guarded is gone for good) also the
    other files of its chain, which can no longer guard anything."""
    if cleanup:
        for path in lock.chain:
            _unlink(path)
    elif not _lock_name(directory, key, lock.identity).exists():
        _unlink(lock.path)  # else it was judged stale and a successor holds the chain


def _was_broken(directory: Path, key: str, lock: _Lock) -> bool:
    return _lock_name(directory, key, lock.identity).exists()


class _Outcome:
    WON = "won"
    LIVE = "live"
    BUSY = "busy"
    RETRY = "retry"


def _take_over(directory: Path, key: str, path: Path, tmp: Path, identity: str, ttl: float) -> str:
    """Replace the claim with ``identity`` (judged stale) by ours (``tmp``), under its
    takeover lock. Returns an :class:`_Outcome`."""
    lock = _acquire_lock(directory, key, identity, _lock_bound(ttl))
    if lock is None:
        return _Outcome.BUSY
    gone = False
    try:
        seen = _observe(path)
        if seen is None or seen.identity != identity:
            gone = True
            if seen is None and _link(tmp, path):
                return _Outcome.WON
            return _Outcome.RETRY
        if _judge(path, seen.info, seen.mtime, ttl, time.time()) is None:
            return _Outcome.LIVE
        if _was_broken(directory, key, lock):
            return _Outcome.BUSY
        _unlink(path)
        gone = True
        os.utime(tmp)
        return _Outcome.WON if _link(tmp, path) else _Outcome.RETRY
    finally:
        _release_lock(directory, key, lock, cleanup=gone)


class Claim:
    """A claim this process holds on one cell, kept alive by a heartbeat thread until
    :meth:`release` (also on leaving a ``with`` block)."""

    def __init__(self, path: Path, key: str, info: ClaimInfo, ttl_s: float) -> None:
        self.path = path
        """The claim file."""
        self.key = key
        self.info = info
        """What the claim file says (our host, pid and token)."""
        self.ttl_s = ttl_s
        self.heartbeat_s = min(ttl_s / 10.0, _MAX_HEARTBEAT_S)
        """Seconds between two refreshes of the claim's mtime."""
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._released = False
        self._lost = False
        self._refresh()
        self._thread = threading.Thread(
            target=self._beat, name=f"claim heartbeat {path.name}", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"Claim({str(self.path)!r}, token={self.info.token!r})"

    def _refresh(self) -> bool | None:
        """Refresh the mtime of our claim: True done, False the claim is not ours any
        more, None a transient error."""
        try:
            with open(self.path, "rb") as f:
                info = _parse(f.read(_MAX_BYTES + 1))
                if info is None or info.token != self.info.token:
                    return False
                if os.utime in os.supports_fd:
                    os.utime(f.fileno())  # this very inode, which we know is ours
                else:  # pragma: no cover - platforms without futimens
                    os.utime(self.path)
                return True
        except FileNotFoundError:
            return False
        except OSError:
            return None

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if self._refresh() is False:
                self._lost = True
                return

    def lost(self) -> bool:
        """Whether the claim was taken over (or removed) by someone else. After
        :meth:`release`, whether that had happened by then."""
        if self._released or self._lost:
            return self._lost
        info = read_claim(self.path)
        if info is None or info.token != self.info.token:
            self._lost = True
        return self._lost

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file if it is still ours.

        Idempotent. A claim someone has taken over is left alone (and :meth:`lost` then
        says True). Removal happens under the takeover lock of our own token, so it
        cannot hit a claim that a taker has put in place meanwhile.
        """
        with self._mutex:
            if self._released:
                return
            self._released = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        identity = f"token:{self.info.token}"
        directory = self.path.parent
        delay = 0.01
        for _ in range(_MAX_ROUNDS):
            seen = _observe(self.path)
            if seen is None or seen.identity != identity:
                self._lost = True
                return
            lock = _acquire_lock(directory, self.key, identity, _lock_bound(self.ttl_s))
            if lock is None:  # a taker is looking at our claim right now
                time.sleep(delay)
                delay = min(2 * delay, 0.25)
                continue
            gone = True
            try:
                seen = _observe(self.path)
                if seen is None or seen.identity != identity:
                    self._lost = True
                elif _was_broken(directory, self.key, lock):
                    gone = False
                    continue
                else:
                    _unlink(self.path)
            finally:
                _release_lock(directory, self.key, lock, cleanup=gone)
            return
        # A live taker kept the lock: it is replacing the claim, or will find it stale
        # once this process has exited.

    def __enter__(self) -> Claim:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def claim_path(root: str | os.PathLike[str], dataset: str, key: str) -> Path:
    """Where the claim of cell ``key`` of ``dataset`` lives: ``root/dataset/.claims/key.claim``."""
    _check_name("dataset", dataset)
    _check_name("key", key)
    return Path(root) / dataset / CLAIM_DIR / f"{key}{CLAIM_SUFFIX}"


def try_claim(
    root: str | os.PathLike[str], dataset: str, key: str, ttl_s: float | None = None
) -> Claim | None:
    """Claim the cell ``key`` of ``dataset`` in the store at ``root``.

    Returns a :class:`Claim` (held, heartbeat running) or None when someone else holds
    a live claim. A stale claim (see :func:`stale_reason`) is taken over, race-free (see
    the module docstring). ``ttl_s`` defaults as in :func:`resolve_ttl`.

    Raises :class:`~msda_arena.api.errors.StoreError` for a name that is not file-name safe,
    :class:`~msda_arena.api.errors.UsageError` for a bad TTL, :class:`OSError` when the
    store cannot be written (or the filesystem has no hard links).
    """
    ttl = resolve_ttl(ttl_s)
    path = claim_path(root, dataset, key)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    info = _new_info()
    tmp = _write_tmp(directory, key, _encode(info))
    try:
        delay = 0.01
        for _ in range(_MAX_ROUNDS):
            os.utime(tmp)  # a claim is born fresh, however long the attempts took
            if _link(tmp, path):
                return Claim(path, key, info, ttl)
            seen = _observe(path)
            if seen is None:
                continue  # released in between
            if _judge(path, seen.info, seen.mtime, ttl, time.time()) is None:
                return None
            outcome = _take_over(directory, key, path, tmp, seen.identity, ttl)
            if outcome == _Outcome.WON:
                return Claim(path, key, info, ttl)
            if outcome == _Outcome.LIVE:
                return None
            if outcome == _Outcome.BUSY:
                time.sleep(delay)
                delay = min(2 * delay, 0.25)
        return None
    finally:
        _unlink(tmp)


def iter_claims(
    root: str | os.PathLike[str], ttl_s: float | None = None
) -> Iterator[tuple[Path, ClaimInfo | None, str | None]]:
    """Every claim under the store at ``root``: its path, its content (None when
    unreadable or garbled) and why it is stale (None while live), for reporting
    orphaned claims. ``ttl_s`` defaults as in :func:`resolve_ttl`."""
    ttl = resolve_ttl(ttl_s)
    root = Path(root)
    try:
        datasets = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError:
        return
    for dataset in datasets:
        directory = dataset / CLAIM_DIR
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if name.startswith(".") or not name.endswith(CLAIM_SUFFIX):
                continue
            path = directory / name
            seen = _observe(path)
            if seen is None:
                continue
            yield path, seen.info, _judge(path, seen.info, seen.mtime, ttl, time.time())


def clean_leftovers(root: str | os.PathLike[str], ttl_s: float | None = None) -> list[Path]:
    """Remove claim temporary files (``.claims/.*.tmp``) left by a claimer that died
    between writing and linking: at once when the file names a process of this host
    that is gone, else once older than the bound (a live one lives for seconds).
    Take-over locks are left alone: inert once their claim is gone. Returns the paths.

    Seen before the names carried the process: a SIGKILL in that window left the file
    for the whole bound (600 s by default), after the resumed run had finished."""
    ttl = resolve_ttl(ttl_s)
    removed = []
    now = time.time()
    for path in Path(root).glob(f"*/{CLAIM_DIR}/.*.tmp"):
        try:
            if _dead_writer(path.name) or now - path.stat().st_mtime > ttl:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def clear_dead_claims(root: str | os.PathLike[str], ttl_s: float | None = None) -> list[Path]:
    """Remove every stale claim under the store at ``root`` (its owner gone, or not
    refreshed within the bound) through the take-over protocol (:func:`clear_stale`),
    so a live claim is never touched; returns the paths removed.

    Seen in the SIGKILL fault test: a run killed after storing a cell's result but
    before releasing its claim left the claim for good, since a resumed run skips
    stored cells and never claims them again."""
    removed = []
    for path, _info, reason in list(iter_claims(root, ttl_s)):
        if reason is not None and clear_stale(path, ttl_s):
            removed.append(path)
    return removed


def clear_stale(path: str | os.PathLike[str], ttl_s: float | None = None) -> bool:
    """Remove the stale claim at ``path`` through the take-over protocol (take it over,
    then release it), so a claim that became live meanwhile is never touched; True when
    it was removed (or was already gone)."""
    path = Path(path)
    if not path.name.endswith(CLAIM_SUFFIX) or path.parent.name != CLAIM_DIR:
        raise ValueError(f"{path} is not a claim file")
    key = path.name[: -len(CLAIM_SUFFIX)]
    root, dataset = path.parent.parent.parent, path.parent.parent.name
    claim = try_claim(root, dataset, key, ttl_s)
    if claim is None:
        return False
    claim.release()
    return True
