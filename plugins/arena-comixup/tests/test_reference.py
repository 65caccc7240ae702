"""Co-Mixup equals the reference ``mixup_process`` (snu-mllab/Co-Mixup, ``mixup.py`` and
``match.py``, commit 2a76816), bit for bit, on recorded cases.

The reference was run once, on the CPU, by ``fidelity/compare_reference.py --digests``
on the inputs :func:`case` builds (batches of 24 images of 32 x 32 x 3, so one full
partition of 20 and a short one of 4, a peaked planted saliency, 10 classes), with its
CIFAR-100 settings (this method's defaults; ``m_block_num`` 4, 2, 8, 4), given the
Dirichlet prior and initial labels :func:`arena_comixup.draw` makes from a generator
seeded with the case number, and ``torch.topk``'s choice among tied counts made as on
CUDA, where the reference runs (lowest index first, as here; the CPU's differs).
:data:`REFERENCE` holds the SHA-256 of its mixed images and of its soft labels
(float32 bytes); no reference code is in this repository."""

from __future__ import annotations

import hashlib

import pytest
import torch
from arena_comixup import Settings, block_grid, comixup_step, draw
from blobs import peaked

NUM_CLASSES = 10
BLOCK_NUMS = (4, 2, 8, 4)

#: (case, sha256 of the reference's mixed images, of its soft labels).
REFERENCE = (
    (
        0,
        "3a87ef20f129b2e7889668b7ab0154ef801043dff73d5eb235cfd87282d0e7a1",
        "b4006cf123485b282694e433cb6780206d6ad3fd025632044c1bfa0aa5f31d33",
    ),
    (
        1,
        "d04a2f327ad718034a22951d841bc1729281fd6d93e3732c7d23fca052d9952b",
        "fd5d21a851455e470f3e9020930c8d219818e7a06f5d0f9d7487993e67b0c9b1",
    ),
    (
        2,
        "ba81a5975f444ebb725a078b4f70190e15a0ee1902aec6485c355c865755b2a2",
        "a4ec21af3f4abda9d55008e6cbc681d4a818c90e56800dd81d52ef6d2dc46de5",
    ),
    (
        3,
        "c035708556422efc8ddfa3545c95fe8b8ab16b62a60e4f8dead38f25bc60716c",
        "1c7fdee0fc6c07ff82276282fb8543afa4be5cf7a0a03a0f459f303b8b690669",
    ),
)


def case(n: int) -> tuple[torch.Tensor, ...]:
    """Case ``n``: images, labels, saliency (one or two Gaussian blobs per image over a
    weak noise floor), the prior and initial labels, and the grid."""
    g = torch.Generator().manual_seed(1000 + n)
    batch, size = 24, 32
    x = torch.randn(batch, 3, size, size, generator=g)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=g)
    sc = peaked(batch, size, g)
    grid = block_grid(size, size, BLOCK_NUMS[n])
    prior, init = draw(batch, grid, 20, 2.0, torch.Generator().manual_seed(n), "cpu")
    return x, y, sc, prior, init, grid


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.float().contiguous().numpy().tobytes()).hexdigest()


def soft_labels(y, sources, weights):
    """The label each output trains on: ``sum_j weights[:, j] onehot(y[sources[:, j]])``."""
    out = torch.zeros(len(y), NUM_CLASSES)
    return out.scatter_add(1, y[sources], weights)


@pytest.mark.parametrize("n,images,labels", REFERENCE, ids=[f"case{r[0]}" for r in REFERENCE])
def test_comixup_reproduces_the_reference(n, images, labels):
    x, y, sc, prior, init, grid = case(n)
    mixed, sources, weights, _ = comixup_step(x, sc, prior, init, grid, Settings())
    assert digest(mixed) == images
    assert digest(soft_labels(y, sources, weights)) == labels


def test_the_recorded_cases_are_there():
    assert len(REFERENCE) == len(BLOCK_NUMS)
