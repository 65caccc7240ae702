"""Who wrote a file: this host's tag and whether a process of this host still runs.

What a reader of the store needs to tell a dead writer's leftovers from a live one's,
apart from the claims (:mod:`msda_arena.store.claims`, which builds on it): reading
results loads neither the lock library nor the process table.
"""

from __future__ import annotations

import re
import socket

__all__ = ["host_tag", "pid_alive", "process_started"]


def host_tag() -> str:
    """This host's name as temporary file names carry it (letters, digits, ``-``; at
    most 32), so a reader on this host can tell a dead writer's leftovers."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def process_started(pid: int) -> float | None:
    """When process ``pid`` of this host started (epoch seconds); None when it is gone
    or a zombie; 0.0 when it runs but is not ours to inspect."""
    import psutil  # start-up: only a writer's leftovers or a claim ask; a report does not

    try:
        proc = psutil.Process(pid)
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return None
        return proc.create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:
        return 0.0  # alive, not ours to inspect


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie counts as gone)."""
    return pid > 0 and process_started(pid) is not None
