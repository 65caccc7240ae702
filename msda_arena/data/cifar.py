"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) read straight from the python pickle batches.

Layouts (as published at https://www.cs.toronto.edu/~kriz/cifar.html and as torchvision
downloads them)::

    <root>/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch   (b"data", b"labels")
    <root>/cifar-100-python/train, test                                    (b"data", b"fine_labels")

``b"data"`` is a uint8 array [N, 3072] (RGB planes of 32x32), which becomes a uint8 tensor
[N, 3, 32, 32] without any per-image work. ``<root>`` may also be the batch folder itself.
The pickles are read with a restricted unpickler that only builds numpy arrays, so a
foreign or corrupt file fails with a one-line :class:`~msda_arena.api.errors.UsageError` naming
it instead of running code.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msda_arena.api.errors import UsageError
from msda_arena.data.base import OptionRule, TensorData, default_data_root

__all__ = ["CIFAR_LAYOUT", "OPTIONS", "load_cifar", "read_cifar_batch"]

#: ``dataset_options`` of ``cifar10`` and ``cifar100`` in arena.toml.
OPTIONS: dict[str, OptionRule] = {"download": OptionRule(bool)}

CIFAR_LAYOUT: dict[str, dict[str, Any]] = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "labels": b"labels",
        "num_classes": 10,
        "title": "CIFAR-10",
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2470, 0.2435, 0.2616),
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "labels": b"fine_labels",
        "num_classes": 100,
        "title": "CIFAR-100",
        "mean": (0.5071, 0.4865, 0.4409),
        "std": (0.2673, 0.2564, 0.2762),
    },
}

_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays, lists, dicts, strings and numbers."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path, label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one CIFAR pickle batch -> (uint8 [N, 3, 32, 32], int64 [N]).

    Raises:
        UsageError: the file is unreadable, not a CIFAR batch, or inconsistent.
    """
    try:
        with open(path, "rb") as f:
            entry = _ArrayUnpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise UsageError(f"cannot read CIFAR batch {path}: {e}; delete it to re-download") from None
    if not isinstance(entry, dict) or b"data" not in entry or label_key not in entry:
        keys = (
            sorted(k.decode() if isinstance(k, bytes) else str(k) for k in entry)
            if isinstance(entry, dict)
            else []
        )
        raise UsageError(
            f"{path} is not a CIFAR batch with b'data' and {label_key!r} (keys: {keys}); "
            "is it the other CIFAR layout?"
        )
    data = np.asarray(entry[b"data"])
    labels = np.asarray(entry[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UsageError(f"{path}: b'data' must be uint8 [N, 3072], got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise UsageError(f"{path}: {data.shape[0]} images but {labels.shape} labels")
    x = torch.from_numpy(np.ascontiguousarray(data)).view(-1, 3, 32, 32)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def _find_folder(root: Path, folder: str, first_file: str) -> Path | None:
    for candidate in (root / folder, root):
        if (candidate / first_file).is_file():
            return candidate
    return None


def _download(name: str, root: Path) -> None:
    """torchvision's downloader (progress to stderr, so stdout stays clean)."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):
        cls(str(root), train=True, download=True)


def load_cifar(name: str, root: Path | None = None, download: bool = True) -> TensorData:
    """Load CIFAR-10 or CIFAR-100 as :class:`~msda_arena.data.TensorData` (uint8, CPU).

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/``
            (default :func:`~msda_arena.data.default_data_root`).
        download: when the files are missing, try torchvision's download into ``root``.

    Raises:
        UsageError: data missing (and not downloadable) or unreadable; the message names the
        folder to fill and the offline alternative.
    """
    if name not in CIFAR_LAYOUT:
        raise UsageError(f"unknown CIFAR dataset {name!r}; use cifar10 or cifar100")
    spec = CIFAR_LAYOUT[name]
    root = Path(root).expanduser() if root is not None else default_data_root()
    folder = _find_folder(root, spec["folder"], spec["train"][0])
    if folder is None:
        hint = f"Put {spec['folder']}/ there, pass --data-root, or use --profile quick"
        if not download:
            raise UsageError(f"{spec['title']} not found under {root}. {hint}")
        try:
            _download(name, root)
        except Exception as e:  # URLError, OSError, RuntimeError: all mean "no data"
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UsageError(
                f"{spec['title']} not found under {root}; the download failed "
                f"({reason}; offline?). {hint}"
            ) from None
        folder = _find_folder(root, spec["folder"], spec["train"][0])
        if folder is None:
            raise UsageError(f"{spec['title']} download left no {spec['folder']}/ under {root}")

    def read(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        parts = []
        for fname in files:
            path = folder / fname
            if not path.is_file():
                raise UsageError(f"{spec['title']} is incomplete: {path} is missing")
            parts.append(read_cifar_batch(path, spec["labels"]))
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    train_x, train_y = read(spec["train"])
    test_x, test_y = read(spec["test"])
    k = spec["num_classes"]
    for split, y in (("train", train_y), ("test", test_y)):
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            raise UsageError(
                f"{folder}: {split} labels outside 0..{k - 1}; is this {spec['title']}?"
            )
    return TensorData(
        name=name,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=k,
        mean=spec["mean"],
        std=spec["std"],
        info={"source": str(folder)},
    )


def load(name: str, root: Path | None, **options: Any) -> TensorData:
    """The arena's loader entry point (see :func:`load_cifar`)."""
    return load_cifar(name, root, **options)
