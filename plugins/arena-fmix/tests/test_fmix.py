"""FMix's own tests: the contract, the defining property (mean(M) = lambda to one
pixel), low-frequency masks, the Fourier field's spectrum, and one trained cell.
Isotropy against the paper's construction: ``test_fidelity.py``."""

import pytest
import torch
from arena_fmix import FMix, decay_scale, low_freq_field

from msda_arena import SpecError, get_method
from msda_arena.testing import assert_conforms, one_cell_run

SIZES = [(32, 32), (31, 31), (24, 40), (17, 10), (9, 8), (8, 9), (1, 7), (5, 1), (1, 1)]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_fmix_conforms_to_the_mask_contract():
    assert_conforms("fmix")
    assert_conforms("fmix(alpha=0.4,decay_power=1.5)")
    assert_conforms("fmix(decay_power=0)")
    assert_conforms("fmix(decay_power=8)")


def test_spec_parameters_are_checked():
    method = get_method("fmix(alpha=2,decay_power=4)")
    assert isinstance(method, FMix)
    assert (method.alpha, method.decay_power) == (2.0, 4.0)
    assert get_method("fmix").spec == "fmix"
    for bad in ("fmix(decay_power=-1)", "fmix(alpha=0)", "fmix(decay_power=100)"):
        with pytest.raises(SpecError):
            get_method(bad)


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_mask_mean_equals_lambda_to_one_pixel(height, width):
    lam = torch.cat([torch.linspace(0, 1, 101), torch.rand(200, generator=_gen(1))])
    lam = torch.cat([lam, torch.tensor([1e-6, 1 - 1e-6, 0.5 / (height * width)])])
    masks = FMix().masks(lam, height, width, _gen(2))
    assert masks.shape == (lam.shape[0], 1, height, width)
    assert masks.dtype == torch.float32
    assert set(masks.unique().tolist()) <= {0.0, 1.0}  # binary: max_soft = 0
    err = (masks.mean(dim=(1, 2, 3)).double() - lam.double()).abs()
    assert float(err.max()) <= 1.0 / (height * width) + 1e-9
    # exactly round(lam * H * W) pixels keep the first image
    kept = masks.sum(dim=(1, 2, 3)).long()
    assert torch.equal(kept, torch.round(lam.double() * height * width).long())


def test_one_lambda_per_batch_gives_one_mask():
    masks = FMix().masks(torch.tensor([0.3]), 12, 20, _gen(0))
    assert masks.shape == (1, 1, 12, 20)
    assert int(masks.sum()) == round(0.3 * 240)


def test_edge_lambdas_give_constant_masks():
    masks = FMix().masks(torch.tensor([0.0, 1.0]), 16, 16, _gen(0))
    assert float(masks[0].max()) == 0.0
    assert float(masks[1].min()) == 1.0


def test_masks_come_from_the_generator_alone():
    method = FMix()
    lam = torch.full((8,), 0.5)
    a = method.masks(lam, 16, 20, _gen(7))
    torch.manual_seed(123)  # the global RNG must not matter
    b = method.masks(lam, 16, 20, _gen(7))
    c = method.masks(lam, 16, 20, _gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # every sample gets its own field


def _low_share(masks: torch.Tensor, cutoff: float = 0.125) -> float:
    """The share of the power of ``M - mean(M)`` at radial frequency <= ``cutoff``."""
    h, w = masks.shape[-2:]
    centred = masks - masks.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.rfft2(centred).abs().square().sum(dim=(0, 1))
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    low = (fy**2 + fx**2).sqrt() <= cutoff
    return float(power[low].sum() / power.sum())


def test_masks_are_low_frequency_compared_with_random_noise():
    lam = torch.full((256,), 0.5)
    fmix = FMix().masks(lam, 32, 32, _gen(0))
    noise = (torch.rand(256, 1, 32, 32, generator=_gen(1)) < 0.5).float()
    fmix_share, noise_share = _low_share(fmix), _low_share(noise)
    assert noise_share < 0.1  # white noise: about the area of the disc, pi / 64
    assert fmix_share > 0.8
    # neighbouring pixels agree far more often than in noise (the edge length is short)
    flips = (fmix[..., 1:, :] != fmix[..., :-1, :]).float().mean()
    assert float(flips) < 0.1
    # a larger decay power gives smoother masks
    smooth = FMix(decay_power=5.0).masks(lam, 32, 32, _gen(0))
    rough = FMix(decay_power=1.0).masks(lam, 32, 32, _gen(0))
    assert _low_share(rough) < fmix_share < _low_share(smooth)


@pytest.mark.parametrize(("height", "width"), [(8, 10), (9, 7), (12, 12)])
def test_field_power_follows_the_decay_law_in_every_bin(height, width):
    """E|fft2(field)|^2 = scale^2 in every bin, the pure-vertical column fx = 0 and the
    Nyquist rows and columns included: the real part of the inverse FFT of a complex
    normal spectrum S gives fft2(field)_k = (S_k + conj(S_-k)) / 2."""
    decay = 2.0
    field = low_freq_field(6000, height, width, decay, _gen(0), "cpu").double()
    power = torch.fft.fft2(field).abs().square().mean(dim=0)
    ratio = power / decay_scale(height, width, decay) ** 2
    assert torch.allclose(ratio, torch.ones_like(ratio), rtol=0.1), ratio


def test_fmix_trains_one_cell(tmp_path):
    assert one_cell_run("fmix", tmp_path)["status"] == "ok"
