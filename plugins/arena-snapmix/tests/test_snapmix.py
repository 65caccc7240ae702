"""SnapMix's own tests: the arena's conformance rules, the resized box, the CAM-based
label weights (which need not sum to 1) and their fallbacks, and one trained cell."""

from __future__ import annotations

import contextlib

import pytest
import timm
import torch
import torch.nn.functional as F
from arena_snapmix import SnapMix, cutmix_boxes, paste_resized, snapmix_step

import msda_arena.models.cifar  # noqa: F401  (registers the CIFAR models)
from msda_arena import get_method
from msda_arena.testing import assert_conforms, one_cell_run
from msda_arena.train.feature_mixing import FeatureMixer, TrainModelView, feature_stages

torch.set_num_threads(1)

H = W = 16


def _box(r1, r2, c1, c2):
    return torch.tensor([[r1, r2, c1, c2]])


def test_snapmix_conforms_to_the_feature_contract():
    assert_conforms("snapmix")
    assert_conforms("snapmix(prob=0.5,alpha=1.0)")


def test_defaults_are_the_reference_setting():
    m = get_method("snapmix")
    assert m.kind == "feature" and m.needs_model
    assert m.values == {"alpha": 5.0, "prob": 1.0}  # the README's --beta 5, --prob 1.0


def test_boxes_follow_the_reference_rand_bbox():
    lam = torch.tensor([0.75, 0.0, 1.0])
    boxes = cutmix_boxes(lam, 16, 20, torch.tensor([8, 0, 5]), torch.tensor([10, 19, 5]))
    # sides floor(16 * 0.5) = 8 and floor(20 * 0.5) = 10 around (8, 10); clipped; empty
    assert boxes.tolist() == [[4, 12, 5, 15], [0, 8, 9, 20], [5, 5, 5, 5]]


def test_the_partner_box_is_resized_into_the_box_as_f_interpolate_does():
    x = torch.randn(3, 2, H, W, generator=torch.Generator().manual_seed(0))
    partner = torch.tensor([2, 0, 1])
    box_a = torch.tensor([[2, 9, 3, 13], [0, 16, 0, 16], [5, 6, 7, 8]])  # per sample
    box_b = torch.tensor([[4, 8, 0, 16], [1, 5, 2, 4], [0, 16, 0, 16]])
    out = paste_resized(x, partner, box_a, box_b)
    for i in range(3):
        (r1, r2, c1, c2), (s1, s2, t1, t2) = box_a[i].tolist(), box_b[i].tolist()
        crop = x[partner[i] : partner[i] + 1, :, s1:s2, t1:t2]
        want = F.interpolate(crop, size=(r2 - r1, c2 - c1), mode="bilinear", align_corners=True)
        assert torch.allclose(out[i, :, r1:r2, c1:c2], want[0], atol=1e-5)
        outside = torch.ones(H, W, dtype=torch.bool)
        outside[r1:r2, c1:c2] = False
        assert torch.equal(out[i][:, outside], x[i][:, outside])


def _cam(spots):
    """Class maps [B, 2, 4, 4]: each image's label-0 map is 1 on its spot, else 0."""
    cam = torch.zeros(len(spots), 2, 4, 4)
    for i, (r, c) in enumerate(spots):
        cam[i, 0, r, c] = 1.0
    return cam


def test_label_weights_are_the_cam_mass_and_need_not_sum_to_one():
    x = torch.randn(2, 3, H, W)
    y, partner = torch.tensor([0, 1]), torch.tensor([1, 0])
    cam = _cam([(0, 0), (3, 3)])  # image 0 salient top-left, image 1 bottom-right
    cam[1, 1] = cam[1, 0]  # image 1's label is 1: its map for class 1
    box = _box(0, 8, 0, 8)  # top-left, in both images (box a) and partners (box b)
    _, sources, weights = snapmix_step(x, y, partner, box, box, cam, torch.tensor([True]))
    assert sources.tolist() == [[0, 1], [1, 0]]
    # image 0 loses its object and gets a partner box without one: little of either
    w_i, w_p = weights[0].tolist()
    assert w_i < 0.2 and w_p < 0.2
    # image 1 keeps its object and gets image 0's object: nearly all of both
    w_i, w_p = weights[1].tolist()
    assert w_i > 0.8 and w_p > 0.8


def test_equal_labels_add_the_weights_and_a_flat_map_falls_back_to_the_area():
    x = torch.randn(2, 3, H, W)
    partner = torch.tensor([1, 0])
    box_a, box_b = _box(0, 8, 0, 8), _box(8, 16, 8, 16)
    cam, yes = _cam([(0, 0), (3, 3)]), torch.tensor([True])
    _, _, same = snapmix_step(x, torch.tensor([0, 0]), partner, box_a, box_b, cam, yes)
    assert torch.allclose(same[:, 0], same[:, 1])  # each is w_i + w_partner
    flat = torch.ones(2, 2, 4, 4)  # constant maps: NaN in the reference, then the area
    _, _, area = snapmix_step(x, torch.tensor([0, 1]), partner, box_a, box_b, flat, yes)
    assert torch.allclose(area, torch.tensor([[0.75, 0.25], [0.75, 0.25]]))


@pytest.mark.parametrize("case", ["empty box", "not this batch"])
def test_no_mix_keeps_the_batch_with_weights_one_and_zero(case):
    x = torch.randn(2, 3, H, W)
    box_a = _box(3, 3, 0, 8) if case == "empty box" else _box(0, 8, 0, 8)
    apply = torch.tensor([case == "empty box"])
    y, partner, cam = torch.tensor([0, 1]), torch.tensor([1, 0]), _cam([(0, 0)] * 2)
    mixed, _, weights = snapmix_step(x, y, partner, box_a, _box(0, 8, 0, 8), cam, apply)
    assert torch.equal(mixed, x)
    assert weights.tolist() == [[1.0, 0.0], [1.0, 0.0]]


def test_the_harness_gives_it_the_models_class_maps():
    torch.manual_seed(0)
    model = timm.create_model("resnet8_tiny_cifar", num_classes=4).train()
    x, y = torch.randn(6, 3, H, W), torch.tensor([0, 1, 2, 3, 0, 1])
    view = TrainModelView(model, y, contextlib.nullcontext, torch.contiguous_format)
    mixer = FeatureMixer(SnapMix(), model, feature_stages(model, 3))
    batch = mixer(x, y, torch.Generator().manual_seed(3), torch.Generator(), view)
    assert batch.stage.index == 0 and batch.weights.shape == (6, 2)
    assert model.training  # the view restored training mode
    assert not torch.equal(batch.inputs, x)  # a box was pasted
    assert (batch.weights >= 0).all()


def test_snapmix_trains_one_cell(tmp_path):
    record = one_cell_run("snapmix", tmp_path)
    assert record["status"] == "ok", record["error"]
