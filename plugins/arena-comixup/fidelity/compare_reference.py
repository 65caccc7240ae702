"""Compare ``comixup`` with the official Co-Mixup code on identical inputs and draws.

Usage (the reference is not a dependency: point at a checkout of it)::

    git clone https://github.com/snu-mllab/Co-Mixup /tmp/comixup-ref
    git -C /tmp/comixup-ref checkout 2a7681601ee972892435ae080494a4f0907e595a
    python plugins/arena-comixup/fidelity/compare_reference.py /tmp/comixup-ref
    # the digests tests/test_reference.py checks against:
    python plugins/arena-comixup/fidelity/compare_reference.py --digests /tmp/comixup-ref

Each trial runs ``comixup`` through the arena's harness
(:class:`~msda_arena.train.feature_mixing.FeatureMixer`, with the trainer's
:class:`~msda_arena.train.feature_mixing.TrainModelView` of a seeded
``resnet8_tiny_cifar``) on a batch of images, records the draws it made (the Dirichlet
prior and the initial labels), and runs the reference on the same images, labels and
model with those draws: its saliency and compatibility matrix are computed by the
lines of its ``main.py`` that do so (read from the checkout and executed, the
``clean_lam == 0`` branch: evaluation mode, as the arena's model view), then its
``mixup.py:mixup_process`` (which calls ``match.py``) mixes the batch, with
``torch.distributions.dirichlet.Dirichlet(...).sample()`` and ``np.random.randint``
returning the arena's draws. Compared: the unary block costs (``cost_matrix`` after the
prior), the partitions' masks, the mixed images and the soft labels.

The reference runs on CUDA, where ``torch.topk`` keeps the lowest indices among values
tied with the k-th (ATen's ``gatherTopK``), as this package does; here it runs on the
CPU, whose ``topk`` chooses otherwise among ties, so its ``topk`` is replaced by the
CUDA rule except in the ``peaked-own-ties`` setting. Settings (:data:`SETTINGS`):
``reference`` (its own saliency by main.py's lines), ``aligned`` (given the arena's
saliency), ``peaked`` (a planted peaked saliency, like a trained model's, so that
outputs mix several inputs; an untrained model's nearly flat saliency makes nearly
every output a copy of one input), ``peaked-own-ties`` (the same with the CPU's
``topk``). ``.cuda()`` and ``device='cuda'`` are the CPU here (a stand-in ``torch``
namespace for ``match.py``); no reference file is changed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F

import msda_arena.models.cifar  # noqa: F401  (registers resnet8_tiny_cifar)
from msda_arena.train.feature_mixing import FeatureMixer, TrainModelView, feature_stages

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import arena_comixup

NUM_CLASSES = 10
#: reference: the reference's own saliency (main.py's lines); aligned: the arena's
#: saliency; peaked: a planted peaked saliency; peaked-own-ties: the same, with the
#: CPU's torch.topk among tied label counts (the others: CUDA's rule).
SETTINGS = ("reference", "aligned", "peaked", "peaked-own-ties")


def _module(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _Forward(types.ModuleType):
    """A namespace that forwards to a module, with some names replaced."""

    def __init__(self, module: types.ModuleType, **replaced) -> None:
        super().__init__(module.__name__)
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str):
        return getattr(self._module, name)


def _cpu(factory):
    def call(*args, device=None, **kwargs):
        return factory(*args, **kwargs)

    return call


class Reference:
    """The reference's ``match.py``, ``mixup.py`` and ``main.py``'s saliency lines, with
    their random draws and ``topk`` replaceable."""

    def __init__(self, root: Path) -> None:
        self.priors: list[torch.Tensor] = []
        self.inits: list[np.ndarray] = []
        self.costs: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        self.stable_ties = False
        ref = self

        class Dirichlet:  # the prior: the arena's draw for this partition
            def __init__(self, concentration):
                self.n = concentration.shape[0]

            def sample(self):
                prior = ref.priors.pop(0)
                assert prior.shape[0] == self.n
                return prior

        def randint(low, high, size):  # random_initialize: the arena's initial labels
            init = ref.inits.pop(0)
            assert init.shape == tuple(size) and int(init.max()) < high
            return init

        def topk(values, k):
            if not ref.stable_ties:
                return torch.topk(values, k=k)
            order = np.argsort(-values.numpy(), kind="stable")[:k]
            return values[order], torch.from_numpy(order)

        fake_torch = _Forward(
            torch,
            ones=_cpu(torch.ones),
            zeros=_cpu(torch.zeros),
            eye=_cpu(torch.eye),
            tensor=_cpu(torch.tensor),
            topk=topk,
            distributions=types.SimpleNamespace(
                dirichlet=types.SimpleNamespace(Dirichlet=Dirichlet)
            ),
        )
        fake_np = _Forward(np, random=types.SimpleNamespace(randint=randint))
        self.match = _module("match", root / "match.py")
        self.match.torch, self.match.np = fake_torch, fake_np
        self.mixup = _module("comixup_mixup", root / "mixup.py")
        solve = self.mixup.get_onehot_matrix

        def recording(cost_matrix, *args, **kwargs):
            mask = solve(cost_matrix, *args, **kwargs)
            ref.costs.append(cost_matrix.clone())  # the prior was added in place
            ref.masks.append(mask.clone())
            return mask

        self.mixup.get_onehot_matrix = recording
        self.utils = _module("comixup_utils", root / "utils.py")
        source = (root / "main.py").read_text()
        start = source.index("            # Calculate saliency (unary)")
        middle = source.index("            # Here, we calculate distance", start)
        end = source.index("A_dist = distance(z_idx_2d, dist_type='l1')", middle)
        end = source.index("\n", end)
        self.saliency_code = compile(textwrap.dedent(source[start:middle]), "main.py", "exec")
        self.distance_code = compile(textwrap.dedent(source[middle:end]), "main.py", "exec")

    def saliency(self, model, x, y):
        """``sc`` by main.py's lines (the ``clean_lam == 0`` branch: evaluation mode)."""
        scope = {
            "args": types.SimpleNamespace(clean_lam=0.0),
            "model": model,
            "input_var": x.clone().requires_grad_(True),
            "target_var": y,
            "criterion_batch": torch.nn.CrossEntropyLoss(reduction="none"),
            "torch": torch,
        }
        exec(self.saliency_code, scope)
        model.train()
        return scope["sc"].detach()

    def compatibility(self, sc):
        """``A_dist`` by main.py's lines."""
        scope = {
            "args": types.SimpleNamespace(batch_size=sc.shape[0]),
            "sc": sc,
            "torch": torch,
            "F": F,
            "distance": self.utils.distance,
        }
        exec(self.distance_code, scope)
        return scope["A_dist"]

    def mix(self, x, y, sc, a_dist, settings, block_num):
        args = types.SimpleNamespace(m_block_num=block_num, **vars_of(settings))
        target = F.one_hot(y, NUM_CLASSES).float()
        return self.mixup.mixup_process(x, target, args=args, sc=sc, A_dist=a_dist)


def vars_of(settings: arena_comixup.Settings) -> dict:
    out = {k: getattr(settings, k) for k in arena_comixup.Settings.__dataclass_fields__}
    out["mixup_alpha"] = 2.0
    return out


class _Planted:
    """A model view whose saliency is given (the ``peaked`` setting)."""

    def __init__(self, sc: torch.Tensor) -> None:
        self.sc = sc

    def saliency(self, images: torch.Tensor) -> torch.Tensor:
        return self.sc.clone()


def peaked_saliency(batch: int, size: int, seed: int) -> torch.Tensor:
    """Saliency like a trained model's: one to three Gaussian blobs per image (random
    centres, widths 2-6 px, heights 0.2-1) over a weak noise floor."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.arange(size).float()
    sc = 0.01 * torch.rand(batch, size, size, generator=g)
    for blob in range(3):
        keep = (torch.rand(batch, generator=g) < (1.0 if blob == 0 else 0.5)).float()
        cy, cx = (torch.rand(2, batch, generator=g) * size).unbind(0)
        width = 2 + 4 * torch.rand(batch, generator=g)
        height = 0.2 + 0.8 * torch.rand(batch, generator=g)
        d2 = (grid.view(1, -1, 1) - cy.view(-1, 1, 1)) ** 2 + (
            grid.view(1, 1, -1) - cx.view(-1, 1, 1)
        ) ** 2
        sc += (keep * height).view(-1, 1, 1) * torch.exp(-d2 / (2 * width.view(-1, 1, 1) ** 2))
    return sc


def arena_run(model, x, y, block_num, seed, planted=None):
    """comixup through the harness; its draws, saliency, masks and the batch."""
    seen = {}
    draw, step = arena_comixup.draw, arena_comixup.comixup_step

    def drawing(*args, **kwargs):
        seen["prior"], seen["init"] = draw(*args, **kwargs)
        return seen["prior"], seen["init"]

    def stepping(h, sc, prior, init, grid, settings):
        seen["sc"], seen["grid"] = sc, grid
        out = step(h, sc, prior, init, grid, settings)
        seen["masks"] = out[3]
        return out

    arena_comixup.draw, arena_comixup.comixup_step = drawing, stepping
    try:
        method = arena_comixup.CoMixup(m_block_num=block_num)
        mixer = FeatureMixer(method, model, feature_stages(model, 3))
        view = TrainModelView(model, y, contextlib.nullcontext, torch.contiguous_format)
        if planted is not None:
            view = _Planted(planted)
        batch = mixer(x, y, torch.Generator().manual_seed(seed), torch.Generator(), view)
    finally:
        arena_comixup.draw, arena_comixup.comixup_step = draw, step
    return seen, batch, arena_comixup._settings(method.values)


def _unit(sc: torch.Tensor) -> torch.Tensor:
    """Each map over its maximum."""
    return sc / sc.amax((1, 2), keepdim=True)


def trial(ref: Reference, seed: int, setting: str, batch: int, block_num: int) -> dict:
    torch.manual_seed(seed)
    model = timm.create_model("resnet8_tiny_cifar", num_classes=NUM_CLASSES).train()
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(100 + seed))
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=torch.Generator().manual_seed(7 + seed))
    peaked = setting.startswith("peaked")
    planted = peaked_saliency(batch, 32, 300 + seed) if peaked else None
    seen, out, settings = arena_run(model, x, y, block_num, seed, planted)
    sc_ref = ref.saliency(model, x, y) if planted is None else planted
    aligned = setting != "reference"
    sc = seen["sc"] if aligned else sc_ref
    a_dist = ref.compatibility(sc)
    part = settings.m_part
    ref.priors = [p.clone() for p in seen["prior"].split(part)]
    ref.inits = [i.numpy().copy() for i in seen["init"].split(part)]
    ref.costs, ref.masks = [], []
    ref.stable_ties = setting != "peaked-own-ties"
    ref_x, ref_y = ref.mix(x.clone(), y, sc.clone(), a_dist, settings, block_num)
    costs = arena_comixup.block_costs(seen["sc"], seen["grid"], seen["prior"], settings.m_eta)
    ref_costs = torch.cat(ref.costs)
    masks = [torch.from_numpy(m) for m in seen["masks"]]
    same_output = torch.cat(
        [(m == r).flatten(1).all(1) for m, r in zip(masks, ref.masks, strict=True)]
    )
    same_block = torch.cat(
        [(m == r).all(-1).flatten() for m, r in zip(masks, ref.masks, strict=True)]
    )
    targets = out.soft_targets(NUM_CLASSES)
    inputs_per_output = torch.cat([(m.sum((1, 2)) > 0).sum(-1) for m in masks]).float()
    return {
        "outputs": batch,
        "cost_max_abs_diff": float((costs - ref_costs).abs().max()),
        "saliency_rel_diff": float((_unit(seen["sc"]) - _unit(sc_ref)).abs().max()),
        "masks_equal": int(same_output.sum()),
        "blocks": int(same_block.numel()),
        "blocks_equal": int(same_block.sum()),
        "images_equal": int((out.inputs == ref_x).flatten(1).all(1).sum()),
        "images_max_abs_diff": float((out.inputs - ref_x).abs().max()),
        "labels_equal": int((targets == ref_y).all(1).sum()),
        "labels_max_abs_diff": float((targets - ref_y).abs().max()),
        "inputs_per_output": float(inputs_per_output.mean()),
        "half_blocks": int(sum(((m == 0.5).any(-1)).sum() for m in masks)),
    }


def summarise(results: list[dict]) -> dict:
    outputs = sum(r["outputs"] for r in results)
    blocks = sum(r["blocks"] for r in results)
    return {
        "batches": len(results),
        "outputs": outputs,
        "masks_equal_fraction": sum(r["masks_equal"] for r in results) / outputs,
        "blocks_equal_fraction": sum(r["blocks_equal"] for r in results) / blocks,
        "images_equal_fraction": sum(r["images_equal"] for r in results) / outputs,
        "images_max_abs_diff": max(r["images_max_abs_diff"] for r in results),
        "labels_equal_fraction": sum(r["labels_equal"] for r in results) / outputs,
        "labels_max_abs_diff": max(r["labels_max_abs_diff"] for r in results),
        "cost_max_abs_diff": max(r["cost_max_abs_diff"] for r in results),
        "saliency_max_diff_over_peak": max(r["saliency_rel_diff"] for r in results),
        "mean_inputs_per_output": float(np.mean([r["inputs_per_output"] for r in results])),
        "half_half_blocks_fraction": sum(r["half_blocks"] for r in results) / blocks,
    }


def main(root: str, trials: int = 20, batch: int = 50) -> dict:
    torch.set_num_threads(1)
    ref = Reference(Path(root))
    out = {}
    for setting in SETTINGS:
        results = []
        for seed in range(trials):
            block_num = (4, 4, 2, 8)[seed % 4]
            results.append(trial(ref, seed, setting, batch, block_num))
        out[setting] = summarise(results)
    return out


def digests(root: str) -> list[tuple[int, str, str]]:
    """The reference's outputs on ``tests/test_reference.py``'s cases, as its
    :data:`REFERENCE` rows (the reference with ties broken lowest index first)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import test_reference as cases

    torch.set_num_threads(1)
    ref = Reference(Path(root))
    ref.stable_ties = True
    rows = []
    for n, block_num in enumerate(cases.BLOCK_NUMS):
        x, y, sc, prior, init, _ = cases.case(n)
        settings = arena_comixup.Settings()
        ref.priors = [p.clone() for p in prior.split(settings.m_part)]
        ref.inits = [i.numpy().copy() for i in init.split(settings.m_part)]
        ref_x, ref_y = ref.mix(x.clone(), y, sc.clone(), ref.compatibility(sc), settings, block_num)
        rows.append((n, cases.digest(ref_x), cases.digest(ref_y)))
    return rows


if __name__ == "__main__":
    if sys.argv[1] == "--digests":
        for row in digests(sys.argv[2]):
            print(f"    {row},")
    else:
        print(json.dumps(main(sys.argv[1]), indent=2))
