"""SaliencyMix for msda-arena: a CutMix box centred on the partner image's saliency peak.

Uddin, Monira, Shin, Chung, Bae, "SaliencyMix: A Saliency Guided Data Augmentation
Strategy for Better Regularization", ICLR 2021. https://arxiv.org/abs/2006.01791

The official code (afm-shahab-uddin/SaliencyMix, ``saliency_bbox`` in
``SaliencyMix_CIFAR/saliencymix.py`` and ``SaliencyMix-ImageNet/train.py``):

1. runs OpenCV's ``StaticSaliencyFineGrained`` (Montabone & Soto 2010) on the first
   partner image ``x[partner[0]]``, handed to OpenCV as the normalised float32 tensor
   (``H x W x C``); :func:`fine_grained_saliency` is that detector, batched in torch,
   fed the same way;
2. quantises the map to uint8 (``(map * 255).astype("uint8")``: the map already holds
   multiples of 1/255, so ties are common) and takes the first argmax in raster order;
3. builds CutMix's box around it, ``cut = int(side * sqrt(1 - lambda))``, rows and
   columns ``centre - cut // 2`` to ``centre + cut // 2`` clipped to the image;
4. pastes that one box from each sample's partner into every image of the batch; the
   weight of label ``y[i]`` is ``1 - clipped box area / (H * W)``.

``boxes="sample"`` centres each sample's box on its own partner's peak instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from msda_arena import MixMethod, Param, hookimpl
from msda_arena.contract import ALPHA

__all__ = ["SaliencyMix", "fine_grained_saliency", "peak_boxes", "saliency_peaks"]

__version__ = "0.2.0"

#: The six centre-surround neighbourhood radii of OpenCV's fine-grained detector.
NEIGHBOURHOODS = (12, 24, 48, 28, 56, 112)
#: ``COLOR_BGR2GRAY``'s float32 weights of OpenCV's channels 0, 1, 2 (B, G, R to OpenCV;
#: the official code hands it R, G, B, so R gets 0.114 and B 0.299).
GREY_WEIGHTS = (0.114, 0.587, 0.299)
BOXES = ("batch", "sample")


def _fma(a: torch.Tensor, b: float, c: torch.Tensor) -> torch.Tensor:
    """float32 ``a * b + c`` rounded once, as the fused multiply-add OpenCV's vector
    code uses (the product is exact in float64)."""
    return (a.double() * torch.tensor(b, dtype=torch.float32).double() + c.double()).float()


def _grey(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, W]`` float32 as OpenCV's ``cvtColor(BGR2GRAY)`` computes it for a float32
    3-channel image (the image itself for 1 channel, the channel mean for other counts,
    which OpenCV would not accept)."""
    xf = x.detach().to(torch.float32)
    if xf.shape[1] == 1:
        return xf[:, 0]
    if xf.shape[1] != 3:
        return xf.mean(dim=1)
    w0, w1, w2 = GREY_WEIGHTS
    g = xf[:, 1] * torch.tensor(w1, dtype=torch.float32)
    return _fma(xf[:, 2], w2, _fma(xf[:, 0], w0, g))


def _blur3(img: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``GaussianBlur(img, (3, 3), 0)`` of float32 ``[B, H, W]``: the kernel
    (1/4, 1/2, 1/4) along rows then columns, mirrored borders (``BORDER_REFLECT_101``),
    each tap computed as ``(left + right) / 4 + centre / 2`` in float32."""
    out = img
    for dim in (2, 1):
        pad = (1, 1, 0, 0) if dim == 2 else (0, 0, 1, 1)
        n = out.shape[dim]
        # one pixel: its mirror is itself (torch's reflect needs two)
        p = F.pad(out[:, None], pad, mode="reflect" if n > 1 else "replicate")[:, 0]
        left, centre, right = (p.narrow(dim, k, n) for k in range(3))
        out = (left + right) * 0.25 + centre * 0.5
    return out


def _integral(img: torch.Tensor) -> torch.Tensor:
    """``[B, H + 1, W + 1]`` float32 integral image summed in OpenCV's order: a running
    sum along each row, added to the row above (sequential float32 additions)."""
    b, h, w = img.shape
    rows = torch.empty_like(img)
    run = torch.zeros(b, h, dtype=img.dtype, device=img.device)
    for j in range(w):
        run = run + img[:, :, j]
        rows[:, :, j] = run
    out = torch.zeros(b, h + 1, w + 1, dtype=img.dtype, device=img.device)
    for i in range(h):
        out[:, i + 1, 1:] = out[:, i, 1:] + rows[:, i]
    return out


def _to_uchar(v: torch.Tensor) -> torch.Tensor:
    """C's ``(uchar)v`` for a float on x86-64: truncation to int, then the low byte
    (NaN gives 0)."""
    v = torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    return torch.bitwise_and(v.trunc().to(torch.int64), 255)


def _centre_surround(
    integral: torch.Tensor, centre: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """On and off contrast ``[B, H, W]`` (int64, 0..255) at neighbourhood ``n``: the
    centre value against the mean of its clipped ``2n``-square window (from the
    integral image), minus the centre, as ``getIntensityScaled`` computes it."""
    h, w = centre.shape[-2:]
    dev = centre.device
    ys, xs = torch.arange(h, device=dev), torch.arange(w, device=dev)
    y1, y2 = (ys - n + 1).clamp(0, h), (ys + n + 1).clamp(0, h)
    x1, x2 = (xs - n + 1).clamp(0, w), (xs + n + 1).clamp(0, w)
    window = integral[:, y2[:, None], x2] + integral[:, y1[:, None], x1]
    window = window - integral[:, y2[:, None], x1] - integral[:, y1[:, None], x2]
    count = ((y2 - y1)[:, None] * (x2 - x1) - 1).to(torch.float32)
    c = centre.to(torch.float32)
    mean = (window - c) / count
    on, off = c - mean, mean - c
    return _to_uchar(on.clamp_min(0.0)), _to_uchar(off.clamp_min(0.0))


def _normalise_scales(total: torch.Tensor) -> torch.Tensor:
    """``mixScales``: each sum over scales as ``(uchar)(255 * (float)(sum / (float)max))``."""
    peak = total.flatten(1).amax(dim=1)[:, None, None].to(torch.float32)
    ratio = total.to(torch.float32) / peak
    return _to_uchar(255.0 * ratio.double())


def fine_grained_saliency(x: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``StaticSaliencyFineGrained`` map of each image, ``[B, C, H, W]`` ->
    ``[B, H, W]`` uint8 (the map OpenCV returns, times 255), fed as the official
    SaliencyMix code feeds it: the image as float32 ``H x W x C`` (the normalised
    tensor, channels in the tensor's order, read by OpenCV as B, G, R).

    For such input OpenCV's detector computes a float32 grey image (``cvtColor``, then
    two 3x3 Gaussian blurs) and its integral image, but reads the grey image's pixels as
    bytes (``gray.at<uchar>``): pixel ``(y, x)`` is byte ``x`` of row ``y``'s float32
    values, so only the left quarter of the image enters the centre values. This
    function does the same, on ``x``'s device (float64 is used for the fused
    multiply-adds). Then: on and off centre-surround contrast at six neighbourhoods,
    summed and scaled to 0..255 each, added and scaled by the larger maximum.
    """
    grey = _blur3(_blur3(_grey(x))).contiguous()
    _h, w = grey.shape[-2:]
    centre = grey.view(torch.uint8)[..., :w]  # byte x of each row: OpenCV's at<uchar>
    integral = _integral(grey)
    total_on = torch.zeros(grey.shape, dtype=torch.int64, device=grey.device)
    total_off = torch.zeros_like(total_on)
    for n in NEIGHBOURHOODS:
        on, off = _centre_surround(integral, centre, n)
        total_on += on
        total_off += off
    on, off = _normalise_scales(total_on), _normalise_scales(total_off)
    peak = torch.maximum(on.flatten(1).amax(1), off.flatten(1).amax(1))
    both = 255.0 * (on + off).to(torch.float32).double()
    out = _to_uchar(both / peak.to(torch.float32).double()[:, None, None])
    return out.to(torch.uint8)


def saliency_peaks(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column ``([B], [B])`` long of each image's saliency maximum, as the
    official code finds it: the first maximum in raster order of the uint8 map."""
    idx = fine_grained_saliency(x).flatten(1).long().argmax(dim=1)  # ties: the first
    w = x.shape[-1]
    return idx // w, idx % w


def peak_boxes(
    lam: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix's box around given centres: ``(inside [B, H, W] bool, area [B] long)``.

    ``lam`` is ``[1]`` or ``[B]``, ``cy`` and ``cx`` are ``[B]`` (or ``[1]``, one centre
    for all); the cut lengths are ``floor(H * sqrt(1 - lam))`` and
    ``floor(W * sqrt(1 - lam))``, the box spans ``centre - cut // 2`` to
    ``centre + cut // 2`` (end exclusive) clipped to the image.
    """
    b = max(cy.shape[0], lam.shape[0])
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


BOXES_PARAM = Param(
    "boxes",
    str,
    "batch",
    "batch: one box for the batch at the first partner's peak (official); sample: one per sample",
    lambda v: v in BOXES,
    " or ".join(BOXES),
)


class SaliencyMix(MixMethod):
    """SaliencyMix (Uddin et al., ICLR 2021): CutMix's box, centred on the peak of the
    partner's fine-grained saliency map, as the official code computes it."""

    name = "saliencymix"
    params = (ALPHA, BOXES_PARAM)
    summary = "CutMix box at the partner's fine-grained saliency peak (Uddin et al., 2021)"

    def mix(self, x, y, partner, lam, generator, saliency=None):
        _, _, h, w = x.shape
        source = x[partner]
        # the official code: the saliency of the first partner alone, one box for all
        cy, cx = saliency_peaks(source if self.boxes == "sample" else source[:1])
        inside, area = peak_boxes(lam.to(x.device), cy, cx, h, w)
        mixed = torch.where(inside[:, None], source, x)
        weight = (1.0 - area.to(torch.float64) / (h * w)).to(torch.float32)
        return mixed, weight.expand(x.shape[0]).contiguous()


@hookimpl
def register_mask_methods(register):
    """Register SaliencyMix as ``saliencymix``."""
    register(SaliencyMix)
