"""What every dataset of the arena is: :class:`TensorData` (a whole dataset as uint8
tensors, moved to the device once) or :class:`FolderData` (an ImageFolder tree read through a
DataLoader), the rules a dataset option obeys (:class:`OptionRule`) and normalisation.
Each loader module (procedural, cifar, fashion, imagefolder) builds on these."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from msda_arena.api.errors import UsageError

__all__ = [
    "DATA_ROOT_ENV",
    "LABEL_NOISE_OPTIONS",
    "FolderData",
    "OptionRule",
    "TensorData",
    "default_data_root",
    "normalize",
    "with_label_noise",
]

DATA_ROOT_ENV = "MSDA_ARENA_DATA"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_data_root() -> Path:
    """Where downloadable datasets live: ``$MSDA_ARENA_DATA`` or ``~/.cache/msda-arena/data``."""
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "msda-arena" / "data"


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (or 0..255 float) images [B, C, H, W] -> float32 ``(x / 255 - mean) / std``.

    Runs on ``x``'s device. After this, 0 is the dataset mean, which is what the crop
    scenarios pad with.
    """
    if x.ndim != 4 or x.shape[1] != len(mean) or len(mean) != len(std):
        raise ValueError(
            f"expected [B, {len(mean)}, H, W] images and {len(mean)} means/stds, "
            f"got shape {tuple(x.shape)}"
        )
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1) * 255.0
    return (x.float() - m) / s


@dataclass
class TensorData:
    """A whole image-classification dataset as tensors.

    Attributes:
        name: dataset name (``"cifar100"``, ``"procedural"``, ...).
        train_x: uint8 training images [N, C, H, W].
        train_y: int64 training labels [N], values in ``0 .. num_classes - 1``.
        test_x: uint8 test images [M, C, H, W].
        test_y: int64 test labels [M].
        mean: per-channel mean of the training images, in 0..1 units.
        std: per-channel standard deviation, in 0..1 units.
        info: free-form provenance (source path, generator settings...).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split, x, y in (
            ("train", self.train_x, self.train_y),
            ("test", self.test_x, self.test_y),
        ):
            if x.dtype != torch.uint8 or x.ndim != 4:
                raise ValueError(f"{self.name} {split}_x must be uint8 [N, C, H, W]")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"{self.name} {split}_y must be int64 [N] matching {split}_x")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ValueError(f"{self.name}: mean/std need one value per channel")

    @property
    def in_chans(self) -> int:
        """Number of image channels (1 for Fashion-MNIST, 3 otherwise)."""
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the stored images."""
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])

    @property
    def device(self) -> torch.device:
        """The device the tensors are on."""
        return self.train_x.device

    def to(self, device: torch.device | str) -> TensorData:
        """A copy with all four tensors on ``device`` (still uint8 / int64: 1 byte a pixel)."""
        return dataclasses.replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 batch of this dataset to float32 (see :func:`normalize`)."""
        return normalize(x, self.mean, self.std)

    def __repr__(self) -> str:
        return (
            f"TensorData({self.name!r}, train={tuple(self.train_x.shape)}, "
            f"test={tuple(self.test_x.shape)}, classes={self.num_classes}, device={self.device})"
        )


@dataclass(frozen=True)
class FolderData:
    """An ImageFolder dataset on disk (``root/train/<class>/*``, ``root/val/<class>/*``).

    Attributes:
        name: dataset name (``"imagenet100"``).
        root: the folder holding ``train/`` and ``val/``.
        classes: class folder names, sorted (label i is ``classes[i]``).
        num_train: number of training images (files with an image extension).
        num_val: number of validation images.
        image_size: side the loader resizes images to (shorter side, then centre crop).
        mean: per-channel mean in 0..1 units (ImageNet's).
        std: per-channel standard deviation in 0..1 units.
    """

    name: str
    root: Path
    train_root: Path
    val_root: Path
    classes: tuple[str, ...]
    num_classes: int
    num_train: int
    num_val: int
    image_size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @property
    def in_chans(self) -> int:
        """Number of image channels (always 3: the loader converts to RGB)."""
        return 3

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 batch from the loader to float32 (see :func:`normalize`)."""
        return normalize(x, self.mean, self.std)


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class OptionRule:
    """What one dataset option accepts: a type and, for numbers, an inclusive range.

    Each loader module declares its rules as ``OPTIONS: dict[str, OptionRule]`` beside its
    loader; :func:`check_dataset_options` applies them.

    Attributes:
        kind: ``int``, ``float`` (any finite number) or ``bool``.
        lo: smallest allowed value (``None``: no bound).
        hi: largest allowed value (``None``: no bound).
        lo_exclusive: ``lo`` itself is not allowed.
        why: why the range, shown in the error (e.g. ``"5 shapes x 4 textures"``).
    """

    kind: type
    lo: float | None = None
    hi: float | None = None
    lo_exclusive: bool = False
    why: str = ""

    def check(self, dataset: str, key: str, value: Any) -> None:
        """Raise :class:`UsageError` unless ``value`` has the right type and range."""
        what = f"dataset_options.{key} of dataset {dataset!r}"
        if self.kind is bool:
            if not isinstance(value, bool):
                raise UsageError(f"{what} must be true or false, got {value!r}")
            return
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.kind is int and not (isinstance(value, int) and is_number):
            raise UsageError(f"{what} must be a whole number, got {value!r}")
        if not is_number:
            raise UsageError(f"{what} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise UsageError(f"{what} must be a finite number, got {value!r}")
        low_ok = self.lo is None or (value > self.lo if self.lo_exclusive else value >= self.lo)
        if not low_ok or (self.hi is not None and value > self.hi):
            lo = (
                ""
                if self.lo is None
                else f"{_bound(self.lo)} {'<' if self.lo_exclusive else '<='} "
            )
            hi = "" if self.hi is None else f" <= {_bound(self.hi)}"
            why = f" ({self.why})" if self.why else ""
            raise UsageError(f"{what} is {value!r}; it must be {lo}{key}{hi}{why}")


#: Options every dataset held as tensors takes (``dataset_options`` in arena.toml): a
#: fraction of the training labels replaced, each by another class, the same for every
#: cell of a profile (the draw depends on ``label_noise_seed`` alone); the test split is
#: never changed. Memorising noisy labels is where mixing is known to help (Zhang et
#: al., ICLR 2018).
LABEL_NOISE_OPTIONS: dict[str, OptionRule] = {
    "label_noise": OptionRule(
        float, 0.0, 1.0, why="the fraction of training labels replaced by another class"
    ),
    "label_noise_seed": OptionRule(int, 0, 2**31 - 1, why="the seed of which labels flip"),
}


def with_label_noise(data: TensorData, fraction: float, seed: int = 0) -> TensorData:
    """``data`` with ``round(fraction * N)`` of its ``N`` training labels replaced, each by
    a different class drawn uniformly; which labels and the new classes depend on
    ``seed`` alone. The test split is unchanged; ``info`` records what was done."""
    n, k = data.train_y.shape[0], data.num_classes
    flips = round(fraction * n)
    if flips == 0 or k < 2:
        return data
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(n, generator=gen)[:flips]
    shift = torch.randint(1, k, (flips,), generator=gen)  # never 0: always another class
    train_y = data.train_y.clone()
    train_y[chosen] = (train_y[chosen] + shift) % k
    info = {**data.info, "label_noise": fraction, "label_noise_seed": seed, "flipped": flips}
    return dataclasses.replace(data, train_y=train_y, info=info)
