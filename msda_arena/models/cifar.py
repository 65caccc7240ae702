"""CIFAR-stem ResNets registered into timm's model registry.

Importing this module registers the architectures the MSDA papers train on CIFAR, plus two
tiny models for CPU runs, so that every architecture in the arena is an ordinary timm name::

    import timm
    import msda_arena.models.cifar  # noqa: F401  (registers the names below)

    model = timm.create_model("preactresnet18_cifar", num_classes=100, in_chans=3)

Registered names (parameter counts for 100 classes, 3 input channels):

==========================  =======  ======================================================
name                        params   architecture
==========================  =======  ======================================================
``resnet56_cifar``          0.86M    ResNet-56, 3 stages of 9 basic blocks, 16/32/64 wide
``wrn28_2_cifar``           1.48M    WRN-28-2, 3 stages of 4 pre-act blocks, 32/64/128 wide
``preactresnet18_cifar``    11.2M    PreActResNet-18, [2, 2, 2, 2] basic blocks, 64..512
``preactresnet34_cifar``    21.3M    PreActResNet-34, [3, 4, 6, 3] basic blocks, 64..512
``preactresnet50_cifar``    23.7M    PreActResNet-50, [3, 4, 6, 3] bottlenecks, 256..2048
``resnet8_cifar``           0.08M    ResNet-8 (n=1), 16/32/64 wide: a fast CPU model
``preactresnet10_cifar``    0.32M    PreActResNet-10, one block per stage, 16..128 wide
``resnet8_tiny_cifar``      0.02M    ResNet-8 at half width, 8/16/32: the quick profile
``preactresnet10_tiny_cifar`` 0.08M  PreActResNet-10 at half width, 8..64: the quick profile
==========================  =======  ======================================================

All of them use a 3x3 stride-1 stem without max-pooling (the CIFAR stem), end in global
average pooling (so any input size of at least 8 pixels works, e.g. 28x28 Fashion-MNIST),
take ``num_classes``, ``in_chans`` and ``drop_rate`` (dropout before the classifier), and run
in ``torch.channels_last``. There are no pretrained weights: ``pretrained=True`` raises.

Papers:
    * He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016
      (https://arxiv.org/abs/1512.03385), Sec. 4.2: the CIFAR ResNet-6n+2 with parameter-free
      "option A" shortcuts (strided identity, zero-padded channels).
    * He, Zhang, Ren, Sun. "Identity Mappings in Deep Residual Networks", ECCV 2016
      (https://arxiv.org/abs/1603.05027): pre-activation blocks. The PreActResNets follow the
      CIFAR code of Mixup (facebookresearch/mixup-cifar10) and PuzzleMix (snu-mllab/PuzzleMix),
      which the MSDA papers reuse: 3x3 stem, projection shortcut from the pre-activated input,
      and no final BN-ReLU before pooling.
    * Zagoruyko, Komodakis. "Wide Residual Networks", BMVC 2016
      (https://arxiv.org/abs/1605.07146): WRN-d-k with d = 6n + 4, final BN-ReLU; the block
      dropout is 0 as in the MSDA papers' code.
    * Park, Yun, Chun. "A Unified Analysis of Mixed Sample Data Augmentation: A Loss Function
      Perspective", NeurIPS 2022: the benchmark these architectures reproduce.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import (
    build_model_with_cfg,
    generate_default_cfgs,
    is_model,
    model_entrypoint,
    register_model,
)
from torch import nn

from msda_arena.api.errors import UsageError

__all__ = ["CifarResNet", "PreActResNet", "list_arena_models"]

CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


# ----------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Post-activation basic block of the CIFAR ResNet (He et al. 2016, option A shortcut).

    When the block changes resolution or width, the shortcut subsamples the input with stride 2
    and zero-pads the new channels, so the shortcut has no parameters.
    """

    expansion = 1

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.stride = stride
        self.pad_chs = out_chs - in_chs
        if self.pad_chs < 0:
            raise ValueError(f"option-A shortcut cannot shrink channels ({in_chs} -> {out_chs})")

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad_chs:
            lo = self.pad_chs // 2
            x = F.pad(x, (0, 0, 0, 0, lo, self.pad_chs - lo))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self._shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 (He et al., ECCV 2016).

    The projection shortcut (1x1 conv, only when shape changes) reads the pre-activated input,
    as in the Mixup/PuzzleMix CIFAR code and the WRN reference implementation.
    """

    expansion = 1

    def __init__(self, in_chs: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_chs = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.conv1 = nn.Conv2d(in_chs, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, out_chs, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_chs != out_chs:
            self.shortcut = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: 1x1 -> 3x3 (strided) -> 1x1 with expansion 4."""

    expansion = 4

    def __init__(self, in_chs: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_chs = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.conv1 = nn.Conv2d(in_chs, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_chs, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_chs != out_chs:
            self.shortcut = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + shortcut


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def _stage_info(widths: Sequence[int]) -> list[dict[str, Any]]:
    """timm's ``feature_info`` of the stages: each stage's output (stride 1, then 2 each)."""
    return [
        {"num_chs": int(w), "reduction": 2**i, "module": f"stages.{i}"}
        for i, w in enumerate(widths)
    ]


class _ClassifierMixin(nn.Module):
    """timm's classifier interface shared by both model classes (pooling, dropout, ``fc``)."""

    num_classes: int
    num_features: int
    drop_rate: float
    fc: nn.Module

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def get_classifier(self, name_only: bool = False) -> nn.Module | str:
        """Return the classifier module (or its attribute name)."""
        return "fc" if name_only else self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` (0: identity)."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"only global_pool='avg' is supported, got {global_pool!r}")
        self.num_classes = num_classes
        ref = next(self.parameters())
        self.fc = (
            nn.Linear(self.num_features, num_classes, device=ref.device, dtype=ref.dtype)
            if num_classes > 0
            else nn.Identity()
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout, classifier (``pre_logits`` stops before ``fc``)."""
        x = x.mean(dim=(2, 3))
        if self.drop_rate:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class CifarResNet(_ClassifierMixin):
    """The CIFAR ResNet of He et al. (2016, Sec. 4.2): 6n+2 layers, three stages.

    Args:
        layers: blocks per stage (``n`` for each of the three stages).
        widths: output width of each stage.
        num_classes: classifier outputs (0 for a feature extractor).
        in_chans: input channels (1 for Fashion-MNIST).
        drop_rate: dropout probability before the classifier.
    """

    def __init__(
        self,
        layers: Sequence[int] = (9, 9, 9),
        widths: Sequence[int] = (16, 32, 64),
        num_classes: int = 100,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError("layers and widths must have one entry per stage")
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages: list[nn.Module] = []
        in_chs = widths[0]
        for i, (n, w) in enumerate(zip(layers, widths, strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(in_chs, w, stride=2 if (i > 0 and j == 0) else 1))
                in_chs = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.feature_info = _stage_info(widths)
        self.num_features = self.head_hidden_size = in_chs
        self.fc: nn.Module = nn.Linear(in_chs, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and stages; returns the last feature map [B, C, H/4, W/4]."""
        return self.stages(F.relu(self.bn1(self.conv1(x))))


class PreActResNet(_ClassifierMixin):
    """Pre-activation ResNet with a CIFAR stem; also the Wide ResNet (``final_norm=True``).

    Args:
        block: ``PreActBlock`` or ``PreActBottleneck``.
        layers: blocks per stage; the first stage has stride 1, the others stride 2.
        widths: ``planes`` of each stage (the stage outputs ``planes * block.expansion``).
        stem_width: output channels of the 3x3 stem convolution.
        final_norm: BN-ReLU after the last stage (WRN; the PreActResNet CIFAR code has none).
        num_classes: classifier outputs (0 for a feature extractor).
        in_chans: input channels (1 for Fashion-MNIST).
        drop_rate: dropout probability before the classifier.
    """

    def __init__(
        self,
        block: type[PreActBlock] | type[PreActBottleneck] = PreActBlock,
        layers: Sequence[int] = (2, 2, 2, 2),
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_width: int = 64,
        final_norm: bool = False,
        num_classes: int = 100,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError("layers and widths must have one entry per stage")
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(in_chans, stem_width, 3, stride=1, padding=1, bias=False)
        stages: list[nn.Module] = []
        in_chs = stem_width
        for i, (n, w) in enumerate(zip(layers, widths, strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(block(in_chs, w, stride=2 if (i > 0 and j == 0) else 1))
                in_chs = w * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.feature_info = _stage_info([w * block.expansion for w in widths])
        self.norm: nn.Module = nn.BatchNorm2d(in_chs) if final_norm else nn.Identity()
        self.final_act = final_norm
        self.num_features = self.head_hidden_size = in_chs
        self.fc: nn.Module = nn.Linear(in_chs, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and stages (plus the final BN-ReLU of WRN); returns the last feature map."""
        x = self.norm(self.stages(self.conv1(x)))
        return F.relu(x) if self.final_act else x


# ----------------------------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------------------------


def _create(
    variant: str, model_cls: Callable[..., nn.Module], pretrained: bool, **kwargs: Any
) -> nn.Module:
    """Build through timm (so ``model.pretrained_cfg`` is set); never downloads anything."""
    if pretrained:
        raise UsageError(
            f"{variant} has no pretrained weights; create it with pretrained=False "
            "(the arena trains every model from scratch)"
        )
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    if kwargs.get("features_only"):  # every stage, read by forward hooks (functional stems)
        cfg = kwargs.setdefault("feature_cfg", {})
        cfg.setdefault("out_indices", tuple(range(len(kwargs.get("layers", ())))))
        cfg.setdefault("feature_cls", "hook")
    model = build_model_with_cfg(model_cls, variant, pretrained=False, **kwargs)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------


def _cfg(**kwargs: Any) -> dict[str, Any]:
    """A weight-less timm config: CIFAR-100 geometry and normalisation, no url or hub id."""
    return {
        "url": "",
        "num_classes": 100,
        "input_size": (3, 32, 32),
        "pool_size": None,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": CIFAR100_MEAN,
        "std": CIFAR100_STD,
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "mit",
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        "resnet56_cifar": _cfg(paper_ids="arXiv:1512.03385"),
        "wrn28_2_cifar": _cfg(paper_ids="arXiv:1605.07146"),
        "preactresnet18_cifar": _cfg(paper_ids="arXiv:1603.05027"),
        "preactresnet34_cifar": _cfg(paper_ids="arXiv:1603.05027"),
        "preactresnet50_cifar": _cfg(paper_ids="arXiv:1603.05027"),
        "resnet8_cifar": _cfg(paper_ids="arXiv:1512.03385"),
        "preactresnet10_cifar": _cfg(paper_ids="arXiv:1603.05027"),
        "resnet8_tiny_cifar": _cfg(paper_ids="arXiv:1512.03385"),
        "preactresnet10_tiny_cifar": _cfg(paper_ids="arXiv:1603.05027"),
    }
)

_ARENA_MODELS: tuple[str, ...] = tuple(default_cfgs)


def _register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """``register_model``, once: re-importing or reloading this module does not re-register.

    timm warns when a name is registered twice, and pytest turns warnings into errors; so a name
    already registered by this module is left alone. A name registered by some other package
    is overwritten (with timm's warning), because the arena's grid depends on these definitions.
    """
    name = fn.__name__
    if is_model(name) and getattr(model_entrypoint(name), "__module__", None) == __name__:
        return fn
    return register_model(fn)


# ----------------------------------------------------------------------------------------------
# Registered architectures
# ----------------------------------------------------------------------------------------------


@_register
def resnet56_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet-56 for CIFAR (He et al. 2016): n=9 basic blocks per stage, widths 16/32/64."""
    args = dict(layers=(9, 9, 9), widths=(16, 32, 64))
    return _create("resnet56_cifar", CifarResNet, pretrained, **dict(args, **kwargs))


@_register
def resnet8_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet-8 for CIFAR: n=1 basic block per stage, widths 16/32/64 (a fast CPU model)."""
    args = dict(layers=(1, 1, 1), widths=(16, 32, 64))
    return _create("resnet8_cifar", CifarResNet, pretrained, **dict(args, **kwargs))


@_register
def wrn28_2_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """WRN-28-2 (Zagoruyko & Komodakis 2016): 4 pre-act blocks per stage, widths 32/64/128."""
    args = dict(
        block=PreActBlock, layers=(4, 4, 4), widths=(32, 64, 128), stem_width=16, final_norm=True
    )
    return _create("wrn28_2_cifar", PreActResNet, pretrained, **dict(args, **kwargs))


@_register
def preactresnet18_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """PreActResNet-18 with the CIFAR stem (Mixup/PuzzleMix CIFAR code)."""
    args = dict(block=PreActBlock, layers=(2, 2, 2, 2), widths=(64, 128, 256, 512))
    return _create("preactresnet18_cifar", PreActResNet, pretrained, **dict(args, **kwargs))


@_register
def preactresnet34_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """PreActResNet-34 with the CIFAR stem (Mixup/PuzzleMix CIFAR code)."""
    args = dict(block=PreActBlock, layers=(3, 4, 6, 3), widths=(64, 128, 256, 512))
    return _create("preactresnet34_cifar", PreActResNet, pretrained, **dict(args, **kwargs))


@_register
def preactresnet50_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """PreActResNet-50 (bottlenecks) with the CIFAR stem (PuzzleMix CIFAR code)."""
    args = dict(block=PreActBottleneck, layers=(3, 4, 6, 3), widths=(64, 128, 256, 512))
    return _create("preactresnet50_cifar", PreActResNet, pretrained, **dict(args, **kwargs))


@_register
def preactresnet10_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """PreActResNet-10: one pre-act block per stage, widths 16/32/64/128 (a fast CPU model)."""
    args = dict(block=PreActBlock, layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), stem_width=16)
    return _create("preactresnet10_cifar", PreActResNet, pretrained, **dict(args, **kwargs))


@_register
def resnet8_tiny_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet-8 at half width, 8/16/32: the quick profile's CPU model (~5x faster than 16/32/64)."""
    args = dict(layers=(1, 1, 1), widths=(8, 16, 32))
    return _create("resnet8_tiny_cifar", CifarResNet, pretrained, **dict(args, **kwargs))


@_register
def preactresnet10_tiny_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """PreActResNet-10 at half width, 8/16/32/64: the quick profile's second CPU model."""
    args = dict(block=PreActBlock, layers=(1, 1, 1, 1), widths=(8, 16, 32, 64), stem_width=8)
    return _create("preactresnet10_tiny_cifar", PreActResNet, pretrained, **dict(args, **kwargs))


def list_arena_models() -> list[str]:
    """Names of the architectures this module registers into timm, sorted."""
    return sorted(_ARENA_MODELS)
