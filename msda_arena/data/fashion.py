"""Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) from its IDX files.

Debian and Ubuntu ship the dataset as ``dataset-fashion-mnist``, which installs::

    /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz

The same four files (gzipped or not) are accepted under any ``root``, also in torchvision's
``<root>/FashionMNIST/raw/`` layout. The loader checks each file's magic number, dimensions
and length, so a truncated or foreign file fails with a one-line
:class:`~msda_arena.api.errors.UsageError` naming it. Images come out as uint8 [N, 1, 28, 28].
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msda_arena.api.errors import UsageError
from msda_arena.data.base import OptionRule, TensorData

__all__ = ["DEFAULT_FASHION_ROOT", "OPTIONS", "load_fashion_mnist", "read_idx"]

#: ``dataset_options`` of ``fashion_mnist`` in arena.toml: none.
OPTIONS: dict[str, OptionRule] = {}

DEFAULT_FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MEAN = (0.2860,)
FASHION_STD = (0.3530,)
_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """Read an unsigned-byte IDX file (gzip or plain) -> uint8 tensor with ``ndim`` dims.

    Raises:
        UsageError: unreadable file, wrong magic number (0x0000080N), or wrong length.
    """
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise UsageError(f"cannot read IDX file {path}: {e}") from None
    expected_magic = 0x0800 | ndim
    if len(raw) < 4 + 4 * ndim:
        raise UsageError(f"{path} is not an IDX file (only {len(raw)} bytes); replace it")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise UsageError(
            f"{path} is not a {ndim}-d unsigned-byte IDX file "
            f"(magic 0x{magic:08x}, expected 0x{expected_magic:08x}); replace it"
        )
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = 1
    for d in dims:
        count *= d
    if len(raw) - offset != count:
        raise UsageError(
            f"{path} is truncated or corrupt: header says {dims} = {count} bytes, "
            f"file holds {len(raw) - offset}; replace it"
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)
    return torch.from_numpy(array.copy())  # writable, owned by torch


def _locate(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "FashionMNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def load_fashion_mnist(root: Path | None = None) -> TensorData:
    """Load Fashion-MNIST as :class:`~msda_arena.data.TensorData` (uint8 [N, 1, 28, 28]).

    Args:
        root: folder with the four IDX files (default ``/usr/share/datasets/fashion-mnist``).

    Raises:
        UsageError: a file is missing or corrupt (the message names it and how to get it).
    """
    root = Path(root).expanduser() if root is not None else DEFAULT_FASHION_ROOT
    tensors: dict[str, torch.Tensor] = {}
    for key, stem in _FILES.items():
        path = _locate(root, stem)
        if path is None:
            raise UsageError(
                f"Fashion-MNIST not found: no {stem}[.gz] under {root}. Install it with "
                "`apt-get install dataset-fashion-mnist`, pass --data-root, or use --profile quick"
            )
        tensors[key] = read_idx(path, ndim=3 if key.endswith("_x") else 1)
    for split in ("train", "test"):
        x, y = tensors[f"{split}_x"], tensors[f"{split}_y"]
        if x.shape[0] != y.shape[0]:
            raise UsageError(
                f"Fashion-MNIST under {root}: {split} has {x.shape[0]} images "
                f"but {y.shape[0]} labels"
            )
        if y.numel() and int(y.max()) > 9:
            raise UsageError(f"Fashion-MNIST under {root}: {split} labels outside 0..9")
    return TensorData(
        name="fashion_mnist",
        train_x=tensors["train_x"].unsqueeze(1),
        train_y=tensors["train_y"].long(),
        test_x=tensors["test_x"].unsqueeze(1),
        test_y=tensors["test_y"].long(),
        num_classes=10,
        mean=FASHION_MEAN,
        std=FASHION_STD,
        info={"source": str(root)},
    )


def load(name: str, root: Path | None, **options: Any) -> TensorData:
    """The arena's loader entry point (see :func:`load_fashion_mnist`); no options."""
    return load_fashion_mnist(root)
