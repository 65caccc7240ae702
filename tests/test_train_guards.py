"""Training guards: every batch's masks checked on the device, plugin crashes as failed
cells, divergence with its true cause, and the executor's preflight.

Fault tests train real tiny cells with :func:`train_cell` and small mask methods defined
here. Each docstring says what the test saw with its guard removed (the guard
neutralised by monkeypatching, the test run, the guard restored).
"""

from __future__ import annotations

import math
import os
import signal
import threading

import pytest
import torch
from torch.overrides import TorchFunctionMode

from msda_arena import MaskMethod, get_method
from msda_arena.data import load_dataset
from msda_arena.data.crops import DEFAULT_SCENARIOS
from msda_arena.grid.config import Recipe
from msda_arena.methods.cutmix import CutMix
from msda_arena.pluginkit.conformance import preflight
from msda_arena.train import interrupts
from msda_arena.train.loop import EXPLODED_FACTOR, TrainingDiverged, train_cell
from msda_arena.train.mixing import MaskContractError, MethodError, Mixer

ARCH = "resnet8_cifar"
SCENARIO = DEFAULT_SCENARIOS["standard"]
STEPS = 6  # batches per epoch: 96 training images, batches of 16

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return load_dataset(
        "procedural", None, train_size=96, test_size=32, num_classes=4, image_size=16
    )


def recipe(epochs: int = 1, lr: float = 0.05, per_sample: bool = False) -> Recipe:
    return Recipe("guards", epochs=epochs, batch_size=16, lr=lr, per_sample_masks=per_sample)


def train(method: MaskMethod, data, **kwargs):
    return train_cell(ARCH, method, data, recipe(**kwargs), SCENARIO, seed=0)


class Faulty(MaskMethod):
    """A mixup-like mask (M = lambda) that misbehaves from its ``from_call``-th call on."""

    name = "faulty"

    def __init__(self, from_call: int = 1, **values) -> None:
        super().__init__(**values)
        self.from_call = from_call
        self.calls = 0

    def good(self, lam, height, width):
        return lam.view(-1, 1, 1, 1).expand(-1, 1, height, width).contiguous()

    def fault(self, lam, height, width, generator):
        raise NotImplementedError

    def masks(self, lam, height, width, generator):
        self.calls += 1
        if self.calls >= self.from_call:
            return self.fault(lam, height, width, generator)
        return self.good(lam, height, width)


# -- every batch's masks ---------------------------------------------------------------


class Bytes(Faulty):
    """Masks in [0, 255] (an 8-bit image), except the very first, which is all zero."""

    name = "bytes"

    def masks(self, lam, height, width, generator):
        self.calls += 1
        if self.calls == 1:
            return torch.zeros(lam.shape[0], 1, height, width)
        noise = torch.rand(lam.shape[0], 1, height, width, generator=generator)
        return torch.where(noise < lam.view(-1, 1, 1, 1), 255.0, 0.0)


def test_out_of_range_masks_after_a_clean_first_batch_fail_the_range_rule(data):
    """Guard removed (values checked on the first batch only): the cell did not fail on
    the masks; it ended in ``TrainingDiverged: training loss exploded to 4.24e+03 in
    epoch 1 (...); lower lr or check the method``, blaming the training for the 255s."""
    with pytest.raises(MaskContractError) as info:
        train(Bytes(), data)
    assert info.value.rule == "range"
    assert str(info.value) == (
        "mask contract rule 'range' failed at batch 2 (epoch 1): "
        "mask values must lie in [0, 1], found [0, 255]"
    )


class NanPixel(Faulty):
    """One NaN pixel in one sample's mask."""

    name = "nanpixel"

    def fault(self, lam, height, width, generator):
        m = self.good(lam, height, width)
        m[-1, 0, height // 2, width // 2] = float("nan")
        return m


def test_nan_in_one_per_sample_mask_from_the_nth_batch_fails_the_finite_rule(data):
    """Guard removed: ``TrainingDiverged: training loss became nan in epoch 1; lower
    lr``, not a word about the masks."""
    with pytest.raises(MaskContractError) as info:
        train(NanPixel(from_call=4), data, per_sample=True)
    assert info.value.rule == "finite" and info.value.where == "batch 4 (epoch 1)"
    assert str(info.value) == (
        "mask contract rule 'finite' failed at batch 4 (epoch 1): masks contain NaN or infinity"
    )


def test_nan_masks_in_a_later_epoch_name_the_mask_rule_not_the_learning_rate(data):
    """The masks are judged before the loss. Guard removed (no mask verdict at the
    epoch's end): ``TrainingDiverged: training loss became nan in epoch 2; lower lr``."""
    with pytest.raises(MaskContractError) as info:
        train(NanPixel(from_call=STEPS + 3), data, epochs=2)
    assert not isinstance(info.value, TrainingDiverged)
    assert "lower lr" not in str(info.value)
    assert info.value.rule == "finite" and info.value.where == "batch 3 (epoch 2)"


class BadLam(Faulty):
    """``sample_lam`` draws 1.5 from its ``from_call``-th call on; masks stay in [0, 1]."""

    name = "badlam"

    def sample_lam(self, n, generator, device=None):
        self.calls += 1
        lam = super().sample_lam(n, generator, device)
        return lam + 1.5 if self.calls >= self.from_call else lam

    def masks(self, lam, height, width, generator):
        return self.good(lam, height, width).clamp(0, 1)


def test_lambdas_out_of_range_from_the_nth_batch_fail_the_lam_rule(data):
    """Guard removed: the cell trained to the end and returned a result (train loss
    1.50, top-1 28.1), the lambdas outside the contract never reported."""
    with pytest.raises(MaskContractError) as info:
        train(BadLam(from_call=5), data)
    assert info.value.rule == "lam" and info.value.where == "batch 5 (epoch 1)"
    assert "found [1.5" in str(info.value)


class ShapeShift(Faulty):
    """From the Nth call, a [B, 1, H, 1] mask, which broadcasts silently."""

    name = "shapeshift"

    def fault(self, lam, height, width, generator):
        return self.good(lam, height, 1)


def test_a_wrong_shape_from_the_nth_batch_fails_the_shape_rule(data):
    """Guard removed (metadata checked on the first batch only): the cell trained to the
    end on broadcast masks and returned a result (top-1 25.0) as if nothing were wrong."""
    with pytest.raises(MaskContractError) as info:
        train(ShapeShift(from_call=3), data)
    assert str(info.value) == (
        "mask contract rule 'shape' failed at batch 3 (epoch 1): "
        "expected [1, 1, 16, 16], got [1, 1, 16, 1]"
    )


# -- plugin crashes are method failures ------------------------------------------------


class Raises(Faulty):
    """Raises whatever ``exc`` is, from ``sample_lam`` or ``masks``, at the Nth call."""

    name = "raises"

    def __init__(self, exc: BaseException, in_lam: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.exc = exc
        self.in_lam = in_lam
        self.lam_calls = 0

    def sample_lam(self, n, generator, device=None):
        self.lam_calls += 1
        if self.in_lam and self.lam_calls >= self.from_call:
            raise self.exc
        return super().sample_lam(n, generator, device)

    def fault(self, lam, height, width, generator):
        if self.in_lam:
            return self.good(lam, height, width)
        raise self.exc


@pytest.mark.parametrize("in_lam", [False, True], ids=["masks", "sample_lam"])
def test_an_exception_from_the_nth_call_names_method_call_and_batch(data, in_lam):
    """Guard removed: the bare ``ValueError: lookup table missing`` escaped
    ``train_cell``, naming neither the method nor the batch."""
    method = Raises(ValueError("lookup table missing"), in_lam=in_lam, from_call=2)
    with pytest.raises(MethodError) as info:
        train(method, data)
    call = "sample_lam()" if in_lam else "masks()"
    assert str(info.value) == (
        f"method 'raises' raised ValueError('lookup table missing') in {call} at batch 2 (epoch 1)"
    )
    assert info.value.rule == "runs" and info.value.__cause__ is method.exc


def test_sys_exit_in_a_method_is_a_failed_cell_not_the_end_of_the_grid(data):
    """Guard removed: ``SystemExit: 3`` escaped ``train_cell``; the executor, which
    records ``Exception``s as failed cells, would have let it end the whole run."""
    with pytest.raises(MethodError) as info:
        train(Raises(SystemExit(3), from_call=4), data)
    assert isinstance(info.value, Exception)  # what executors record as a failed cell
    assert str(info.value) == "method 'raises' raised SystemExit(3) in masks() at batch 4 (epoch 1)"


def test_a_keyboard_interrupt_raised_by_a_method_is_a_failed_cell(data):
    """Guard removed: the KeyboardInterrupt escaped ``train_cell``, and pytest itself
    took it for Ctrl-C and stopped the whole session ("!!! KeyboardInterrupt !!!")."""
    with pytest.raises(MethodError) as info:
        train(Raises(KeyboardInterrupt(), from_call=2), data)
    assert "raised KeyboardInterrupt() in masks() at batch 2 (epoch 1)" in str(info.value)
    assert not interrupts.requested()


class PressesCtrlC(Faulty):
    """The user presses Ctrl-C while the Nth call of ``masks`` runs (a real SIGINT)."""

    name = "ctrlc"

    def fault(self, lam, height, width, generator):
        signal.raise_signal(signal.SIGINT)
        return self.good(lam, height, width)


def test_a_real_ctrl_c_inside_method_code_still_interrupts(data):
    """Guard removed (every KeyboardInterrupt from method code taken as the method's):
    the user's Ctrl-C became ``MethodError: method 'ctrlc' raised KeyboardInterrupt()
    in masks() at batch 3 (epoch 1)``, a failed cell, and the grid would have gone on."""
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as info:
        train(PressesCtrlC(from_call=3), data)
    assert not isinstance(info.value, MethodError)
    assert interrupts.requested() and interrupts.from_user(info.value)
    assert signal.getsignal(signal.SIGINT) is before


def test_watching_records_sigint_restores_the_handler_and_is_a_no_op_in_threads():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), interrupts.watching():
        assert not interrupts.requested()
        assert not interrupts.from_user(KeyboardInterrupt())  # watching, no SIGINT yet
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10**6):  # the handler runs between bytecodes, within a few
            pass
    assert interrupts.requested() and signal.getsignal(signal.SIGINT) is before
    with interrupts.watching():
        assert not interrupts.requested()  # cleared on entry

    calls = []  # an application's own graceful-stop handler is still called

    def graceful(signum, frame):
        calls.append(signum)

    previous = signal.signal(signal.SIGINT, graceful)
    try:
        with interrupts.watching():
            signal.raise_signal(signal.SIGINT)
            assert calls == [signal.SIGINT] and interrupts.requested()
        assert signal.getsignal(signal.SIGINT) is graceful
    finally:
        signal.signal(signal.SIGINT, previous)

    seen = {}

    def worker():
        with interrupts.watching():  # no signal.signal() outside the main thread
            seen["from_user"] = interrupts.from_user(KeyboardInterrupt())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == {"from_user": False}  # signals never reach other threads


# -- divergence ------------------------------------------------------------------------


def test_a_finite_exploding_loss_fails_the_cell(data):
    """Guard removed (NaN/inf only): the cell finished and returned a result with a
    train loss of 3.5e+21 (top-1 21.9), ready to be stored as if it were a measurement."""
    with pytest.raises(TrainingDiverged) as info:
        train(get_method("mixup"), data, lr=1000.0)
    message = str(info.value)
    assert message.startswith("training loss exploded to ")
    assert message.endswith(
        f" in epoch 1 (over {EXPLODED_FACTOR:g} x the loss of a uniform guess, 1.39); "
        "lower lr or check the method"
    )
    worst = float(message.split()[4])
    assert math.isfinite(worst) and worst > EXPLODED_FACTOR * math.log(4)


def test_a_healthy_cell_passes_every_guard(data):
    result = train(get_method("cutmix"), data, epochs=2)
    assert math.isfinite(result.train_loss) and result.train_loss < EXPLODED_FACTOR


# -- no host sync per step -------------------------------------------------------------


_READS = frozenset({"item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"})


class _HostReads(TorchFunctionMode):
    """Records tensor methods that copy values to the host (each one a device sync)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in _READS:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


def test_mixing_reads_nothing_back_after_the_first_batch_and_one_read_per_check():
    mixer = Mixer(get_method("cutmix"), per_sample=True)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 12, 10), torch.arange(8)
    mixer(x, y, g)  # the first batch is checked at once
    with _HostReads() as reads:
        for _ in range(300):  # past a fold of the per-call records
            mixer(x, y, g)
    assert reads.seen == []
    with _HostReads() as reads:
        mixer.raise_if_violated()
    assert reads.seen == ["tolist"]


def test_a_standalone_mixer_names_the_batch_when_asked():
    mixer = Mixer(Bytes(), per_sample=True)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 3, 8, 8), torch.arange(4)
    for _ in range(5):
        mixer(x, y, g)
    with pytest.raises(MaskContractError, match=r"failed at batch 2: mask values"):
        mixer.raise_if_violated()


# -- preflight -------------------------------------------------------------------------


class LoopedCutMix(CutMix):
    """CutMix computed one sample at a time in a Python loop."""

    name = "looped"

    def masks(self, lam, height, width, generator):
        rows = [
            CutMix.masks(self, lam[i : i + 1], height, width, generator) for i in range(len(lam))
        ]
        return torch.cat(rows)


class PythonFloats(MaskMethod):
    """Per-sample work in plain Python floats: few torch calls, time grows per sample."""

    name = "pyfloats"

    def masks(self, lam, height, width, generator):
        values = []
        for v in lam.tolist():
            for _ in range(200):
                v = min(max(v, 0.0), 1.0)
            values.append(v)
        return torch.tensor(values).view(-1, 1, 1, 1).expand(-1, 1, height, width).contiguous()


@pytest.mark.parametrize("method", [LoopedCutMix(), PythonFloats()], ids=["torch", "python"])
def test_preflight_catches_a_per_sample_python_loop(method):
    """Guard removed (no ``vectorised`` rule in preflight): ``preflight`` returned
    None for both loops."""
    result = preflight(method)
    assert result is not None and not result.passed
    assert result.rule == "vectorised"


def test_preflight_passes_every_builtin_and_fails_a_sys_exit_as_runs():
    for spec in ("vanilla", "mixup", "cutmix", "hmix", "gmix", "mixup-cutmix"):
        assert preflight(spec) is None, spec
    result = preflight(Raises(SystemExit(3)))
    assert result is not None and result.rule == "runs" and "SystemExit" in result.detail
    assert preflight("no-such-method").rule == "runs"
