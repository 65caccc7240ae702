"""Where a result came from: library versions, the device, the project's git commit."""

from __future__ import annotations

import functools
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from msda_arena.api import __version__

__all__ = ["environment", "git_commit", "utc_now"]


def utc_now() -> str:
    """The current time, ISO-8601 in UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the msda-arena checkout in use (``+dirty`` if modified), or ''."""
    here = Path(__file__).resolve().parents[1]  # the msda_arena package
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", str(here)],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, str]:
    """torch, timm, CUDA and msda-arena versions plus the git commit."""
    import timm
    import torch


    return {
        "torch_version": torch.__version__,
        "timm_version": timm.__version__,
        "cuda_version": (torch.version.cuda or "") if torch.cuda.is_available() else "",
        "arena_version": __version__,
        "git_commit": git_commit(),
    }
