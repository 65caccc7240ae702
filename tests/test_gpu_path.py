"""The GPU path: one step function, torch.compile on by default on CUDA with a fallback
to eager, device-side metrics, the ``speed`` profile's data, and ``benchmarks/gpu.py``.

The logic is tested on the CPU (compiling is forced on there, with backends that
really fail); tests marked ``gpu`` run it on CUDA and skip without it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from torch.overrides import TorchFunctionMode

from msda_arena import get_method
from msda_arena.api.errors import ConfigError
from msda_arena.data import load_dataset
from msda_arena.data.crops import DEFAULT_SCENARIOS
from msda_arena.data.procedural import CUTS, class_names, generate, procedural_dataset
from msda_arena.grid.config import Recipe, load_config, parse_config
from msda_arena.train import loop as train
from msda_arena.train.loop import (
    CellSetup,
    CompileFallbackWarning,
    TrainStep,
    compile_wanted,
    train_cell,
)

ARCH = "resnet8_tiny_cifar"
SCENARIO = DEFAULT_SCENARIOS["small-crop"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return load_dataset(
        "procedural", None, train_size=96, test_size=32, num_classes=4, image_size=16
    )


def recipe(**changes) -> Recipe:
    return dataclasses.replace(
        Recipe("gpu-path", epochs=2, batch_size=16, lr=0.05, warmup_epochs=1), **changes
    )


def cell(data, rec: Recipe, **kwargs) -> train.TrainResult:
    return train_cell(ARCH, get_method("cutmix"), data, rec, SCENARIO, seed=1, **kwargs)


def same_training(a: train.TrainResult, b: train.TrainResult) -> bool:
    """Bit for bit: accuracies, loss and every weight and buffer."""
    assert a.state_dict is not None and b.state_dict is not None
    return (
        (a.top1, a.top5, a.train_loss) == (b.top1, b.top5, b.train_loss)
        and a.state_dict.keys() == b.state_dict.keys()
        and all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    )


def fallbacks(caught) -> list:
    """The fallback warnings among those caught (torch may add its own)."""
    return [w for w in caught if issubclass(w.category, CompileFallbackWarning)]


# -- one step function -----------------------------------------------------------------


def test_train_cell_is_its_step_function_run_epoch_by_epoch(data):
    """What the benchmarks time (TrainStep) is what train_cell runs: the same seed gives
    the same loss and accuracy when the loop is driven by hand."""
    rec = recipe()
    result = cell(data, rec)
    step = TrainStep(CellSetup(ARCH, get_method("cutmix"), data, rec, SCENARIO, 1))
    assert step.steps_per_epoch == 6 and step.net is step.model and step.notes == ""
    for epoch in range(rec.epochs):
        step.start_epoch(epoch + 1)
        for xb, yb in step.batches(epoch):
            step(xb, yb)
        loss = step.end_epoch()
    assert loss == result.train_loss
    metrics = step.evaluate()
    assert (metrics.top1, metrics.top5) == (result.top1, result.top5)
    assert (metrics.ece, metrics.fgsm_top1) == (result.ece, result.fgsm_top1)
    assert result.notes == ""


_READS = frozenset({"item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"})


class _HostReads(TorchFunctionMode):
    """Records tensor methods that copy values to the host (each one a device sync)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in _READS:
            self.seen.append(func.__name__)
        return func(*args, **(kwargs or {}))


def test_the_step_reads_nothing_back_and_the_epoch_and_evaluation_read_once(data):
    step = TrainStep(CellSetup(ARCH, get_method("hmix"), data, recipe(), SCENARIO, 0))
    step.start_epoch(1)
    batches = list(step.batches(0))
    step(*batches[0])  # the mixer checks the first batch at once
    with _HostReads() as reads:
        for xb, yb in batches[1:]:
            step(xb, yb)
    assert reads.seen == []
    with _HostReads() as reads:
        step.end_epoch()
    assert reads.seen == ["tolist", "tolist"]  # the masks' verdict, then the loss's
    with _HostReads() as reads:
        metrics = step.evaluate()
        top1, top5 = metrics.top1, metrics.top5
    assert reads.seen == ["tolist"] and 0 <= top1 <= top5 <= 100


# -- compile: auto, and the fallback to eager --------------------------------------------


def test_compile_auto_is_on_for_cuda_only_and_the_config_takes_three_values(tiny_config):
    assert compile_wanted("auto", "cuda") and not compile_wanted("auto", "cpu")
    assert compile_wanted(True, "cpu") and not compile_wanted(False, "cuda")
    assert Recipe("r", epochs=1, batch_size=2, lr=0.1).compile == "auto"
    text = tiny_config.read_text()
    for value, parsed in (("true", True), ("false", False), ('"auto"', "auto")):
        changed = text.replace("warmup_epochs = 1", f"warmup_epochs = 1\ncompile = {value}")
        assert parse_config(changed).recipes["tiny"].compile == parsed
    bad = text.replace("warmup_epochs = 1", 'warmup_epochs = 1\ncompile = "yes"')
    with pytest.raises(
        ConfigError, match=r'\[recipes.tiny\]: compile must be true, false or "auto"'
    ):
        parse_config(bad)
    cfg = load_config(REPO / "arena.toml")
    assert cfg.recipes["cifar"].compile == "auto"  # the GPU profiles compile by default


def test_a_backend_that_cannot_be_found_falls_back_to_eager_with_one_warning(data, monkeypatch):
    """The failure comes when the model is wrapped: torch.compile refuses the name."""
    eager = cell(data, recipe(compile=False), keep_weights=True)
    monkeypatch.setattr(train, "COMPILE_BACKEND", "no-such-backend")
    with pytest.warns(CompileFallbackWarning) as caught:
        fallen = cell(data, recipe(compile=True), keep_weights=True)
    caught = fallbacks(caught)
    assert len(caught) == 1
    assert fallen.notes == (
        "torch.compile failed (InvalidBackend: Invalid backend: 'no-such-backend'. See "
        "`torch._dynamo.list_backends()` for available backends.); ran eager"
    )
    assert str(caught[0].message) == fallen.notes
    assert same_training(fallen, eager)


def test_a_compile_that_fails_on_the_first_backward_reruns_the_step_eagerly(data, monkeypatch):
    """The failure comes in the first step, after the compiled forward ran (and moved the
    BatchNorm statistics): the step is rerun eagerly from where it started, so the cell
    ends bit for bit as an eager one. Without putting the buffers back the weights
    differ (seen: the first BatchNorm's running_mean off by 6e-3)."""
    from torch._dynamo.backends.common import aot_autograd

    def refuse(gm, example_inputs):
        raise RuntimeError("backward compiler refused the graph")

    eager = cell(data, recipe(compile=False), keep_weights=True)
    torch._dynamo.reset()
    backend = aot_autograd(fw_compiler=lambda gm, example_inputs: gm, bw_compiler=refuse)
    monkeypatch.setattr(train, "COMPILE_BACKEND", backend)
    with pytest.warns(CompileFallbackWarning) as caught:
        fallen = cell(data, recipe(compile=True), keep_weights=True)
    torch._dynamo.reset()
    assert len(fallbacks(caught)) == 1
    assert fallen.notes == (
        "torch.compile failed (RuntimeError: backward compiler refused the graph); ran eager"
    )
    assert same_training(fallen, eager)


def test_a_working_compile_trains_the_same_cell_without_a_note(data, monkeypatch, recwarn):
    """The compiled path itself (dynamo traces the model; the 'eager' backend runs the
    traced graph) on the CPU: no warning, no note, the eager cell's numbers."""
    eager = cell(data, recipe(compile=False), keep_weights=True)
    torch._dynamo.reset()
    monkeypatch.setattr(train, "COMPILE_BACKEND", "eager")
    compiled = cell(data, recipe(compile=True), keep_weights=True)
    torch._dynamo.reset()
    assert compiled.notes == "" and not fallbacks(recwarn.list)
    assert same_training(compiled, eager)


# -- the speed profile's data ------------------------------------------------------------


def test_the_speed_profile_has_cifar100_shapes_and_the_cifar_recipe():
    cfg = load_config(REPO / "arena.toml")
    speed, cifar = cfg.profiles["speed"], cfg.profiles["cifar100"]
    assert speed.dataset == "procedural" and speed.dataset_options == {
        "train_size": 50_000, "test_size": 10_000, "num_classes": 100, "image_size": 32,
        "object_scale": 0.5,
    }  # fmt: skip
    assert speed.recipe == cifar.recipe and speed.archs == cifar.archs
    assert speed.scenarios == cifar.scenarios and speed.baselines == cifar.baselines


def test_a_hundred_classes_add_cuts_and_keep_the_first_twenty():
    names = class_names(100)
    assert len(set(names)) == 100 and names[:20] == class_names(20)
    assert names[20] == "disc/solid/cut-h" and names[99] == "cross/dots/cut-x"
    assert {n.split("/")[2] for n in names[20:]} == set(CUTS[1:])
    # every shape x texture pair appears once with each cut: no attribute alone decides
    triples = {tuple(n.split("/")) + (() if n.count("/") == 2 else ("whole",)) for n in names}
    assert len(triples) == 100
    _, y, masks = generate(2000, num_classes=100, image_size=32, seed=0, return_masks=True)
    assert torch.bincount(y, minlength=100).tolist() == [20] * 100
    # a cut removes object pixels: the whole square has more of them than its cuts
    area = masks.flatten(1).sum(1).float()
    square = [area[y == k].mean().item() for k in (1, 21, 41, 61, 81)]  # square/stripes
    assert square[0] > max(square[1:]) and min(square[1:]) > 0.5 * square[0]


def test_the_dataset_renders_on_a_given_device_with_the_cpu_images():
    a = procedural_dataset(train_size=300, test_size=50, num_classes=100, seed=2)
    b = procedural_dataset(train_size=300, test_size=50, num_classes=100, seed=2, device="cpu")
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.mean == b.mean and b.device == torch.device("cpu")


# -- benchmarks/gpu.py ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_gpu_benchmark_runs_on_a_cpu_and_says_what_it_did_not_measure(tmp_path):
    out = tmp_path / "gpu.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--quick", "--device", "cpu",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    meta = report["meta"]
    assert meta["device_type"] == "cpu" and meta["torch"] == torch.__version__
    assert meta["date"] and meta["device"].startswith("cpu") and meta["gpu_measured"] is False
    assert meta["gpu"] == "GPU: not measured"
    numbers = {
        "step_overhead": "ratio",
        "cell_time": "cell_s",
        "cells_per_gpu_hour": "cells_per_gpu_hour",
        "mask_throughput": "masks_per_s",
    }
    for section, number in numbers.items():
        rows = report[section]["rows"]
        assert report[section]["gpu"] == "GPU: not measured"
        cpu = [r for r in rows if r["device"] == "cpu"]
        gpu = [r for r in rows if r["device"] == "cuda"]
        assert cpu and all(r["status"] == "measured" for r in cpu), section
        assert all(math.isfinite(r[number]) and r[number] > 0 for r in cpu), section
        assert gpu and all(r["status"] == "GPU: not measured" for r in gpu), section
        assert all(number not in r for r in gpu), section
    methods = {r["method"] for r in report["mask_throughput"]["rows"]}
    assert {"vanilla", "mixup", "cutmix", "hmix", "gmix", "mixup-cutmix"} <= methods
    assert run.stdout.count("GPU: not measured") >= 4


# -- on CUDA -------------------------------------------------------------------------------


@pytest.mark.gpu
def test_a_cell_compiles_on_cuda_by_default_and_trains():
    data = load_dataset(
        "procedural", None, train_size=512, test_size=256, num_classes=10, image_size=32
    ).to("cuda")
    rec = Recipe("gpu", epochs=2, batch_size=64, lr=0.05, warmup_epochs=1)
    assert rec.compile == "auto"
    result = train_cell(
        "resnet8_cifar", get_method("cutmix"), data, rec, SCENARIO, seed=0, device="cuda"
    )
    assert math.isfinite(result.top1) and 0.0 <= result.top1 <= result.top5 <= 100.0
    assert result.notes == "" and math.isfinite(result.train_loss)
    assert "cpu" not in result.device_name


@pytest.mark.gpu
def test_the_dataset_renders_on_cuda_as_on_the_cpu():
    x_cpu, y_cpu = generate(2000, num_classes=100, seed=3)
    x_gpu, y_gpu = generate(2000, num_classes=100, seed=3, device="cuda")
    assert x_gpu.device.type == "cuda" and torch.equal(y_gpu.cpu(), y_cpu)
    diff = (x_gpu.cpu().int() - x_cpu.int()).abs()
    assert (diff > 1).float().mean().item() < 1e-3  # float rounding at a few edges only
