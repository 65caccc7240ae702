"""The third method kind, feature methods: the harness mixes where the method says (the
input or a timm feature stage, through a one-shot forward hook), trains on its
weighted sources, checks every batch, and `arena check` enforces the kind's rules."""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from msda_arena import FeatureMixMethod, Param
from msda_arena.api.errors import UsageError
from msda_arena.data import load_dataset
from msda_arena.data.crops import DEFAULT_SCENARIOS
from msda_arena.grid.config import Recipe
from msda_arena.pluginkit.conformance import FEATURE_RULES, run_checks
from msda_arena.theory.fingerprint import fingerprint
from msda_arena.theory.gallery import gallery_tensors
from msda_arena.train.feature_mixing import FeatureMixer, feature_stages
from msda_arena.train.loop import train_cell
from msda_arena.train.mixing import FeatureContractError, MethodContractError, MethodError
from msda_arena.train.saliency import class_activation_maps

pytestmark = pytest.mark.usefixtures("one_thread")

ARCH = "resnet8_tiny_cifar"


class StageMix(FeatureMixMethod):
    """Mixup of the features at the stage ``at``, with three sources: x_i, its partner
    and the partner's partner (weights lam, (1-lam)/2, (1-lam)/2), labels weighted
    ``scale`` times that."""

    name = "stage-mix"
    params = (Param("at", int, 1), Param("scale", float, 1.0))

    def stage(self, stages, generator):
        return self.at

    def mix(self, h, y, partner, lam, generator, model=None):
        b = h.shape[0]
        w = lam.float().reshape(-1).expand(b)
        view = (-1, *([1] * (h.ndim - 1)))
        third = partner[partner]
        wv = w.view(view)
        mixed = wv * h.float() + (1 - wv) / 2 * (h[partner].float() + h[third].float())
        sources = torch.stack([torch.arange(b), partner, third], dim=1)
        weights = torch.stack([w, (1 - w) / 2, (1 - w) / 2], dim=1) * self.scale
        return mixed.to(h.dtype), sources, weights


class Faulty(StageMix):
    """StageMix with one fault from the ``from_call``-th call on."""

    name = "faulty"
    params = (*StageMix.params, Param("fault", str, "none"), Param("from_call", int, 0))

    def __init__(self, **values):
        super().__init__(**values)
        self.calls = 0

    def mix(self, h, y, partner, lam, generator, model=None):
        mixed, sources, weights = super().mix(h, y, partner, lam, generator)
        self.calls += 1
        if self.calls <= self.from_call:
            return mixed, sources, weights
        if self.fault == "negative":
            weights = weights - 1.0
        elif self.fault == "nan":
            mixed = mixed * float("nan")
        elif self.fault == "sources":
            sources = sources + h.shape[0]
        elif self.fault == "shape":
            weights = weights[:, :2]
        elif self.fault == "noise":
            mixed = mixed + 0.1 * torch.randn(mixed.shape, generator=generator)
        elif self.fault == "random":
            mixed = mixed * torch.rand(1)  # global state, and a rescale
        elif self.fault == "loop":
            mixed = torch.stack([m.clone() for m in mixed])
        return mixed, sources, weights


@pytest.fixture(scope="module")
def data():
    return load_dataset(
        "procedural", None, train_size=64, test_size=32, num_classes=4, image_size=16
    )


def _train(method, data, epochs=1):
    recipe = Recipe("feature", epochs=epochs, batch_size=16, lr=0.05)
    return train_cell(ARCH, method, data, recipe, DEFAULT_SCENARIOS["standard"], seed=0)


def _model():
    torch.manual_seed(0)
    return timm.create_model(ARCH, num_classes=4)


def test_the_stages_are_the_input_and_timms_feature_info():
    stages = feature_stages(_model(), 3)
    assert [(s.index, s.module, s.channels, s.reduction) for s in stages] == [
        (0, "", 3, 1),
        (1, "stages.0", 8, 1),
        (2, "stages.1", 16, 2),
        (3, "stages.2", 32, 4),
    ]
    resnet18 = timm.create_model("resnet18", num_classes=4)  # any timm model
    assert [s.module for s in feature_stages(resnet18, 3)][1:] == [
        "act1", "layer1", "layer2", "layer3", "layer4",
    ]  # fmt: skip


@pytest.mark.parametrize("arch", [ARCH, "preactresnet10_tiny_cifar"])
def test_the_stages_are_what_timms_features_only_returns(arch):
    torch.manual_seed(0)
    features = timm.create_model(arch, num_classes=4, features_only=True).eval()
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=4).eval()
    seen = []
    for stage in feature_stages(model, 3)[1:]:
        module = model.get_submodule(stage.module)
        module.register_forward_hook(lambda m, a, out: seen.append(out))
    x = torch.randn(2, 3, 16, 16)
    model(x)
    outs = features(x)
    assert len(outs) == len(seen) == len(model.feature_info)
    assert all(torch.equal(a, b) for a, b in zip(outs, seen, strict=True))


@pytest.mark.parametrize("at", [0, 1, 2])
def test_the_next_forward_sees_the_mix_of_the_chosen_stage_once(at):
    model = _model().train()
    x = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    y = torch.arange(6) % 4
    plain: dict[str, torch.Tensor] = {}
    stage_out = model.stages[at - 1] if at else None
    if stage_out is not None:
        handle = stage_out.register_forward_hook(lambda m, a, out: plain.update(h=out.detach()))
        model(x)
        handle.remove()
    else:
        plain["h"] = x
    mixer = FeatureMixer(StageMix(at=at), model, feature_stages(model, 3))
    batch = mixer(x, y, torch.Generator().manual_seed(2), torch.Generator())
    got: dict[str, torch.Tensor] = {}
    nxt = model.stages[at]
    handle = nxt.register_forward_pre_hook(lambda m, args: got.update(h=args[0].detach()))
    if at:
        model(batch.inputs)
    handle.remove()
    h, lam, partner = plain["h"], batch.lam, batch.sources[:, 1]
    expected = lam * h + (1 - lam) / 2 * (h[partner] + h[partner[partner]])
    seen = batch.inputs if at == 0 else got["h"]
    assert torch.allclose(seen, expected, atol=1e-5)
    assert batch.sources.shape == (6, 3)
    again: dict[str, torch.Tensor] = {}
    handle = nxt.register_forward_pre_hook(lambda m, args: again.update(h=args[0].detach()))
    model(x)  # the hook fired once: a second forward is not mixed
    handle.remove()
    if at:
        assert torch.allclose(again["h"], h)


def test_the_loss_is_the_weighted_sum_of_the_sources_cross_entropies():
    model = _model()
    x, y = torch.randn(5, 3, 16, 16), torch.tensor([0, 1, 2, 3, 1])
    mixer = FeatureMixer(StageMix(at=2, scale=1.5), model, feature_stages(model, 3))
    batch = mixer(x, y, torch.Generator().manual_seed(0), torch.Generator())
    logits = model(batch.inputs)
    ce = torch.stack(
        [F.cross_entropy(logits, y[batch.sources[:, j]], reduction="none") for j in range(3)], 1
    )
    assert batch.weights.sum(dim=1).sub(1.5).abs().max() < 1e-6  # not 1: scaled labels
    assert torch.allclose(batch.loss(logits), (batch.weights * ce).sum(1).mean())
    assert torch.allclose(batch.soft_targets(4).sum(1), torch.full((5,), 1.5))


def test_a_feature_method_trains_a_cell_eager_and_says_so_when_compile_was_asked(data):
    result = _train(StageMix(at=2), data)
    assert math.isfinite(result.train_loss) and 0 <= result.top1 <= 100
    assert result.notes == ""  # compile is off on the CPU by default: nothing to note
    recipe = Recipe("feature", epochs=1, batch_size=16, lr=0.05, compile=True)
    asked = train_cell(ARCH, StageMix(at=2), data, recipe, DEFAULT_SCENARIOS["standard"], 0)
    assert asked.notes == "feature method: trained eager (torch.compile not used)"
    assert asked.train_loss == result.train_loss  # the same eager training


@pytest.mark.parametrize(
    ("fault", "rule"),
    [("negative", "range"), ("nan", "finite"), ("sources", "range"), ("shape", "shape")],
)
def test_a_broken_batch_fails_the_cell_naming_the_rule_and_batch(data, fault, rule):
    with pytest.raises(MethodContractError) as info:
        _train(Faulty(fault=fault, from_call=2), data)
    assert info.value.rule == rule and info.value.contract == "feature"
    assert isinstance(info.value, FeatureContractError)
    assert "batch 3 (epoch 1)" in str(info.value)


def test_a_stage_outside_the_model_fails_the_stage_rule(data):
    with pytest.raises(MethodContractError, match=r"rule 'stage'.*from 0 to 3"):
        _train(StageMix(at=7), data)


def test_a_method_that_raises_fails_with_method_error(data):
    class Boom(StageMix):
        def stage(self, stages, generator):
            raise RuntimeError("boom")

    with pytest.raises(MethodError, match=r"boom.*stage\(\)"):
        _train(Boom(), data)


def test_arena_check_passes_a_conforming_three_source_method():
    results = run_checks(StageMix(at=2))
    assert [r.rule for r in results] == list(FEATURE_RULES)
    assert [r for r in results if not r.passed] == []


@pytest.mark.parametrize(
    ("fault", "rule"),
    [
        ("negative", "range"),
        ("nan", "finite"),
        ("sources", "range"),
        ("shape", "shape"),
        ("noise", "from-batch"),
        ("random", "determinism"),
        ("loop", "vectorised"),
    ],
)
def test_arena_check_names_the_broken_rule(fault, rule):
    failed = {r.rule for r in run_checks(Faulty(fault=fault)) if not r.passed}
    assert rule in failed
    assert "runs" not in failed


def test_masks_and_fingerprint_refuse_a_feature_method_in_one_line():
    for call in (lambda m: gallery_tensors(m), lambda m: fingerprint(m, samples=4)):
        with pytest.raises(UsageError, match="is a feature method: it mixes inside the model"):
            call(StageMix())


def test_class_activation_maps_average_to_the_logits():
    model = _model().eval()
    x = torch.randn(3, 3, 16, 16)
    cam = class_activation_maps(model, x)
    assert cam.shape == (3, 4, 4, 4)
    assert torch.allclose(cam.mean(dim=(2, 3)), model(x), atol=1e-5)


class _HostReads(TorchFunctionMode):
    """Records tensor methods that copy values to the host (each one a device sync)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("item", "tolist", "__bool__", "__float__", "cpu"):
            self.seen.append(func.__name__)
        return func(*args, **(kwargs or {}))


def test_a_feature_step_reads_nothing_back_after_the_first_batch():
    model = _model()
    mixer = FeatureMixer(StageMix(at=2), model, feature_stages(model, 3), per_sample=True)
    g, host = torch.Generator().manual_seed(0), torch.Generator()
    x, y = torch.rand(4, 3, 8, 8), torch.arange(4)
    mixer(x, y, g, host).loss(model(x))  # the first batch is checked at once
    with _HostReads() as reads:
        for _ in range(260):  # past a fold of the per-call records
            batch = mixer(x, y, g, host)
            batch.loss(model(batch.inputs))
    assert reads.seen == []
    with _HostReads() as reads:
        mixer.raise_if_violated()
    assert reads.seen == ["tolist"]


@pytest.mark.parametrize("returned", [True, 1.0, "1", None])
def test_a_stage_that_is_not_an_integer_fails_the_stage_rule(returned):
    class Odd(StageMix):
        def stage(self, stages, generator):
            return returned

    model = _model()
    mixer = FeatureMixer(Odd(), model, feature_stages(model, 3))
    with pytest.raises(FeatureContractError, match=r"rule 'stage'.*got"):
        mixer(torch.randn(2, 3, 8, 8), torch.arange(2), torch.Generator(), torch.Generator())


def test_an_integer_tensor_or_numpy_integer_is_a_stage():
    class TensorStage(StageMix):
        def stage(self, stages, generator):
            return torch.randint(2, 3, (), generator=generator)  # 2

    model = _model()
    mixer = FeatureMixer(TensorStage(), model, feature_stages(model, 3))
    batch = mixer(torch.randn(2, 3, 8, 8), torch.arange(2), torch.Generator(), torch.Generator())
    assert batch.stage.index == 2
