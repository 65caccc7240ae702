"""Conformance checks of the mask contract, for ``arena check`` and plugin test suites.

In a plugin's own pytest suite::

    from msda_arena.testing import assert_conforms

    def test_mymask_conforms():
        assert_conforms("mymask(k=3)")

Each rule is named; a failure says which rule broke and how. Rules: ``runs``,
``lam``, ``type``, ``shape``, ``dtype``, ``device``, ``finite``, ``range``,
``determinism``, ``vectorised`` and ``label-weight``.

:func:`preflight` runs the same rules but stops at the first failure; every rule
takes milliseconds for a conforming method, so an executor can afford it before a
method's first cell.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode

from msda_arena import interrupts
from msda_arena.contract import MaskMethod
from msda_arena.mixing import MaskContractError, Mixer, validate_masks

__all__ = ["RULES", "CheckResult", "assert_conforms", "preflight", "run_checks"]

RULES = (
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
    "label-weight",
)

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


def _resolve(method: MaskMethod | str) -> MaskMethod:
    if isinstance(method, MaskMethod):
        return method
    from msda_arena import get_method

    return get_method(method)


def _check_lam(method: MaskMethod, device: torch.device) -> None:
    lam = method.sample_lam(64, _gen(device, 0), device)
    if not isinstance(lam, torch.Tensor):
        raise MaskContractError("lam", f"sample_lam returned {type(lam).__name__}, not a tensor")
    if tuple(lam.shape) != (64,):
        raise MaskContractError(
            "lam", f"sample_lam(64) returned shape {list(lam.shape)}, expected [64]"
        )
    if not lam.is_floating_point() or lam.device != device:
        raise MaskContractError(
            "lam", f"sample_lam must return floats on {device}, got {lam.dtype} on {lam.device}"
        )
    if not bool(torch.isfinite(lam).all()) or float(lam.min()) < 0 or float(lam.max()) > 1:
        raise MaskContractError("lam", "sample_lam returned values outside [0, 1] or not finite")


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
        raise MaskContractError(
            "determinism", "sample_lam gave different lambdas for the same seeded generator"
        )
    if not torch.equal(m1, m2):
        raise MaskContractError(
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


def _check_vectorised(method: MaskMethod, device: torch.device) -> None:
    small_b, large_b = _SCALING_BATCHES
    small_calls = _torch_calls(method, small_b, device)
    large_calls = _torch_calls(method, large_b, device)
    if large_calls > small_calls + _MAX_EXTRA_CALLS:
        raise MaskContractError(
            "vectorised",
            f"masks() makes {large_calls} torch calls for {large_b} samples but {small_calls} "
            f"for {small_b}; compute all masks with batched tensor operations, not a loop "
            "per sample",
        )
    for _attempt in range(2):  # a second look before blaming the method for a busy machine
        _best_time(method, small_b, device, repeats=2)  # warm-up
        small = _best_time(method, small_b, device)
        large = _best_time(method, large_b, device)
        ratio = large / max(small, 1e-7)
        per_sample_us = (large - small) / (large_b - small_b) * 1e6
        if ratio <= _MAX_SCALING or per_sample_us <= _MAX_US_PER_SAMPLE:
            return
    raise MaskContractError(
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
            raise MaskContractError("label-weight", "label weights differ from the mask means")
        partner = x[mixed.partner_targets]  # y = arange: a label is its row
        expected_x = m * x + (1 - m) * partner
        if not torch.allclose(mixed.inputs, expected_x, atol=1e-5):
            raise MaskContractError(
                "label-weight", "mixed inputs differ from M * x_i + (1 - M) * x_j"
            )
        soft = mixed.soft_targets(6)
        if not torch.allclose(soft.sum(dim=1), torch.ones(6, device=device), atol=1e-5):
            raise MaskContractError("label-weight", "soft targets do not sum to 1")


_STAGES = (
    (("lam",), _check_lam),
    (("type", "shape", "dtype", "device", "finite", "range"), _check_masks),
    (("determinism",), _check_determinism),
    (("vectorised",), _check_vectorised),
    (("label-weight",), _check_label_weight),
)


def _stage_results(method: MaskMethod | str, device: torch.device) -> Iterator[CheckResult]:
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
    for rules, stage in _STAGES:
        try:
            stage(method, device)
        except MaskContractError as exc:
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
            yield CheckResult(
                "runs", False, f"{stage.__name__[7:]} raised {type(exc).__name__}: {exc}"
            )
            for rule in rules:
                yield CheckResult(rule, False, "not checked (the method raised)")
        else:
            for rule in rules:
                yield CheckResult(rule, True, "ok")


def run_checks(method: MaskMethod | str, device: torch.device | str = "cpu") -> list[CheckResult]:
    """Check ``method`` (an instance or a spec) against every rule; one result per rule.

    A stage that raises something other than a contract violation fails ``runs``
    and its own rules; within a stage, rules after the failed one are not checked.
    """
    results: dict[str, CheckResult] = {
        "runs": CheckResult("runs", True, "sample_lam and masks ran")
    }
    with interrupts.watching():
        for result in _stage_results(method, _device(device)):
            if result.rule == "runs" or result.rule not in results:
                results[result.rule] = result
    if not results["runs"].passed and len(results) == 1:  # the method could not be built
        return [results["runs"]]
    return [results[r] for r in RULES]


def preflight(method: MaskMethod | str, device: torch.device | str = "cpu") -> CheckResult | None:
    """The first rule ``method`` (an instance or a spec) fails on ``device``, or ``None``.

    Runs the conformance rules in the order of :data:`RULES`'s stages (``runs``,
    ``lam``, the mask rules, ``determinism``, ``vectorised``, ``label-weight``) and
    stops at the first failure, for an executor to call before a method's first cell.
    A conforming method passes in milliseconds; one that loops over samples in Python
    takes a second or two to be caught by ``vectorised``.
    """
    with interrupts.watching():
        for result in _stage_results(method, _device(device)):
            if not result.passed:
                return result
    return None


def assert_conforms(method: MaskMethod | str, device: torch.device | str = "cpu") -> None:
    """Raise ``AssertionError`` naming every failed rule; for plugins' own tests."""
    failed = [r for r in run_checks(method, device) if not r.passed]
    if failed:
        raise AssertionError("; ".join(f"{r.rule}: {r.detail}" for r in failed))
