"""Manifold Mixup's own tests: the arena's conformance rules, the reference's layer
choice and arithmetic at the stage it picks, the labels, and one trained cell."""

from __future__ import annotations

import timm
import torch
from arena_manifold_mixup import ManifoldMixup, mix_hidden

import msda_arena.models.cifar  # noqa: F401  (registers the CIFAR models)
from msda_arena import get_method
from msda_arena.testing import assert_conforms, one_cell_run
from msda_arena.train.feature_mixing import FeatureMixer, feature_stages
from msda_arena.train.mixing import MethodError

torch.set_num_threads(1)


def _model(arch: str = "preactresnet10_tiny_cifar") -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(arch, num_classes=4).train()


def test_manifold_mixup_conforms_to_the_feature_contract():
    assert_conforms("manifold-mixup")
    assert_conforms("manifold-mixup(layers=(3,),alpha=1.0)")


def test_defaults_are_the_reference_cifar_setting():
    m = get_method("manifold-mixup")
    assert m.kind == "feature"
    assert m.values == {"alpha": 2.0, "layers": (0, 1, 2)}  # --mixup_alpha 2.0, randint(0, 2)


def test_the_stage_is_uniform_over_layers_and_maps_to_the_reference_layers():
    stages = feature_stages(_model("preactresnet18_cifar"), 3)
    # stage k >= 1 is the output of residual stage k: the reference's layer{k}
    assert [s.module for s in stages[1:3]] == ["stages.0", "stages.1"]
    g = torch.Generator().manual_seed(0)
    drawn = [ManifoldMixup().stage(stages, g) for _ in range(3000)]
    counts = [drawn.count(k) for k in (0, 1, 2)]
    assert set(drawn) == {0, 1, 2} and min(counts) > 900  # 1000 each expected


def test_the_next_stage_sees_lambda_h_plus_one_minus_lambda_h_partner():
    model = _model()
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    for k in (0, 1, 2):
        plain: dict[str, torch.Tensor] = {}
        mixed_in: dict[str, torch.Tensor] = {}
        if k:
            hook = model.stages[k - 1].register_forward_hook(
                lambda m, a, o, seen=plain: seen.update(h=o)
            )
            with torch.no_grad():
                model(x)
            hook.remove()
        method = ManifoldMixup(layers=(k,))
        mixer = FeatureMixer(method, model, feature_stages(model, 3), pairing="permute")
        batch = mixer(x, y, torch.Generator().manual_seed(k), torch.Generator())
        pre = model.stages[k].register_forward_pre_hook(
            lambda m, a, seen=mixed_in: seen.update(h=a[0])
        )
        with torch.no_grad():
            model(batch.inputs)
        pre.remove()
        h = plain["h"] if k else x
        lam, partner = batch.lam, batch.sources[:, 1]
        seen = batch.inputs if k == 0 else mixed_in["h"]
        # the reference's arithmetic, bit for bit: out * lam + out[indices] * (1 - lam)
        assert torch.equal(seen, h * lam + h[partner] * (1 - lam))
        assert torch.equal(batch.sources[:, 0], torch.arange(8))
        assert torch.allclose(batch.weights, torch.stack([lam.expand(8), 1 - lam.expand(8)], 1))
        soft = batch.soft_targets(4)
        expected = lam * torch.eye(4)[y] + (1 - lam) * torch.eye(4)[y[partner]]
        assert torch.allclose(soft, expected)  # the reference's target_reweighted


def test_per_sample_lambdas_and_bf16_features_keep_the_features_dtype():
    h = torch.randn(4, 6, 5, 5).to(torch.bfloat16)
    lam = torch.tensor([0.0, 0.25, 0.5, 1.0])
    partner = torch.tensor([3, 2, 1, 0])
    out = mix_hidden(h, partner, lam)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out[0], h[3]) and torch.equal(out[3], h[3])  # lambda 0 and 1
    half = ((h[2].float() + h[1].float()) / 2).to(torch.bfloat16)  # mixed in float32
    assert torch.equal(out[2], half)


def test_a_layer_the_model_does_not_have_is_one_line():
    stages = feature_stages(_model(), 3)  # stages 0..4
    method = ManifoldMixup(layers=(0, 9))
    x, y = torch.randn(4, 3, 16, 16), torch.arange(4)
    mixer = FeatureMixer(method, _model(), stages)
    try:
        mixer(x, y, torch.Generator(), torch.Generator())
    except MethodError as exc:
        assert "layer 9 does not exist; this model has stages 0 to 4" in str(exc)
    else:
        raise AssertionError("layers=(0, 9) ran on a model with 5 stages")


def test_manifold_mixup_trains_one_cell(tmp_path):
    record = one_cell_run("manifold-mixup", tmp_path)
    assert record["status"] == "ok", record["error"]
