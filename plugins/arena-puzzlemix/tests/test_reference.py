"""PuzzleMix equals the reference ``mixup_graph`` (snu-mllab/PuzzleMix, ``mixup.py``,
commit e2dbf3a), bit for bit, on recorded cases.

The reference was run once, on the CPU, on the inputs :func:`_case` builds (12 batches of
16 images of 32 x 32 x 3, a skewed random saliency, a random permutation as partners,
lambda in [0.2, 0.8]), with the published CIFAR settings (``puzzlemix``'s defaults:
``n_labels=3, eta=0.2, beta=1.2, gamma=0.5, neigh_size=4, transport=True, t_size=4,
t_eps=0.8``, ``mean=0``, ``std=pixel_std``) and the block grid this method draws from
the generator seeded with the case number. :data:`REFERENCE` holds the SHA-256 of its
mixed images and of its ``ratio`` (float32 bytes); no reference code is in this
repository. All 192 images and ratios were equal when recorded."""

from __future__ import annotations

import hashlib

import arena_puzzlemix as pm
import pytest
import torch

from msda_arena import get_method

pytest.importorskip("gco")

#: (case, block_num, sha256 of the reference's mixed images, of its ratios[:32 hex]).
REFERENCE = (
    (
        0,
        2,
        "ffde1fa93ece6257e8647bacb140eb2228e62484ca37a3c4c276c7d3a9c974bf",
        "9628e545ed3ac074e5a6cbf542a642b6",
    ),  # mean ratio 1.000
    (
        1,
        4,
        "54da4bdff9a76b95d6aac396250917002891a4b4ac406027020ac2be6c872275",
        "d459f8046a8b6afbb74bc0f9d35e3ce5",
    ),  # mean ratio 0.498
    (
        2,
        2,
        "d90fbfc0d9d9473b47f2846d253e25e04df19381c6de1f17bdf272edfec8a5d6",
        "9628e545ed3ac074e5a6cbf542a642b6",
    ),  # mean ratio 1.000
    (
        3,
        8,
        "9777fcb96f18f50a14633fbf6cf46658b2264f43f6820936fe0058532fd1d40e",
        "c0b87f0640951e9cfc042dedb4321c6d",
    ),  # mean ratio 0.165
    (
        4,
        8,
        "c3d137b51c437ca77bf7ca93207f8510f2e9212123acd8e1a8e3c4185086b2cd",
        "ab4e4e8a4684eb58f7703d73c52e4d4a",
    ),  # mean ratio 0.584
    (
        5,
        16,
        "28773cdb1077999384d57d0ba5b9375b64e96642d006bef58ed602d5fbbe7ace",
        "7fb97c12f9b2ad3477d328444f40d799",
    ),  # mean ratio 0.910
    (
        6,
        8,
        "a9b1413248533a17a9fea3bcf348d96880377880c942c2eda2572b185104ffa6",
        "74f813ade0205a11c26fd479c42805a7",
    ),  # mean ratio 0.021
    (
        7,
        16,
        "a87422f87f6f6d8cb9a85083125f88e6abadb9b4636c6fd9b98ce8d5237f4666",
        "db488d88d8478558d347933c8b4870eb",
    ),  # mean ratio 0.021
    (
        8,
        16,
        "8e32906c6e16e0bb11c696558c89d8619b33775f1e3f30d4526d5661214625e4",
        "bf65c9832aad1601441516fc33866a6f",
    ),  # mean ratio 0.901
    (
        9,
        8,
        "e3a367678372b9dc5d96ef1af7bb7f3b1bf2ec49c07420beb50a82b6bdb7975b",
        "cfa9aef1e6bc27e910fe65eac04b3d83",
    ),  # mean ratio 0.982
    (
        10,
        4,
        "0a2c5bc0d0a08dad9b60f0da928689d0def040cb5e3154f8a1c4f62319009780",
        "1e0940765a2849c54727db73d63eff29",
    ),  # mean ratio 0.496
    (
        11,
        4,
        "6c1229744d045683fad734225e2ca682b5b521f598d8a25115d98ddc093ca371",
        "6e50b60e4edc2097a4df1687ff284b33",
    ),  # mean ratio 0.441
)


def _case(k: int, b: int = 16, size: int = 32):
    """Case ``k``'s inputs: images, saliency, partners and lambda."""
    g = torch.Generator().manual_seed(100 + k)
    x = torch.randn(b, 3, size, size, generator=g)
    grad = torch.rand(b, size, size, generator=g) ** 4
    partner = torch.randperm(b, generator=g)
    lam = 0.2 + 0.6 * torch.rand(1, generator=g)
    return x, grad, partner, lam


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


@pytest.mark.parametrize(("k", "block_num", "mixed_sha", "ratio_sha"), REFERENCE)
def test_mix_equals_the_reference_mixup_graph(k, block_num, mixed_sha, ratio_sha):
    method = get_method("puzzlemix")
    v = method.values
    geoms = pm.block_geometries(32, 32, v["neigh_size"], v["t_size"])
    drawn = geoms[int(torch.randint(len(geoms), (1,), generator=torch.Generator().manual_seed(k)))]
    assert drawn.block_num == block_num  # the grid the reference was given
    x, grad, partner, lam = _case(k)
    mixed, weight = method.mix(
        x, None, partner, lam, torch.Generator().manual_seed(k), saliency=lambda _: grad
    )
    assert _sha(weight)[:32] == ratio_sha, f"case {k}: the label weights differ"
    assert _sha(mixed) == mixed_sha, f"case {k}: the mixed images differ"
