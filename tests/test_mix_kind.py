"""The second method kind: a mixing method sees the batch (and, if it asks, the model's
saliency); the harness checks it, trains with it, draws it and refuses to fingerprint it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import install_fake_plugin, run_arena

from msda_arena import MixMethod, get_method
from msda_arena.data import load_dataset
from msda_arena.data.crops import DEFAULT_SCENARIOS
from msda_arena.grid.config import Recipe
from msda_arena.pluginkit.conformance import MIX_RULES, RULES, run_checks
from msda_arena.theory.gallery import gallery_tensors
from msda_arena.train.loop import train_cell
from msda_arena.train.mixing import MixContractError, Mixer

pytestmark = pytest.mark.usefixtures("one_thread")


class LerpMix(MixMethod):
    """Mixup written as a mixing method: every pixel weighs x_i by lambda."""

    name = "lerpmix"
    summary = "mixup as a mixing method"

    def mix(self, x, y, partner, lam, generator, saliency=None):
        w = lam.expand(x.shape[0]).to(x.dtype)
        return torch.lerp(x[partner], x, w.view(-1, 1, 1, 1)), w


class SalientHalf(MixMethod):
    """Keeps x_i where its saliency is above its median, the partner elsewhere."""

    name = "salienthalf"
    needs_saliency = True

    def __init__(self, **values):
        super().__init__(**values)
        self.saliency_shapes: list[tuple[int, ...]] = []

    def mix(self, x, y, partner, lam, generator, saliency=None):
        s = saliency(x)
        self.saliency_shapes.append(tuple(s.shape))
        keep = (s > s.flatten(1).median(dim=1).values.view(-1, 1, 1)).unsqueeze(1).to(x.dtype)
        return torch.lerp(x[partner], x, keep), keep.mean(dim=(1, 2, 3))


class Noisy(LerpMix):
    def mix(self, x, y, partner, lam, generator, saliency=None):
        mixed, w = super().mix(x, y, partner, lam, generator)
        return mixed + 0.05 * torch.randn(mixed.shape, generator=generator), w


class ThirdImage(LerpMix):
    def mix(self, x, y, partner, lam, generator, saliency=None):
        mixed, w = super().mix(x, y, partner, lam, generator)
        return 0.5 * mixed + 0.5 * x.roll(1, dims=0), w


class PerChannel(LerpMix):
    """A different weight per channel: not one convex combination per pixel."""

    def mix(self, x, y, partner, lam, generator, saliency=None):
        c = x.shape[1]
        w = torch.linspace(0.1, 0.9, c).view(1, c, 1, 1)
        return torch.lerp(x[partner], x, w), torch.full((x.shape[0],), 0.5)


class FixedPatch(LerpMix):
    """Pastes the partner's top-left 8x8 patch but claims lambda as the weight of y_i."""

    def mix(self, x, y, partner, lam, generator, saliency=None):
        mixed = x.clone()
        mixed[:, :, :8, :8] = x[partner, :, :8, :8]
        return mixed, lam.expand(x.shape[0]).to(torch.float32)


class DeclaredPatch(FixedPatch):
    weight_is_pixel_share = False
    weight_reason = "lambda by design, whatever was pasted"


class UnexplainedPatch(FixedPatch):
    weight_is_pixel_share = False


class Looping(LerpMix):
    def mix(self, x, y, partner, lam, generator, saliency=None):
        out = torch.stack([0.5 * x[i] + 0.5 * x[partner[i]] for i in range(x.shape[0])])
        return out, torch.full((x.shape[0],), 0.5)


class Unseeded(LerpMix):
    def mix(self, x, y, partner, lam, generator, saliency=None):
        w = torch.rand(x.shape[0])  # not from the generator
        return torch.lerp(x[partner], x, w.view(-1, 1, 1, 1)), w


class HeavyWeight(LerpMix):
    def mix(self, x, y, partner, lam, generator, saliency=None):
        mixed, w = super().mix(x, y, partner, lam, generator)
        return mixed, w * 2


class NoWeight(LerpMix):
    def mix(self, x, y, partner, lam, generator, saliency=None):
        return super().mix(x, y, partner, lam, generator)[0]


def failed(method) -> dict[str, str]:
    return {r.rule: r.detail for r in run_checks(method) if not r.passed}


def test_conforming_mixing_methods_pass_every_mix_rule():
    for method in (LerpMix(), LerpMix(alpha=0.2), SalientHalf()):
        results = run_checks(method)
        assert [r.rule for r in results] == list(MIX_RULES)
        assert all(r.passed for r in results), [r for r in results if not r.passed]
    assert MIX_RULES[-2:] == ("convex", "pixel-share") and "label-weight" in RULES


@pytest.mark.parametrize(
    ("method", "rules"),
    [
        (Looping(), ["vectorised"]),
        (Unseeded(), ["determinism"]),
        (HeavyWeight(), ["range", "pixel-share"]),  # 2 * lambda: nor is it the pixel share
        (FixedPatch(), ["pixel-share"]),
        (UnexplainedPatch(), ["pixel-share"]),
    ],
)
def test_each_broken_mixing_method_fails_exactly_its_rules(method, rules):
    assert list(failed(method)) == rules


@pytest.mark.parametrize("method", [Noisy(), ThirdImage(), PerChannel()])
def test_a_mix_that_is_not_convex_fails_convex_and_its_pixel_share_is_not_checked(method):
    assert failed(method) == {
        "convex": failed(method)["convex"],
        "pixel-share": "not checked (an earlier rule failed)",
    }


def test_a_weight_that_is_not_the_pixel_share_fails_unless_declared_with_a_reason():
    detail = failed(FixedPatch())["pixel-share"]
    assert "\n" not in detail
    assert detail.startswith("the returned weight differs from the share of x[i]'s pixels")
    assert "declare weight_is_pixel_share = False" in detail
    assert "weight_reason" in failed(UnexplainedPatch())["pixel-share"]
    # declared: every rule passes, and pixel-share reports the reason and the gap
    results = {r.rule: r for r in run_checks(DeclaredPatch())}
    assert all(r.passed for r in results.values())
    report = results["pixel-share"].detail
    assert report.startswith("weight declared not the pixel share (lambda by design")
    gap = float(report.rsplit(" ", 1)[1])
    assert 0.1 < gap <= 1.0
    # a conforming method reports nothing
    assert {r.rule: r.detail for r in run_checks(LerpMix())}["pixel-share"] == "ok"


def test_outputs_of_the_wrong_form_fail_type_and_leave_later_rules_unchecked():
    results = failed(NoWeight())
    assert results["type"].startswith("mix() must return a tuple (mixed, weight)")
    assert "runs" not in results
    assert results["convex"] == "not checked (an earlier rule failed)"


def test_the_harness_trains_on_the_weight_the_method_returns():
    x = torch.randn(6, 3, 8, 8)
    y = torch.arange(6)
    g = torch.Generator().manual_seed(0)
    mixed = Mixer(LerpMix(), pairing="flip")(x, y, g)
    lam = float(mixed.lam)
    assert mixed.masks is None
    assert torch.allclose(mixed.inputs, lam * x + (1 - lam) * x.flip(0), atol=1e-6)
    assert torch.allclose(mixed.weight, torch.full((6,), lam))
    logits = torch.randn(6, 6)
    expected = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y.flip(0))
    assert math.isclose(float(mixed.loss(logits)), float(expected), rel_tol=1e-5)


def test_a_saliency_method_gets_the_models_input_gradients_every_step():
    data = load_dataset(
        "procedural", None, train_size=64, test_size=32, num_classes=4, image_size=16
    )
    method = SalientHalf()
    recipe = Recipe("mix", epochs=2, batch_size=16, lr=0.05)
    result = train_cell(
        "resnet8_tiny_cifar", method, data, recipe, DEFAULT_SCENARIOS["standard"], 0
    )
    assert math.isfinite(result.top1) and math.isfinite(result.train_loss)
    assert method.saliency_shapes == [(16, 16, 16)] * 8  # 4 steps a epoch, 2 epochs


def test_the_saliency_is_the_input_gradient_and_leaves_parameter_gradients_alone():
    from msda_arena.train.loop import CellSetup, TrainStep
    from msda_arena.train.saliency import input_gradients

    data = load_dataset(
        "procedural", None, train_size=32, test_size=16, num_classes=4, image_size=16
    )
    step = TrainStep(
        CellSetup(
            "resnet8_tiny_cifar",
            SalientHalf(),
            data,
            Recipe("s", epochs=1, batch_size=16, lr=0.05),
            DEFAULT_SCENARIOS["standard"],
            0,
        )
    )
    step.model.train()
    stats = [b.clone() for b in step.model.buffers()]
    x = torch.randn(16, 3, 16, 16)
    y = torch.arange(16) % 4
    s = step._saliency(y)(x)
    assert step.model.training  # training mode restored
    assert all(torch.equal(a, b) for a, b in zip(stats, step.model.buffers(), strict=True))
    grads = [p.grad for p in step.model.parameters()]
    assert all(g is None for g in grads)
    step.model.eval()  # the saliency is the eval-mode input gradient
    expected = input_gradients(step.model, x, y, "rms")
    assert s.shape == (16, 16, 16) and torch.allclose(s, expected)
    assert float(s.min()) >= 0 and float(s.max()) > 0
    with pytest.raises(ValueError, match="saliency\\(\\) takes the batch's 16 images"):
        step._saliency(y)(x[:3])


def test_a_mixing_method_breaking_the_contract_mid_training_names_rule_and_batch():
    class LateNaN(LerpMix):
        calls = 0

        def mix(self, x, y, partner, lam, generator, saliency=None):
            type(self).calls += 1
            mixed, w = super().mix(x, y, partner, lam, generator)
            return (mixed * math.nan if self.calls == 3 else mixed), w

    data = load_dataset(
        "procedural", None, train_size=64, test_size=32, num_classes=4, image_size=16
    )
    with pytest.raises(MixContractError) as info:
        train_cell(
            "resnet8_tiny_cifar",
            LateNaN(),
            data,
            Recipe("m", epochs=1, batch_size=16, lr=0.05),
            DEFAULT_SCENARIOS["standard"],
            0,
        )
    assert str(info.value).startswith("mix contract rule 'finite' failed at batch 3 (epoch 1)")


def test_the_gallery_of_a_mixing_method_recovers_its_per_pixel_weights():
    lams = (0.2, 0.7)
    xi, xj, weights, mixed, w = gallery_tensors(LerpMix(), lams, size=24)
    assert weights.shape == (2, 1, 24, 24)
    for row, lam in enumerate(lams):
        assert torch.allclose(weights[row], torch.full((1, 24, 24), lam), atol=1e-4)
        assert torch.allclose(mixed[row], lam * xi[row] + (1 - lam) * xj[row], atol=1e-5)
    assert torch.allclose(w, torch.tensor(lams))
    _, _, weights, _, w = gallery_tensors(SalientHalf(), lams, size=24)
    assert set(weights.unique().tolist()) <= {0.0, 1.0}  # keep-or-replace, pixel by pixel
    assert torch.allclose(w, weights.mean(dim=(1, 2, 3)))


MIX_PLUGIN = """
import torch
from msda_arena import MixMethod, hookimpl

class Blend(MixMethod):
    name = "blend"
    summary = "a test mixing method"
    needs_saliency = True

    def mix(self, x, y, partner, lam, generator, saliency=None):
        s = saliency(x)
        keep = (s >= s.flatten(1).median(dim=1).values.view(-1, 1, 1)).unsqueeze(1).to(x.dtype)
        return torch.lerp(x[partner], x, keep), keep.mean(dim=(1, 2, 3))

@hookimpl
def register_mask_methods(register):
    register(Blend)
"""


def test_cli_lists_checks_draws_and_trains_an_installed_mixing_plugin(plugin_site, tmp_path):
    install_fake_plugin(plugin_site, "arena-blend", MIX_PLUGIN)
    listed = run_arena("methods", "blend", env={"COLUMNS": "200"})
    row = next(line for line in listed.stdout.splitlines() if "blend" in line)
    assert "mix (saliency)" in row and "arena-blend" in row
    checked = run_arena("check", "--method", "blend")
    assert checked.returncode == 0, checked.stderr
    assert f"all {len(MIX_RULES)} rules pass" in checked.stderr
    out = tmp_path / "blend.png"
    drawn = run_arena("masks", "--method", "blend", "--out", str(out))
    assert drawn.returncode == 0, drawn.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"
    refused = run_arena("fingerprint", "--method", "blend")
    assert refused.returncode == 2
    assert "is a mixing method" in refused.stderr and refused.stderr.count("\n") == 1
    from msda_arena.pluginkit.conformance import one_cell_run

    record = one_cell_run("blend", tmp_path / "run")
    assert record["status"] == "ok" and record["method_package"] == "arena-blend"


PATCH_PLUGIN = """
import torch
from msda_arena import MixMethod, hookimpl


class Patch(MixMethod):
    name = "patch"
    summary = "the partner's top-left 8x8 patch, weighed lambda"

    def mix(self, x, y, partner, lam, generator, saliency=None):
        mixed = x.clone()
        mixed[:, :, :8, :8] = x[partner, :, :8, :8]
        return mixed, lam.expand(x.shape[0]).to(torch.float32)


class DeclaredPatch(Patch):
    name = "declared-patch"
    weight_is_pixel_share = False
    weight_reason = "lambda by design"


@hookimpl
def register_methods(register):
    register(Patch)
    register(DeclaredPatch)
"""


def test_arena_check_fails_a_weight_that_is_not_the_pixel_share(plugin_site):
    install_fake_plugin(plugin_site, "arena-patch", PATCH_PLUGIN)
    wide = {"COLUMNS": "400"}  # the rule's detail on one table row
    refused = run_arena("check", "--method", "patch", env=wide)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].endswith("rule(s) pixel-share")
    row = next(line for line in refused.stdout.splitlines() if "pixel-share" in line)
    assert "FAIL" in row and "the returned weight differs from the share" in row
    # the declared twin passes (run_checks, as arena check, in
    # test_a_weight_that_is_not_the_pixel_share_fails_unless_declared_with_a_reason)
    assert not failed(get_method("declared-patch"))
