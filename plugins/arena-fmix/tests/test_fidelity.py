"""FMix's masks are isotropic, as the paper's construction (a complex normal spectrum
over the whole Fourier plane, decaying as 1 / f ** decay_power, whose inverse FFT's real
part is thresholded): a horizontal and a vertical frequency get the same power, and a
mask changes as often along x as along y.

Run ``python plugins/arena-fmix/tests/test_fidelity.py`` to print the figures the README
quotes (16,000 fields of 32 x 32, decay power 3)."""

from __future__ import annotations

import torch
from arena_fmix import binarise_top, low_freq_field

CHUNK = 4000


def isotropy(fields: int, size: int = 32, decay: float = 3.0) -> tuple[float, float]:
    """``(power at (1, 0) / power at (0, 1), transitions along x / along y)`` over
    ``fields`` fields of ``size x size`` and their masks at lambda = 0.5. ``(1, 0)`` is
    one cycle down the image (fy = 1 / size, fx = 0)."""
    g = torch.Generator().manual_seed(0)
    p10 = p01 = along_x = along_y = 0.0
    for _ in range(fields // CHUNK):
        field = low_freq_field(CHUNK, size, size, decay, g, "cpu")
        power = torch.fft.fft2(field.double()).abs().square()
        p10 += float(power[:, 1, 0].sum())
        p01 += float(power[:, 0, 1].sum())
        masks = binarise_top(field, torch.full((CHUNK,), 0.5))
        along_x += float((masks[..., :, 1:] != masks[..., :, :-1]).sum())
        along_y += float((masks[..., 1:, :] != masks[..., :-1, :]).sum())
    return p10 / p01, along_x / along_y


def test_masks_are_isotropic():
    power_ratio, transition_ratio = isotropy(12000)
    assert abs(power_ratio - 1) < 0.05, power_ratio
    assert abs(transition_ratio - 1) < 0.05, transition_ratio


if __name__ == "__main__":
    power_ratio, transition_ratio = isotropy(16000)
    print(f"power (1,0)/(0,1) {power_ratio:.3f}, transitions x/y {transition_ratio:.3f}")
