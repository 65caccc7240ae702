"""ResizeMix for msda-arena: the partner image, shrunk whole, pasted into the image.

Qin, Fang, Zhang, Liu, Wang, Wang, "ResizeMix: Mixing Data with Preserved Object
Information and True Labels", arXiv:2012.11101 (2020).

For each pair ``(i, partner[i])`` a scale ``tau ~ U(scale_low, scale_high)`` is drawn
(this method's "lambda", from :meth:`ResizeMix.sample_lam`); the partner image
``x[partner[i]]`` is resized to ``floor(tau * H) x floor(tau * W)`` pixels (bilinear,
``align_corners=False``, no antialiasing: what ``F.interpolate`` computes) and pasted
at a uniformly drawn position that keeps it inside ``x[i]``. The weight of label
``y[i]`` is ``1 - pasted area / image area``, counted in whole pixels, so labels
match pixels exactly.

The resize is done for the whole batch at once, each sample with its own size and
position: every output row and column gets its source coordinate in the partner
image and its bilinear weight (``F.interpolate``'s formula), two gathers interpolate
rows then columns, and ``torch.where`` keeps ``x[i]`` outside each box. Each mixed
pixel is either a pixel of ``x[i]`` or a convex combination (weights >= 0, sum 1) of
up to four pixels of ``x[partner[i]]``, with one set of weights for all channels.
"""

from __future__ import annotations

import torch

from msda_arena import MixMethod, Param, SpecError, hookimpl

__all__ = ["ResizeMix", "cutmix_box", "nearest_coords", "paste_boxes", "resize_coords"]

__version__ = "0.2.0"

_RANGE_HELP = "0 < scale_low <= scale_high <= 1"
GEOMETRIES = ("paper", "openmixup")


def _in_unit(v: float) -> bool:
    return 0.0 < v <= 1.0


def resize_coords(
    offset: torch.Tensor, out_size: torch.Tensor, in_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear source indices and weights of ``F.interpolate(..., align_corners=False)``.

    ``offset`` (long, any shape) is a position inside a resized axis of length
    ``out_size`` (broadcastable, >= 1) resampled from ``in_size`` pixels. Returns
    ``(lo, hi, frac)``: the output takes ``(1 - frac) * src[lo] + frac * src[hi]``.
    Offsets outside ``[0, out_size)`` give clamped, valid indices (callers mask them).
    """
    ratio = in_size / out_size.to(torch.float64)
    src = ((offset.to(torch.float64) + 0.5) * ratio - 0.5).clamp(min=0.0)
    lo = src.floor().clamp(max=in_size - 1)
    frac = (src - lo).clamp(0.0, 1.0)
    lo = lo.long()
    hi = (lo + 1).clamp(max=in_size - 1)
    return lo, hi, frac


def nearest_coords(
    offset: torch.Tensor, out_size: torch.Tensor, in_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices of ``F.interpolate(..., mode="nearest")`` in the form of
    :func:`resize_coords` (``hi = lo``, ``frac = 0``): ``floor(offset * scale)`` in
    float32 with ``scale = in_size / out_size`` in float32, as torch computes it."""
    scale = torch.tensor(float(in_size), dtype=torch.float32, device=offset.device)
    scale = scale / out_size.to(torch.float32)
    lo = (offset.clamp(min=0).to(torch.float32) * scale).floor().long().clamp(0, in_size - 1)
    return lo, lo, torch.zeros(lo.shape, dtype=torch.float64, device=offset.device)


def paste_boxes(
    x: torch.Tensor,
    source: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    box_h: torch.Tensor,
    box_w: torch.Tensor,
    mode: str = "bilinear",
) -> torch.Tensor:
    """``x`` ``[B, C, H, W]`` with ``source[b]`` resized to ``box_h[b] x box_w[b]``
    (``mode`` ``"bilinear"``, ``align_corners=False``, or ``"nearest"``, each as
    ``F.interpolate`` computes it) pasted with its top-left corner at
    ``(top[b], left[b])``; all index tensors are long ``[B]`` and every box lies inside
    the image. A box with a zero side pastes nothing."""
    b, c, h, w = x.shape
    dev = x.device
    rows = torch.arange(h, device=dev)[None, :] - top[:, None]  # [B, H] offset in the box
    cols = torch.arange(w, device=dev)[None, :] - left[:, None]  # [B, W]
    in_rows = (rows >= 0) & (rows < box_h[:, None])
    in_cols = (cols >= 0) & (cols < box_w[:, None])
    coords = nearest_coords if mode == "nearest" else resize_coords
    r_lo, r_hi, r_frac = coords(rows, box_h.clamp(min=1)[:, None], h)
    c_lo, c_hi, c_frac = coords(cols, box_w.clamp(min=1)[:, None], w)

    dtype = source.dtype
    # rows: [B, C, H, W] whose row r is the resampled source row for output row r
    r_frac = r_frac.to(dtype)[:, None, :, None]
    shape = (b, c, h, w)
    up = source.gather(2, r_lo[:, None, :, None].expand(shape))
    down = source.gather(2, r_hi[:, None, :, None].expand(shape))
    by_rows = up + r_frac * (down - up)
    # columns of that
    c_frac = c_frac.to(dtype)[:, None, None, :]
    left_px = by_rows.gather(3, c_lo[:, None, None, :].expand(shape))
    right_px = by_rows.gather(3, c_hi[:, None, None, :].expand(shape))
    resized = left_px + c_frac * (right_px - left_px)
    inside = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return torch.where(inside, resized, x)


def cutmix_box(
    u: torch.Tensor, cut_h: torch.Tensor, cut_w: torch.Tensor, h: int, w: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenMixup's ``rand_bbox_tao``: the centre uniform over the pixels (from ``u``
    ``[2, n]`` in ``[0, 1)``), rows ``cy - cut_h // 2`` to ``cy + cut_h // 2`` and
    columns likewise, clipped to the image: ``(top, left, box_h, box_w)``."""
    cy = (u[0] * h).floor().long().clamp(max=h - 1)
    cx = (u[1] * w).floor().long().clamp(max=w - 1)
    y1, y2 = (cy - cut_h // 2).clamp(0, h), (cy + cut_h // 2).clamp(0, h)
    x1, x2 = (cx - cut_w // 2).clamp(0, w), (cx + cut_w // 2).clamp(0, w)
    return y1, x1, y2 - y1, x2 - x1


class ResizeMix(MixMethod):
    """ResizeMix: paste the whole partner image, shrunk by tau (Qin et al. 2020)."""

    name = "resizemix"
    params = (
        Param(
            "scale_low",
            float,
            0.1,
            "lower bound of the paste scale tau ~ U(scale_low, scale_high) (side ratio)",
            _in_unit,
            _RANGE_HELP,
        ),
        Param(
            "scale_high",
            float,
            0.8,
            "upper bound of the paste scale tau (side ratio)",
            _in_unit,
            _RANGE_HELP,
        ),
        Param(
            "geometry",
            str,
            "paper",
            "paper: the whole partner, undistorted, inside the image, bilinear; openmixup: "
            "squashed into CutMix's clipped box, nearest",
            lambda v: v in GEOMETRIES,
            " or ".join(GEOMETRIES),
        ),
    )
    summary = "partner image shrunk by tau ~ U(scale_low, scale_high), pasted (Qin et al. 2020)"

    def __init__(self, **values) -> None:
        super().__init__(**values)
        if not self.scale_low <= self.scale_high:
            raise SpecError(
                f"{self.name}: scale_low={self.scale_low!r} > scale_high={self.scale_high!r}; "
                f"need {_RANGE_HELP}"
            )

    def sample_lam(self, n, generator, device=None):
        """``n`` paste scales ``tau ~ U(scale_low, scale_high)``, float32."""
        device = torch.device(device) if device is not None else generator.device
        u = torch.rand(n, generator=generator, device=device)
        low, high = float(self.scale_low), float(self.scale_high)
        return (low + (high - low) * u).clamp(0.0, 1.0)

    def mix(self, x, y, partner, lam, generator, saliency=None):
        b, _, h, w = x.shape
        dev = x.device
        n = lam.shape[0]
        if n not in (1, b):
            raise ValueError(f"lam must have shape [1] or [{b}], got {list(lam.shape)}")
        tau = lam.to(device=dev, dtype=torch.float64).clamp(0.0, 1.0)
        cut_h = torch.floor(tau * h).long()  # int(H * tau), as the reference code
        cut_w = torch.floor(tau * w).long()
        u = torch.rand(2, n, generator=generator, device=dev, dtype=torch.float64)
        if self.geometry == "openmixup":
            top, left, box_h, box_w = cutmix_box(u, cut_h, cut_w, h, w)
        else:  # top-left corner uniform over the H - cut_h + 1 (W - cut_w + 1) positions
            top = torch.minimum((u[0] * (h - cut_h + 1)).floor().long(), h - cut_h)
            left = torch.minimum((u[1] * (w - cut_w + 1)).floor().long(), w - cut_w)
            box_h, box_w = cut_h, cut_w
        box_h, box_w, top, left = (t.expand(b) for t in (box_h, box_w, top, left))

        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        mode = "nearest" if self.geometry == "openmixup" else "bilinear"
        mixed = paste_boxes(work, work[partner], top, left, box_h, box_w, mode).to(x.dtype)
        weight = 1.0 - (box_h * box_w).to(torch.float32) / float(h * w)
        return mixed, weight


@hookimpl
def register_mask_methods(register):
    """Register ResizeMix as ``resizemix``."""
    register(ResizeMix)
