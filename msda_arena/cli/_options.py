"""Option values shared by several commands."""

from __future__ import annotations

from msda_arena.api.errors import UsageError


def resolve_device(name: str) -> str:
    """``--device``: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda[:N]``."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name!r} is not a device; use auto, cpu or cuda[:N]")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {name}: there are only {torch.cuda.device_count()} CUDA device(s)"
            )
    return name
