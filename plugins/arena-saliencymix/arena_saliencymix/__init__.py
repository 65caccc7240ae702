"""SaliencyMix for msda-arena: a CutMix box centred on the partner image's saliency peak.

Uddin, Monira, Shin, Chung, Bae, "SaliencyMix: A Saliency Guided Data Augmentation
Strategy for Better Regularization", ICLR 2021. https://arxiv.org/abs/2006.01791

For each sample ``i`` and its partner ``j = partner[i]``:

1. the saliency map of ``x[j]`` is the spectral residual of Hou & Zhang (CVPR 2007),
   computed as OpenCV's ``StaticSaliencySpectralResidual`` does (see
   :func:`spectral_residual_saliency`), batched in torch;
2. its peak ``(cy, cx)`` is the argmax of the map (first in raster order on a tie);
3. the box has CutMix's size, ``cut_h = floor(H * sqrt(1 - lambda))`` and
   ``cut_w = floor(W * sqrt(1 - lambda))``, and spans rows ``cy - cut_h // 2`` to
   ``cy + cut_h // 2`` and columns ``cx - cut_w // 2`` to ``cx + cut_w // 2`` (end
   exclusive), clipped to the image: the geometry of ``msda_arena.methods.cutmix``
   with the centre at the peak instead of uniform;
4. the box of ``x[i]`` is replaced by the same box of ``x[j]``, and the weight of
   label ``y[i]`` is ``1 - clipped box area / (H * W)``.

Every sample gets its own box at its own partner's peak (the reference code computes
one box for the whole batch from the first partner's saliency). No per-sample Python:
the saliency of the whole batch is one batched FFT pipeline.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from msda_arena import MixMethod, hookimpl
from msda_arena.contract import ALPHA

__all__ = ["SaliencyMix", "peak_boxes", "saliency_peaks", "spectral_residual_saliency"]

__version__ = "0.1.0"

#: Side of the square grey image the spectral residual is computed on (OpenCV's
#: ``resImWidth`` and ``resImHeight``).
SIDE = 64
#: Added to the amplitude before its log, as OpenCV does since 3.4.2/4.0
#: (``log(magnitude + 1)``): a flat image has zero amplitude at every non-zero frequency.
LOG_OFFSET = 1.0
#: OpenCV's ``GaussianBlur(magnitude, magnitude, Size(5, 5), 8)`` of the reconstruction.
GAUSS_SIZE = 5
GAUSS_SIGMA = 8.0
#: ITU-R BT.601 luma, as OpenCV's ``COLOR_BGR2GRAY``, here in RGB order (the harness's).
LUMA_RGB = (0.299, 0.587, 0.114)


def _filter2d(img: torch.Tensor, kernel: tuple[float, ...]) -> torch.Tensor:
    """Separable filter of ``img`` ``[B, 1, h, w]`` with the odd 1-D ``kernel`` on both
    axes, borders mirrored without repeating the edge (OpenCV's ``BORDER_DEFAULT``,
    ``BORDER_REFLECT_101``; torch's ``reflect``). Sums of shifted slices: a 1-channel
    ``conv2d`` is many times slower on the CPU."""
    r = len(kernel) // 2
    h, w = img.shape[-2:]
    padded = F.pad(img, (r, r, r, r), mode="reflect")
    rows = sum(k * padded[..., i : i + h, :] for i, k in enumerate(kernel))
    return sum(k * rows[..., :, j : j + w] for j, k in enumerate(kernel))


def _gaussian(size: int, sigma: float) -> tuple[float, ...]:
    """OpenCV's ``getGaussianKernel(size, sigma)`` for ``sigma > 0``, in double."""
    raw = [math.exp(-((i - (size - 1) / 2) ** 2) / (2.0 * sigma * sigma)) for i in range(size)]
    return tuple(v / sum(raw) for v in raw)


_BOX3 = (1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0)
_GAUSS = _gaussian(GAUSS_SIZE, GAUSS_SIGMA)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]`` float32: BT.601 luma of an RGB batch, the channel mean otherwise
    (one channel: itself)."""
    xf = x.detach().to(torch.float32)
    if xf.shape[1] == 3:
        r, g, b = LUMA_RGB
        return r * xf[:, 0:1] + g * xf[:, 1:2] + b * xf[:, 2:3]
    return xf.mean(dim=1, keepdim=True)


def spectral_residual_saliency(x: torch.Tensor) -> torch.Tensor:
    """Spectral-residual saliency maps of a batch, ``[B, C, H, W]`` -> ``[B, H, W]``
    float32 in ``[0, 1]`` on ``x``'s device, the steps of OpenCV's
    ``StaticSaliencySpectralResidual::computeSaliencyImpl``:

    grey image (luma for 3 channels, channel mean otherwise), bilinear resize to 64x64
    (half-pixel centres, no antialiasing, as ``INTER_LINEAR_EXACT``); 2-D DFT; log
    amplitude ``log(|F| + 1)``; spectral residual = log amplitude minus its 3x3 mean
    (mirrored borders); inverse DFT of ``exp(residual)`` with the original phase;
    magnitude; 5x5 Gaussian blur with sigma 8; squared; divided by its maximum;
    bilinear resize back to ``H x W``.
    """
    _, _, h, w = x.shape
    grey = _grey(x)
    small = F.interpolate(grey, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    spectrum = torch.fft.fft2(small)
    log_amp = torch.log(spectrum.abs() + LOG_OFFSET)
    residual = log_amp - _filter2d(log_amp, _BOX3)
    recon = torch.fft.ifft2(torch.polar(torch.exp(residual), spectrum.angle()))
    sal = _filter2d(recon.abs(), _GAUSS).square()
    peak = sal.amax(dim=(2, 3), keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    sal = sal / peak
    return F.interpolate(sal, size=(h, w), mode="bilinear", align_corners=False)[:, 0]


def saliency_peaks(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column ``([B], [B])`` long of each image's spectral-residual saliency
    maximum (the first in raster order on a tie, as ``np.argmax``)."""
    sal = spectral_residual_saliency(x)
    idx = sal.flatten(1).argmax(dim=1)
    w = x.shape[-1]
    return idx // w, idx % w


def peak_boxes(
    lam: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix's box around given centres: ``(inside [B, H, W] bool, area [B] long)``.

    ``lam`` is ``[1]`` or ``[B]``; the cut lengths are ``floor(H * sqrt(1 - lam))``
    and ``floor(W * sqrt(1 - lam))``, the box spans ``centre - cut // 2`` to
    ``centre + cut // 2`` (end exclusive) clipped to the image.
    """
    b = cy.shape[0]
    f = torch.sqrt(1.0 - lam.to(torch.float64).clamp(0.0, 1.0)).expand(b)
    cut_h = torch.floor(height * f).long()
    cut_w = torch.floor(width * f).long()
    y1 = (cy - cut_h // 2).clamp(0, height)
    y2 = (cy + cut_h // 2).clamp(0, height)
    x1 = (cx - cut_w // 2).clamp(0, width)
    x2 = (cx + cut_w // 2).clamp(0, width)
    rows = torch.arange(height, device=cy.device)
    cols = torch.arange(width, device=cy.device)
    in_y = (rows >= y1[:, None]) & (rows < y2[:, None])
    in_x = (cols >= x1[:, None]) & (cols < x2[:, None])
    return in_y[:, :, None] & in_x[:, None, :], (y2 - y1) * (x2 - x1)


class SaliencyMix(MixMethod):
    """SaliencyMix (Uddin et al., ICLR 2021): CutMix's box, centred on the partner
    image's spectral-residual saliency peak, one box per sample."""

    name = "saliencymix"
    params = (ALPHA,)
    summary = "CutMix box at the partner's spectral-residual saliency peak (Uddin et al., 2021)"

    def mix(self, x, y, partner, lam, generator, saliency=None):
        _, _, h, w = x.shape
        source = x[partner]
        cy, cx = saliency_peaks(source)
        inside, area = peak_boxes(lam.to(x.device), cy, cx, h, w)
        mixed = torch.where(inside[:, None], source, x)
        weight = (1.0 - area.to(torch.float64) / (h * w)).to(torch.float32)
        return mixed, weight


@hookimpl
def register_mask_methods(register):
    """Register SaliencyMix as ``saliencymix``."""
    register(SaliencyMix)
