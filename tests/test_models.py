"""The CIFAR-stem architectures are ordinary timm models with the papers' sizes."""

from __future__ import annotations

import importlib

import pytest
import timm
import torch

import msda_arena.models.cifar
from msda_arena.api.errors import UsageError
from msda_arena.models.cifar import list_arena_models

TINY = ("resnet8_cifar", "preactresnet10_cifar", "resnet8_tiny_cifar", "preactresnet10_tiny_cifar")
EXPECTED = {
    "resnet56_cifar",
    "wrn28_2_cifar",
    "preactresnet18_cifar",
    "preactresnet34_cifar",
    "preactresnet50_cifar",
    "resnet8_cifar",
    "preactresnet10_cifar",
    "resnet8_tiny_cifar",
    "preactresnet10_tiny_cifar",
}
# Parameters for 100 classes, 3 input channels, as reported for these networks.
PARAMS_100 = {
    "resnet56_cifar": 0.86e6,
    "wrn28_2_cifar": 1.48e6,
    "preactresnet18_cifar": 11.22e6,
    "preactresnet34_cifar": 21.33e6,
    "preactresnet50_cifar": 23.69e6,
    "resnet8_cifar": 0.081e6,
    "preactresnet10_cifar": 0.32e6,
    "resnet8_tiny_cifar": 0.022e6,
    "preactresnet10_tiny_cifar": 0.0835e6,
}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_contract_name_is_registered_in_timm() -> None:
    assert set(list_arena_models()) == EXPECTED
    assert set(timm.list_models("*_cifar")) >= EXPECTED
    for name in EXPECTED:
        assert timm.is_model(name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_create_and_forward_for_rgb_and_grey(name: str) -> None:
    # Shapes and sizes on the meta device (no memory, no init cost), then one real forward.
    with torch.device("meta"):
        rgb = timm.create_model(name, num_classes=100, in_chans=3).eval()
        grey = timm.create_model(name, num_classes=10, in_chans=1).eval()
        assert rgb(torch.empty(2, 3, 32, 32)).shape == (2, 100)
        assert grey(torch.empty(2, 1, 28, 28)).shape == (2, 10)  # Fashion-MNIST size
    assert n_params(rgb) == pytest.approx(PARAMS_100[name], rel=0.02)

    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10, in_chans=1).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 1, 8, 8))
    assert logits.shape == (1, 10) and torch.isfinite(logits).all() and logits.std() > 0
    assert model.pretrained_cfg["architecture"] == name
    assert not model.pretrained_cfg.get("url") and not model.pretrained_cfg.get("hf_hub_id")


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("size", [8, 13, 28, 48])
def test_any_input_size_from_8_works(name: str, size: int) -> None:
    model = timm.create_model(name, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 3, size, size)).shape == (3, 5)


@pytest.mark.parametrize("name", TINY)
def test_channels_last_gives_the_same_logits(name: str) -> None:
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_drop_rate_is_dropout_before_the_classifier() -> None:
    torch.manual_seed(0)
    model = timm.create_model("resnet8_cifar", num_classes=10, drop_rate=0.5)
    x = torch.randn(4, 3, 16, 16)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (4, 64)


def test_reset_classifier_changes_the_number_of_outputs() -> None:
    model = timm.create_model("preactresnet10_cifar", num_classes=10).eval()
    model.reset_classifier(3)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 3)
    assert model.get_classifier().out_features == 3


def test_pretrained_weights_are_refused_with_a_clear_error() -> None:
    with pytest.raises(UsageError, match="no pretrained weights"):
        timm.create_model("resnet56_cifar", pretrained=True)


def test_importing_again_or_reloading_does_not_re_register() -> None:
    # pytest turns warnings into errors, so timm's "Overwriting ... in registry" would fail here.
    importlib.import_module("msda_arena.models.cifar")
    importlib.reload(msda_arena.models.cifar)
    assert set(msda_arena.models.cifar.list_arena_models()) == EXPECTED
    assert timm.create_model("resnet8_cifar", num_classes=2)(torch.randn(1, 3, 8, 8)).shape == (
        1,
        2,
    )
