"""Benchmark: the cost of a per-cell claim (:mod:`msda_arena.store.claims`).

Times, per call, in a temporary store on the local disk: ``try_claim`` + ``release`` of
a free cell, ``try_claim`` of a cell another live process holds (the skip), and the
take-over of a claim whose owner was SIGKILLed. ``--module PATH`` times another copy of
claims.py (e.g. an earlier version, ``git show REV:msda_arena/store/claims.py``); the
filelock row is a one-host reference (a kernel lock: no owner, no heartbeat).

Usage: ``python benchmarks/claims_bench.py [--module PATH] [-n 300]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import filelock

from msda_arena.store import claims as current


def _load(path: str | None):
    if path is None:
        return current
    spec = importlib.util.spec_from_file_location("claims_under_test", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _per_call_ms(fn, n: int) -> float:
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _holder(root: Path, key: str, seconds: int, module: str | None) -> subprocess.Popen:
    """Another process that claims ``key``, says so, and holds it for ``seconds``."""
    extra = ["--module", module] if module else []
    cmd = [sys.executable, __file__, "--hold", str(root), key, str(seconds), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    proc.stdout.readline()
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", help="path of another claims.py to time")
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--hold", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    claims = _load(args.module)
    if args.hold:
        root, key, seconds = args.hold
        held = claims.try_claim(root, "ds", key)
        print(held is not None, flush=True)
        time.sleep(int(seconds))
        os._exit(0)  # as if killed: the claim stays
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        free = _per_call_ms(lambda i: claims.try_claim(root, "ds", f"c{i}").release(), args.n)
        holder = _holder(root, "held", 600, args.module)
        busy = _per_call_ms(lambda i: claims.try_claim(root, "ds", "held"), args.n)
        holder.kill()
        holder.wait()
        dead = []
        for i in range(min(args.n, 20)):
            proc = _holder(root, f"d{i}", 0, args.module)
            proc.wait()
            start = time.perf_counter()
            claims.try_claim(root, "ds", f"d{i}").release()
            dead.append(time.perf_counter() - start)

        def fl(i: int) -> None:
            lock = filelock.FileLock(root / f"f{i}.lock")
            lock.acquire(timeout=0)
            lock.release()

        kernel = _per_call_ms(fl, args.n)
    print(f"try_claim+release, free cell:   {free:.3f} ms")
    print(f"try_claim, cell held (skip):    {busy:.3f} ms")
    print(f"take-over of a killed owner's claim + release: {1000 * statistics.median(dead):.3f} ms")
    print(f"filelock acquire+release (reference): {kernel:.3f} ms")


if __name__ == "__main__":
    main()
