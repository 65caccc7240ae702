"""``arena run --executor ray``: every grid cell as one Ray task.

:class:`RayExecutor` joins a running cluster (``--ray-address``, else ``$RAY_ADDRESS``)
or starts a local Ray instance for the run (shut down at its end). Each cell is one task
running :func:`msda_arena.execute.worker.run_cell_here`, which claims, trains and stores it
on the worker, so nothing is held only in the driver's memory; the store path must be
the same on every node (NFS, or a local disk for a one-machine cluster).

Resources: on a cluster with GPUs each task asks for ``1 / cells_per_gpu`` GPU and trains
on ``cuda`` (Ray sets ``CUDA_VISIBLE_DEVICES`` per task; a GPU worker process serves one
cell, Ray's rule for GPU tasks, since a reused process could not move to another GPU);
without GPUs each task asks for one CPU and trains on the CPU, and a worker process keeps
its copy of the dataset between cells.

Failures: a cell's own errors are failed records written by :func:`run_cell` on the
worker. A worker or node that dies mid-cell is retried by Ray (:data:`MAX_RETRIES`
times, never for an exception); the retry takes the dead worker's claim over at once on
the same host (its pid is gone), and a retry that lands on another host finds the claim
held and reports the cell busy; the driver then asks a task on the claim owner's node
whether the owner is gone and, if so, sends the cell there. A cell whose retries are
used up gets a failed record naming the cause, written under its claim. A task that
raises (a harness or system problem, e.g. msda-arena missing on a node) is a failed
record too, except for a store that cannot be written, which stops the run as it does
locally. Ctrl-C cancels every queued and running task (running workers are killed: the
files they were writing are temporary files, never results) and re-raises.

Ray is imported only when this executor is built: without it, ``--executor ray`` is one
line saying how to install it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from msda_arena.api.errors import ArenaError, UsageError
from msda_arena.execute.base import Executor, Reporter, RunSummary
from msda_arena.execute.worker import (
    CellOutcome,
    RunSettings,
    describe_exception,
    fail_cell,
    load_data,
    run_cell_here,
    timeout_error,
)
from msda_arena.grid.cells import GridCell
from msda_arena.store import claims

__all__ = ["INSTALL_HINT", "MAX_RETRIES", "RayExecutor"]

#: How often Ray reruns a cell whose worker process or node died (not for exceptions).
MAX_RETRIES = 3
#: What ``--executor ray`` says where Ray is not installed.
INSTALL_HINT = "--executor ray needs Ray: pip install 'msda-arena[ray]'"
#: Seconds between two looks at the running tasks (Ctrl-C is seen at once regardless).
POLL_S = 1.0
#: Seconds past the cell time limit after which a task is cancelled (the limit inside
#: the task stops a sleep or a Python loop at the limit; this stops anything else).
GRACE_S = 60.0


def _import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`UsageError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        name = getattr(exc, "name", "") if isinstance(exc, ModuleNotFoundError) else "-"
        if name is None or name == "ray" or name.startswith("ray."):
            raise UsageError(INSTALL_HINT) from None
        raise UsageError(
            f"--executor ray: Ray cannot be imported ({describe_exception(exc)}); "
            "reinstall it: pip install 'msda-arena[ray]'"
        ) from None
    return ray


# What runs on the workers is module-level, so Ray ships it by reference.
def _cell_task(cell: GridCell, settings: RunSettings) -> CellOutcome:
    """One cell on a Ray worker: claim, train, store (the dataset is loaded once per
    worker process)."""
    return run_cell_here(cell, settings)


def _claims_free_here(settings: RunSettings, cells: list[GridCell]) -> list[str | None]:
    """For each cell, None when its claim is live as judged on this host (where the
    owner's pid can be checked), else why it may be taken (gone, or stale)."""
    reasons: list[str | None] = []
    for cell in cells:
        path = claims.claim_path(settings.results, cell.dataset, cell.key)
        if not path.exists():
            reasons.append("free")
            continue
        reasons.append(claims.stale_reason(path, claims.read_claim(path), settings.claim_ttl_s))
    return reasons


class RayExecutor(Executor):
    """Cells as Ray tasks on a cluster or a local Ray instance (see the module docstring).

    ``ray_address`` joins that cluster (``ray start --head`` prints it); without it
    ``$RAY_ADDRESS`` is joined if set, else a local instance with ``workers`` CPUs
    (every core when 1) is started and shut down at the end. Where Ray is already
    initialised in this process, that connection is used and kept.
    """

    name = "ray"

    def settings_changed(self) -> None:
        """Tasks get the driver's current settings (``force`` dropped while waiting)."""
        self.task_settings = replace(self.task_settings, force=self.settings.force)

    def __init__(self, settings: RunSettings, skip_check: bool = False, **options: Any) -> None:
        self._ray = _import_ray()
        # the workers need the absolute path
        settings = replace(settings, results=Path(settings.results).resolve())
        super().__init__(settings, skip_check, **options)
        self.address: str | None = self.options.ray_address or os.environ.get("RAY_ADDRESS")
        self.max_retries = MAX_RETRIES
        """How often Ray reruns a cell whose worker died (read when Ray is joined)."""
        self._connected = False
        self._owns_ray = False  # we called ray.init, so we shut it down
        self._pending: dict[Any, tuple[GridCell, str | None]] = {}  # task -> (cell, node)
        self.gpus = 0.0
        self.task_settings = self.settings
        self._task: Any = None
        self._probe: Any = None
        self._dead: Any = None

    def connect(self, reporter: Reporter | None = None) -> None:
        """Join or start Ray (idempotent) and choose the cells' device from the cluster's
        resources."""
        if self._connected:
            return
        ray = self._ray
        if not ray.is_initialized():
            os.environ.setdefault("RAY_DEDUP_LOGS", "1")  # repeated messages once
            if not sys.stderr.isatty():
                os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # no colour codes in logs
            kwargs: dict[str, Any] = {
                "logging_level": logging.ERROR,
                "log_to_driver": False,  # worker output stays in Ray's log files
                "include_dashboard": False,
            }
            if self.address:
                _check_reachable(self.address)
                kwargs["address"] = self.address
            else:  # never join a cluster that someone else started on this host
                kwargs["address"] = "local"
                kwargs["num_cpus"] = self.options.workers if self.options.workers > 1 else None
            try:
                with contextlib.redirect_stdout(sys.stderr):  # stdout is the leaderboard's
                    ray.init(**kwargs)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = f"the Ray cluster at {self.address}" if self.address else "Ray"
                raise UsageError(f"--executor ray: could not start {where}: {exc}") from None
            self._owns_ray = True
        self._connected = True
        self.gpus = float(ray.cluster_resources().get("GPU", 0.0))
        device = "cuda" if self.gpus > 0 else "cpu"
        if reporter is not None and device[:3] != self.settings.device[:3]:
            reporter.note(
                f"the Ray cluster has {self.gpus:g} GPU(s): cells train on {device}"
                if device == "cuda"
                else "the Ray cluster has no GPU: cells train on the CPU"
            )
        self.task_settings = replace(self.settings, device=device)
        common = {"max_retries": self.max_retries, "retry_exceptions": False}
        if device == "cuda":
            self._task = ray.remote(
                num_gpus=1.0 / self.options.cells_per_gpu, num_cpus=1, max_calls=1, **common
            )(_cell_task)
        else:
            self._task = ray.remote(num_cpus=1, **common)(_cell_task)
        self._probe = ray.remote(num_cpus=0, max_retries=MAX_RETRIES)(_claims_free_here)
        self._dead = ray.remote(num_cpus=0, max_retries=MAX_RETRIES)(fail_cell)

    def close(self) -> None:
        """Shut Ray down if this executor started it (else only forget the connection)."""
        if self._owns_ray:
            with contextlib.suppress(Exception):
                self._ray.shutdown()
        self._owns_ray = False
        self._connected = False

    def capacity(self) -> int:
        """Cells the cluster can train at once: GPUs x cells_per_gpu, else its CPUs."""
        resources = self._ray.cluster_resources()
        if self.gpus > 0:
            return max(1, math.floor(resources.get("GPU", 0.0) * self.options.cells_per_gpu))
        return max(1, math.floor(resources.get("CPU", 1.0)))

    def prepare(self, reporter: Reporter) -> None:
        """The store checks, then Ray; on a local instance the dataset must exist here
        (the workers share this machine), as for the local executor."""
        if not self.address and not self._ray.is_initialized():
            load_data(replace(self.settings, device="cpu"))
        super().prepare(reporter)
        self.connect(reporter)

    def run(self, cells: list[GridCell], reporter: Reporter | None = None) -> RunSummary:
        """As :meth:`Executor.run`; a Ray instance started for the run is shut down.

        While it runs, stdout is sent to stderr: Ray prints its messages about dead
        workers and retries to stdout, which belongs to the leaderboard.
        """
        with contextlib.redirect_stdout(sys.stderr):
            try:
                return super().run(cells, reporter)
            except BaseException:  # Ctrl-C (also while the caller handles an outcome)
                self.cancel()
                raise
            finally:
                self.close()

    def cancel(self) -> None:
        """Cancel every queued and running task of this executor (running workers are
        killed; their cells write nothing but temporary files)."""
        pending, self._pending = self._pending, {}
        for ref in pending:
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=True)

    def execute(self, cells: list[GridCell], reporter: Reporter) -> Iterator[CellOutcome]:
        """Submit the cells as Ray tasks, as many at once as the cluster can train, and
        yield each outcome as its task finishes. A cell another live process holds is
        yielded ``busy`` without a task (the caller waits and asks again)."""
        self.connect(reporter)
        ray = self._ray
        queue: list[tuple[GridCell, str | None]] = []
        for cell, verdict, node in self._triage(cells):
            if verdict is None:
                queue.append((cell, node))
            else:
                yield CellOutcome(cell, "busy", detail=verdict)
        pending = self._pending
        started: dict[Any, float] = {}
        limit = (self.settings.cell_timeout_s or math.inf) + GRACE_S
        epochs = self.settings.recipe.epochs
        try:
            while queue or pending:
                room = self.capacity() - len(pending)
                while queue and room > 0:
                    cell, node = queue.pop(0)
                    ref = self._submit(self._task, node, cell, self.task_settings)
                    pending[ref], started[ref] = (cell, node), time.monotonic()
                    reporter.cell_start(cell, epochs)
                    room -= 1
                reporter.running(len(pending))
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    cell, node = pending.pop(ref)
                    started.pop(ref, None)
                    yield self._outcome(ref, cell, node)
                for ref in [r for r in pending if time.monotonic() > started[r] + limit]:
                    ray.cancel(ref, force=True)  # the limit inside the task did not stop it
                    cell, node = pending.pop(ref)
                    yield self._timed_out(cell, node)
            reporter.running(0)
        except BaseException:  # Ctrl-C, a store that cannot be written, generator closed
            self.cancel()
            raise

    def _submit(self, remote: Any, node: str | None, *args: Any) -> Any:
        if node is None:
            return remote.remote(*args)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        strategy = NodeAffinitySchedulingStrategy(node_id=node, soft=True)
        return remote.options(scheduling_strategy=strategy).remote(*args)

    def _nodes(self) -> dict[str, str]:
        """Host name -> node id of the cluster's live nodes."""
        return {
            n["NodeManagerHostname"]: n["NodeID"]
            for n in self._ray.nodes()
            if n.get("Alive") and n.get("NodeManagerHostname")
        }

    def _triage(self, cells: list[GridCell]) -> list[tuple[GridCell, str | None, str | None]]:
        """Each cell with why it is busy (None: submit it) and the node to prefer.

        A claim is judged where its owner's pid can be checked: here when the owner is on
        this host, by a task on the owner's node when that is a node of the cluster, else
        here by its heartbeat's age alone. A claim judged gone is taken over by a task on
        the owner's node.
        """
        nodes = self._nodes()
        here = socket.gethostname()
        out: list[tuple[GridCell, str | None, str | None]] = []
        remote: dict[str, list[GridCell]] = {}
        for cell in cells:
            path = claims.claim_path(self.settings.results, cell.dataset, cell.key)
            info = claims.read_claim(path) if path.exists() else None
            if info is None and not path.exists():
                out.append((cell, None, None))
                continue
            host = info.host if info is not None else None
            if host is not None and host != here and host in nodes:
                remote.setdefault(host, []).append(cell)
                continue
            stale = claims.stale_reason(path, info, self.settings.claim_ttl_s)
            if stale is None and path.exists():
                out.append((cell, _held_by(info), None))
            else:
                out.append((cell, None, nodes.get(host or "")))
        for host, group in remote.items():
            node = nodes[host]
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            probe = self._probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False)
            ).remote(self.settings, group)
            try:
                reasons = self._ray.get(probe)
            except self._ray.exceptions.RayError:  # the node went away meanwhile
                reasons = [None] * len(group)
            for cell, reason in zip(group, reasons, strict=True):
                busy = None if reason is not None else f"being trained on {host}"
                out.append((cell, busy, node))
        return out

    def _outcome(self, ref: Any, cell: GridCell, node: str | None) -> CellOutcome:
        """The finished task's outcome; a task that could not finish becomes a failed
        record (see the module docstring)."""
        ray = self._ray
        errors = ray.exceptions
        try:
            return ray.get(ref)
        except errors.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ArenaError):
                raise cause from None  # a store that cannot be written stops the run
            if isinstance(cause, KeyboardInterrupt):  # the worker got the terminal's Ctrl-C
                raise KeyboardInterrupt from None  # (a plugin's own one is a failed record)
            what = describe_exception(cause) if cause is not None else _first_line(exc)
            error = f"the Ray task for this cell raised {what}"
        except errors.OutOfMemoryError as exc:
            error = f"Ray killed the worker training this cell: out of memory: {_first_line(exc)}"
        except (errors.WorkerCrashedError, errors.NodeDiedError) as exc:
            tries = self.max_retries + 1
            error = (
                f"Ray worker died while training this cell, {tries} tr{'ies' if tries > 1 else 'y'}"
                f": {type(exc).__name__}: {_first_line(exc)}"
            )
        except errors.RayError as exc:
            error = f"Ray could not run this cell: {type(exc).__name__}: {_first_line(exc)}"
        return self._fail(cell, node, error)

    def _fail(self, cell: GridCell, node: str | None, error: str) -> CellOutcome:
        """Store ``cell``'s failed record from a task on its claim owner's node."""
        dead = self._submit(
            self._dead, self._owner_node(cell) or node, cell, self.task_settings, error
        )
        try:
            return self._ray.get(dead)
        except self._ray.exceptions.RayError:  # no worker for it: write it from here
            return fail_cell(cell, self.task_settings, error)

    def _timed_out(self, cell: GridCell, node: str | None) -> CellOutcome:
        """The failed record of a cell whose task was cancelled past its time limit,
        once the killed worker's claim can be taken over (at once on its host)."""
        error = timeout_error(self.settings.cell_timeout_s, " (its Ray task was cancelled)")
        for _ in range(60):
            outcome = self._fail(cell, node, error)
            if outcome.action != "busy":
                break
            time.sleep(0.5)
        return outcome

    def _owner_node(self, cell: GridCell) -> str | None:
        """The node of the host that holds the cell's claim, if it is one of the cluster."""
        info = claims.read_claim(claims.claim_path(self.settings.results, cell.dataset, cell.key))
        return self._nodes().get(info.host) if info is not None else None


def _check_reachable(address: str) -> None:
    """A one-line error at once, not after Ray's minutes of retries, when nothing answers
    at a ``host:port`` address."""
    import re

    match = re.fullmatch(r"\[?([^\[\]/]+?)\]?:([0-9]{1,5})", address.strip())
    if match is None:
        return  # ray://..., "auto": Ray's own checks
    try:
        socket.create_connection((match[1], int(match[2])), timeout=10).close()
    except OSError as exc:
        raise UsageError(
            f"Ray cluster address {address} (--ray-address or RAY_ADDRESS): nothing answers "
            f"there ({exc.strerror or exc}); start the cluster with `ray start --head` and "
            "pass the address it prints"
        ) from None


def _held_by(info: Any) -> str:
    return f"being trained by pid {info.pid} on {info.host}" if info else "being trained"


def _first_line(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return ""
