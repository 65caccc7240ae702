"""Compare ``manifold-mixup`` with the official Manifold Mixup code on identical inputs.

Usage (the reference is not a dependency: point at a checkout of it)::

    git clone https://github.com/vikasverma1077/manifold_mixup /tmp/manifold_mixup
    git -C /tmp/manifold_mixup checkout 870ef77caaa5092144d82c56f26b07b29eefabec
    python plugins/arena-manifold-mixup/fidelity/compare_reference.py /tmp/manifold_mixup

For each trial it builds the reference's ``preactresnet18`` (``supervised/models/
preresnet.py``) and the arena's ``preactresnet18_cifar`` with the same weights, lets the
arena's harness (:class:`~msda_arena.train.feature_mixing.FeatureMixer`) draw lambda, the
stage and the partners for ``manifold-mixup``, and hands exactly those draws to the
reference's ``forward(..., mixup_hidden=True)`` (its ``random.randint``,
``get_lambda`` and ``np.random.permutation`` are replaced by the drawn values). It
prints, as JSON, the largest absolute differences over all trials between

* the mixed hidden features where the reference mixes (the input of its next layer),
* the logits (both models in training mode: BatchNorm uses the mixed batch's statistics),
* the reference's ``target_reweighted`` and the harness's soft targets.

It needs the reference's imports (numpy, matplotlib, torchvision) and runs on the CPU
(the reference calls ``.cuda()``; that is made a no-op here).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import timm
import torch

import msda_arena.models.cifar  # noqa: F401  (registers preactresnet18_cifar)
from msda_arena.train.feature_mixing import FeatureMixer, feature_stages

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from arena_manifold_mixup import ManifoldMixup


def _load_reference(root: Path):
    sys.path[:0] = [str(root / "supervised"), str(root / "supervised" / "models")]
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # the reference is CUDA-only
    import preresnet  # the reference's module

    return preresnet


def _arena_state(reference_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's parameter names in the arena model's: layerN -> stages.N-1,
    shortcut.0 -> shortcut, linear -> fc."""
    out = {}
    for name, value in reference_state.items():
        if name.startswith("layer"):
            stage, rest = name[5:].split(".", 1)
            name = f"stages.{int(stage) - 1}.{rest}"
        out[name.replace("shortcut.0.", "shortcut.").replace("linear.", "fc.")] = value
    return out


def _capture_input(module: torch.nn.Module, seen: dict, key: str):
    def hook(_module, args):
        seen[key] = args[0].detach().clone()

    return module.register_forward_pre_hook(hook)


def trial(preresnet, seed: int, batch: int = 8) -> dict[str, float]:
    """One batch: the same weights, images and draws through both; the differences."""
    torch.manual_seed(seed)
    ref = preresnet.preactresnet18(num_classes=10)
    arena = timm.create_model("preactresnet18_cifar", num_classes=10)
    arena.load_state_dict(_arena_state(ref.state_dict()))
    ref.train()
    arena.train()
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(100 + seed))
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(200 + seed))

    method = ManifoldMixup()  # alpha 2.0, layers (0, 1, 2): the reference's mixup_hidden
    mixer = FeatureMixer(method, arena, feature_stages(arena, 3), pairing="permute")
    draws = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    seen: dict[str, torch.Tensor] = {}
    mixed = mixer(x, y, *draws)
    k = mixed.stage.index
    after = {0: arena.conv1, 1: arena.stages[1], 2: arena.stages[2]}[k]
    handle = _capture_input(after, seen, "arena")
    logits = arena(mixed.inputs)
    handle.remove()
    lam = float(mixed.lam[0])
    perm = mixed.sources[:, 1].numpy()

    preresnet.random.randint = lambda a, b: k  # the reference's layer_mix draw
    preresnet.get_lambda = lambda alpha: lam
    np.random.permutation = lambda n: perm.copy()
    after_ref = {0: ref.conv1, 1: ref.layer2, 2: ref.layer3}[k]
    handle = _capture_input(after_ref, seen, "reference")
    ref_logits, ref_targets = ref(x, y, mixup_hidden=True, mixup_alpha=2.0)
    handle.remove()
    return {
        "stage": k,
        "features": float((seen["arena"] - seen["reference"]).abs().max()),
        "logits": float((logits - ref_logits).detach().abs().max()),
        "targets": float((mixed.soft_targets(10) - ref_targets).abs().max()),
    }


def main(root: str, trials: int = 30) -> dict[str, object]:
    torch.set_num_threads(1)
    random.seed(0)
    preresnet = _load_reference(Path(root))
    results = [trial(preresnet, seed) for seed in range(trials)]
    summary = {
        "trials": trials,
        "stages": sorted({r["stage"] for r in results}),
        "stage_counts": {s: sum(r["stage"] == s for r in results) for s in (0, 1, 2)},
    }
    for key in ("features", "logits", "targets"):
        summary[f"max_abs_diff_{key}"] = max(r[key] for r in results)
    return summary


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1]), indent=2))
