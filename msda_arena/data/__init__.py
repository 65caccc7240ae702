"""Datasets for the arena: tensor datasets that live on the device, and ImageFolder trees.

Two shapes of dataset come out of :func:`load_dataset`:

* :class:`TensorData`: the whole dataset as uint8 tensors (procedural, CIFAR-10/100,
  Fashion-MNIST). Move it to the GPU once with :meth:`TensorData.to`; batches are then
  indexed, normalised (:meth:`TensorData.normalize`), cropped (:mod:`msda_arena.data.crops`)
  and mixed on the device with no per-sample Python work and no DataLoader.
* :class:`FolderData`: an ImageNet-100 style ``train/`` + ``val/`` ImageFolder tree, read
  through a DataLoader with workers (:func:`msda_arena.data.imagefolder.make_loader`).

Dataset names (fixed across the project): ``procedural``, ``cifar10``, ``cifar100``,
``fashion_mnist``, ``imagenet100``; ``imagenet1k`` exists only as published numbers.
Missing or unreadable data raises :class:`msda_arena.errors.UsageError` with one line that
names the path to fill or the profile to use.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from msda_arena.errors import UsageError

__all__ = [
    "DATASET_NAMES",
    "DATA_ROOT_ENV",
    "FolderData",
    "OptionRule",
    "TensorData",
    "check_dataset_options",
    "default_data_root",
    "load_dataset",
    "normalize",
]

DATASET_NAMES: tuple[str, ...] = (
    "procedural",
    "cifar10",
    "cifar100",
    "fashion_mnist",
    "imagenet100",
    "imagenet1k",
)
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
        num_classes: number of classes.
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
        train_root: ``root / "train"``.
        val_root: ``root / "val"``.
        classes: class folder names, sorted (label i is ``classes[i]``).
        num_classes: ``len(classes)``.
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


_LOADERS: dict[str, str] = {
    "procedural": "msda_arena.data.procedural",
    "cifar10": "msda_arena.data.cifar",
    "cifar100": "msda_arena.data.cifar",
    "fashion_mnist": "msda_arena.data.fashion",
    "imagenet100": "msda_arena.data.imagefolder",
}
_PUBLISHED_ONLY = (
    "imagenet1k is published-only in the arena (its numbers ship in msda_arena/published/); "
    "for measured runs use --profile imagenet100 with an ImageFolder tree"
)


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


def check_dataset_options(name: str, options: Mapping[str, Any]) -> int | None:
    """Check a dataset name and its options before anything is loaded.

    The rules live beside each loader (its module's ``OPTIONS`` and, where options
    interact, its ``check_options``); ``arena.toml`` is checked with them at load time and
    :func:`load_dataset` checks its arguments with them again.

    Returns:
        The number of training images when the options alone fix it (``procedural``),
        else ``None``.

    Raises:
        UsageError: an unknown dataset or option, or a value of the wrong type or range
        (one line naming the option, the allowed range and why).
    """
    if name not in _LOADERS:
        if name == "imagenet1k":
            raise UsageError(_PUBLISHED_ONLY)
        raise UsageError(f"unknown dataset {name!r}; choose one of {', '.join(_LOADERS)}")
    module = importlib.import_module(_LOADERS[name])
    rules: dict[str, OptionRule] = module.OPTIONS
    unknown = sorted(set(options) - set(rules), key=str)
    if unknown:
        allowed = ", ".join(sorted(rules)) or "none"
        raise UsageError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for dataset {name!r} "
            f"(allowed: {allowed})"
        )
    for key, value in options.items():
        rules[key].check(name, key, value)
    check = getattr(module, "check_options", None)
    return check(options) if check is not None else None


def load_dataset(
    name: str, root: str | os.PathLike[str] | None = None, **options: Any
) -> TensorData | FolderData:
    """Load a dataset by its arena name.

    Args:
        name: ``procedural``, ``cifar10``, ``cifar100``, ``fashion_mnist`` or ``imagenet100``.
        root: where the data lives. Defaults: CIFAR -> :func:`default_data_root`;
            Fashion-MNIST -> ``/usr/share/datasets/fashion-mnist`` (Debian's
            ``dataset-fashion-mnist``); ImageNet-100 -> ``default_data_root() / "imagenet100"``.
            Ignored by ``procedural``.
        **options: per dataset. procedural: ``train_size``, ``test_size``, ``num_classes``,
            ``image_size``, ``object_scale``, ``seed``; cifar: ``download`` (default True);
            imagenet100: ``image_size`` (default 224).

    Returns:
        :class:`TensorData` on the CPU (``imagenet100``: :class:`FolderData`).

    Raises:
        UsageError: unknown name or option, or data missing / unreadable.
    """
    check_dataset_options(name, options)
    path = Path(root).expanduser() if root is not None else None

    if name == "procedural":
        from msda_arena.data.procedural import procedural_dataset

        return procedural_dataset(**options)
    if name in ("cifar10", "cifar100"):
        from msda_arena.data.cifar import load_cifar

        return load_cifar(name, path, **options)
    if name == "fashion_mnist":
        from msda_arena.data.fashion import load_fashion_mnist

        return load_fashion_mnist(path)
    from msda_arena.data.imagefolder import load_imagefolder

    return load_imagefolder(
        path if path is not None else default_data_root() / "imagenet100", name=name, **options
    )
