"""``msda_arena.mixer``: any arena method in a user's own loop, in place of timm's ``Mixup``.

Every built-in method and every shipped plugin that is installed here (the others skip)
mixes exactly as ``arena run``'s training step does for the same generator state, and
returns timm-format soft targets; label smoothing is timm's; a plain loop trains with it.
"""

from __future__ import annotations

import math
import re
import tomllib

import numpy as np
import pytest
import torch
from conftest import REPO
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch.utils.data import DataLoader, TensorDataset, default_collate

from msda_arena import MixMethod, SpecError, get_method, list_methods, mixer
from msda_arena.data import load_dataset
from msda_arena.data.crops import DEFAULT_SCENARIOS
from msda_arena.grid.config import Recipe
from msda_arena.methods.mixup import Mixup as ArenaMixup
from msda_arena.train.loop import CellSetup, TrainStep
from msda_arena.train.mixing import Mixer
from msda_arena.train.saliency import model_saliency

pytestmark = pytest.mark.usefixtures("one_thread")

ARCH = "resnet8_tiny_cifar"
K = 4  # classes
INSTALLED = {info.name for info in list_methods()}
BUILT_IN = sorted(info.name for info in list_methods() if info.package == "msda-arena")
#: The methods the packages under plugins/ register (their entry points), found, not listed.
SHIPPED = sorted(
    name
    for path in (REPO / "plugins").glob("*/pyproject.toml")
    for name in tomllib.loads(path.read_text())["project"]
    .get("entry-points", {})
    .get("msda_arena", {})
)
METHODS = [*BUILT_IN, *(pytest.param(name, id=f"plugin-{name}") for name in SHIPPED)]


def installed(spec: str) -> str:
    """``spec`` when the mixer takes it; a plugin that is not installed skips, and a
    feature method (it mixes inside the model) must be refused in one line."""
    if spec.split("(")[0] not in INSTALLED:
        pytest.skip(f"plugin method {spec!r} is not installed here")
    if get_method(spec).kind == "feature":
        with pytest.raises(ValueError, match="mixes the model's hidden features") as exc:
            mixer(spec, num_classes=K)
        one_line(exc)
        pytest.skip(f"{spec!r} is a feature method: mixer() refuses it in one line (checked)")
    return spec


def needs_model(spec: str) -> bool:
    return bool(getattr(get_method(spec), "needs_saliency", False))


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


@pytest.fixture(scope="module")
def data():
    return load_dataset(
        "procedural", None, train_size=64, test_size=16, num_classes=K, image_size=16
    )


@pytest.fixture(scope="module")
def batch(data):
    x = data.normalize(data.train_x[:8])
    return x, data.train_y[:8]


def train_step(spec: str, data) -> TrainStep:
    """``arena run``'s training step for ``spec`` on ``data``, its model in training mode."""
    recipe = Recipe("mixer", epochs=1, batch_size=8, lr=0.05)
    scenario = DEFAULT_SCENARIOS["standard"]
    step = TrainStep(CellSetup(ARCH, get_method(spec), data, recipe, scenario, 3))
    step.start_epoch(1)
    return step


@pytest.mark.parametrize("spec", METHODS)
def test_mixes_as_the_training_step_does_with_the_same_generator_state(spec, data, batch):
    spec = installed(spec)
    x, y = batch
    step = train_step(spec, data)
    generator = torch.Generator().set_state(step.mix_gen.get_state())
    mix = mixer(spec, K, generator=generator)
    saliency = step._saliency(y) if needs_model(spec) else None
    expected = step.mixer(x, y, step.mix_gen, saliency)  # what the step trains on

    mixed, target = mix(x, y, model=step.model)
    assert torch.equal(mixed, expected.inputs)
    assert target.dtype == torch.float32 and target.shape == (8, K)
    assert torch.allclose(target.sum(dim=1), torch.ones(8), atol=1e-6)
    assert torch.equal(target, expected.soft_targets(K))  # the harness's label mixing
    assert step.model.training  # a saliency method leaves the model as it found it


@pytest.mark.parametrize("spec", METHODS)
def test_the_seed_draws_as_the_harness_mixer_and_repeats(spec, batch):
    spec = installed(spec)
    x, y = batch
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 14 * 14, K)
    )
    first = mixer(spec, K, label_smoothing=0.1, seed=11, per_sample=True)
    again = mixer(spec, K, label_smoothing=0.1, seed=11, per_sample=True)
    harness = Mixer(get_method(spec), per_sample=True)
    generator = torch.Generator().manual_seed(11)
    for _ in range(2):  # consecutive batches keep drawing from the one generator
        a, b = first(x, y, model=model), again(x, y, model=model)
        expected = harness(x, y, generator, model_saliency(model, y) if needs_model(spec) else None)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert torch.equal(a[0], expected.inputs)
        assert torch.equal(a[1], expected.soft_targets(K, 0.1))


class _FixedLam(ArenaMixup):
    """The built-in mixup drawing the lambda timm drew."""

    lam = 0.5

    def sample_lam(self, n, generator, device=None):
        return torch.full((n,), self.lam, device=device)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_replaces_timm_mixup_images_and_smoothed_targets_alike(smoothing, batch):
    x, y = batch
    timm_mix = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=smoothing, num_classes=K)
    np.random.seed(5)
    method = _FixedLam()
    method.lam = timm_mix._params_per_batch()[0]
    np.random.seed(5)
    timm_x, timm_target = timm_mix(x.clone(), y)

    ours_x, ours_target = mixer(method, K, label_smoothing=smoothing, seed=0)(x, y)
    assert 0 < method.lam < 1
    assert torch.allclose(ours_x, timm_x, atol=1e-6)
    assert ours_target.dtype == timm_target.dtype and ours_target.shape == timm_target.shape
    assert torch.allclose(ours_target, timm_target, atol=1e-6)
    assert torch.allclose(ours_target.sum(dim=1), torch.ones(8), atol=1e-6)


def test_switched_off_like_timms_it_passes_the_batch_with_smoothed_one_hot_targets(batch):
    x, y = batch
    mix = mixer("cutmix", K, label_smoothing=0.1, seed=0)
    mix.mixup_enabled = False  # what timm's train.py does at --mixup-off-epoch
    timm_mix = Mixup(mixup_alpha=1.0, label_smoothing=0.1, num_classes=K)
    timm_mix.mixup_enabled = False
    out, target = mix(x, y)
    timm_x, timm_target = timm_mix(x.clone(), y)
    assert torch.equal(out, x) and torch.equal(out, timm_x)
    assert torch.allclose(target, timm_target, atol=1e-7)


def test_a_torchvision_style_batch_transform_mixes_in_a_collate_fn(batch):
    x, y = batch
    transform = mixer("hmix(r=0.25)", K, seed=2).transform()
    loader = DataLoader(
        TensorDataset(x, y), batch_size=4, collate_fn=lambda b: transform(*default_collate(b))
    )
    expected = mixer("hmix(r=0.25)", K, seed=2)
    for i, (images, target) in enumerate(loader):
        want = expected(x[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4])
        assert torch.equal(images, want[0]) and torch.equal(target, want[1])
    pair = transform((x, y))  # one (images, labels) pair, as torchvision's MixUp takes it
    assert pair[0].shape == x.shape and pair[1].shape == (8, K)


@pytest.mark.parametrize("spec", ["hmix(r=0.25)", pytest.param("puzzlemix", id="plugin-puzzlemix")])
def test_a_plain_training_loop_learns_with_it(spec, data):
    spec = installed(spec)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(64, K),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = SoftTargetCrossEntropy()
    mix = mixer(spec, K, label_smoothing=0.1, seed=0)
    x_all, y_all = data.normalize(data.train_x), data.train_y
    losses = []
    for _epoch in range(3):
        for i in range(0, 64, 16):
            x, target = mix(x_all[i : i + 16], y_all[i : i + 16], model=model)
            loss = loss_fn(model(x), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        mix.check()  # once an epoch: the method kept its contract
    losses = torch.stack(losses).tolist()
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-4:]) < sum(losses[:4])  # the last epoch's loss below the first's


def test_the_readme_loop_runs():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Use a method in your own training", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(16, 3, 32, 32, generator=g)
    labels = torch.randint(0, 100, (16,), generator=g)
    namespace = {"loader": DataLoader(TensorDataset(images, labels), batch_size=8)}
    exec(compile(code, "README.md", "exec"), namespace)
    assert "mixer(" in code and "Mixup" in code
    assert math.isfinite(float(namespace["loss"].detach()))


class _Salient(MixMethod):
    name = "salient"
    needs_saliency = True

    def mix(self, x, y, partner, lam, generator, saliency=None):
        keep = (saliency(x) > 0).unsqueeze(1).to(x.dtype)
        return torch.lerp(x[partner], x, keep), keep.mean(dim=(1, 2, 3))


def test_bad_input_gets_one_line_errors(batch):
    x, y = batch
    with pytest.raises(SpecError) as exc:
        mixer("nosuchmix", K)
    assert "nosuchmix" in one_line(exc)
    with pytest.raises(SpecError) as exc:
        mixer("hmix(r=7)", K)
    assert "r=7" in one_line(exc)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError) as exc:
            mixer("mixup", bad)
        assert "num_classes must be a positive int" in one_line(exc)
    with pytest.raises(ValueError) as exc:
        mixer("mixup", 3)(x, y.clamp(max=3))  # labels 0..3 with num_classes=3
    assert one_line(exc).startswith("labels must lie in [0, 3) for num_classes=3, found [0, 3]")
    with pytest.raises(ValueError) as exc:
        mixer("mixup", K)(x, torch.nn.functional.one_hot(y, K).float())
    assert "class indices [B]" in one_line(exc)
    with pytest.raises(ValueError) as exc:
        mixer("mixup", K)(x.to(torch.uint8), y)
    assert "float images" in one_line(exc)


@pytest.mark.parametrize("spec", [_Salient(), pytest.param("puzzlemix", id="plugin-puzzlemix")])
def test_a_saliency_method_without_the_model_says_to_pass_it(spec, batch):
    spec = installed(spec) if isinstance(spec, str) else spec
    x, y = batch
    with pytest.raises(ValueError) as exc:
        mixer(spec, K, seed=0)(x, y)
    assert one_line(exc).endswith("needs the model's saliency: call mix(x, y, model=model)")


@pytest.mark.gpu
@pytest.mark.parametrize("spec", BUILT_IN)
def test_on_cuda_no_step_after_the_first_reads_back(spec):
    device = torch.device("cuda")
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(32, 3, 32, 32, device=device, generator=g)
    y = torch.randint(0, 10, (32,), device=device, generator=g)
    mix = mixer(spec, 10, label_smoothing=0.1, seed=0)
    mix(x, y)  # the first batch checks the labels and the contract (one sync each)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            mixed, target = mix(x, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert mixed.device.type == "cuda" and target.device.type == "cuda"
    assert torch.allclose(target.sum(dim=1), torch.ones(32, device=device), atol=1e-6)
    mix.check()
    with pytest.raises(ValueError) as exc:
        mixer(spec, 10, generator=torch.Generator())(x, y)  # a CPU generator, a CUDA batch
    assert "pass a generator on the batch's device" in one_line(exc)
