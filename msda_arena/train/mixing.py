"""The harness's mixing step, identical for every method.

Given a batch ``(x, y)`` and a method, :class:`Mixer` pairs each sample with a
partner (the reversed batch, as the reference code does, or a random permutation),
draws lambdas and masks (one per batch, as the reference code does, or one per
sample), mixes ``x~ = M * x_i + (1 - M) * x_j`` and weighs the labels with each mask's
true mean ``w = mean(M)``. Everything stays on the batch's device.

A mixing method (:class:`~msda_arena.api.contract.MixMethod`) gets the partner index and
the lambdas and returns the mixed inputs and the label weights itself; the harness
checks them the same way (the weights in ``[0, 1]``, the inputs finite) and mixes the
labels and the loss exactly as for a mask method.

Every batch's lambdas and masks are checked against the contract without a host
sync per step (:class:`Mixer`'s ``validate``); a method whose code raises fails with
:class:`MethodError`.

The trainer and :func:`msda_arena.mixer` (a user's own loop) both mix through
:class:`Mixer` and :meth:`MixedBatch.soft_targets`: one implementation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F

from msda_arena.api.contract import FeatureMixMethod, MaskMethod, Method, MixMethod, Saliency
from msda_arena.api.errors import ArenaError
from msda_arena.train import interrupts

__all__ = [
    "FeatureContractError",
    "MaskContractError",
    "MethodContractError",
    "MethodError",
    "MixContractError",
    "MixedBatch",
    "Mixer",
    "contract_error",
    "pair_indices",
    "validate_masks",
]

Pairing = Literal["flip", "permute"]

# Per-call value records are folded into the first-violation state every this many
# calls, so a long run keeps a few tensors, not one per step.
_FOLD_EVERY = 256


class MethodContractError(ArenaError):
    """A method returned lambdas, masks or a mixed batch that break its kind's contract:
    a :class:`MaskContractError`, :class:`MixContractError` or
    :class:`FeatureContractError` (made by :func:`contract_error`).

    The message names the rule and, when the harness was mixing, the batch:
    ``mask contract rule 'range' failed at batch 17 (epoch 2): mask values must lie
    in [0, 1], found [0, 255]``.

    Attributes:
        rule: the broken rule (see :data:`msda_arena.pluginkit.conformance.RULES`).
        detail: what was wrong, without the rule and batch.
        where: the batch, e.g. ``"batch 17 (epoch 2)"``; empty outside training.
        contract: ``"mask"``, ``"mix"`` or ``"feature"``, the method's kind.
    """

    def __init__(
        self, rule: str, message: str, where: str = "", contract: str = MaskMethod.kind
    ) -> None:
        at = f" at {where}" if where else ""
        super().__init__(f"{contract} contract rule '{rule}' failed{at}: {message}")
        self.rule = rule
        self.detail = message
        self.where = where
        self.contract = contract

    def at(self, where: str, contract: str | None = None) -> MethodContractError:
        """The same violation, located at ``where`` (a batch), of ``contract`` if given."""
        return contract_error(self.rule, self.detail, where, contract or self.contract)


class MaskContractError(MethodContractError):
    """A mask method's lambdas or masks break the mask contract."""


class MixContractError(MethodContractError):
    """A mixing method's ``(mixed, weight)`` (or lambdas) break the mixing contract."""


class FeatureContractError(MethodContractError):
    """A feature method's stage, ``(mixed, sources, weights)`` (or lambdas) break the
    feature contract."""


def contract_error(
    rule: str, message: str, where: str = "", contract: str = MaskMethod.kind
) -> MethodContractError:
    """The error of ``contract``'s kind: :class:`MixContractError` for ``"mix"``,
    :class:`FeatureContractError` for ``"feature"``, else :class:`MaskContractError`."""
    kinds = {MixMethod.kind: MixContractError, FeatureMixMethod.kind: FeatureContractError}
    return kinds.get(contract, MaskContractError)(rule, message, where, contract)


class MethodError(ArenaError):
    """A method's own code (``sample_lam`` or ``masks``) raised; the cell fails.

    Covers any exception, ``SystemExit`` and a ``KeyboardInterrupt`` that did not come
    from the user's Ctrl-C (see :mod:`msda_arena.train.interrupts`). The message names the
    method, the call, the batch and the original exception, which is also chained as
    ``__cause__``: ``method 'boom' raised SystemExit(3) in masks() at batch 4 (epoch 1)``.
    """

    #: The conformance rule a raising method breaks.
    rule = "runs"

    def __init__(self, spec: str, call: str, where: str, original: BaseException) -> None:
        super().__init__(f"method '{spec}' raised {original!r} in {call} at {where}")
        self.spec = spec
        self.call = call
        self.where = where
        self.original = original


def _check_lam_meta(lam: object, n: int, device: torch.device) -> None:
    """Rule ``lam``, the part that needs no sync: a float tensor ``[n]`` on ``device``."""
    if not isinstance(lam, torch.Tensor):
        raise contract_error(
            "lam", f"sample_lam({n}) returned {type(lam).__name__}, not a torch.Tensor"
        )
    if tuple(lam.shape) != (n,):
        raise contract_error(
            "lam", f"sample_lam({n}) must return shape [{n}], got {list(lam.shape)}"
        )
    if not lam.is_floating_point() or lam.device != device:
        raise contract_error(
            "lam",
            f"sample_lam({n}) must return floats on {device}, got {lam.dtype} on {lam.device}",
        )


def _check_mask_meta(
    masks: object, batch: int, height: int, width: int, device: torch.device
) -> None:
    """Rules ``type``, ``shape``, ``dtype`` and ``device``, in order; no sync."""
    if not isinstance(masks, torch.Tensor):
        raise contract_error("type", f"masks() returned {type(masks).__name__}, not a torch.Tensor")
    if tuple(masks.shape) != (batch, 1, height, width):
        raise contract_error(
            "shape", f"expected [{batch}, 1, {height}, {width}], got {list(masks.shape)}"
        )
    if not masks.is_floating_point():
        raise contract_error("dtype", f"expected a floating-point tensor, got {masks.dtype}")
    if masks.device != device:
        raise contract_error("device", f"expected masks on {device}, got {masks.device}")


def _check_mix_meta(out: object, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rules ``type``, ``shape``, ``dtype`` and ``device`` of a mixing method's
    ``(mixed, weight)``, in order; no sync."""
    b, error = x.shape[0], partial(contract_error, contract=MixMethod.kind)
    if not (
        isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)
    ):
        raise error("type", "mix() must return a tuple (mixed, weight) of two tensors")
    mixed, weight = out
    if mixed.shape != x.shape or tuple(weight.shape) != (b,):
        raise error(
            "shape",
            f"expected mixed {list(x.shape)} and weight [{b}], got "
            f"{list(mixed.shape)} and {list(weight.shape)}",
        )
    if mixed.dtype != x.dtype or not weight.is_floating_point():
        raise error(
            "dtype",
            f"expected mixed {x.dtype} (the inputs' dtype) and a floating-point weight, got "
            f"{mixed.dtype} and {weight.dtype}",
        )
    if mixed.device != x.device or weight.device != x.device:
        raise error(
            "device", f"expected both on {x.device}, got {mixed.device} and {weight.device}"
        )
    return mixed, weight


def _mix_summary(mixed: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The weights' min and max, both NaN when ``mixed`` is not all finite: what the
    value rules of a mixing method need, reduced on the device without a sync."""
    lo, hi = torch.aminmax(weight.detach().float())
    finite = torch.isfinite(mixed.detach()).all()
    nan = torch.full_like(lo, math.nan)
    return torch.where(finite, lo, nan), torch.where(finite, hi, nan)


def _mask_value_error(
    lo: float, hi: float, where: str = "", contract: str = MaskMethod.kind
) -> MethodContractError | None:
    """Rules ``finite`` then ``range`` from the masks' (a mixing method's label
    weights') min and max (NaN propagates)."""
    if contract == MixMethod.kind:
        what, finite = "label weights", "mixed inputs or label weights contain NaN or infinity"
    else:
        what, finite = "mask values", "masks contain NaN or infinity"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return contract_error("finite", finite, where, contract)
    if lo < 0.0 or hi > 1.0:
        return contract_error(
            "range", f"{what} must lie in [0, 1], found [{lo:.4g}, {hi:.4g}]", where, contract
        )
    return None


def validate_masks(
    masks: object, batch: int, height: int, width: int, device: torch.device | str
) -> None:
    """Raise :class:`MaskContractError` unless ``masks`` honours the contract.

    Rules, in order: ``type`` (a tensor), ``shape`` (``[batch, 1, H, W]``), ``dtype``
    (floating point), ``device`` (the lambdas' device), ``finite`` and ``range``
    (``[0, 1]``). The value checks sync with the device once.
    """
    _check_mask_meta(masks, batch, height, width, torch.device(device))
    assert isinstance(masks, torch.Tensor)
    lo, hi = torch.stack(torch.aminmax(masks.detach())).tolist()
    error = _mask_value_error(lo, hi)
    if error is not None:
        raise error


def pair_indices(
    n: int, mode: Pairing, generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """Partner index of each sample: ``flip`` (reversed batch) or ``permute`` (random)."""
    if mode == "flip":
        return torch.arange(n - 1, -1, -1, device=device)
    if mode == "permute":
        return torch.randperm(n, generator=generator, device=device)
    raise ValueError(f"pairing must be 'flip' or 'permute', got {mode!r}")


def _smoothed_one_hot(y: torch.Tensor, num_classes: int, on: float, off: float) -> torch.Tensor:
    """Float32 ``[B, num_classes]``: ``on`` at each label, ``off`` elsewhere."""
    out = torch.full((y.shape[0], num_classes), off, dtype=torch.float32, device=y.device)
    return out.scatter_(1, y.long().view(-1, 1), on)


@dataclass
class MixedBatch:
    """A mixed batch: inputs plus both label sets and the weight of the first."""

    inputs: torch.Tensor
    targets: torch.Tensor
    partner_targets: torch.Tensor
    weight: torch.Tensor  # [B], mean of each sample's mask = weight of ``targets``
    lam: torch.Tensor  # the drawn lambdas, [B] per sample or [1] per batch
    masks: torch.Tensor | None  # [B or 1, 1, H, W]; None for a mixing method

    def soft_targets(self, num_classes: int, label_smoothing: float = 0.0) -> torch.Tensor:
        """``w * onehot(y_i) + (1 - w) * onehot(y_j)`` as float32 ``[B, num_classes]``.

        With ``label_smoothing`` ``s``, each one-hot is smoothed first as timm's
        ``mixup_target`` does: ``1 - s + s / num_classes`` on the class, ``s / num_classes``
        elsewhere; every row sums to 1. What :func:`msda_arena.mixer` returns."""
        off = label_smoothing / num_classes
        on = 1.0 - label_smoothing + off
        a = _smoothed_one_hot(self.targets, num_classes, on, off)
        b = _smoothed_one_hot(self.partner_targets, num_classes, on, off)
        w = self.weight.view(-1, 1)
        return a * w + b * (1.0 - w)

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy against the soft targets (computed without one-hot)."""
        logp = F.log_softmax(logits.float(), dim=1)
        la = -logp.gather(1, self.targets.view(-1, 1)).squeeze(1)
        lb = -logp.gather(1, self.partner_targets.view(-1, 1)).squeeze(1)
        return (self.weight * la + (1.0 - self.weight) * lb).mean()


class Mixer:
    """Mixes batches with one method under the harness's fixed rules.

    Args:
        method: the mask method or mixing method.
        per_sample: one lambda and mask per sample; default one per batch, as the
            reference implementations do.
        pairing: ``"flip"`` pairs sample i with sample B-1-i (reference); ``"permute"``
            pairs with a random permutation.
        validate: check every batch's lambdas and masks against the contract. Type,
            shape, dtype and device fail the call at once; the values (finite, in
            ``[0, 1]``) are reduced on the device and fail at the first call and at
            :meth:`raise_if_violated`, so a training loop stays free of per-step syncs.
            Call :meth:`raise_if_violated` now and then (the trainer does each epoch).

    Raises (from a call):
        MaskContractError: a broken rule; the message names the batch.
        MethodError: the method's code raised.
    """

    def __init__(
        self,
        method: Method,
        per_sample: bool = False,
        pairing: Pairing = "flip",
        validate: bool = True,
    ) -> None:
        if pairing not in ("flip", "permute"):
            raise ValueError(f"pairing must be 'flip' or 'permute', got {pairing!r}")
        self.method = method
        self.contract = method.kind
        self.per_sample = per_sample
        self.pairing = pairing
        self._validate = validate
        self._calls = 0
        self._epochs: list[tuple[int, int]] = []  # (first call of the epoch, its number)
        # Per call: [lam min, lam max, mask min, mask max] on the device, not yet folded.
        self._pending: list[torch.Tensor] = []
        self._pending_base = 0  # the call that _pending[0] belongs to
        # The first offending call of (lam, masks), -1 if none, and its [min, max].
        self._first: torch.Tensor | None = None
        self._found: torch.Tensor | None = None

    def start_epoch(self, epoch: int) -> None:
        """Number the following batches from 1 as part of ``epoch`` in error messages."""
        self._epochs.append((self._calls, epoch))

    def _where(self, call: int) -> str:
        for start, epoch in reversed(self._epochs):
            if call >= start:
                return f"batch {call - start + 1} (epoch {epoch})"
        return f"batch {call + 1}"

    def _spec(self) -> str:
        try:
            return self.method.spec
        except Exception:
            return getattr(self.method, "name", "") or type(self.method).__name__

    def _record(
        self,
        call: int,
        lam: torch.Tensor,
        values: tuple[torch.Tensor, torch.Tensor],
        *more: tuple[torch.Tensor, torch.Tensor],
    ) -> None:
        """Queue this call's value summary (the lambdas' min and max, and ``values``: the
        masks' or the label weights' min and max, then any ``more`` pairs a kind checks,
        each in ``[0, 1]`` when valid): reductions and a stack, no sync."""
        lam_lo, lam_hi = torch.aminmax(lam.detach())
        pairs = ((lam_lo, lam_hi), values, *more)
        if not self._pending:
            self._pending_base = call
        self._pending.append(torch.stack([v.float() for pair in pairs for v in pair]))
        if len(self._pending) >= _FOLD_EVERY:
            self._fold()

    def _fold(self) -> None:
        """Merge the queued records into the first-violation state, on the device."""
        if not self._pending:
            return
        calls = len(self._pending)
        s = torch.stack(self._pending).view(calls, -1, 2)  # [calls, rows, (min, max)]
        rows = s.shape[1]
        self._pending = []
        bad = ~((s >= 0) & (s <= 1)).all(dim=2)  # [calls, rows]; NaN compares false: bad
        row = bad.int().argmax(dim=0)  # the first offending call in this chunk (0 if none)
        found = s.gather(0, row.view(1, rows, 1).expand(1, rows, 2)).squeeze(0)  # [rows, 2]
        first = torch.where(bad.any(dim=0), row + self._pending_base, -1)
        if self._first is None or self._found is None:
            self._first, self._found = first, found
            return
        new = (self._first < 0) & (first >= 0)
        self._first = torch.where(new, first, self._first)
        self._found = torch.where(new.view(rows, 1), found, self._found)

    def raise_if_violated(self) -> None:
        """Raise :class:`MethodContractError` for the first batch so far whose lambdas or
        masks broke a value rule (``lam``, ``finite``, ``range``); one host sync.

        The error names the rule and the batch, e.g. ``mask contract rule 'range'
        failed at batch 17 (epoch 2): mask values must lie in [0, 1], found [0, 255]``.
        """
        self._fold()
        if self._first is None or self._found is None:
            return
        rows = self._first.shape[0]
        values = torch.cat([self._first.double(), self._found.double().flatten()]).tolist()
        firsts = values[:rows]  # the one sync above
        offending = [(int(f), r) for r, f in enumerate(firsts) if f >= 0]
        if not offending:
            return
        # The earliest call wins; on a tie the lambdas, which the rest was made from.
        first, row = min(offending)
        lo, hi = values[rows + 2 * row], values[rows + 2 * row + 1]
        error = self._value_error(row, lo, hi, self._where(first))
        if error is not None:
            raise error

    def _value_error(
        self, row: int, lo: float, hi: float, where: str
    ) -> MethodContractError | None:
        """The error of a value record's ``row`` (0: the lambdas) found at ``[lo, hi]``."""
        if row == 0:
            return contract_error(
                "lam",
                f"sample_lam() values must be finite and lie in [0, 1], found [{lo:.4g}, {hi:.4g}]",
                where,
                self.contract,
            )
        return _mask_value_error(lo, hi, where, self.contract)

    def _run(self, call_name: str, call: int, fn: Callable[[], Any]) -> Any:
        """``fn()``, with anything it raises (but the user's Ctrl-C) as :class:`MethodError`."""
        try:
            return fn()
        except BaseException as exc:
            if interrupts.from_user(exc):
                raise
            raise MethodError(self._spec(), call_name, self._where(call), exc) from exc

    def _judge(
        self,
        call: int,
        lam: torch.Tensor,
        check: Callable[[], object],
        records: Callable[[], tuple[tuple[torch.Tensor, torch.Tensor], ...]],
    ) -> None:
        """One call's contract checks, the same for every kind: ``check()`` (the form
        rules, no sync; its error names this batch), then ``records()`` (the value
        records, see :meth:`_record`) queued, and judged at once on the first call (a
        broken method fails at once, for one sync)."""
        try:
            check()
        except MethodContractError as exc:
            raise exc.at(self._where(call)) from None
        self._record(call, lam, *records())
        if call == 0:
            self.raise_if_violated()

    def _draw_lam(
        self, n: int, generator: torch.Generator, device: torch.device, call: int
    ) -> torch.Tensor:
        """This call's ``n`` lambdas from the method, their metadata checked (no sync)."""
        method = self.method
        lam = self._run("sample_lam()", call, lambda: method.sample_lam(n, generator, device))
        if self._validate:
            try:
                _check_lam_meta(lam, n, device)
            except MethodContractError as exc:
                raise exc.at(self._where(call), self.contract) from None
        return lam

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
        saliency: Saliency | None = None,
    ) -> MixedBatch:
        """Mix ``x`` ``[B, C, H, W]`` with labels ``y`` ``[B]`` drawing from ``generator``.

        ``saliency`` is passed to a mixing method that sets ``needs_saliency`` (the
        trainer gives the current model's, see :meth:`msda_arena.train.loop.TrainStep`)."""
        b, _, h, w = x.shape
        n = b if self.per_sample else 1
        call = self._calls
        self._calls += 1
        method = self.method
        lam = self._draw_lam(n, generator, x.device, call)
        if isinstance(method, MixMethod):
            return self._mix(method, x, y, lam, generator, saliency, call)
        masks = self._run("masks()", call, lambda: method.masks(lam, h, w, generator))
        if self._validate:
            self._judge(
                call,
                lam,
                lambda: _check_mask_meta(masks, n, h, w, x.device),
                lambda: (torch.aminmax(masks.detach()),),
            )
        idx = pair_indices(b, self.pairing, generator, x.device)
        weight = masks.mean(dim=(1, 2, 3), dtype=torch.float32).expand(b)  # [1] -> [B] per batch
        mixed = torch.lerp(x[idx], x, masks.to(x.dtype))
        return MixedBatch(mixed, y, y[idx], weight, lam, masks)

    def _mix(
        self,
        method: MixMethod,
        x: torch.Tensor,
        y: torch.Tensor,
        lam: torch.Tensor,
        generator: torch.Generator,
        saliency: Saliency | None,
        call: int,
    ) -> MixedBatch:
        """A mixing method's step: partner, ``mix()``, its checks, the labels."""
        idx = pair_indices(x.shape[0], self.pairing, generator, x.device)
        if method.needs_saliency and saliency is None:
            raise ValueError(f"method '{self._spec()}' needs saliency; pass saliency=")
        given = saliency if method.needs_saliency else None
        out = self._run("mix()", call, lambda: method.mix(x, y, idx, lam, generator, given))
        if self._validate:
            self._judge(call, lam, lambda: _check_mix_meta(out, x), lambda: (_mix_summary(*out),))
        mixed, weight = out
        return MixedBatch(mixed, y, y[idx], weight.float(), lam, None)
