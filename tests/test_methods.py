"""Each built-in method against its definition in DESIGN.md."""

import math

import pytest
import torch
from scipy import stats

from msda_arena import get_method
from msda_arena.api._beta import sample_beta

H, W = 32, 24


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def zero_box(mask2d):
    """(rows, cols) index ranges spanned by the zeros of a 2-D mask."""
    rows = torch.nonzero((mask2d == 0).any(dim=1)).flatten()
    cols = torch.nonzero((mask2d == 0).any(dim=0)).flatten()
    return rows, cols


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_lambda_is_beta_alpha_alpha(alpha):
    lam = get_method(f"mixup(alpha={alpha})").sample_lam(4000, gen(1), "cpu").double().numpy()
    assert lam.min() >= 0 and lam.max() <= 1
    assert stats.kstest(lam, stats.beta(alpha, alpha).cdf).pvalue > 1e-3


def test_beta_sampler_handles_asymmetric_and_tiny_shapes():
    x = sample_beta(2.0, 5.0, 4000, gen(2)).double().numpy()
    assert stats.kstest(x, stats.beta(2.0, 5.0).cdf).pvalue > 1e-3
    tiny = sample_beta(0.01, 0.01, 1000, gen(3))
    assert torch.isfinite(tiny).all() and tiny.min() >= 0 and tiny.max() <= 1


def test_vanilla_keeps_every_pixel():
    m = get_method("vanilla")
    lam = m.sample_lam(5, gen(), "cpu")
    assert torch.equal(lam, torch.ones(5))
    assert torch.equal(m.masks(lam, H, W, gen()), torch.ones(5, 1, H, W))


def test_mixup_masks_are_constant_lambda():
    m = get_method("mixup")
    lam = m.sample_lam(16, gen(), "cpu")
    masks = m.masks(lam, H, W, gen())
    assert masks.shape == (16, 1, H, W)
    assert torch.equal(masks, lam.view(-1, 1, 1, 1).expand(-1, 1, H, W))


def test_cutmix_is_one_binary_box_and_label_weight_is_one_minus_clipped_area():
    m = get_method("cutmix")
    lam = torch.linspace(0.05, 0.95, 64)
    masks = m.masks(lam, H, W, gen(4))
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    clipped_seen = 0
    for k in range(64):
        mk = masks[k, 0]
        rows, cols = zero_box(mk)
        # the reference span centre +- cut // 2: 2 * (cut // 2) before clipping
        cut_h = 2 * (math.floor(H * math.sqrt(1 - lam[k].item())) // 2)
        cut_w = 2 * (math.floor(W * math.sqrt(1 - lam[k].item())) // 2)
        if len(rows) == 0:
            assert cut_h == 0 or cut_w == 0
            continue
        # the zeros form exactly one solid rectangle, no larger than the unclipped box
        block = mk[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert (block == 0).all()
        assert len(rows) <= cut_h and len(cols) <= cut_w
        if len(rows) < cut_h or len(cols) < cut_w:
            clipped_seen += 1
            assert rows.min() == 0 or rows.max() == H - 1 or cols.min() == 0 or cols.max() == W - 1
        else:
            assert len(rows) == cut_h and len(cols) == cut_w
        area = len(rows) * len(cols)
        assert mk.mean().item() == pytest.approx(1 - area / (H * W), abs=1e-6)
    assert clipped_seen > 0  # the border clipping case was exercised


def test_hmix_label_weight_equals_lambda_and_box_is_zero():
    m = get_method("hmix")
    lam = m.sample_lam(256, gen(5), "cpu")
    masks = m.masks(lam, H, W, gen(6))
    assert torch.allclose(masks.mean(dim=(1, 2, 3)).double(), lam.double(), atol=1e-6)
    for k in range(0, 256, 17):
        mk = masks[k, 0]
        rows, cols = zero_box(mk)
        if len(rows):
            assert (mk[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] == 0).all()
            side = math.sqrt((1 - lam[k].item()) * 0.5)
            assert len(rows) <= math.floor(H * side) and len(cols) <= math.floor(W * side)
        outside = mk[mk > 0]
        assert torch.allclose(outside, outside[0].expand_as(outside))  # one Mixup value outside


def test_hmix_r_changes_the_box_area():
    lam = torch.full((1,), 0.5)
    small = get_method("hmix(r=0.1)").masks(lam, 64, 64, gen(0))
    large = get_method("hmix(r=1.0)").masks(lam, 64, 64, gen(0))
    assert (small == 0).sum() < (large == 0).sum()


def test_gmix_is_a_gaussian_blob_with_true_mean_weight_on_non_square_images():
    m = get_method("gmix")
    h, w = 40, 24
    lam = torch.tensor([0.1, 0.3, 0.7, 0.9])
    masks = m.masks(lam, h, w, gen(7))
    assert masks.shape == (4, 1, h, w)
    for k, lv in enumerate(lam.tolist()):
        mk = masks[k, 0].double()
        g = mk if lv < 0.5 else 1 - mk
        peak = torch.nonzero(g == g.max())[0]
        assert g.max().item() == pytest.approx(1.0)
        # log G is the exact quadratic of the definition around the peak
        lam_k = min(lv, 1 - lv)
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        d2 = (yy - peak[0]) ** 2 + (xx - peak[1]) ** 2
        expected = torch.exp(-math.pi * d2.double() / (lam_k * h * w))
        assert torch.allclose(g, expected, atol=1e-5)
    # Unclipped blobs have mean ~ lambda; the weight the harness uses is mean(M) itself.
    big = m.masks(torch.full((2000,), 0.2), 64, 64, gen(8)).mean(dim=(1, 2, 3))
    assert big.max() <= 0.2 + 1e-3  # clipping only loses mass
    assert (big < 0.19).any()  # and does so near the border


def test_stochastic_switch_rate_is_near_one_half():
    m = get_method("mixup-cutmix")
    g = gen(9)
    lam = torch.full((2,), 0.5)
    binary = 0
    n = 2000
    for _ in range(n):
        masks = m.masks(lam, 8, 8, g)
        binary += int(((masks == 0) | (masks == 1)).all())
    assert abs(binary / n - 0.5) < 0.04  # 5 sigma is ~0.056; this is ~3.6 sigma
    always = get_method("mixup-cutmix(p=1)").masks(lam, 8, 8, gen(1))
    assert ((always == 0) | (always == 1)).all()


@pytest.mark.parametrize(
    "spec", ["mixup", "cutmix", "hmix", "gmix", "mixup-cutmix", "mixup(alpha=0.4)"]
)
def test_same_seed_same_masks_other_seed_other_masks(spec):
    m = get_method(spec)

    def draw(seed):
        g = gen(seed)
        lam = m.sample_lam(8, g, "cpu")
        return lam, m.masks(lam, H, W, g)

    a, b, c = draw(11), draw(11), draw(12)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def _reference_box(h, w, frac, cy, cx):
    """The reference code's box (Yun et al.; timm; the HMix/GMix authors' fork), in
    plain Python: cut = int(side * frac); span centre +- cut // 2, clipped."""
    cut_h, cut_w = int(h * frac), int(w * frac)
    y1, y2 = min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h)
    x1, x2 = min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w)
    return y1, y2, x1, x2


@pytest.mark.parametrize(("h", "w"), [(28, 28), (31, 31), (32, 32), (24, 40), (31, 28)])
def test_cutmix_and_hmix_boxes_match_the_reference_geometry_at_odd_and_even_sizes(h, w):
    """Before the fix the box was cut wide, one pixel wider than the reference's
    2 * (cut // 2) whenever the cut was odd (label weight off by up to 0.027 at 28 px)."""
    import torch

    from msda_arena.methods.cutmix import box_inside

    n = 400
    g = torch.Generator().manual_seed(7)
    fracs = torch.rand(n, generator=g, dtype=torch.float64)
    g_box = torch.Generator().manual_seed(11)
    inside = box_inside(fracs, h, w, g_box)
    g_centres = torch.Generator().manual_seed(11)  # the same draws box_inside made
    cy = torch.randint(0, h, (n,), generator=g_centres)
    cx = torch.randint(0, w, (n,), generator=g_centres)
    odd = 0
    for i in range(n):
        y1, y2, x1, x2 = _reference_box(h, w, float(fracs[i]), int(cy[i]), int(cx[i]))
        expected = torch.zeros(h, w, dtype=torch.bool)
        expected[y1:y2, x1:x2] = True
        assert torch.equal(inside[i], expected), (i, float(fracs[i]), int(cy[i]), int(cx[i]))
        odd += int(h * float(fracs[i])) % 2
    assert odd > 50  # odd cuts were exercised
