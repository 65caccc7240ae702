"""The harness's step for feature methods (:class:`~msda_arena.api.contract.FeatureMixMethod`).

Per batch :class:`FeatureMixer` draws the lambdas and the partner index as
:class:`~msda_arena.train.mixing.Mixer` does, asks the method for a stage (with a CPU
generator: no device sync), and either mixes the images at once (stage 0) or
registers a one-shot forward hook on the module timm lists for that stage
(``model.feature_info``), which replaces the module's output by the method's mix
during the training forward. The returned :class:`FeatureBatch` computes the loss
``mean_i sum_j weights[i, j] * CE(logits_i, y[sources[i, j]])`` from what the method
returned.

Every call is checked as the other kinds are: the form of ``(mixed, sources,
weights)`` at once, and the values (lambdas in ``[0, 1]``, mixed features finite,
weights finite and >= 0, sources inside the batch) reduced on the device and judged at
the first call and at :meth:`~msda_arena.train.mixing.Mixer.raise_if_violated`.
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from msda_arena.api.contract import FeatureMixMethod, ModelView, Stage
from msda_arena.train.mixing import (
    MethodContractError,
    Mixer,
    Pairing,
    contract_error,
    pair_indices,
)
from msda_arena.train.saliency import class_activation_maps, evaluating, input_gradients

__all__ = [
    "FeatureBatch",
    "FeatureMixer",
    "TrainModelView",
    "check_feature_meta",
    "feature_stages",
]

_error = partial(contract_error, contract=FeatureMixMethod.kind)


def feature_stages(model: torch.nn.Module, in_chans: int) -> tuple[Stage, ...]:
    """The stages a feature method can mix at: the input (0), then one per entry of the
    timm model's ``feature_info`` (a list of dicts or timm's ``FeatureInfo``), in order.
    A model without ``feature_info`` offers the input only."""
    info: Any = getattr(model, "feature_info", None) or []
    entries = getattr(info, "info", info)  # timm's FeatureInfo keeps the dicts in .info
    stages = [Stage(0, "", int(in_chans), 1)]
    for i, entry in enumerate(entries, start=1):
        stages.append(
            Stage(i, str(entry["module"]), int(entry["num_chs"]), int(entry["reduction"]))
        )
    return tuple(stages)


def check_feature_meta(
    out: object, h: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rules ``type``, ``shape``, ``dtype`` and ``device`` of a feature method's
    ``(mixed, sources, weights)`` for features ``h``, in order; no sync."""
    if not (
        isinstance(out, tuple) and len(out) == 3 and all(isinstance(t, torch.Tensor) for t in out)
    ):
        raise _error("type", "mix() must return a tuple (mixed, sources, weights) of three tensors")
    mixed, sources, weights = out
    b = h.shape[0]
    if (
        mixed.shape != h.shape
        or sources.ndim != 2
        or sources.shape[0] != b
        or sources.shape[1] < 1
        or weights.shape != sources.shape
    ):
        raise _error(
            "shape",
            f"expected mixed {list(h.shape)}, sources [{b}, k] and weights [{b}, k] (k >= 1), "
            f"got {list(mixed.shape)}, {list(sources.shape)} and {list(weights.shape)}",
        )
    if mixed.dtype != h.dtype or sources.dtype != torch.long or not weights.is_floating_point():
        raise _error(
            "dtype",
            f"expected mixed {h.dtype} (the features' dtype), sources torch.int64 and "
            f"floating-point weights, got {mixed.dtype}, {sources.dtype} and {weights.dtype}",
        )
    if not (mixed.device == sources.device == weights.device == h.device):
        raise _error(
            "device",
            f"expected all three on {h.device}, got {mixed.device}, {sources.device} and "
            f"{weights.device}",
        )
    return mixed, sources, weights


def _summaries(
    mixed: torch.Tensor, sources: torch.Tensor, weights: torch.Tensor
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Two value records, each in ``[0, 1]`` exactly when valid, reduced without a sync:
    the weights' minimum (capped at 1; NaN when anything is not finite) and the sources'
    range divided by ``B - 1``."""
    lo, hi = torch.aminmax(weights.detach().float())
    finite = torch.isfinite(mixed.detach()).all() & torch.isfinite(hi)
    weight_rec = (torch.where(finite, lo.clamp(max=1.0), math.nan), torch.zeros_like(lo))
    s_lo, s_hi = torch.aminmax(sources.detach())
    scale = float(max(sources.shape[0] - 1, 1))
    return weight_rec, (s_lo.float() / scale, s_hi.float() / scale)


@dataclass
class FeatureBatch:
    """A batch a feature method mixes. At stage 0 ``inputs`` are the mixed images and
    ``sources``/``weights`` are set at once; at a later stage ``inputs`` are the
    images and the hook sets them during the forward."""

    inputs: torch.Tensor
    targets: torch.Tensor  # the batch's labels [B]
    lam: torch.Tensor
    stage: Stage
    sources: torch.Tensor | None = None  # [B, k] long
    weights: torch.Tensor | None = None  # [B, k] float

    def _mixed(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.sources is None or self.weights is None:
            raise RuntimeError(
                f"the model never ran module {self.stage.module!r} (stage {self.stage.index}), "
                "so nothing was mixed; the model's feature_info names a module its forward skips"
            )
        # Sources outside the batch are reported by the value check; clamp so the loss's
        # gather cannot fail first (on CUDA: a device-side assert).
        return self.sources.clamp(0, self.targets.shape[0] - 1), self.weights.float()

    def soft_targets(self, num_classes: int) -> torch.Tensor:
        """``sum_j weights[:, j] * onehot(y[sources[:, j]])``, float ``[B, num_classes]``
        (rows need not sum to 1)."""
        sources, weights = self._mixed()
        onehot = F.one_hot(self.targets[sources], num_classes).to(torch.float32)  # [B, k, K]
        return (weights.unsqueeze(2) * onehot).sum(dim=1)

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        """``mean_i sum_j weights[i, j] * CE(logits_i, y[sources[i, j]])``."""
        sources, weights = self._mixed()
        logp = F.log_softmax(logits.float(), dim=1)
        nll = -logp.gather(1, self.targets[sources])  # [B, k]
        return (weights * nll).sum(dim=1).mean()


class FeatureMixer(Mixer):
    """Mixes batches with one feature method under the harness's fixed rules.

    Args:
        method: the feature method.
        model: the module whose submodules the stages name (the eager model).
        stages: :func:`feature_stages` of ``model``.
        per_sample, pairing, validate: as for :class:`~msda_arena.train.mixing.Mixer`.

    Raises (from a call): :class:`~msda_arena.train.mixing.FeatureContractError` (rules
    ``lam``, ``stage``, ``type``, ``shape``, ``dtype``, ``device``; and ``finite``,
    ``range`` at the first call and at :meth:`raise_if_violated`), or
    :class:`~msda_arena.train.mixing.MethodError`.
    """

    def __init__(
        self,
        method: FeatureMixMethod,
        model: torch.nn.Module,
        stages: tuple[Stage, ...],
        per_sample: bool = False,
        pairing: Pairing = "flip",
        validate: bool = True,
    ) -> None:
        super().__init__(method, per_sample, pairing, validate)  # type: ignore[arg-type]
        self.feature_method = method
        self.model = model
        self.stages = stages
        self._handle: Any = None

    def _stage(self, host_generator: torch.Generator, call: int) -> Stage:
        method, stages = self.feature_method, self.stages
        raw = self._run("stage()", call, lambda: method.stage(stages, host_generator))
        index = None
        with contextlib.suppress(TypeError):  # an int, a NumPy integer, a CPU int tensor
            index = None if isinstance(raw, bool) else operator.index(raw)
        if index is None or not 0 <= index < len(stages):
            raise _error(
                "stage",
                f"stage() must return an int from 0 to {len(stages) - 1} (this model's "
                f"stages), got {raw!r}",
                self._where(call),
            )
        return stages[index]

    def __call__(  # type: ignore[override]
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
        host_generator: torch.Generator,
        model: ModelView | None = None,
    ) -> FeatureBatch:
        """Prepare the mixing of ``x`` ``[B, C, H, W]`` (labels ``y``): the lambdas, the
        partners, the stage, and the mix itself (stage 0) or its hook (later stages,
        fired by the next forward of the model). ``model`` is passed to a method that
        sets ``needs_model``."""
        if self._handle is not None:  # a hook whose forward never came (it raised)
            self._handle.remove()
            self._handle = None
        call = self._calls
        self._calls += 1
        method = self.feature_method
        n = x.shape[0] if self.per_sample else 1
        lam = self._draw_lam(n, generator, x.device, call)
        stage = self._stage(host_generator, call)
        partner = pair_indices(x.shape[0], self.pairing, generator, x.device)
        if method.needs_model and model is None:
            raise ValueError(f"method '{self._spec()}' needs the model; pass model=")
        view = model if method.needs_model else None
        batch = FeatureBatch(x, y, lam, stage)
        apply = partial(self._apply, batch, y, partner, lam, generator, view, call)
        if stage.index == 0:
            batch.inputs = apply(x)
            return batch
        module = self.model.get_submodule(stage.module)

        def hook(_module: torch.nn.Module, _args: Any, output: Any) -> torch.Tensor:
            self._handle.remove()  # one shot: only this batch's training forward
            self._handle = None
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"module {stage.module!r} returns {type(output).__name__}, not a tensor; "
                    "a feature method cannot mix there"
                )
            return apply(output)

        self._handle = module.register_forward_hook(hook)
        return batch

    def _apply(
        self,
        batch: FeatureBatch,
        y: torch.Tensor,
        partner: torch.Tensor,
        lam: torch.Tensor,
        generator: torch.Generator,
        view: ModelView | None,
        call: int,
        h: torch.Tensor,
    ) -> torch.Tensor:
        """The method's ``mix`` on features ``h``, checked and recorded; the mixed features."""
        method = self.feature_method
        out = self._run("mix()", call, lambda: method.mix(h, y, partner, lam, generator, view))
        if self._validate:
            self._judge(call, lam, lambda: check_feature_meta(out, h), lambda: _summaries(*out))
        mixed, batch.sources, batch.weights = out
        return mixed

    def _value_error(
        self, row: int, lo: float, hi: float, where: str
    ) -> MethodContractError | None:
        if row == 1:  # the weights' minimum, NaN when anything was not finite
            if not math.isfinite(lo):
                return _error(
                    "finite", "mixed features or label weights contain NaN or infinity", where
                )
            return _error("range", f"label weights must be >= 0, found {lo:.4g}", where)
        if row == 2:
            return _error("range", "sources must be row indices of the batch", where)
        return super()._value_error(row, lo, hi, where)


class TrainModelView:
    """The :class:`~msda_arena.api.contract.ModelView` the trainer gives a feature method
    for one batch (labels ``y``): the eager model in evaluation mode (training mode
    restored after), under the step's autocast, inside the step and so inside the
    cell's time."""

    def __init__(
        self,
        model: torch.nn.Module,
        y: torch.Tensor,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]],
        memory_format: torch.memory_format,
    ) -> None:
        self._model, self._y, self._autocast, self._format = model, y, autocast, memory_format

    def saliency(self, images: torch.Tensor) -> torch.Tensor:
        """The input-gradient saliency ``[B, H, W]`` (:data:`~msda_arena.api.contract.Saliency`)."""
        with self._evaluating(images) as x:
            return input_gradients(self._model, x, self._y, "rms")

    def cam(self, images: torch.Tensor) -> torch.Tensor:
        """Class activation maps ``[B, num_classes, h, w]``, float32."""
        with self._evaluating(images) as x:
            return class_activation_maps(self._model, x)

    def _evaluating(self, images: torch.Tensor) -> contextlib.AbstractContextManager[torch.Tensor]:
        return evaluating(
            self._model, self._y, images, self._autocast, self._format, "the model view"
        )
