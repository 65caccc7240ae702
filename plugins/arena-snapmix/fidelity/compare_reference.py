"""Compare ``snapmix`` with the official SnapMix code on identical inputs and draws.

Usage (the reference is not a dependency: point at a checkout of it)::

    git clone https://github.com/Shaoli-Huang/SnapMix /tmp/SnapMix
    git -C /tmp/SnapMix checkout 245bda44444879563fafad90062655e2911cc75d
    python plugins/arena-snapmix/fidelity/compare_reference.py /tmp/SnapMix

Each trial runs ``snapmix`` through the arena's harness
(:class:`~msda_arena.train.feature_mixing.FeatureMixer`, with the trainer's
:class:`~msda_arena.train.feature_mixing.TrainModelView` of a seeded
``resnet8_tiny_cifar``), records the draws it made (lambda, lambda1, the partners, the
box centres), and runs the reference's ``utils/mixmethod.py:snapmix`` on the same images
and labels with those draws (its ``np.random.rand``, ``np.random.beta``,
``np.random.randint`` and ``torch.randperm`` replaced by them) and the same model, in
evaluation mode, as its ``wmodel`` (``model(input)`` returning logits and the last
feature map, ``model.module.classifier`` its ``fc``). It prints, as JSON, the largest
absolute differences of the mixed images and of the two label weights over all trials.

Only ``utils/custom_ops.py`` (``rand_bbox``) and ``utils/mixmethod.py`` are loaded from
the reference (``import utils`` would pull its data loaders); NumPy 2's missing
``np.int`` is restored as ``int``, and ``.cuda()`` is a no-op (the CPU is used).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import timm
import torch

import msda_arena.models.cifar  # noqa: F401  (registers resnet8_tiny_cifar)
from msda_arena.train.feature_mixing import FeatureMixer, TrainModelView, feature_stages

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import arena_snapmix


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _load_reference(root: Path):
    np.int = int  # removed in NumPy 1.24; the reference's rand_bbox uses it
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    ops = _module("utils", root / "utils" / "custom_ops.py")  # what mixmethod needs of utils
    return _module("snapmix_reference", root / "utils" / "mixmethod.py"), ops


class _Wrapped(torch.nn.Module):
    """The arena model as the reference's ``wmodel``: logits, feature map, nothing."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.net = model
        self.module = SimpleNamespace(classifier=model.fc)

    def forward(self, x):
        return self.net(x), self.net.forward_features(x), None


def trial(reference, seed: int, batch: int = 8, size: int = 32) -> dict[str, float]:
    torch.manual_seed(seed)
    model = timm.create_model("resnet8_tiny_cifar", num_classes=5)
    with torch.no_grad():  # a spread of class maps (an untrained model's are near flat)
        model.fc.weight.mul_(20.0)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(100 + seed))
    y = torch.randint(0, 5, (batch,), generator=torch.Generator().manual_seed(200 + seed))

    drawn = []
    boxes = arena_snapmix.cutmix_boxes

    def recording(lam, height, width, rows, cols):
        drawn.append((float(lam[0]), int(rows[0]), int(cols[0])))
        return boxes(lam, height, width, rows, cols)

    arena_snapmix.cutmix_boxes = recording
    try:
        model.train()
        mixer = FeatureMixer(
            arena_snapmix.SnapMix(), model, feature_stages(model, 3), pairing="permute"
        )
        view = TrainModelView(model, y, contextlib.nullcontext, torch.contiguous_format)
        mixed = mixer(x, y, torch.Generator().manual_seed(seed), torch.Generator(), view)
    finally:
        arena_snapmix.cutmix_boxes = boxes
    (lam, ra, ca), (lam1, rb, cb) = drawn
    partner = mixed.sources[:, 1].clone()

    module, _ops = reference
    betas, centres = iter([lam, lam1]), iter([ra, ca, rb, cb])
    module.np.random.rand = lambda *shape: np.zeros(shape or 1)
    module.np.random.beta = lambda a, b: next(betas)
    module.np.random.randint = lambda high: next(centres)
    randperm = torch.randperm
    torch.randperm = lambda n, **kwargs: partner.clone()
    try:
        model.eval()  # the arena's model view reads the maps in evaluation mode
        conf = SimpleNamespace(prob=1.0, beta=5.0, cropsize=size, netname="resnet")
        ref_x, _, _, ref_a, ref_b = module.snapmix(x.clone(), y, conf, _Wrapped(model))
    finally:
        torch.randperm = randperm
    return {
        "images": float((mixed.inputs - ref_x).abs().max()),
        "pasted": bool((mixed.inputs != x).any()),
        "weight_i": float((mixed.weights[:, 0] - ref_a).abs().max()),
        "weight_partner": float((mixed.weights[:, 1] - ref_b).abs().max()),
        "weights_sum_min": float(mixed.weights.sum(1).min()),
        "weights_sum_max": float(mixed.weights.sum(1).max()),
    }


def main(root: str, trials: int = 40) -> dict[str, object]:
    torch.set_num_threads(1)
    reference = _load_reference(Path(root))
    results = [trial(reference, seed) for seed in range(trials)]
    out: dict[str, object] = {
        "trials": trials,
        "trials_with_a_pasted_box": sum(r["pasted"] for r in results),
    }
    for key in ("images", "weight_i", "weight_partner"):
        out[f"max_abs_diff_{key}"] = max(r[key] for r in results)
    out["label_weight_sum_range"] = [
        min(r["weights_sum_min"] for r in results),
        max(r["weights_sum_max"] for r in results),
    ]
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1]), indent=2))
