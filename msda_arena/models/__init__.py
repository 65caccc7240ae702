"""Architectures registered into timm, one module per family, so every architecture the
arena trains is a timm name: :mod:`~msda_arena.models.cifar` (the CIFAR-stem ResNets the
paper uses). Importing this package registers them."""

from msda_arena.models.cifar import list_arena_models

__all__ = ["list_arena_models"]
