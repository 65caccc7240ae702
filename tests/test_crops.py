"""The crop scenarios: object scales as claimed, determinism, shapes, shifts and flips."""

from __future__ import annotations

import math

import pytest
import torch

from msda_arena.api.errors import ConfigError
from msda_arena.data.crops import (
    DEFAULT_SCENARIOS,
    CropParams,
    Scenario,
    apply_params,
    sample_params,
    test_views,
    train_views,
)
from msda_arena.data.procedural import generate

SIZE = 32


@pytest.fixture(scope="module")
def objects() -> tuple[torch.Tensor, torch.Tensor]:
    """Procedural images (as a float batch) and their object masks (float)."""
    x, _, masks = generate(256, image_size=SIZE, object_scale=0.4, seed=11, return_masks=True)
    return x.float() / 255 - 0.5, masks.float()


def area_fraction(masks: torch.Tensor) -> torch.Tensor:
    return masks.mean(dim=(1, 2, 3))


def fully_inside(masks: torch.Tensor, p: CropParams) -> torch.Tensor:
    """Which objects lie entirely inside their crop window (so nothing of them is cut)."""
    m = masks[:, 0] > 0.5
    centres = (torch.arange(SIZE) + 0.5) / SIZE * 2 - 1  # pixel centres, normalised
    half_px = 1 / SIZE
    rows, cols = m.any(dim=2), m.any(dim=1)
    inf = torch.tensor(math.inf)
    y0 = torch.where(rows, centres, inf).min(1).values - half_px
    y1 = torch.where(rows, centres, -inf).max(1).values + half_px
    x0 = torch.where(cols, centres, inf).min(1).values - half_px
    x1 = torch.where(cols, centres, -inf).max(1).values + half_px
    return (
        (x0 >= p.cx - p.width)
        & (x1 <= p.cx + p.width)
        & (y0 >= p.cy - p.height)
        & (y1 <= p.cy + p.height)
    )


def test_default_scenarios_are_the_contract_names() -> None:
    assert set(DEFAULT_SCENARIOS) == {"standard", "large-crop", "small-crop"}
    assert DEFAULT_SCENARIOS["large-crop"].scale[0] > 1  # zooms out: small objects
    assert DEFAULT_SCENARIOS["small-crop"].scale[1] < 1  # zooms in: large objects
    for name, scenario in DEFAULT_SCENARIOS.items():
        assert scenario.name == name
        assert Scenario.from_dict(name, scenario.to_dict()) == scenario


def test_train_views_is_sample_then_apply(objects: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = objects
    scenario = DEFAULT_SCENARIOS["large-crop"]
    views = train_views(x, scenario, torch.Generator().manual_seed(3))
    params = sample_params(scenario, x.shape[0], torch.Generator().manual_seed(3), (SIZE, SIZE))
    torch.testing.assert_close(views, apply_params(x, params))


def test_large_crop_makes_objects_one_over_scale_as_large(
    objects: tuple[torch.Tensor, torch.Tensor],
) -> None:
    _, masks = objects
    scenario = DEFAULT_SCENARIOS["large-crop"]
    p = sample_params(scenario, masks.shape[0], torch.Generator().manual_seed(0), (SIZE, SIZE))
    assert p.scale.min() >= scenario.scale[0] and p.scale.max() <= scenario.scale[1]
    assert fully_inside(masks, p).all()  # zooming out never cuts an object
    ratio = area_fraction(apply_params(masks, p)) / area_fraction(masks)
    # Each object shrinks by its own 1/scale (bilinear resampling of a hard mask: a few %).
    assert (ratio * p.scale - 1).abs().median() < 0.05
    # On average by E[1/s] for s log-uniform on [2, 4]: (1/2 - 1/4) / ln 2 = 0.361.
    lo, hi = scenario.scale
    expected = (1 / lo - 1 / hi) / math.log(hi / lo)
    assert ratio.mean().item() == pytest.approx(expected, rel=0.05)


def test_small_crop_makes_objects_one_over_scale_larger(
    objects: tuple[torch.Tensor, torch.Tensor],
) -> None:
    _, masks = objects
    scenario = DEFAULT_SCENARIOS["small-crop"]
    p = sample_params(scenario, masks.shape[0], torch.Generator().manual_seed(1), (SIZE, SIZE))
    assert p.scale.min() >= scenario.scale[0] and p.scale.max() <= scenario.scale[1]
    ratio = area_fraction(apply_params(masks, p)) / area_fraction(masks)
    whole = fully_inside(masks, p)
    assert whole.sum() >= 20
    # Objects the window does not cut grow by exactly 1/scale: 2x to 4x in area.
    torch.testing.assert_close(
        ratio[whole] * p.scale[whole], torch.ones(int(whole.sum())), rtol=0.03, atol=0
    )
    assert ratio[whole].min() > 1.9 and ratio[whole].max() < 4.1
    # Cut objects show less of themselves, never more than 1/scale.
    assert (ratio * p.scale <= 1.03).all()


@pytest.mark.parametrize("name", ["large-crop", "small-crop"])
def test_test_views_scale_objects_by_the_geometric_mean(
    objects: tuple[torch.Tensor, torch.Tensor], name: str
) -> None:
    _, masks = objects
    scenario = DEFAULT_SCENARIOS[name]
    views = test_views(masks, scenario)
    ratio = area_fraction(views) / area_fraction(masks)
    s = scenario.test_scale
    assert s == pytest.approx(2 * math.sqrt(2) if name == "large-crop" else math.sqrt(2) / 4)
    centred = CropParams(*(t[:1].expand(masks.shape[0]) for t in _test_geometry(scenario)))
    whole = fully_inside(masks, centred)
    assert whole.sum() >= 20
    assert (ratio[whole] * s - 1).abs().median() < 0.05
    assert torch.equal(test_views(masks, scenario), views)  # deterministic


def _test_geometry(scenario: Scenario) -> tuple[torch.Tensor, ...]:
    from msda_arena.data.crops import test_params

    p = test_params(scenario, 1)
    return p.scale, p.ratio, p.width, p.height, p.cx, p.cy, p.flip


def test_standard_test_view_is_the_image_itself(objects: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = objects
    assert test_views(x, DEFAULT_SCENARIOS["standard"]) is x
    resized = test_views(x, DEFAULT_SCENARIOS["standard"], out_size=64)
    assert resized.shape == (x.shape[0], 3, 64, 64)


def test_standard_views_are_whole_pixel_shifts_and_flips() -> None:
    """``standard`` is pad-4 random crop + flip: every view is an exact shifted copy."""
    x = torch.randn(48, 2, 12, 12)
    scenario = Scenario("pad", scale=(1, 1), translate=4 / 12, flip=True)
    views = train_views(x, scenario, torch.Generator().manual_seed(0))
    seen_shifts, flips = set(), 0
    for i in range(x.shape[0]):
        match = None
        for flip in (False, True):
            src = x[i].flip(-1) if flip else x[i]
            padded = torch.nn.functional.pad(src, (4, 4, 4, 4))
            for dy in range(9):
                for dx in range(9):
                    if torch.allclose(views[i], padded[:, dy : dy + 12, dx : dx + 12], atol=1e-5):
                        match = (flip, dy, dx)
        assert match is not None, f"view {i} is not a shifted copy"
        seen_shifts.add(match[1:])
        flips += match[0]
    assert len(seen_shifts) > 25  # shifts spread over the 9 x 9 grid
    assert 12 <= flips <= 36


def test_flip_only_when_asked() -> None:
    x = torch.randn(64, 1, 8, 8)
    flip = train_views(x, Scenario("f", flip=True), torch.Generator().manual_seed(0))
    same = torch.isclose(flip, x, atol=1e-5).flatten(1).all(1)
    mirrored = torch.isclose(flip, x.flip(-1), atol=1e-5).flatten(1).all(1)
    assert (same ^ mirrored).all()
    assert 16 <= int(mirrored.sum()) <= 48
    still = train_views(x, Scenario("n", flip=False), torch.Generator().manual_seed(0))
    torch.testing.assert_close(still, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(DEFAULT_SCENARIOS))
def test_views_are_deterministic_from_the_generator(
    objects: tuple[torch.Tensor, torch.Tensor], name: str
) -> None:
    x, _ = objects
    scenario = DEFAULT_SCENARIOS[name]
    a = train_views(x[:32], scenario, torch.Generator().manual_seed(5))
    b = train_views(x[:32], scenario, torch.Generator().manual_seed(5))
    c = train_views(x[:32], scenario, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = torch.Generator().manual_seed(5)
    first, second = train_views(x[:32], scenario, g), train_views(x[:32], scenario, g)
    assert not torch.equal(first, second)  # the generator advances


@pytest.mark.parametrize(
    ("out_size", "expected"), [(None, (32, 32)), (24, (24, 24)), ((16, 20), (16, 20))]
)
def test_output_shapes_and_dtypes(
    out_size: int | tuple[int, int] | None, expected: tuple[int, int]
) -> None:
    x = torch.randn(5, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    for scenario in DEFAULT_SCENARIOS.values():
        out = train_views(x, scenario, g, out_size=out_size)
        assert out.shape == (5, 3, *expected) and out.dtype == torch.float32
        assert test_views(x, scenario, out_size=out_size).shape == (5, 3, *expected)
    half = train_views(x.to(torch.bfloat16), DEFAULT_SCENARIOS["large-crop"], g)
    assert half.dtype == torch.bfloat16


def test_zoom_out_pads_with_zero_the_normalised_mean() -> None:
    x = torch.full((8, 3, 16, 16), 2.0)
    out = train_views(x, DEFAULT_SCENARIOS["large-crop"], torch.Generator().manual_seed(0))
    assert out.min() == 0.0 and out.max() == pytest.approx(2.0)
    filled = (out > 0).float().mean(dim=(1, 2, 3))
    assert (filled < 0.6).all()  # the image covers 1/scale <= 1/2 of each view


def test_bad_input_and_config_fail_clearly() -> None:
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="normalised float"):
        train_views(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), DEFAULT_SCENARIOS["standard"], g)
    with pytest.raises(ConfigError, match="unknown key"):
        Scenario.from_dict("x", {"scale": [1, 2], "zoom": 3})
    with pytest.raises(ConfigError, match="0 < lo <= hi"):
        Scenario.from_dict("x", {"scale": [4, 2]})
    with pytest.raises(ConfigError, match="translate"):
        Scenario.from_dict("x", {"translate": 1.5})
    assert Scenario.from_dict("x", {"scale": 2.0}).scale == (2.0, 2.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_views_on_cuda_use_a_cuda_generator() -> None:
    x = torch.randn(64, 3, 32, 32, device="cuda")
    scenario = DEFAULT_SCENARIOS["large-crop"]
    a = train_views(x, scenario, torch.Generator(device="cuda").manual_seed(0))
    b = train_views(x, scenario, torch.Generator(device="cuda").manual_seed(0))
    assert a.device.type == "cuda" and torch.equal(a, b)
    with pytest.raises(ValueError, match="generator is on cpu"):
        train_views(x, scenario, torch.Generator().manual_seed(0))
