"""Per-cell claims (msda_arena.store.claims) with real processes: racing claimers, killed and
paused owners, pid reuse, foreign hosts, damaged files and racing takers.

Every test's docstring says how it was seen to fail when the guard it covers was
removed from msda_arena/store/claims.py (each was tried)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from msda_arena.api.errors import StoreError, UsageError
from msda_arena.store import claims
from msda_arena.store.claims import (
    CLAIM_DIR,
    DEFAULT_TTL_S,
    ClaimInfo,
    iter_claims,
    read_claim,
    resolve_ttl,
    stale_reason,
    try_claim,
)

HOST = socket.gethostname()

# A worker process. "race": for each round r, wait for a byte on its own pipe (read
# end: file descriptor <go>; the parent writes to all pipes at once), try to claim cell<r>, report
# the token (or "-") in res<r>.<me>; a winner holds the claim until done<r> exists,
# then reports lost() in fin<r>.<me> and releases. "hold": claim "cell", report the
# token in held, wait for the file go, report lost() in fin and release.
WORKER = r"""
import os, sys, time
from pathlib import Path
from msda_arena.store.claims import try_claim

mode, root, work, rounds, ttl, me, go = sys.argv[1:8]
work = Path(work)
ttl = float(ttl) if ttl != "env" else None

def report(name, text):
    tmp = work / f".{name}.tmp"
    tmp.write_text(text)
    tmp.rename(work / name)

def wait(name, step):
    while not (work / name).exists():
        time.sleep(step)

if mode == "race":
    report(f"ready.{me}", "")
    for r in range(int(rounds)):
        os.read(int(go), 1)
        claim = try_claim(root, "ds", f"cell{r}", ttl)
        report(f"res{r}.{me}", claim.info.token if claim else "-")
        if claim:
            wait(f"done{r}", 0.005)
            lost = claim.lost()
            claim.release()
            report(f"fin{r}.{me}", "lost" if lost else "ok")
else:
    claim = try_claim(root, "ds", "cell", ttl)
    report("held", claim.info.token if claim else "-")
    wait("go", 0.01)
    report("fin", f"lost={claim.lost()}")
    claim.release()
"""


def _spawn(
    mode: str,
    root: Path,
    work: Path,
    rounds: int = 1,
    ttl: str = "600",
    me: str = "0",
    go: int = -1,
) -> subprocess.Popen:
    args = [sys.executable, "-c", WORKER, mode, str(root), str(work), str(rounds), ttl, me, str(go)]
    fds = (go,) if go >= 0 else ()
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, pass_fds=fds)


def _wait_for(predicate: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _claim_path(root: Path, key: str, dataset: str = "ds") -> Path:
    return root / dataset / CLAIM_DIR / f"{key}.claim"


def _write_claim(
    path: Path, host: str, pid: int, pid_start: str = "", age: float = 0.0
) -> ClaimInfo:
    """Hand-write a claim file in the format of earlier versions (JSON; its mtime is the
    last refresh), atomically, its mtime ``age`` seconds in the past."""
    info = ClaimInfo(host, pid, os.urandom(16).hex())
    fields = {"host": host, "pid": pid, "pid_start": pid_start, "token": info.token}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.hand")
    tmp.write_text(json.dumps({**fields, "started_at": "2024-01-01T00:00:00+00:00"}))
    os.replace(tmp, path)
    _age(path, age)
    return info


def _age(path: Path, age: float) -> None:
    if age:
        then = time.time() - age
        os.utime(path, (then, then))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _own_age() -> float:
    """Seconds since this process started."""
    return time.time() - psutil.Process().create_time()


def _race(tmp_path: Path, prepare: list[Callable[[Path], object]], workers: int = 8) -> None:
    """``workers`` processes race for cell<r> of each round r after ``prepare[r]`` has
    put (or not) something at the claim path: exactly one wins each round, the claim
    file then carries the winner's token, no winner finds its claim lost, and each
    winner's release removes its claim."""
    root, work = tmp_path / "store", tmp_path / "work"
    work.mkdir()
    rounds = len(prepare)
    pipes = [os.pipe() for _ in range(workers)]
    procs = [_spawn("race", root, work, rounds, me=str(i), go=r) for i, (r, _) in enumerate(pipes)]
    for r, _ in pipes:
        os.close(r)
    try:
        _wait_for(lambda: len(list(work.glob("ready.*"))) == workers, 60, "workers to start")
        for r, setup in enumerate(prepare):
            path = _claim_path(root, f"cell{r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            setup(path)
            for _, w in pipes:
                os.write(w, b"g")
            _wait_for(lambda r=r: len(list(work.glob(f"res{r}.*"))) == workers, 30, "results")
            tokens = [p.read_text() for p in work.glob(f"res{r}.*")]
            winners = [t for t in tokens if t != "-"]
            assert len(winners) == 1, f"round {r}: {len(winners)} winners"
            info = read_claim(path)
            assert info is not None and info.token == winners[0], f"round {r}: claim replaced"
            (work / f"done{r}").touch()
        for proc in procs:
            assert proc.wait(timeout=30) == 0
        fins = sorted(p.read_text() for p in work.glob("fin*"))
        assert fins == ["ok"] * rounds
        for r in range(rounds):
            assert not _claim_path(root, f"cell{r}").exists()
        assert not [p for p in (root / "ds" / CLAIM_DIR).iterdir() if "cell" in p.name]
    finally:
        for _, w in pipes:
            os.close(w)
        _stop(procs)


def test_racing_claimers_exactly_one_wins(tmp_path):
    """8 processes claim the same free cell at once, in 3 rounds: exactly one wins.

    Guard removed (a plain copy to the claim path instead of the exclusive ``os.link``):
    seen to fail with "round 0: 8 winners"."""
    _race(tmp_path, [lambda path: None] * 3)


def test_racing_takers_of_a_stale_claim_exactly_one_wins(tmp_path):
    """8 processes find the same stale claim at once (25 rounds: foreign host not
    refreshed, dead pid on this host, garbled, zero bytes, pid reuse): exactly one takes
    it over and nobody removes the winner's fresh claim.

    Guards removed: the takeover lock (unlink the claim path, then link): seen to fail
    with "round 7: 3 winners", "round 2: 2 winners"... (3 of 4 runs with 15 rounds, 4 of
    4 with 25); the re-read under the lock (lock taken, then unlink and link): "round 0:
    3 winners" (up to 6; 4 of 4 runs), a late taker deleting the claim the first had
    just put in place. On flufl.lock, with every takeover lock broken as flufl.lock
    breaks an expired lock (no liveness test): "round 5: 2 winners". The dead-pid,
    pid-reuse and unreadable-file guards: "round 1 (4, 2): 0 winners"."""
    dead = _dead_pid()

    def garbled(path: Path, data: bytes) -> None:
        path.write_bytes(data)
        _age(path, 2 * DEFAULT_TTL_S)

    kinds = [
        lambda path: _write_claim(path, "elsewhere.invalid", 1, "7", age=900),
        lambda path: _write_claim(path, HOST, dead, "7"),
        lambda path: garbled(path, b'{"host": "h", "pid'),
        lambda path: garbled(path, b""),
    ]
    kinds.append(lambda path: _write_claim(path, HOST, os.getpid(), age=_own_age() + 20))
    _race(tmp_path, kinds * 5)


def test_sigkilled_owner_is_taken_over_at_once(tmp_path):
    """A process holding a claim is SIGKILLed: on the same host the next claimer takes
    it over at once (dead pid), without waiting for the TTL.

    Guard removed (the pid liveness test in ``_judge``): seen to fail with "assert None
    == 'owner process 21129 on host vm is gone'" (the dead owner's claim counted as live
    until its mtime is 600 s old)."""
    root, work = tmp_path / "store", tmp_path / "work"
    work.mkdir()
    proc = _spawn("hold", root, work)
    try:
        _wait_for((work / "held").exists, what="the owner to claim")
        token = (work / "held").read_text()
        path = _claim_path(root, "cell")
        assert read_claim(path).token == token
        assert try_claim(root, "ds", "cell") is None  # live
        assert stale_reason(path, read_claim(path), 600) is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        _stop([proc])
    reason = stale_reason(path, read_claim(path), 600)
    assert reason == f"owner process {proc.pid} on host {HOST} is gone"
    started = time.monotonic()
    claim = try_claim(root, "ds", "cell")
    assert claim is not None
    assert time.monotonic() - started < 2
    with claim:
        assert read_claim(path).token == claim.info.token != token
    assert not path.exists()


def test_foreign_claim_is_judged_by_mtime_only(tmp_path):
    """A hand-written claim of another host (with a pid that does not exist here) is
    live while fresh and taken over once its mtime is older than the bound.

    Guards removed: the mtime bound (seen: "assert None == 'not refreshed for 900 s
    (bound 600 s)'") and the same-host condition on the pid test (seen: "assert 'owner
    process 999999999 on host elsewhere.invalid is gone' is None", a live foreign claim
    judged by a pid of this host)."""
    root = tmp_path / "store"
    path = _claim_path(root, "cell")
    foreign = _write_claim(path, "elsewhere.invalid", 999_999_999, "12")
    assert stale_reason(path, foreign, 600) is None
    assert try_claim(root, "ds", "cell", ttl_s=600) is None
    assert read_claim(path) == foreign

    _age(path, 900)
    now = time.time()
    assert stale_reason(path, foreign, 600, now=now) == "not refreshed for 900 s (bound 600 s)"
    assert stale_reason(path, foreign, 1000, now=now) is None
    claim = try_claim(root, "ds", "cell", ttl_s=600)
    assert claim is not None
    with claim:
        assert read_claim(path) == claim.info
        assert claim.info.host == HOST and claim.info.pid == os.getpid()
        assert time.time() - path.stat().st_mtime < 5


def test_pid_reuse_is_stale(tmp_path):
    """A claim naming a live pid of this host is live, unless the process under that
    pid started after the claim's last refresh (the pid was reused): then it is stale.

    Guard removed (the start-time comparison in ``_judge``): seen to fail with "assert
    None == 'owner process ... is gone (pid ... now belongs to a process started
    later)'"."""
    root = tmp_path / "store"
    pid, ttl = os.getpid(), 1e6
    live = _write_claim(_claim_path(root, "live"), HOST, pid)
    assert stale_reason(_claim_path(root, "live"), live, ttl) is None
    assert try_claim(root, "ds", "live", ttl) is None

    reused = _write_claim(_claim_path(root, "reused"), HOST, pid, age=_own_age() + 20)
    assert stale_reason(_claim_path(root, "reused"), reused, ttl) == (
        f"owner process {pid} on host {HOST} is gone "
        f"(pid {pid} now belongs to a process started later)"
    )
    claim = try_claim(root, "ds", "reused", ttl)
    assert claim is not None
    assert claim.info.pid == pid and claim.info != reused
    claim.release()


def test_heartbeat_keeps_a_held_claim_fresh(tmp_path, monkeypatch):
    """An owner with a TTL of 4 s (from ARENA_CLAIM_TTL) holds its claim for 6 s: its
    mtime keeps advancing and a claimer with the same 4 s bound never takes it over
    (4 s, not 2: a heartbeat delayed by a busy machine is not the failure tested).

    Guard removed (the heartbeat thread not started): seen to fail with "assert
    Claim(...) is None" (taken over after the TTL)."""
    root, work = tmp_path / "store", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("ARENA_CLAIM_TTL", "4")
    proc = _spawn("hold", root, work, ttl="env")
    try:
        _wait_for((work / "held").exists, what="the owner to claim")
        path = _claim_path(root, "cell")
        first = path.stat().st_mtime
        mtimes = []
        end = time.monotonic() + 6
        while time.monotonic() < end:
            assert try_claim(root, "ds", "cell") is None
            mtimes.append(path.stat().st_mtime)
            time.sleep(0.1)
        assert max(mtimes) - first > 4
        assert time.time() - path.stat().st_mtime < 4
        (work / "go").touch()
        assert proc.wait(timeout=20) == 0
    finally:
        _stop([proc])
    assert (work / "fin").read_text() == "lost=False"
    assert not path.exists()


def test_paused_owner_is_taken_over_and_its_release_keeps_the_new_claim(tmp_path):
    """An owner (TTL 1 s) is paused with SIGSTOP, so its heartbeat stops; after 1 s
    another process takes the claim over. Resumed, the old owner finds its claim lost,
    does not refresh the new one, and its release leaves the new claim alone. Release
    is idempotent and the context manager releases.

    Guards removed: the token check in ``Claim.release`` (seen: "assert False where
    False = exists()", the old owner deleted the new owner's claim); the mtime bound
    (seen: "timed out waiting for the claim to go stale")."""
    root, work = tmp_path / "store", tmp_path / "work"
    work.mkdir()
    proc = _spawn("hold", root, work, ttl="1")
    try:
        _wait_for((work / "held").exists, what="the owner to claim")
        path = _claim_path(root, "cell")
        old = read_claim(path)
        os.kill(proc.pid, signal.SIGSTOP)
        _wait_for(lambda: stale_reason(path, old, 1) is not None, 10, "the claim to go stale")
        assert stale_reason(path, old, 1).startswith("not refreshed")
        mine = try_claim(root, "ds", "cell", ttl_s=1)
        assert mine is not None
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.3)  # the old owner's heartbeat runs once
        (work / "go").touch()
        assert proc.wait(timeout=20) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        _stop([proc])
    assert (work / "fin").read_text() == "lost=True"
    assert path.exists() and read_claim(path) == mine.info
    assert not mine.lost()
    mine.release()
    mine.release()
    assert not path.exists()
    assert not mine.lost()

    with try_claim(root, "ds", "cell") as again:
        assert read_claim(path) == again.info
    assert not path.exists()


def test_release_removes_only_its_own_claim(tmp_path):
    """A claim file that someone else has put in place of ours survives our release.

    Guard removed (the token check in ``Claim.release``): seen to fail with "assert
    False where False = exists()" (the other claim was deleted)."""
    root = tmp_path / "store"
    claim = try_claim(root, "ds", "cell")
    assert claim is not None and not claim.lost()
    other = _write_claim(claim.path, "elsewhere.invalid", 5)
    assert claim.lost()
    claim.release()
    assert claim.path.exists() and read_claim(claim.path) == other


def test_damaged_claims_are_reported_and_taken_over_after_the_bound(tmp_path):
    """Zero-byte and garbled claim files (only outside damage makes them) are listed by
    iter_claims, live while their mtime is fresh, stale and taken over once it is older
    than the bound. Temporary and lock files are not listed as claims.

    Guard removed (the mtime bound for unreadable claims: treated as live forever):
    seen to fail with "AttributeError: 'NoneType' object has no attribute 'startswith'"
    (no stale reason for the old zero-byte file)."""
    root = tmp_path / "store"
    empty, garbled = _claim_path(root, "empty"), _claim_path(root, "garbled")
    empty.parent.mkdir(parents=True)
    empty.write_bytes(b"")
    garbled.write_bytes(b'{"host": "h", "pid": 1, "pid_start"')
    dead = _write_claim(_claim_path(root, "dead", "other"), HOST, _dead_pid())
    live = _write_claim(_claim_path(root, "live", "other"), "elsewhere.invalid", 3)
    (empty.parent / ".empty.0123.tmp").write_text("{}")
    (empty.parent / "empty.0123.takeover").write_text("{}")

    found = {p.name: (info, reason) for p, info, reason in iter_claims(root, 600)}
    assert found == {
        "empty.claim": (None, None),
        "garbled.claim": (None, None),
        "dead.claim": (dead, f"owner process {dead.pid} on host {HOST} is gone"),
        "live.claim": (live, None),
    }
    assert read_claim(empty) is None and read_claim(garbled) is None
    assert try_claim(root, "ds", "empty") is None
    assert try_claim(root, "ds", "garbled") is None

    _age(empty, 700)
    _age(garbled, 700)
    reasons = {p.name: reason for p, _, reason in iter_claims(root, 600)}
    assert reasons["empty.claim"].startswith(f"unreadable claim file {empty} (not refreshed")
    assert reasons["garbled.claim"].endswith("(not refreshed for 700 s, bound 600 s)")
    for key, path in (("empty", empty), ("garbled", garbled)):
        claim = try_claim(root, "ds", key)
        assert claim is not None
        assert read_claim(path) == claim.info
        claim.release()


def _write_lock(path: Path, pid: int, lifetime: float, host: str = HOST) -> None:
    """Hand-write a flufl.lock lock held by ``pid`` of ``host``, as flufl.lock does: a
    hard link to the holder's own file, whose name is the content; mtime: its end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    own = path.with_name(f"{path.name}|{host}|{pid}|{os.getpid()}")
    own.write_text(str(own))
    os.link(own, path)
    os.utime(own, (time.time() + lifetime,) * 2)


def test_takeover_lock_of_a_live_taker_blocks_and_a_dead_ones_is_broken(tmp_path):
    """A takeover lock held by a live process keeps others from taking over the stale
    claim it guards; one left by a dead taker is broken, the claim taken over, and no
    file of the dead taker or of the stale claim is left.

    Guard removed (the liveness test of an existing takeover lock in
    ``_takeover_lock``, i.e. every existing lock broken): seen to fail with "assert
    <Claim ...> is None" (the claim taken over under a live taker's lock)."""
    root = tmp_path / "store"
    path = _claim_path(root, "cell")
    stale = _write_claim(path, "elsewhere.invalid", 1, age=900)
    directory = path.parent
    _write_lock(directory / "cell.takeover", os.getpid(), 60)
    assert try_claim(root, "ds", "cell") is None
    assert read_claim(path) == stale

    for name in os.listdir(directory):
        if name.startswith("cell.takeover"):
            os.unlink(directory / name)
    _write_lock(directory / "cell.takeover", _dead_pid(), 60)
    claim = try_claim(root, "ds", "cell")
    assert claim is not None and read_claim(path) == claim.info
    info = claim.info
    assert sorted(os.listdir(directory)) == [
        "cell.claim",
        f"cell.claim|{HOST}|{info.pid}|{info.token}",
    ]
    claim.release()
    assert os.listdir(directory) == []


def test_a_foreign_hosts_claim_is_live_until_its_lifetime_ends(tmp_path):
    """A claim another host made (flufl.lock's format: its mtime is the end of its
    lifetime) is live until that time has passed, whatever the reader's TTL; then it is
    taken over, and the foreign owner's own file goes with it.

    Guard removed (the lifetime test in ``_judge``, every such claim live): seen to fail
    with "AttributeError: 'NoneType' object has no attribute 'startswith'"."""
    root = tmp_path / "store"
    path = _claim_path(root, "cell")
    _write_lock(path, 1, 30, host="elsewhere.invalid")
    owner = ClaimInfo("elsewhere.invalid", 1, str(os.getpid()))
    assert read_claim(path) == owner and stale_reason(path, owner, 1) is None
    assert try_claim(root, "ds", "cell", ttl_s=1) is None
    _age(path, 5)  # its lifetime ended 5 s ago
    assert stale_reason(path, owner).startswith("not refreshed: its lifetime ended")
    with try_claim(root, "ds", "cell") as claim:
        assert read_claim(path) == claim.info
    assert os.listdir(path.parent) == []


def test_ttl_from_argument_environment_and_default(monkeypatch, tmp_path):
    """The TTL comes from the argument, else ARENA_CLAIM_TTL, else 600 s; a bad value is
    a one-line UsageError; the heartbeat runs every ttl/10 s, at most 60 s. Names that
    could leave the store are refused.

    Guards removed: the range check of ARENA_CLAIM_TTL (seen: "DID NOT RAISE
    UsageError" for "abc"); the name check (seen: "FileNotFoundError: ... .claims/.../x.<hex>.tmp",
    a key reaching into another directory)."""
    monkeypatch.delenv("ARENA_CLAIM_TTL", raising=False)
    assert resolve_ttl() == DEFAULT_TTL_S == 600
    monkeypatch.setenv("ARENA_CLAIM_TTL", " 30 ")
    assert resolve_ttl() == 30 and resolve_ttl(5) == 5
    for bad in ("abc", "0", "-1", "nan", "inf", "1e999"):
        monkeypatch.setenv("ARENA_CLAIM_TTL", bad)
        with pytest.raises(UsageError, match="ARENA_CLAIM_TTL") as err:
            try_claim(tmp_path, "ds", "cell")
        assert "\n" not in str(err.value)
    for bad in (0, -2, float("nan"), True, "10"):
        with pytest.raises(UsageError):
            resolve_ttl(bad)
    monkeypatch.setenv("ARENA_CLAIM_TTL", "2000")
    with try_claim(tmp_path, "ds", "a") as slow, try_claim(tmp_path, "ds", "b", 1) as fast:
        assert (slow.ttl_s, slow.heartbeat_s) == (2000, 60)
        assert (fast.ttl_s, fast.heartbeat_s) == (1, 0.1)
    for dataset, key in (("..", "cell"), ("ds", "../x"), ("ds", ".hidden"), ("", "k")):
        with pytest.raises(StoreError):
            try_claim(tmp_path, dataset, key)


def test_a_dead_claimers_temporary_file_is_removed_at_once_a_live_ones_kept(tmp_path):
    """Seen in the SIGKILL fault test: a kill between writing a claim's temporary file
    and linking it left the file for the whole TTL, after the resumed run finished."""
    folder = tmp_path / "procedural" / CLAIM_DIR
    folder.mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(gone.stdout)
    host = claims.host_tag()
    dead = folder / f".cell__s0.{host}.{dead_pid}.{'a' * 32}.tmp"
    live = folder / f".cell__s1.{host}.{os.getpid()}.{'b' * 32}.tmp"
    other_host = folder / f".cell__s2.elsewhere.{dead_pid}.{'c' * 32}.tmp"
    for path in (dead, live, other_host):
        path.write_bytes(b"{}")
    assert claims.clean_leftovers(tmp_path) == [dead]  # fresh files: only the dead writer's
    assert live.exists() and other_host.exists()
    claim = try_claim(tmp_path, "procedural", "cell__s3")
    assert claim is not None  # and a real claim's temporary named this way is gone after it
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) == sorted(
        [live.name, other_host.name]
    )
    claim.release()


def test_a_claim_left_on_a_stored_cell_by_a_killed_run_is_removed_by_the_next_run(
    tiny_config, tmp_path
):
    """Seen in the SIGKILL fault test: killed after storing a cell but before releasing
    its claim, a run left the claim for good (a resumed run skips stored cells)."""
    from msda_arena.execute.local import LocalExecutor
    from msda_arena.execute.worker import RunSettings
    from msda_arena.grid.cells import build_cells
    from msda_arena.grid.config import load_config

    cfg = load_config(tiny_config)
    prof = cfg.profiles["tiny"]
    cells = build_cells(cfg, prof, ["vanilla"], baselines=[])
    results = tmp_path / "res"
    assert len(LocalExecutor(RunSettings(cfg, prof, results)).run(cells).done) == len(cells)
    key = cells[0].key
    dying = (
        "import os, sys; from msda_arena.store.claims import try_claim; "
        "claim = try_claim(sys.argv[1], 'procedural', sys.argv[2]); "
        "os._exit(0 if claim is not None else 3)"
    )
    subprocess.run([sys.executable, "-c", dying, str(results), key], check=True)
    left = claims.claim_path(results, "procedural", key)
    assert left.exists()  # its owner is gone, the cell is stored
    live = try_claim(results, "procedural", cells[1].key)  # a live run's claim stays
    summary = LocalExecutor(RunSettings(cfg, prof, results)).run(cells)
    assert summary.done == [] and len(summary.skipped) == len(cells)
    assert not left.exists()
    assert claims.claim_path(results, "procedural", cells[1].key).exists()
    live.release()
