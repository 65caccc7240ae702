"""ImageNet-100 style ImageFolder trees, read through a DataLoader with workers.

Expected layout (any image format Pillow reads; class folders must match across splits)::

    <root>/train/<class>/*.jpg
    <root>/val/<class>/*.jpg

The loader only decodes and resizes (shorter side to ``image_size``, then a centre crop to a
square) and yields uint8 batches; there is deliberately no RandomResizedCrop or flip here:
the crop scenarios (:mod:`msda_arena.data.crops`) are applied on the device after
:meth:`~msda_arena.data.FolderData.normalize`, exactly as for the tensor datasets.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from msda_arena.api.errors import UsageError
from msda_arena.data.base import FolderData, OptionRule, default_data_root

__all__ = ["OPTIONS", "load_imagefolder", "make_loader"]

#: ``dataset_options`` of ``imagenet100`` in arena.toml.
#: Images stream from files through a DataLoader: no ``label_noise`` (tensor datasets only).
TENSOR_DATA = False

OPTIONS: dict[str, OptionRule] = {
    "image_size": OptionRule(
        int, 8, 512, why="pixels a side the loader resizes to; what the crops and models handle"
    ),
}


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _class_dirs(split_root: Path) -> tuple[str, ...]:
    return tuple(
        sorted(p.name for p in split_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    )


def _count_images(split_root: Path, classes: tuple[str, ...], dataset: str) -> int:
    """Image files under ``split_root/<class>/`` (recursively, as ImageFolder reads them).

    Raises:
        UsageError: a class folder holds no image (ImageFolder would fail on it later).
    """
    total = 0
    for name in classes:
        n = 0
        for _, _, files in os.walk(split_root / name, followlinks=True):
            n += sum(f.lower().endswith(IMAGE_EXTENSIONS) for f in files)
        if n == 0:
            raise UsageError(
                f"{dataset}: no images under {split_root / name} "
                f"(expected {'/'.join(IMAGE_EXTENSIONS)} files)"
            )
        total += n
    return total


def load_imagefolder(
    root: Path | str, name: str = "imagenet100", image_size: int = 224
) -> FolderData:
    """Describe an ImageFolder tree as :class:`~msda_arena.data.FolderData` (nothing is decoded).

    Raises:
        UsageError: ``root/train`` or ``root/val`` missing, no class folders, or the two
        splits have different classes.
    """
    root = Path(root).expanduser()
    train_root, val_root = root / "train", root / "val"
    for split_root in (train_root, val_root):
        if not split_root.is_dir():
            raise UsageError(
                f"{name}: no {split_root.name}/ folder under {root}; put an ImageFolder tree "
                f"there (train/<class>/*.jpg and val/<class>/*.jpg), pass --data-root, "
                "or use --profile quick"
            )
    classes = _class_dirs(train_root)
    if not classes:
        raise UsageError(
            f"{name}: {train_root} has no class folders (expected train/<class>/*.jpg)"
        )
    val_classes = _class_dirs(val_root)
    if val_classes != classes:
        missing = sorted(set(classes) ^ set(val_classes))
        raise UsageError(
            f"{name}: train/ and val/ under {root} have different class folders "
            f"(e.g. {', '.join(missing[:3])}); they must match"
        )
    if image_size < 8:
        raise UsageError(f"{name}: image_size must be >= 8, got {image_size}")
    counts = {s.name: _count_images(s, classes, name) for s in (train_root, val_root)}
    return FolderData(
        name=name,
        root=root,
        train_root=train_root,
        val_root=val_root,
        classes=classes,
        num_classes=len(classes),
        num_train=counts["train"],
        num_val=counts["val"],
        image_size=int(image_size),
    )


@functools.lru_cache(maxsize=4)
def _image_folder(split_root: Path, image_size: int) -> Any:
    """The torchvision ImageFolder of one split, scanned once per process (not every epoch)."""
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [
            transforms.Resize(image_size, antialias=True),
            transforms.CenterCrop(image_size),
            transforms.PILToTensor(),
        ]
    )
    return datasets.ImageFolder(str(split_root), transform=transform)


def make_loader(
    data: FolderData,
    split: str,
    batch_size: int,
    workers: int = 4,
    shuffle: bool | None = None,
    drop_last: bool | None = None,
    seed: int = 0,
    pin_memory: bool | None = None,
) -> DataLoader[Any]:
    """A DataLoader over one split yielding ``(uint8 [B, 3, S, S], int64 [B])`` batches.

    Args:
        data: the tree, from :func:`load_imagefolder`.
        split: ``"train"`` or ``"val"``.
        workers: decoding processes (0 decodes in the main process).
        shuffle: default True for train, False for val.
        drop_last: default True for train (fixed batch shapes), False for val.
        seed: seeds the shuffling order, so a cell's data order is reproducible.
        pin_memory: default: when CUDA is available.

    Raises:
        UsageError: the split has no readable images.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    is_train = split == "train"
    split_root = data.train_root if is_train else data.val_root
    try:
        dataset = _image_folder(split_root, data.image_size)
    except (FileNotFoundError, OSError) as e:
        raise UsageError(f"{data.name}: cannot read images under {split_root}: {e}") from None
    if tuple(dataset.classes) != data.classes:
        raise UsageError(
            f"{data.name}: the class folders under {split_root} changed; reload the dataset"
        )
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=is_train if shuffle is None else shuffle,
        drop_last=is_train if drop_last is None else drop_last,
        num_workers=workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=workers > 0,
        generator=generator,
    )


def load(name: str, root: Path | None, **options: Any) -> FolderData:
    """The arena's loader entry point; ``root`` defaults to ``default_data_root() /
    "imagenet100"``."""
    return load_imagefolder(
        root if root is not None else default_data_root() / "imagenet100", name=name, **options
    )
