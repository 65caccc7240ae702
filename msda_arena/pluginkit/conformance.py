"""Conformance checks of both method contracts, for ``arena check`` and plugin test suites.

In a plugin's own pytest suite::

    from msda_arena.pluginkit.conformance import assert_conforms

    def test_mymask_conforms():
        assert_conforms("mymask(k=3)")

Each rule is named; a failure says which rule broke and how. Rules of a mask method
(:data:`RULES`): ``runs``, ``lam``, ``type``, ``shape``, ``dtype``, ``device``,
``finite``, ``range``, ``determinism``, ``vectorised`` and ``label-weight``.

A mixing method (:data:`MIX_RULES`) is run on images this module supplies (with a
stand-in model's saliency when it asks for one) through the harness's own
:class:`~msda_arena.train.mixing.Mixer`: ``type``/``shape``/``dtype``/``device`` of
``(mixed, weight)``, ``finite``, ``range`` (the label weight in ``[0, 1]``),
``determinism``, ``vectorised`` (torch calls must not grow with the batch),
``convex``: every mixed pixel a convex combination of pixels of its two sources, with
one weight for all channels (:mod:`msda_arena.theory.mixprobe`), and ``pixel-share``:
the returned weight of ``y[i]`` equals the share of ``x[i]``'s pixels in the mixed
image (the mean of the per-pixel weights ``convex`` recovers), unless the method
declares ``weight_is_pixel_share = False`` with a ``weight_reason``; then the rule
passes and reports the gap.

:func:`preflight` runs the same rules but stops at the first failure; every rule
takes milliseconds for a conforming method, so an executor can afford it before a
method's first cell.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from msda_arena.api.contract import KINDS, FeatureMixMethod, MaskMethod, Method, MixMethod
from msda_arena.data.procedural import generate
from msda_arena.methods.registry import get_method
from msda_arena.pluginkit.feature_checks import (
    check_feature_determinism,
    check_feature_outputs,
    check_feature_vectorised,
    check_from_batch,
)
from msda_arena.store.results import load_results
from msda_arena.theory.mixprobe import (
    CodedBatch,
    code_batch,
    convexity_error,
    pixel_weights,
    stand_in_saliency,
    with_lams,
)
from msda_arena.train import interrupts
from msda_arena.train.mixing import MethodContractError, Mixer, contract_error, validate_masks

__all__ = [
    "FEATURE_RULES",
    "MIX_RULES",
    "ONE_CELL_TOML",
    "RULES",
    "CheckResult",
    "assert_conforms",
    "one_cell_run",
    "preflight",
    "rules_for",
    "run_checks",
]

# The rules both kinds are checked against, in order.
_SHARED_RULES = (
    "runs",
    "lam",
    "type",
    "shape",
    "dtype",
    "device",
    "finite",
    "range",
    "determinism",
    "vectorised",
)
#: The rules of a mask method, in order.
RULES = (*_SHARED_RULES, "label-weight")
#: The rules of a feature method, in order (:mod:`~msda_arena.pluginkit.feature_checks`).
FEATURE_RULES = (*_SHARED_RULES[:2], "stage", *_SHARED_RULES[2:], "from-batch")
#: The rules of a mixing method, in order.
MIX_RULES = (*_SHARED_RULES, "convex", "pixel-share")

# (batch, height, width): square, non-square, a single sample.
_SIZES = ((16, 32, 32), (5, 24, 40), (1, 8, 8))
_EDGE_LAMS = (0.0, 1e-6, 0.25, 0.5, 0.75, 1.0 - 1e-6, 1.0)
# Vectorisation is judged two ways on 64 vs 2048 samples of 4x4 pixels:
# 1. torch calls counted with a TorchFunctionMode must not grow with the batch
#    (deterministic, independent of machine load) -- catches loops of tensor ops;
# 2. time per extra sample must stay under _MAX_US_PER_SAMPLE unless the total grew
#    less than _MAX_SCALING times -- catches loops in plain Python or NumPy. Built-ins
#    cost ~0.2 us per extra sample; a loop costs several us per sample. On the CPU the
#    time is this thread's CPU time, which other processes on a loaded machine do not
#    inflate (wall-clock time did: built-ins measured 10-15 us per sample there).
_SCALING_BATCHES = (64, 2048)
_SCALING_SIZE = 4
_MAX_EXTRA_CALLS = 16
_MAX_SCALING = 8.0
_MAX_US_PER_SAMPLE = 10.0


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one rule."""

    rule: str
    passed: bool
    detail: str


def _device(device: torch.device | str) -> torch.device:
    """``device`` with its index: tensors on ``"cuda"`` report ``cuda:0``, and
    ``torch.device("cuda") != torch.device("cuda:0")``."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _gen(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def rules_for(method: Method) -> tuple[str, ...]:
    """The rules ``method`` is checked against: :data:`MIX_RULES` for a mixing method,
    :data:`FEATURE_RULES` for a feature method, :data:`RULES` for a mask method."""
    if isinstance(method, FeatureMixMethod):
        return FEATURE_RULES
    return MIX_RULES if isinstance(method, MixMethod) else RULES


def _resolve(method: Method | str) -> Method:
    if isinstance(method, tuple(KINDS.values())):
        return method  # type: ignore[return-value]

    return get_method(method)


def _check_lam(method: Method, device: torch.device) -> None:
    lam = method.sample_lam(64, _gen(device, 0), device)
    if not isinstance(lam, torch.Tensor):
        raise contract_error("lam", f"sample_lam returned {type(lam).__name__}, not a tensor")
    if tuple(lam.shape) != (64,):
        raise contract_error(
            "lam", f"sample_lam(64) returned shape {list(lam.shape)}, expected [64]"
        )
    if not lam.is_floating_point() or lam.device != device:
        raise contract_error(
            "lam", f"sample_lam must return floats on {device}, got {lam.dtype} on {lam.device}"
        )
    if not bool(torch.isfinite(lam).all()) or float(lam.min()) < 0 or float(lam.max()) > 1:
        raise contract_error("lam", "sample_lam returned values outside [0, 1] or not finite")


def _check_masks(method: MaskMethod, device: torch.device) -> None:
    for b, h, w in _SIZES:
        g = _gen(device, 1)
        lam = method.sample_lam(b, g, device)
        validate_masks(method.masks(lam, h, w, g), b, h, w, device)
    lam = torch.tensor(_EDGE_LAMS, device=device)
    validate_masks(method.masks(lam, 16, 16, _gen(device, 2)), len(_EDGE_LAMS), 16, 16, device)


def _check_determinism(method: MaskMethod, device: torch.device) -> None:
    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        g = _gen(device, 1234)
        lam = method.sample_lam(8, g, device)
        return lam, method.masks(lam, 16, 20, g)

    (l1, m1), (l2, m2) = draw(), draw()
    if not torch.equal(l1, l2):
        raise contract_error(
            "determinism", "sample_lam gave different lambdas for the same seeded generator"
        )
    if not torch.equal(m1, m2):
        raise contract_error(
            "determinism",
            "masks() gave different masks for the same seeded generator; draw all randomness "
            "from the generator argument",
        )


def _best_time(method: MaskMethod, batch: int, device: torch.device, repeats: int = 5) -> float:
    # CPU: the thread's CPU time, blind to time slices lost to other processes.
    clock = time.thread_time if device.type == "cpu" else time.perf_counter
    best = float("inf")
    g = _gen(device, 3)
    lam = method.sample_lam(batch, g, device)
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = clock()
        method.masks(lam, _SCALING_SIZE, _SCALING_SIZE, g)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, clock() - t0)
    return best


class _CallCounter(TorchFunctionMode):
    """Counts calls into torch (functions, methods, operators) while active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def _torch_calls(method: MaskMethod, batch: int, device: torch.device) -> int:
    g = _gen(device, 3)
    lam = method.sample_lam(batch, g, device)
    with _CallCounter() as counter:
        method.masks(lam, _SCALING_SIZE, _SCALING_SIZE, g)
    return counter.calls


def _check_call_growth(
    calls: Callable[[int], int], batches: tuple[int, int], call: str, contract: str
) -> None:
    """Rule ``vectorised`` by counting: ``calls(batch)`` torch calls must not grow
    with the batch by more than :data:`_MAX_EXTRA_CALLS`."""
    small_b, large_b = batches
    small, large = calls(small_b), calls(large_b)
    if large > small + _MAX_EXTRA_CALLS:
        raise contract_error(
            "vectorised",
            f"{call} makes {large} torch calls for {large_b} samples but {small} for "
            f"{small_b}; work on the whole batch with batched tensor operations, not a loop "
            "per sample",
            contract=contract,
        )


def _check_vectorised(method: MaskMethod, device: torch.device) -> None:
    _check_call_growth(
        lambda b: _torch_calls(method, b, device), _SCALING_BATCHES, "masks()", MaskMethod.kind
    )
    small_b, large_b = _SCALING_BATCHES
    for _attempt in range(2):  # a second look before blaming the method for a busy machine
        _best_time(method, small_b, device, repeats=2)  # warm-up
        small = _best_time(method, small_b, device)
        large = _best_time(method, large_b, device)
        ratio = large / max(small, 1e-7)
        per_sample_us = (large - small) / (large_b - small_b) * 1e6
        if ratio <= _MAX_SCALING or per_sample_us <= _MAX_US_PER_SAMPLE:
            return
    raise contract_error(
        "vectorised",
        f"masks() costs {per_sample_us:.1f} us per extra sample ({large_b} samples took "
        f"{ratio:.0f}x the time of {small_b}); compute all masks with tensor operations, "
        "not a Python loop per sample",
    )


def _check_label_weight(method: MaskMethod, device: torch.device) -> None:
    x = torch.rand(6, 3, 12, 10, generator=_gen(device, 4), device=device)
    y = torch.arange(6, device=device)
    for per_sample in (False, True):
        mixed = Mixer(method, per_sample=per_sample, pairing="permute", validate=False)(
            x, y, _gen(device, 5)
        )
        m = mixed.masks.expand(6, 1, 12, 10)
        expected_w = m.mean(dim=(1, 2, 3))
        if not torch.allclose(mixed.weight, expected_w, atol=1e-6):
            raise contract_error("label-weight", "label weights differ from the mask means")
        partner = x[mixed.partner_targets]  # y = arange: a label is its row
        expected_x = m * x + (1 - m) * partner
        if not torch.allclose(mixed.inputs, expected_x, atol=1e-5):
            raise contract_error("label-weight", "mixed inputs differ from M * x_i + (1 - M) * x_j")
        soft = mixed.soft_targets(6)
        if not torch.allclose(soft.sum(dim=1), torch.ones(6, device=device), atol=1e-5):
            raise contract_error("label-weight", "soft targets do not sum to 1")


# Mixing methods: (batch, channels, height, width): RGB, one channel (Fashion-MNIST)
# non-square, a single sample.
_MIX_SIZES = ((16, 3, 32, 32), (5, 1, 24, 40), (1, 3, 8, 8))
_MIX_SCALING_BATCHES = (32, 256)
_MIX_SCALING_SIZE = 8
# Rounding allowed in the convex rule: weights within [0, 1] by this, and the second
# code channel's identity to this (codes are O(1), weights >= 0.1 apart).
_CONVEX_TOL = 1e-3
# The pixel-share rule: |weight - pixel share| allowed per sample (every shipped mixing
# method is exact to 1e-6; one row of a 24 x 24 image is 0.042).
_SHARE_TOL = 0.01


def _images(b: int, c: int, h: int, w: int, device: torch.device, seed: int) -> torch.Tensor:
    """Normalised-looking images: procedural objects (3 channels) or their luminance,
    as the trainer hands them to a method (zero mean, unit-ish variance)."""

    out = generate(b, num_classes=10, image_size=max(h, w), object_scale=0.6, seed=seed)
    x = (out[0] if isinstance(out, tuple) else out).float()[:, :, :h, :w] / 255.0
    if c == 1:
        x = x.mean(dim=1, keepdim=True)
    return ((x - 0.5) / 0.25).to(device)


def _mix_once(
    method: MixMethod,
    x: torch.Tensor,
    per_sample: bool,
    seed: int,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One harness call on ``x``: ``(mixed, weight, partner)``; a broken rule raises."""

    y = torch.arange(x.shape[0], device=x.device)  # a label is its row: partner = label
    saliency = stand_in_saliency(y, x.shape[1]) if method.needs_saliency else None
    mixer = Mixer(method, per_sample=per_sample, pairing="permute", validate=validate)
    mixed = mixer(x, y, _gen(x.device, seed), saliency)
    return mixed.inputs, mixed.weight, mixed.partner_targets


def _check_mix_outputs(method: MixMethod, device: torch.device) -> None:
    for i, (b, c, h, w) in enumerate(_MIX_SIZES):
        x = _images(b, c, h, w, device, seed=i)
        for per_sample in (False, True):
            _mix_once(method, x, per_sample, seed=10 + i)
    # the edge lambdas, one per sample, through the same harness call

    lam = torch.tensor(_EDGE_LAMS, device=device)
    _mix_once(with_lams(method, lam), _images(len(lam), 3, 16, 16, device, seed=7), True, 8)


def _check_mix_determinism(method: MixMethod, device: torch.device) -> None:
    x = _images(8, 3, 16, 20, device, seed=3)
    (m1, w1, p1), (m2, w2, p2) = (
        _mix_once(method, x, True, 1234, validate=False) for _ in range(2)
    )
    if not (torch.equal(p1, p2) and torch.equal(m1, m2) and torch.equal(w1, w2)):
        raise contract_error(
            "determinism",
            "mix() gave different outputs for the same inputs and seeded generator; draw "
            "all randomness from the generator argument",
            contract=MixMethod.kind,
        )


def _mix_torch_calls(method: MixMethod, batch: int, device: torch.device) -> int:
    size = _MIX_SCALING_SIZE
    x = _images(batch, 3, size, size, device, seed=5)
    with _CallCounter() as counter:
        _mix_once(method, x, True, 6, validate=False)
    return counter.calls


def _check_mix_vectorised(method: MixMethod, device: torch.device) -> None:
    _check_call_growth(
        lambda b: _mix_torch_calls(method, b, device), _MIX_SCALING_BATCHES, "mix()", MixMethod.kind
    )


def _check_convex(method: MixMethod, device: torch.device) -> dict[str, str] | None:
    runs = []
    for per_sample in (False, True):
        coded = code_batch(_images(8, 3, 24, 24, device, seed=9), seed=int(per_sample))
        mixed, weight, partner = _mix_once(method, coded.images, per_sample, 11, validate=False)
        outside, residual = convexity_error(mixed, coded, partner)
        if outside > _CONVEX_TOL or residual > _CONVEX_TOL:
            raise contract_error(
                "convex",
                "mixed pixels are not convex combinations of pixels of the two paired images "
                f"(weight outside [0, 1] by {outside:.3g}, other content {residual:.3g}); "
                "mix with one weight per pixel for all channels, from x[i] and "
                "x[partner[i]] only, and do not rescale or add to the images",
                contract=MixMethod.kind,
            )
        runs.append((mixed, weight, partner, coded))
    report = _check_pixel_share(method, runs)
    return {"pixel-share": report} if report else None


def _check_pixel_share(
    method: MixMethod, runs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, CodedBatch]]
) -> str | None:
    """The ``pixel-share`` rule on the ``convex`` rule's outputs: each returned weight
    against the mean per-pixel weight on ``x[i]`` (samples paired with themselves
    skipped: both labels are one). Raises on a gap over :data:`_SHARE_TOL` unless the
    method declares why its weight differs; then returns the report of the gap."""
    gap = 0.0
    for mixed, weight, partner, coded in runs:
        share = pixel_weights(mixed, coded, partner).mean(dim=(1, 2))
        paired = partner != torch.arange(partner.shape[0], device=partner.device)
        if bool(paired.any()):
            gap = max(gap, float((weight.float() - share)[paired].abs().max()))
    if not method.weight_is_pixel_share:
        if not method.weight_reason.strip():
            raise contract_error(
                "pixel-share",
                "weight_is_pixel_share = False needs a weight_reason saying why the label "
                "weight is not the share of x[i]'s pixels",
                contract=MixMethod.kind,
            )
        return (
            f"weight declared not the pixel share ({method.weight_reason.strip()}); "
            f"largest gap {gap:.3g}"
        )
    if gap > _SHARE_TOL:
        raise contract_error(
            "pixel-share",
            f"the returned weight differs from the share of x[i]'s pixels in the mixed image "
            f"by up to {gap:.3g} (allowed {_SHARE_TOL}); return each sample's pixel share, or "
            "declare weight_is_pixel_share = False with a weight_reason",
            contract=MixMethod.kind,
        )


_MIX_STAGES = (
    (("lam",), _check_lam),
    (("type", "shape", "dtype", "device", "finite", "range"), _check_mix_outputs),
    (("determinism",), _check_mix_determinism),
    (("vectorised",), _check_mix_vectorised),
    (("convex", "pixel-share"), _check_convex),
)


def _check_feature_vectorised(method: FeatureMixMethod, device: torch.device) -> None:
    check_feature_vectorised(method, device, _CallCounter)


_FEATURE_STAGES = (
    (("lam",), _check_lam),
    (("stage", "type", "shape", "dtype", "device", "finite", "range"), check_feature_outputs),
    (("determinism",), check_feature_determinism),
    (("vectorised",), _check_feature_vectorised),
    (("from-batch",), check_from_batch),
)

_STAGES = (
    (("lam",), _check_lam),
    (("type", "shape", "dtype", "device", "finite", "range"), _check_masks),
    (("determinism",), _check_determinism),
    (("vectorised",), _check_vectorised),
    (("label-weight",), _check_label_weight),
)


def _what(stage: Callable[..., None]) -> str:
    """What a check stage exercises, for ``runs``' message: ``masks``, ``outputs``..."""
    name = getattr(stage, "__name__", "")
    return (
        name.removeprefix("_").removeprefix("check_").removeprefix("mix_").removeprefix("feature_")
    )


def _stage_results(method: Method | str, device: torch.device) -> Iterator[CheckResult]:
    """Results stage by stage: ``runs`` (only when it fails) and each stage's rules.

    A stage that raises something other than a contract violation (``SystemExit`` and
    a ``KeyboardInterrupt`` that was not the user's included) fails ``runs`` and its
    own rules; within a stage, rules after the failed one are not checked.
    """
    try:
        method = _resolve(method)
    except Exception as exc:
        yield CheckResult("runs", False, f"cannot build the method: {exc}")
        return
    mix = not isinstance(method, MaskMethod)  # outputs a later rule needs in shape
    if isinstance(method, FeatureMixMethod):
        stages: Any = _FEATURE_STAGES
    else:
        stages = _MIX_STAGES if mix else _STAGES
    outputs_stages = (_check_mix_outputs, check_feature_outputs)
    outputs_ok = True
    for rules, stage in stages:
        if not outputs_ok:  # a mixing method's later rules need outputs of the right form
            for rule in rules:
                yield CheckResult(rule, False, "not checked (an earlier rule failed)")
            continue
        try:
            details = stage(method, device)  # a stage may report on rules that pass
        except MethodContractError as exc:
            outputs_ok = not (mix and exc.rule in ("stage", "type", "shape", "dtype", "device"))
            # A stage checks its rules in order: those before the failed one passed.
            failed_at = rules.index(exc.rule) if exc.rule in rules else 0
            for i, rule in enumerate(rules):
                if i < failed_at:
                    yield CheckResult(rule, True, "ok")
                elif i == failed_at:
                    yield CheckResult(rule, False, exc.detail)
                else:
                    yield CheckResult(rule, False, "not checked (an earlier rule failed)")
        except BaseException as exc:
            if interrupts.from_user(exc):
                raise
            outputs_ok = not (mix and stage in outputs_stages)
            yield CheckResult("runs", False, f"{_what(stage)} raised {type(exc).__name__}: {exc}")
            for rule in rules:
                yield CheckResult(rule, False, "not checked (the method raised)")
        else:
            for rule in rules:
                yield CheckResult(rule, True, (details or {}).get(rule, "ok"))


def run_checks(method: Method | str, device: torch.device | str = "cpu") -> list[CheckResult]:
    """Check ``method`` (an instance or a spec) against every rule of its kind
    (:func:`rules_for`); one result per rule.

    A stage that raises something other than a contract violation fails ``runs``
    and its own rules; within a stage, rules after the failed one are not checked.
    """
    try:
        method = _resolve(method)
    except Exception as exc:
        return [CheckResult("runs", False, f"cannot build the method: {exc}")]
    calls = {
        MaskMethod.kind: "sample_lam and masks ran",
        MixMethod.kind: "sample_lam and mix ran",
        FeatureMixMethod.kind: "sample_lam, stage and mix ran",
    }[method.kind]
    results: dict[str, CheckResult] = {"runs": CheckResult("runs", True, calls)}
    with interrupts.watching():
        for result in _stage_results(method, _device(device)):
            if result.rule == "runs" or result.rule not in results:
                results[result.rule] = result
    return [results[r] for r in rules_for(method)]


def preflight(method: Method | str, device: torch.device | str = "cpu") -> CheckResult | None:
    """The first rule ``method`` (an instance or a spec) fails on ``device``, or ``None``.

    Runs the conformance rules in the order of its kind's stages (:data:`RULES`:
    ``runs``, ``lam``, the mask rules, ``determinism``, ``vectorised``,
    ``label-weight``; :data:`MIX_RULES` for a mixing method) and stops at the first
    failure, for an executor to call before a method's first cell. A conforming
    method passes in milliseconds (a saliency method: a few stand-in model passes);
    one that loops over samples in Python takes a second or two to be caught by
    ``vectorised``.
    """
    with interrupts.watching():
        for result in _stage_results(method, _device(device)):
            if not result.passed:
                return result
    return None


def assert_conforms(method: Method | str, device: torch.device | str = "cpu") -> None:
    """Raise ``AssertionError`` naming every failed rule; for plugins' own tests."""
    failed = [r for r in run_checks(method, device) if not r.passed]
    if failed:
        raise AssertionError("; ".join(f"{r.rule}: {r.detail}" for r in failed))


#: The one-cell grid :func:`one_cell_run` trains: procedural images, one epoch.
ONE_CELL_TOML = """\
[defaults]
profile_gpu = "one"
profile_cpu = "one"

[scenarios.large-crop]
scale = [2.0, 4.0]
ratio = [0.75, 1.3333333333333333]
flip = true

[recipes.one]
epochs = 1
batch_size = 32
lr = 0.05

[profiles.one]
dataset = "procedural"
dataset_options = { train_size = 128, test_size = 64, num_classes = 4, image_size = 16 }
archs = ["resnet8_tiny_cifar"]
scenarios = ["large-crop"]
seeds = [0]
recipe = "one"
baselines = []
"""


def one_cell_run(method: str, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Train ``method`` (a spec) for one cell with the real ``arena run`` in a
    subprocess (one epoch on 128 procedural images, a few seconds on a CPU) and return
    its stored result record; for plugins' own tests::

        def test_mymethod_trains(tmp_path):
            record = one_cell_run("mymethod", tmp_path)
            assert record["status"] == "ok"

    Raises:
        AssertionError: ``arena run`` failed (its output is in the message) or stored
            no result for ``method``.
    """
    import subprocess
    import sys

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    config = work / "arena.toml"
    config.write_text(ONE_CELL_TOML)
    results = work / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "msda_arena.cli.main",
            "run",
            "--method",
            method,
            "--config",
            str(config),
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        cwd=work,
        timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"arena run --method {method} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
    frame, _warnings = load_results(results)

    spec = get_method(method).spec
    rows = frame[frame["method"] == spec]
    if len(rows) != 1:
        raise AssertionError(f"arena run stored {len(rows)} results for {spec}, expected 1")
    return rows.iloc[0].to_dict()
