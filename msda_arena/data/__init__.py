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
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msda_arena.api.errors import UsageError
from msda_arena.data.base import (
    DATA_ROOT_ENV,
    LABEL_NOISE_OPTIONS,
    FolderData,
    OptionRule,
    TensorData,
    default_data_root,
    normalize,
    with_label_noise,
)

__all__ = [
    "DATASET_NAMES",
    "DATA_ROOT_ENV",
    "LABEL_NOISE_OPTIONS",
    "FolderData",
    "OptionRule",
    "TensorData",
    "check_dataset_options",
    "default_data_root",
    "load_dataset",
    "normalize",
    "with_label_noise",
]

DATASET_NAMES: tuple[str, ...] = (
    "procedural",
    "cifar10",
    "cifar100",
    "fashion_mnist",
    "imagenet100",
    "imagenet1k",
)
#: Dataset name -> the module that loads it (imported on first use): each declares
#: ``OPTIONS`` (and optionally ``check_options``) and ``load(name, root, **options)``.
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
    rules: dict[str, OptionRule] = {**module.OPTIONS, **_noise_rules(module)}
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
            imagenet100: ``image_size`` (default 224); every dataset but imagenet100:
            ``label_noise`` and ``label_noise_seed`` (:func:`with_label_noise`).

    Returns:
        :class:`TensorData` on the CPU (``imagenet100``: :class:`FolderData`).

    Raises:
        UsageError: unknown name or option, or data missing / unreadable.
    """
    check_dataset_options(name, options)
    path = Path(root).expanduser() if root is not None else None
    noise = {key: options.pop(key) for key in LABEL_NOISE_OPTIONS if key in options}
    data = importlib.import_module(_LOADERS[name]).load(name, path, **options)
    if noise.get("label_noise"):
        data = with_label_noise(data, noise["label_noise"], noise.get("label_noise_seed", 0))
    return data


def _noise_rules(module: Any) -> dict[str, OptionRule]:
    """:data:`LABEL_NOISE_OPTIONS` for a loader of tensor data (``TENSOR_DATA``, default
    true); none for one that streams files (ImageNet-100)."""
    return LABEL_NOISE_OPTIONS if getattr(module, "TENSOR_DATA", True) else {}
