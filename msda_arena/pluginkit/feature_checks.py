"""The conformance rules of feature methods (:class:`~msda_arena.api.contract.FeatureMixMethod`).

The method runs through the harness's own :class:`~msda_arena.train.feature_mixing.FeatureMixer`
on a stand-in timm-style model (:class:`StandInModel`: its stages keep features
constant per image and channel, so what a method did to them can be solved for) with
the trainer's :class:`~msda_arena.train.feature_mixing.TrainModelView` of it. Rules
(`conformance.FEATURE_RULES`): ``runs``, ``lam``, ``stage`` (an index of the model's stages),
``type``/``shape``/``dtype``/``device`` of ``(mixed, sources, weights)``, ``finite``,
``range`` (weights >= 0, sources rows of the batch), ``determinism`` (same generators,
same stage, features, sources and weights), ``vectorised`` (torch calls must not grow
with the batch) and ``from-batch``: every mixed element is a convex combination, with
one weight for all channels, of elements of the rows ``sources[i]`` of the features --
nothing from outside the batch, no noise, no rescaling.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from msda_arena.api.contract import FeatureMixMethod
from msda_arena.train.feature_mixing import (
    FeatureBatch,
    FeatureMixer,
    TrainModelView,
    feature_stages,
)
from msda_arena.train.mixing import contract_error

__all__ = [
    "StandInModel",
    "check_feature_determinism",
    "check_feature_outputs",
    "check_feature_vectorised",
    "check_from_batch",
    "run_feature",
]

# (batch, channels, height, width): RGB, one channel, non-square, a single sample.
_SIZES = ((16, 3, 32, 32), (5, 1, 24, 40), (1, 3, 8, 8))
_HOST_SEEDS = (0, 1, 2, 3)  # stage draws per size: several stages get exercised
_SCALING_BATCHES = (32, 256)
_MAX_EXTRA_CALLS = 16
_TOL = 1e-3
_EDGE_LAMS = (0.0, 1e-6, 0.25, 0.5, 0.75, 1.0 - 1e-6, 1.0)


class StandInModel(nn.Module):
    """A fixed, seeded timm-style model for the checks: stages ``stages.0`` (identity),
    ``stages.1`` and ``stages.2`` (2 x 2 average pooling each) listed in
    ``feature_info``, then global average pooling and a linear classifier ``fc``. Features
    constant per image and channel stay so at every stage."""

    def __init__(self, in_chans: int, num_classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        self.stages = nn.Sequential(nn.Identity(), nn.AvgPool2d(2, ceil_mode=True))
        self.stages.append(nn.AvgPool2d(2, ceil_mode=True))
        self.fc = nn.Linear(in_chans, num_classes)
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g))
            self.fc.bias.copy_(torch.randn(self.fc.bias.shape, generator=g))
        self.feature_info = [
            {"num_chs": in_chans, "reduction": 2**i, "module": f"stages.{i}"} for i in range(3)
        ]

    def get_classifier(self) -> nn.Module:
        """The classifier (timm's interface)."""
        return self.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map."""
        return self.stages(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x).mean(dim=(2, 3)))


def _gen(device: torch.device | str, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def run_feature(
    method: FeatureMixMethod,
    x: torch.Tensor,
    per_sample: bool,
    seed: int,
    host_seed: int,
    validate: bool = True,
) -> tuple[FeatureBatch, torch.Tensor, torch.Tensor]:
    """One harness step of ``method`` on ``x`` through a :class:`StandInModel`:
    ``(batch, features, mixed)``: the features at the chosen stage before and after
    the mix. A broken rule raises."""
    model = StandInModel(x.shape[1], num_classes=max(10, x.shape[0])).to(x.device)
    stages = feature_stages(model, x.shape[1])
    y = torch.arange(x.shape[0], device=x.device)
    mixer = FeatureMixer(method, model, stages, per_sample, "permute", validate)
    view = TrainModelView(model, y, contextlib.nullcontext, torch.contiguous_format)
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for stage in stages[1:]:  # the features before the mix: a hook that runs first
        module = model.get_submodule(stage.module)
        handles.append(module.register_forward_hook(partial_capture(seen, f"before{stage.index}")))
    try:
        batch = mixer(x, y, _gen(x.device, seed), _gen("cpu", host_seed), view)
        if batch.stage.index == 0:
            seen["before0"], seen["after"] = x, batch.inputs
        else:  # registered after the mixer's hook: sees the mixed output
            module = model.get_submodule(batch.stage.module)
            handles.append(module.register_forward_hook(partial_capture(seen, "after")))
        batch.loss(model(batch.inputs))  # the loss the trainer computes must work
    finally:
        for handle in handles:
            handle.remove()
    return batch, seen[f"before{batch.stage.index}"], seen["after"]


def partial_capture(seen: dict[str, torch.Tensor], key: str) -> Callable[..., None]:
    """A forward hook that stores the module's output under ``key``."""

    def hook(_module: nn.Module, _args: Any, output: torch.Tensor) -> None:
        seen[key] = output.detach()

    return hook


def _images(b: int, c: int, h: int, w: int, device: torch.device, seed: int) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=_gen("cpu", seed)).to(device)


def check_feature_outputs(method: FeatureMixMethod, device: torch.device) -> None:
    """Rules ``stage`` to ``range`` on several sizes, per-batch and per-sample lambdas,
    several stage draws, and the edge lambdas."""
    for i, (b, c, h, w) in enumerate(_SIZES):
        x = _images(b, c, h, w, device, seed=i)
        for per_sample in (False, True):
            for host_seed in _HOST_SEEDS:
                run_feature(method, x, per_sample, 10 + i, host_seed)
    lam = torch.tensor(_EDGE_LAMS, device=device)
    probe = _with_lams(method, lam)
    for host_seed in _HOST_SEEDS:
        run_feature(probe, _images(len(lam), 3, 16, 16, device, 7), True, 8, host_seed)


def _with_lams(method: FeatureMixMethod, lam: torch.Tensor) -> FeatureMixMethod:
    probe = copy.copy(method)
    probe.sample_lam = lambda n, generator, device=None: lam[:n]  # type: ignore[method-assign]
    return probe


def _identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal, NaN in the same places included (a NaN is the ``finite`` rule's business)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.is_floating_point():
        return torch.equal(a, b)
    return bool(torch.isclose(a, b, rtol=0.0, atol=0.0, equal_nan=True).all())


def check_feature_determinism(method: FeatureMixMethod, device: torch.device) -> None:
    """Rule ``determinism``: the same seeded generators give the same stage and outputs."""
    x = _images(8, 3, 16, 20, device, seed=3)
    for host_seed in _HOST_SEEDS:
        (b1, _, m1), (b2, _, m2) = (
            run_feature(method, x, True, 1234, host_seed, validate=False) for _ in range(2)
        )
        same = (
            b1.stage == b2.stage
            and _identical(m1, m2)
            and _identical(b1.sources, b2.sources)  # type: ignore[arg-type]
            and _identical(b1.weights, b2.weights)  # type: ignore[arg-type]
        )
        if not same:
            raise contract_error(
                "determinism",
                "stage() or mix() gave different results for the same inputs and seeded "
                "generators; draw all randomness from the generator arguments",
                contract=FeatureMixMethod.kind,
            )


def check_feature_vectorised(
    method: FeatureMixMethod,
    device: torch.device,
    counter: Callable[[], contextlib.AbstractContextManager[Any]],
) -> None:
    """Rule ``vectorised``: torch calls of a step (mix and the stand-in's forward) must
    not grow with the batch. ``counter()`` is the conformance module's call counter."""
    calls = []
    for b in _SCALING_BATCHES:
        x = _images(b, 3, 8, 8, device, seed=5)
        with counter() as count:
            run_feature(method, x, True, 6, 0, validate=False)
        calls.append(count.calls)  # type: ignore[attr-defined]
    (small_b, large_b), (small, large) = _SCALING_BATCHES, calls
    if large > small + _MAX_EXTRA_CALLS:
        raise contract_error(
            "vectorised",
            f"mix() makes {large} torch calls for {large_b} samples but {small} for {small_b}; "
            "work on the whole batch with batched tensor operations, not a loop per sample",
            contract=FeatureMixMethod.kind,
        )


def _coded(b: int, c: int, h: int, w: int, device: torch.device, seed: int) -> torch.Tensor:
    """Features constant per image and channel: channel 0 is 1, the rest random codes."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.rand(b, c, generator=g) * 2 - 1
    codes[:, 0] = 1.0
    return codes.view(b, c, 1, 1).expand(b, c, h, w).contiguous().to(device)


def check_from_batch(method: FeatureMixMethod, device: torch.device) -> None:
    """Rule ``from-batch``: solve each mixed element's weights on its declared sources
    from the codes (least squares over channels); they must fit exactly, lie in
    ``[0, 1]`` and sum to 1."""
    channels = 8
    for host_seed in _HOST_SEEDS:
        for attempt in range(2):
            x = _coded(8, channels, 16, 16, device, seed=9 + host_seed)
            batch, before, after = run_feature(method, x, True, 11, host_seed, validate=False)
            k = batch.sources.shape[1]  # type: ignore[union-attr]
            if k + 2 <= channels or attempt:
                break
            channels = k + 3  # enough codes to tell k sources apart
        _solve_convex(batch, before, after)


def _solve_convex(batch: FeatureBatch, before: torch.Tensor, after: torch.Tensor) -> None:
    if not bool(torch.isfinite(after).all()):
        raise contract_error(
            "from-batch",
            "not checked: the mixed features are not finite (see rule 'finite')",
            contract=FeatureMixMethod.kind,
        )
    b, c = after.shape[:2]
    codes = before.float().reshape(b, c, -1)[:, :, 0]  # [B, C]: constant per image
    sources = batch.sources.clamp(0, b - 1)  # type: ignore[union-attr]
    basis = codes[sources].transpose(1, 2).cpu().double()  # [B, C, k]
    target = after.float().reshape(b, c, -1).cpu().double()  # [B, C, P]
    solved = torch.linalg.lstsq(basis, target, driver="gelsd").solution  # [B, k, P]
    residual = float((basis @ solved - target).abs().max()) if target.numel() else 0.0
    outside = float(torch.maximum(-solved, solved - 1).clamp(min=0).max())
    total = float((solved.sum(dim=1) - 1).abs().max())
    if not (residual <= _TOL and outside <= _TOL and total <= _TOL):
        raise contract_error(
            "from-batch",
            "mixed features are not convex combinations of the features of the rows "
            f"sources[i] (misfit {residual:.3g}, weight outside [0, 1] by {outside:.3g}, "
            f"weights' sum off 1 by {total:.3g}); mix with one weight per element for all "
            "channels, from the listed sources only, and do not rescale or add to them",
            contract=FeatureMixMethod.kind,
        )
