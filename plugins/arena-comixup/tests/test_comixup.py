"""Co-Mixup's own tests: the arena's conformance rules, outputs built from blocks of
their partition's inputs, label weights that are those blocks' shares, determinism,
the shapes for any partition size, the harness's saliency, and one trained cell."""

from __future__ import annotations

import contextlib

import blobs
import numpy as np
import pytest
import timm
import torch
from arena_comixup import Settings, assign, comixup_step, draw

import msda_arena.models.cifar  # noqa: F401  (registers the CIFAR models)
from msda_arena import get_method
from msda_arena.testing import assert_conforms, one_cell_run
from msda_arena.train.feature_mixing import FeatureMixer, TrainModelView, feature_stages

torch.set_num_threads(1)

S = 32  # image side; the default grid is 4 x 4 blocks of 8 px


class Planted:
    """A model view with a given saliency (a trained model's is peaked; a fresh one's
    is nearly flat, which makes Co-Mixup copy whole images)."""

    def __init__(self, sc: torch.Tensor) -> None:
        self.sc = sc

    def saliency(self, images: torch.Tensor) -> torch.Tensor:
        assert images.shape[0] == self.sc.shape[0]
        return self.sc.clone()


def peaked(batch: int, seed: int, size: int = S) -> torch.Tensor:
    """One or two Gaussian blobs per image at random places (:func:`blobs.peaked`)."""
    return blobs.peaked(batch, size, torch.Generator().manual_seed(seed))


def coded(batch: int, channels: int = 3, size: int = S) -> torch.Tensor:
    """Image ``i`` is the constant ``i + 1`` in every channel: a mixed pixel's value
    names its inputs (v = i + 1, or the half-half mean of two)."""
    return (torch.arange(batch).float() + 1).view(-1, 1, 1, 1).expand(batch, channels, size, size)


def run(spec: str, x: torch.Tensor, sc: torch.Tensor, seed: int = 0):
    method = get_method(spec)
    return method.mix(x, torch.zeros(len(x), dtype=torch.long), torch.arange(len(x)),
                      torch.ones(1), torch.Generator().manual_seed(seed), Planted(sc))  # fmt: skip


def test_comixup_conforms_to_the_feature_contract():
    assert_conforms("comixup")
    assert_conforms("comixup(m_block_num=-1,m_thres_type='soft',m_part=5,m_niter=2)")


def test_defaults_are_the_reference_cifar_setting():
    m = get_method("comixup")
    assert m.kind == "feature" and m.needs_model
    # the reference README's CIFAR-100 command; m_niter, thres_type, set_resolve: main.py
    assert m.values == {
        "m_part": 20, "m_block_num": 4, "mixup_alpha": 2.0, "m_beta": 0.32, "m_gamma": 1.0,
        "m_thres": 0.83, "m_thres_type": "hard", "m_eta": 0.05, "m_omega": 0.001,
        "m_niter": 4, "set_resolve": True,
    }  # fmt: skip


def _blocks(mixed: torch.Tensor, grid: int = 4) -> torch.Tensor:
    """The value of each block ``[B, grid, grid]``, after checking blocks are constant."""
    b, c, h, w = mixed.shape
    blocks = mixed.reshape(b, c, grid, h // grid, grid, w // grid)
    first = blocks[:, :, :, :1, :, :1]
    assert torch.equal(blocks, first.expand_as(blocks)), "a block is not one mix"
    assert torch.equal(first[:, :1].expand_as(first), first), "channels mixed differently"
    return first[:, 0, :, 0, :, 0]


@pytest.mark.parametrize("batch,part", [(24, 20), (12, 5)])
def test_each_block_is_one_input_or_the_mean_of_two_from_its_partition(batch, part):
    x = coded(batch)
    mixed, sources, weights = run(f"comixup(m_part={part})", x, peaked(batch, 1))
    k = min(part, batch)
    assert sources.shape == weights.shape == (batch, k)
    values = _blocks(mixed)  # i + 1, or (i + j + 2) / 2
    twice = values * 2 - 2  # i + i, or i + j
    assert torch.equal(twice, twice.round())
    for i in range(batch):
        start = i // part * part
        stop = min(start + part, batch)
        rows = set(range(start, stop))
        assert set(sources[i].tolist()) == rows  # the partition (padded with its first)
        used = {int(v) - 1 for v in values[i].flatten() if float(v).is_integer()}
        assert used <= rows, f"output {i} took a whole block from outside its partition"
        assert float(values[i].min()) >= start + 1 and float(values[i].max()) <= stop


def test_label_weights_are_the_inputs_block_shares_and_sum_to_one():
    batch = 20
    x = torch.randn(batch, 3, S, S, generator=torch.Generator().manual_seed(2))
    sc = peaked(batch, 3)
    g = torch.Generator().manual_seed(4)
    prior, init = draw(batch, (4, 4), 20, 2.0, g, "cpu")
    mixed, sources, weights, masks = comixup_step(x, sc, prior, init, (4, 4))
    (mask,) = masks  # one partition: [20 outputs, 4, 4, 20 inputs]
    assert torch.equal(sources, torch.arange(batch).expand(batch, batch))
    assert torch.allclose(weights.sum(1), torch.ones(batch))
    shares = torch.from_numpy(mask.sum((1, 2)) / 16)
    assert torch.equal(weights, shares)
    assert (weights > 0).sum(1).float().mean() > 1.5  # peaked saliency: real mixes
    assert (mask == 0.5).any()  # some blocks are the half-half mix of two inputs
    # the pixels follow the mask: block (r, c) of output i is sum_j mask * x_j
    up = torch.from_numpy(mask).repeat_interleave(8, 1).repeat_interleave(8, 2)
    want = torch.einsum("ohwj,jchw->ochw", up, x)
    assert torch.allclose(mixed, want, atol=1e-6)


def test_salient_blocks_are_the_ones_kept():
    batch = 20
    sc = peaked(batch, 5)
    g = torch.Generator().manual_seed(6)
    prior, init = draw(batch, (4, 4), 20, 2.0, g, "cpu")
    *_, (mask,) = comixup_step(coded(batch), sc, prior, init, (4, 4))
    pooled = torch.nn.functional.avg_pool2d(sc, 8)
    share = (pooled / pooled.sum((1, 2), keepdim=True)).numpy()  # [input, 4, 4]
    taken = np.einsum("ohwj,jhw->", mask, share) / mask.sum()
    assert taken > 2 / 16  # a block taken holds over twice an average block's saliency


def test_the_same_generator_gives_the_same_mix_and_another_a_different_one():
    x, sc = torch.randn(16, 3, S, S), peaked(16, 7)
    a, b, c = (run("comixup", x, sc, seed) for seed in (0, 0, 1))
    for t1, t2 in zip(a, b, strict=True):
        assert torch.equal(t1, t2)
    assert not torch.equal(a[0], c[0])


def test_a_short_last_partition_and_a_single_image_partition():
    x, sc = coded(7), peaked(7, 8)
    mixed, sources, weights = run("comixup(m_part=3)", x, sc)
    assert sources.shape == (7, 3)
    assert sources[6].tolist() == [6, 6, 6]  # a partition of one image: itself
    assert weights[6].tolist() == [1.0, 0.0, 0.0]
    assert torch.equal(mixed[6], x[6])
    assert torch.allclose(weights.sum(1), torch.ones(7))


def test_other_image_sizes_and_grids():
    g = torch.Generator().manual_seed(9)
    for size, spec in ((28, "comixup"), (24, "comixup(m_block_num=8)"), (20, "comixup")):
        x = torch.randn(6, 1, size, size + 4, generator=g)
        sc = torch.rand(6, size, size + 4, generator=g) ** 4
        mixed, _, weights = run(spec, x, sc)
        assert mixed.shape == x.shape and torch.isfinite(mixed).all()
        assert torch.allclose(weights.sum(1), torch.ones(6))


def test_assign_gives_each_output_the_salient_halves_of_both_inputs():
    # two inputs, each salient in one half (the other's empty one): the optimum mixes them
    cost = np.zeros((2, 4, 4), dtype=np.float32)
    cost[0, :, :2] = -1 / 8
    cost[1, :, 2:] = -1 / 8
    a = np.eye(2, dtype=np.float32)
    init = np.zeros((2, 4, 4), dtype=np.int64)
    mask = assign(cost, a, init, Settings(m_gamma=0.0))
    assert mask.shape == (2, 4, 4, 2)
    assert np.allclose(mask.sum(-1), 1.0)
    for out in mask:  # each output keeps both salient halves
        assert (out[:, :2, 0] == 1).all() and (out[:, 2:, 1] == 1).all()


def test_the_harness_gives_it_the_models_saliency():
    torch.manual_seed(0)
    model = timm.create_model("resnet8_tiny_cifar", num_classes=4).train()
    x, y = torch.randn(10, 3, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    view = TrainModelView(model, y, contextlib.nullcontext, torch.contiguous_format)
    mixer = FeatureMixer(get_method("comixup(m_part=5)"), model, feature_stages(model, 3))
    batch = mixer(x, y, torch.Generator().manual_seed(3), torch.Generator(), view)
    assert batch.stage.index == 0 and batch.sources.shape == (10, 5)
    assert model.training  # the view restored training mode
    assert torch.allclose(batch.weights.sum(1), torch.ones(10))
    assert torch.isfinite(batch.loss(model(batch.inputs)))


def test_comixup_trains_one_cell(tmp_path):
    record = one_cell_run("comixup", tmp_path)
    assert record["status"] == "ok", record["error"]
