"""FMix for msda-arena: binary masks cut from low-frequency Fourier noise.

Harris, Marcu, Painter, Niranjan, Prügel-Bennett, Hare, "FMix: Enhancing Mixed Sample
Data Augmentation", arXiv:2002.12047 (2020). Reference code: ``fmix.py`` of
github.com/ecs-vlc/FMix.

For each mask a random complex spectrum ``Z`` over all ``fft2`` bins of an
``H x W`` image is drawn, real and imaginary parts independent standard normals,
and scaled by ``1 / max(f, 1 / max(H, W)) ** decay_power`` where ``f`` is the bin's
frequency (cycles per pixel, as ``numpy.fft.fftfreq`` gives it); the real part of
its inverse FFT is a smooth grey field, isotropic: every direction gets the same
power law. The mask keeps the first image
(M = 1) on the ``round(lambda * H * W)`` pixels where the field is highest and shows
the partner (M = 0) elsewhere: the reference's binarisation with ``max_soft = 0``.
So ``mean(M)`` equals lambda to within half a pixel, ``0.5 / (H * W)``.

Everything is batched: one ``randn``, one ``ifft2``, one ``argsort`` and one
``scatter`` for the whole batch, all random numbers from the given generator.
"""

from __future__ import annotations

import torch

from msda_arena import MaskMethod, Param, hookimpl
from msda_arena.contract import ALPHA

__all__ = ["FMix", "binarise_top", "decay_scale", "low_freq_field"]

__version__ = "0.2.0"


def _decay_ok(d: float) -> bool:
    return 0.0 <= d <= 64.0


def decay_scale(
    height: int, width: int, decay_power: float, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``[H, W]`` float64 amplitude of every ``fft2`` bin, ``(f_min / max(f, f_min)) **
    decay_power`` with ``f = sqrt(fy**2 + fx**2)`` from ``fftfreq`` on both axes and
    ``f_min = 1 / max(H, W)``: FMix's ``1 / max(f, f_min) ** decay_power`` divided by its
    largest value, so large decay powers cannot overflow."""
    fy = torch.fft.fftfreq(height, device=device, dtype=torch.float64)
    fx = torch.fft.fftfreq(width, device=device, dtype=torch.float64)
    freqs = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    f_min = 1.0 / max(height, width)
    return (f_min / freqs.clamp(min=f_min)) ** float(decay_power)


def low_freq_field(
    n: int,
    height: int,
    width: int,
    decay_power: float,
    generator: torch.Generator,
    device: torch.device | str,
) -> torch.Tensor:
    """``n`` low-frequency grey fields ``[n, H, W]`` (float32): the real part of the
    inverse FFT of a complex spectrum over **all** ``H x W`` bins, real and imaginary
    parts independent standard normals, scaled by :func:`decay_scale`.

    Every frequency pair ``(k, -k)`` thus gets the same power law, whatever its
    direction. (A spectrum over the ``rfft2`` half-plane passed to ``irfft2``, as the
    reference's ``irfftn``, loses the imaginary part of the pure-vertical column
    ``fx = 0``: half its power, so masks stretch along y.) No min-max normalisation:
    a positive factor changes no pixel's rank, and only ranks matter to the mask.
    """
    device = torch.device(device)
    scale = decay_scale(height, width, decay_power, device).to(torch.float32)
    param = torch.randn(n, height, width, 2, generator=generator, device=device)
    spectrum = torch.complex(param[..., 0], param[..., 1]) * scale
    return torch.fft.ifft2(spectrum).real


def binarise_top(field: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Masks ``[n, 1, H, W]``: 1 on the ``round(lam * H * W)`` highest pixels of each
    field ``[n, H, W]``, 0 elsewhere (``lam`` ``[n]``); ties go to the earlier pixel."""
    n, height, width = field.shape
    pixels = height * width
    k = torch.round(lam.to(torch.float64).reshape(n) * pixels).clamp(0, pixels).long()
    order = torch.argsort(field.reshape(n, pixels), dim=1, descending=True, stable=True)
    rank = torch.arange(pixels, device=field.device)
    keep = (rank[None, :] < k[:, None]).to(torch.float32)  # [n, pixels], in rank order
    flat = torch.zeros_like(keep).scatter_(1, order, keep)
    return flat.view(n, 1, height, width)


class FMix(MaskMethod):
    """FMix: a binary mask thresholding low-frequency Fourier noise (Harris et al. 2020)."""

    name = "fmix"
    params = (
        ALPHA,
        Param(
            "decay_power",
            float,
            3.0,
            "spectrum decay: amplitude ~ 1 / f ** decay_power (larger: smoother masks)",
            _decay_ok,
            "0 <= decay_power <= 64",
        ),
    )
    summary = "binary mask from low-frequency Fourier noise (Harris et al. 2020)"

    def masks(self, lam, height, width, generator):
        field = low_freq_field(lam.shape[0], height, width, self.decay_power, generator, lam.device)
        return binarise_top(field, lam)


@hookimpl
def register_mask_methods(register):
    """Register FMix as ``fmix``."""
    register(FMix)
