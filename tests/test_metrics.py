"""ECE and FGSM on hand-built cases whose answers are known in closed form."""

from __future__ import annotations

import pytest
import torch

from msda_arena.train.evaluate import EvalAccumulator, ece, fgsm_bounds, fgsm_inputs


def test_ece_of_a_hand_built_case():
    # 4 predictions at confidence 0.9, 3 right (bin 13: |0.75 - 0.9| = 0.15) and
    # 2 at confidence 0.55, both wrong (bin 8: |0 - 0.55|): 4/6 * 0.15 + 2/6 * 0.55.
    probs = torch.tensor([[0.9, 0.1]] * 4 + [[0.55, 0.45]] * 2, dtype=torch.float32)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert ece(probs, labels) == pytest.approx(4 / 6 * 0.15 + 2 / 6 * 0.55, abs=1e-6)


def test_a_perfectly_calibrated_model_has_zero_ece():
    probs = torch.tensor([[0.5, 0.5]] * 4)
    labels = torch.tensor([0, 1, 0, 1])  # argmax 0: right half the time at confidence 0.5
    assert ece(probs, labels) == pytest.approx(0.0, abs=1e-9)


class Linear(torch.nn.Module):
    """logits = [w . x, -w . x]: the input gradient is known in closed form."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.w).flatten(1).sum(1)
        return torch.stack([s, -s], dim=1)


def test_fgsm_moves_each_pixel_against_the_true_class_by_eps():
    w = torch.tensor([[[[1.0, -2.0], [0.5, -0.25]]]])
    x = torch.full((1, 1, 2, 2), 0.5)
    # label 0: the loss falls as w.x grows, so the gradient's sign is -sign(w)
    moved = fgsm_inputs(Linear(w), x, torch.tensor([0]), eps=0.1, lo=0.0, hi=1.0)
    assert torch.allclose(moved, x - 0.1 * torch.sign(w))
    clamped = fgsm_inputs(Linear(w), x, torch.tensor([0]), eps=0.7, lo=0.0, hi=1.0)
    assert clamped.min() == 0.0 and clamped.max() == 1.0


def test_fgsm_top1_counts_flipped_predictions_and_eps_is_per_channel():
    eps, lo, hi = fgsm_bounds((0.5,), (0.25,), "cpu")
    assert eps.item() == pytest.approx(8 / 255 / 0.25) and (lo.item(), hi.item()) == (-2.0, 2.0)
    w = torch.ones(1, 1, 2, 2)
    model = Linear(w)
    # margins w.x = 0.04 (flips under a step of 0.1 per pixel) and 1.0 (does not)
    x = torch.stack([torch.full((1, 2, 2), 0.01), torch.full((1, 2, 2), 0.25)])
    y = torch.tensor([0, 0])
    acc = EvalAccumulator(2, "cpu")
    acc.add(model(x), y)
    acc.add_fgsm(model(fgsm_inputs(model, x, y, 0.1, -1.0, 1.0)), y)
    result = acc.result()
    assert (result.top1, result.fgsm_top1) == (100.0, 50.0)
    assert result.top5 == 100.0 and 0.0 <= result.ece <= 1.0
