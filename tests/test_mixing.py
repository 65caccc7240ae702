import pytest
import torch
import torch.nn.functional as F

from msda_arena import MaskMethod, get_method
from msda_arena.train.mixing import MaskContractError, Mixer, pair_indices


def batch(b=8, h=12, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g), torch.randint(0, 5, (b,), generator=g)


def test_flip_pairs_with_the_reversed_batch_and_permute_is_a_permutation():
    g = torch.Generator().manual_seed(0)
    assert pair_indices(5, "flip", g, "cpu").tolist() == [4, 3, 2, 1, 0]
    perm = pair_indices(50, "permute", g, "cpu")
    assert sorted(perm.tolist()) == list(range(50)) and perm.tolist() != list(range(50))
    with pytest.raises(ValueError, match="pairing"):
        Mixer(get_method("mixup"), pairing="shuffle")


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("spec", ["mixup", "cutmix", "gmix", "hmix"])
def test_mixed_inputs_and_label_weights_follow_the_masks(spec, per_sample):
    x, y = batch()
    mixed = Mixer(get_method(spec), per_sample=per_sample)(x, y, torch.Generator().manual_seed(1))
    assert mixed.masks.shape[0] == (8 if per_sample else 1)
    m = mixed.masks.expand(8, 1, 12, 10)
    assert torch.allclose(mixed.inputs, m * x + (1 - m) * x.flip(0), atol=1e-6)
    assert torch.equal(mixed.partner_targets, y.flip(0))
    assert torch.allclose(mixed.weight, m.mean(dim=(1, 2, 3)), atol=1e-6)
    if per_sample and spec != "mixup":
        assert mixed.weight.unique().numel() > 1  # each sample has its own mask


def test_loss_is_cross_entropy_against_soft_targets():
    x, y = batch()
    mixed = Mixer(get_method("cutmix"), per_sample=True)(x, y, torch.Generator().manual_seed(2))
    logits = torch.randn(8, 5)
    soft = mixed.soft_targets(5)
    assert torch.allclose(soft.sum(1), torch.ones(8))
    expected = -(soft * F.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(mixed.loss(logits), expected, atol=1e-6)


def test_vanilla_leaves_the_batch_untouched():
    x, y = batch()
    mixed = Mixer(get_method("vanilla"))(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(mixed.inputs, x)
    assert torch.equal(mixed.weight, torch.ones(8))


class _Bad(MaskMethod):
    name = "bad"
    result = "range"

    def masks(self, lam, height, width, generator):
        n = lam.shape[0]
        if self.result == "range":
            return torch.full((n, 1, height, width), 1.5)
        if self.result == "nan":
            return torch.full((n, 1, height, width), float("nan"))
        if self.result == "shape":
            return torch.ones(n, height, width)
        if self.result == "dtype":
            return torch.ones(n, 1, height, width, dtype=torch.long)
        return [[0.5]]


@pytest.mark.parametrize(
    ("result", "rule"),
    [
        ("range", "range"),
        ("nan", "finite"),
        ("shape", "shape"),
        ("dtype", "dtype"),
        ("list", "type"),
    ],
)
def test_a_bad_mask_stops_mixing_with_the_rule_named(result, rule):
    bad = _Bad()
    bad.result = result
    x, y = batch()
    with pytest.raises(MaskContractError, match=f"rule '{rule}'"):
        Mixer(bad)(x, y, torch.Generator().manual_seed(0))
