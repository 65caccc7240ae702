"""PuzzleMix's own tests: the arena's conformance rules, its defining properties (label
weight = mask mean, whole-cell transport, a mask that follows the saliency), agreement
with the reference's graph-cut scaling and transport assignment, and one trained cell."""

from __future__ import annotations

import arena_puzzlemix as pm
import pytest
import torch

from msda_arena import get_method
from msda_arena.mixprobe import code_batch, pixel_weights, stand_in_saliency
from msda_arena.testing import assert_conforms, one_cell_run


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _drawn_geometry(method, h: int, w: int, seed: int) -> pm.BlockGeometry:
    """The block grid ``mix`` draws with a fresh generator seeded ``seed``: its first
    random number is the pick among :func:`block_geometries`."""
    geoms = pm.block_geometries(h, w, method.values["neigh_size"], method.values["t_size"])
    return geoms[int(torch.randint(len(geoms), (1,), generator=_gen(seed)))]


def _quadrant_saliency(b: int, h: int, w: int, quadrant: list[int]) -> torch.Tensor:
    """A saliency map [B, H, W]: 1 in image i's quadrant ``quadrant[i]`` (0 top-left,
    1 top-right, 2 bottom-left, 3 bottom-right), 0.01 elsewhere."""
    s = torch.full((b, h, w), 0.01)
    for i, q in enumerate(quadrant):
        r, c = divmod(q, 2)
        s[i, r * h // 2 : (r + 1) * h // 2, c * w // 2 : (c + 1) * w // 2] = 1.0
    return s


def _blob_saliency(b: int, h: int, w: int, seed: int, blobs: int = 3) -> torch.Tensor:
    """A saliency map [B, H, W]: 1 on ``blobs`` random aligned 4 x 4 squares per image,
    0.01 elsewhere (salient cells that the mask may drop and transport may move)."""
    g = _gen(1000 + seed)
    s = torch.full((b, h, w), 0.01)
    for i in range(b):
        for _ in range(blobs):
            r = int(torch.randint(0, h // 4, (1,), generator=g))
            c = int(torch.randint(0, w // 4, (1,), generator=g))
            s[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = 1.0
    return s


def _quadrant_mean(m: torch.Tensor, q: int) -> float:
    h, w = m.shape
    r, c = divmod(q, 2)
    return float(m[r * h // 2 : (r + 1) * h // 2, c * w // 2 : (c + 1) * w // 2].mean())


# -- the arena's contract ------------------------------------------------------------


def test_puzzlemix_conforms_to_the_mix_contract():
    assert_conforms("puzzlemix")


def test_variants_conform():
    assert_conforms("puzzlemix(transport=false,n_labels=2)")
    assert_conforms("puzzlemix(t_size=-1,n_labels=4)")


def test_defaults_are_the_published_cifar_settings():
    m = get_method("puzzlemix")
    assert m.needs_saliency
    assert m.values == {
        "alpha": 1.0,
        "n_labels": 3,
        "eta": 0.2,
        "beta": 1.2,
        "gamma": 0.5,
        "neigh_size": 4,
        "transport": True,
        "t_size": 4,
        "t_eps": 0.8,
        "pixel_std": pm.CIFAR100_PIXEL_STD,
    }
    # 32 px: every one of the reference's block grids, with its 4 px (2 px) transport cells
    geoms = pm.block_geometries(32, 32)
    assert [g.block_num for g in geoms] == [2, 4, 8, 16]
    assert [(g.th, g.gh) for g in geoms] == [(4, 8), (4, 8), (4, 8), (2, 16)]
    assert [g.nh for g in geoms] == [4, 4, 4, 2]


# -- defining properties ---------------------------------------------------------------


@pytest.mark.parametrize("transport", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_weight_is_the_mask_mean(transport, seed):
    """The returned weight of y[i] is the fraction of the mixed image taken from x[i],
    recovered from the code channels; mask values are the n_labels levels."""
    b = 8
    x = torch.randn(b, 3, 32, 32, generator=_gen(100 + seed))
    coded = code_batch(x, seed=seed)
    partner = torch.roll(torch.arange(b), 1)
    lam = torch.rand(b, generator=_gen(200 + seed))
    method = get_method(f"puzzlemix(transport={str(transport).lower()})")
    y = torch.arange(b)
    saliency = stand_in_saliency(y, coded.images.shape[1])
    mixed, weight = method.mix(coded.images, y, partner, lam, _gen(seed), saliency)
    a = pixel_weights(mixed, coded, partner)
    assert torch.allclose(weight, a.mean(dim=(1, 2)), atol=1e-5)
    levels = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(a, levels[(a.unsqueeze(-1) - levels).abs().argmin(-1)], atol=1e-4)


@pytest.mark.parametrize("n_labels", [2, 3])
@pytest.mark.parametrize("t_size", [4, 2])
def test_transport_moves_whole_cells(t_size, n_labels):
    """Where the mask keeps x[i] only, every transport cell (t_size x t_size, or the
    block when t_size does not tile it) of the output is an aligned cell of x[i], and
    transport does move cells: some kept cell comes from another position."""
    b, h, w = 6, 32, 32
    partner = torch.roll(torch.arange(b), 1)
    method = get_method(f"puzzlemix(t_size={t_size},n_labels={n_labels})")
    checked = moved = 0
    for seed in range(8):
        x = torch.randn(b, 3, h, w, generator=_gen(seed))  # every cell is unique
        geom = _drawn_geometry(method, h, w, seed)
        s = _blob_saliency(b, h, w, seed)
        lam = torch.linspace(0.2, 0.8, b)
        coded = code_batch(x, seed=seed)
        mixed, _ = method.mix(coded.images, None, partner, lam, _gen(seed), lambda _, s=s: s)
        a = pixel_weights(mixed, coded, partner)
        th, tw = geom.th, geom.tw

        def cells(img, th=th, tw=tw):  # [C, H, W] -> [cells, C * th * tw]
            c = img.shape[0]
            return (
                img.reshape(c, h // th, th, w // tw, tw)
                .permute(1, 3, 0, 2, 4)
                .reshape((h // th) * (w // tw), -1)
            )

        for i in range(b):
            out_cells = cells(mixed[i, :3])
            in_cells = cells(x[i])
            own = cells(a[i].unsqueeze(0)).amin(dim=1) > 1 - 1e-4  # cells wholly from x[i]
            for k in torch.nonzero(own).flatten().tolist():
                match = (in_cells - out_cells[k]).abs().amax(dim=1) < 1e-6
                assert match.any(), f"seed {seed}, sample {i}: cell {k} is not a cell of x[i]"
                checked += 1
                moved += int(not match[k])
    assert checked > 100
    assert moved > 0


@pytest.mark.parametrize("transport", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_kept_region_follows_the_planted_saliency(transport, seed):
    """Image i is salient in one quadrant, its partner in another: the mask keeps x[i]
    over i's salient quadrant and gives the partner's salient quadrant to x[partner]."""
    b, h, w = 4, 32, 32
    quadrant = [(seed + i) % 4 for i in range(b)]
    partner = torch.roll(torch.arange(b), 1)  # partner's quadrant differs from i's
    s = _quadrant_saliency(b, h, w, quadrant)
    x = torch.randn(b, 3, h, w, generator=_gen(seed)) * 0.1
    coded = code_batch(x, seed=seed)
    method = get_method(f"puzzlemix(transport={str(transport).lower()})")
    lam = torch.tensor([0.5])
    mixed, weight = method.mix(coded.images, None, partner, lam, _gen(seed), lambda _: s)
    a = pixel_weights(mixed, coded, partner)
    for i in range(b):
        own_q, other_q = quadrant[i], quadrant[int(partner[i])]
        assert _quadrant_mean(a[i], own_q) > 0.9, (i, a[i])
        assert _quadrant_mean(a[i], other_q) < 0.1, (i, a[i])
    assert torch.allclose(weight, a.mean(dim=(1, 2)), atol=1e-5)


def test_transport_brings_salient_content_into_the_kept_region():
    """x[0] is salient at the centre and in a corner, x[1] (its partner) only at the
    centre, so the mask gives the centre to x[1]; transport then moves x[0]'s central
    cells into the region kept from x[0], where without transport they are lost."""
    b, h, w = 2, 32, 32
    x = torch.randn(b, 3, h, w, generator=_gen(0))
    partner = torch.tensor([1, 0])
    s = torch.full((b, h, w), 0.01)
    s[:, 12:20, 12:20] = 1.0
    s[0, 0:8, 24:32] = 1.0
    kept = {False: 0, True: 0}
    for transport in (False, True):
        method = get_method(f"puzzlemix(transport={str(transport).lower()})")
        for seed in range(8):
            th = _drawn_geometry(method, h, w, seed).th  # the transport cell (also unmoved)
            coded = code_batch(x, seed=0)
            mixed, _ = method.mix(
                coded.images, None, partner, torch.tensor([0.5]), _gen(seed), lambda images: s
            )
            a = pixel_weights(mixed, coded, partner)
            out = mixed[0, :3].unfold(1, th, th).unfold(2, th, th)  # [3, H/th, W/th, th, th]
            whole = a[0].unfold(0, th, th).unfold(1, th, th).amin(dim=(2, 3)) > 1 - 1e-4
            for r in range(12, 20, th):
                for c in range(12, 20, th):
                    cell = x[0, :, r : r + th, c : c + th]
                    same = (out - cell[:, None, None]).abs().amax(dim=(0, 3, 4)) < 1e-6
                    kept[transport] += int((same & whole).any())
    assert kept[True] > kept[False], kept


# -- sizes, errors, determinism ------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(3, 1, 28, 28), (2, 3, 24, 40), (2, 3, 8, 8), (2, 3, 16, 20), (1, 3, 2, 2)]
)
def test_other_sizes_and_channels(shape):
    b, c, _, _ = shape
    x = torch.randn(shape, generator=_gen(0))
    y = torch.arange(b)
    m = get_method("puzzlemix")
    mixed, weight = m.mix(
        x, y, torch.roll(y, 1), torch.tensor([0.3]), _gen(1), stand_in_saliency(y, c)
    )
    assert mixed.shape == x.shape and weight.shape == (b,)


def test_limits_raise_clear_errors():
    m = get_method("puzzlemix")
    y = torch.arange(2)
    sal = stand_in_saliency(y, 3)
    with pytest.raises(ValueError, match="both sides must be even"):
        m.mix(torch.zeros(2, 3, 31, 32), y, y, torch.tensor([0.5]), _gen(0), sal)
    with pytest.raises(ValueError, match="t_size=-1"):
        m.mix(torch.zeros(2, 3, 224, 224), y, y, torch.tensor([0.5]), _gen(0), sal)
    with pytest.raises(ValueError, match="needs the model's saliency"):
        m.mix(torch.zeros(2, 3, 32, 32), y, y, torch.tensor([0.5]), _gen(0), None)
    with pytest.raises(ValueError, match="1 or 2 values"):
        m.mix(torch.zeros(2, 3, 32, 32), y, y, torch.tensor([0.5, 0.5, 0.5]), _gen(0), sal)
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        m.mix(torch.zeros(2, 3, 32, 32), y, y, torch.tensor([0.5]), _gen(0), lambda i: i)


def test_imagenet_size_with_block_transport():
    """At 224 px the reference's ImageNet setting (transport on the graph-cut grid) runs."""
    x = torch.randn(2, 3, 224, 224, generator=_gen(0))
    s = torch.rand(2, 224, 224, generator=_gen(1))
    m = get_method("puzzlemix(t_size=-1)")
    mixed, weight = m.mix(x, None, torch.tensor([1, 0]), torch.tensor([0.5]), _gen(2), lambda i: s)
    assert mixed.shape == x.shape and bool(((weight >= 0) & (weight <= 1)).all())


def test_deterministic_given_the_generator():
    x = torch.randn(6, 3, 32, 32, generator=_gen(0))
    y = torch.arange(6)
    sal = stand_in_saliency(y, 3)
    m = get_method("puzzlemix")
    lam = torch.rand(6, generator=_gen(1))
    outs = [m.mix(x, y, torch.roll(y, 2), lam, _gen(9), sal) for _ in range(2)]
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


# -- a real training cell ------------------------------------------------------------


def test_puzzlemix_trains_one_cell(tmp_path):
    record = one_cell_run("puzzlemix", tmp_path)
    assert record["status"] == "ok"
