"""SnapMix for msda-arena: a box of the partner, resized into a box of the image, with
label weights from the model's class activation maps (which need not sum to 1).

Huang, Wang, Tao, "SnapMix: Semantically Proportional Mixing for Augmenting
Fine-grained Data", AAAI 2021. Reference code: https://github.com/Shaoli-Huang/SnapMix
(``utils/mixmethod.py``: ``snapmix`` and ``get_spm``; ``utils/custom_ops.py``:
``rand_bbox``; ``trainer/comm_train.py``: the loss).

Per batch (with probability ``prob``): two lambdas ``lam, lam1 ~ Beta(alpha, alpha)``
give two CutMix boxes (side ``floor(S * sqrt(1 - lam))`` around a uniform pixel,
clipped), box ``a`` in every image and box ``b`` in its partner; the partner's box ``b``
is resized (bilinear, ``align_corners=True``) into box ``a``. Each image's class
activation map for its own label, upsampled to the image (bilinear) and normalised to
``(cam - min) / sum``, gives the label weights: ``w_i = 1 - mass of image i's map in box
a``, ``w_partner = mass of the partner's map in box b``; when both labels are equal each
weight becomes their sum, and a weight that is NaN (a constant map) falls back to the
box's area share.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from msda_arena import FeatureMixMethod, ModelView, Param, hookimpl

__all__ = ["SnapMix", "cutmix_boxes", "paste_resized", "snapmix_step", "snapmix_weights", "spm"]

__version__ = "0.1.0"


def cutmix_boxes(
    lam: torch.Tensor, height: int, width: int, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """Boxes ``[n, 4]`` long ``(r1, r2, c1, c2)`` of the reference's ``rand_bbox``: sides
    ``floor(H sqrt(1 - lam))`` and ``floor(W sqrt(1 - lam))`` (in float64), centred on
    the pixel ``(rows, cols)``, each end ``centre -+ side // 2`` clipped to the image."""
    cut = torch.sqrt(1.0 - lam.double())
    cut_r = torch.floor(height * cut).long() // 2
    cut_c = torch.floor(width * cut).long() // 2
    r1, r2 = (rows - cut_r).clamp(0, height), (rows + cut_r).clamp(0, height)
    c1, c2 = (cols - cut_c).clamp(0, width), (cols + cut_c).clamp(0, width)
    return torch.stack([r1, r2, c1, c2], dim=1)


def _axis(
    size: int,
    start_a: torch.Tensor,
    len_a: torch.Tensor,
    start_b: torch.Tensor,
    len_b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Along one axis of ``size`` pixels: for every output position, the two source
    positions and the weight of the second (``F.interpolate``, bilinear,
    ``align_corners=True``, from box b's ``len_b`` pixels to box a's ``len_a``), and
    whether the position lies in box a. All ``[n, size]``."""
    pos = torch.arange(size, device=start_a.device)
    off = pos[None, :] - start_a[:, None]
    inside = (off >= 0) & (off < len_a[:, None])
    scale = (len_b - 1).clamp(min=0).float() / (len_a - 1).clamp(min=1).float()
    src = off.clamp(min=0).float() * scale[:, None]
    top = (len_b - 1).clamp(min=0)[:, None]
    lo = torch.minimum(src.floor().long(), top)
    hi = torch.minimum(lo + 1, top)
    frac = (src - lo.float()).clamp(0.0, 1.0)
    last = size - 1
    return (
        (start_b[:, None] + lo).clamp(0, last),
        (start_b[:, None] + hi).clamp(0, last),
        frac,
        inside,
    )


def paste_resized(
    x: torch.Tensor, partner: torch.Tensor, box_a: torch.Tensor, box_b: torch.Tensor
) -> torch.Tensor:
    """``x`` with box a of each image replaced by box b of its partner, resized bilinearly
    with ``align_corners=True`` (the reference's ``F.interpolate``); boxes ``[1 or B, 4]``.
    Computed in float32 with two gathers (rows, then columns); ``x``'s dtype kept."""
    b, c, h, w = x.shape
    (r1, r2, c1, c2), (s1, s2, t1, t2) = box_a.unbind(1), box_b.unbind(1)
    r_lo, r_hi, r_f, r_in = _axis(h, r1, r2 - r1, s1, s2 - s1)
    c_lo, c_hi, c_f, c_in = _axis(w, c1, c2 - c1, t1, t2 - t1)
    n = box_a.shape[0]
    src = x[partner].float()

    def rows(index: torch.Tensor) -> torch.Tensor:
        return src.gather(2, index.view(n, 1, h, 1).expand(b, c, h, w))

    resized_rows = torch.lerp(rows(r_lo), rows(r_hi), r_f.view(n, 1, h, 1))

    def cols(index: torch.Tensor) -> torch.Tensor:
        return resized_rows.gather(3, index.view(n, 1, 1, w).expand(b, c, h, w))

    resized = torch.lerp(cols(c_lo), cols(c_hi), c_f.view(n, 1, 1, w))
    inside = (r_in.view(n, 1, h, 1) & c_in.view(n, 1, 1, w)).expand(b, 1, h, w)
    return torch.where(inside, resized, x.float()).to(x.dtype)


def spm(cam: torch.Tensor, y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The reference's ``get_spm`` maps ``[B, H, W]`` from class activation maps
    ``[B, K, h, w]``: each image's map for its label, upsampled (bilinear,
    ``align_corners=False``), minus its minimum, divided by its sum (NaN where the map
    is constant, as in the reference)."""
    own = cam.float()[torch.arange(cam.shape[0], device=cam.device), y]  # [B, h, w]
    up = F.interpolate(own[:, None], (height, width), mode="bilinear", align_corners=False)[:, 0]
    up = up - up.amin(dim=(1, 2), keepdim=True)
    return up / up.sum(dim=(1, 2), keepdim=True)


def _box_mass(maps: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """The mass of each map ``[B, H, W]`` inside its box (``[1 or B, 4]``) over its
    total mass plus 1e-8 (the reference's ratio)."""
    _, h, w = maps.shape
    rows = torch.arange(h, device=maps.device)
    cols = torch.arange(w, device=maps.device)
    r_in = (rows[None] >= box[:, 0:1]) & (rows[None] < box[:, 1:2])
    c_in = (cols[None] >= box[:, 2:3]) & (cols[None] < box[:, 3:4])
    inside = r_in[:, :, None] & c_in[:, None, :]
    return (maps * inside).sum(dim=(1, 2)) / (maps.sum(dim=(1, 2)) + 1e-8)


def snapmix_weights(
    maps: torch.Tensor,
    y: torch.Tensor,
    partner: torch.Tensor,
    box_a: torch.Tensor,
    box_b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The label weights ``(w_i, w_partner)`` ``[B]`` of the reference's ``snapmix`` from
    the maps of :func:`spm`, before its empty-box case."""
    h, w = maps.shape[1:]
    lam_a = 1.0 - _box_mass(maps, box_a)
    lam_b = _box_mass(maps[partner], box_b)
    same = y == y[partner]
    lam_a, lam_b = torch.where(same, lam_a + lam_b, lam_a), torch.where(same, lam_b + lam_a, lam_b)
    area = ((box_a[:, 1] - box_a[:, 0]) * (box_a[:, 3] - box_a[:, 2])).float()
    share = (1.0 - area / (h * w)).expand_as(lam_a)
    lam_a = torch.where(torch.isnan(lam_a), share, lam_a)
    lam_b = torch.where(torch.isnan(lam_b), 1.0 - share, lam_b)
    return lam_a, lam_b


class SnapMix(FeatureMixMethod):
    """SnapMix: a resized partner box with CAM-proportional label weights."""

    name = "snapmix"
    params = (
        Param(
            "alpha",
            float,
            5.0,
            "Beta(alpha, alpha) concentration of both box lambdas (the reference's --beta 5)",
            lambda a: 0 < a < float("inf"),
            "alpha > 0",
        ),
        Param(
            "prob",
            float,
            1.0,
            "probability of mixing a batch",
            lambda p: 0 <= p <= 1,
            "0 <= p <= 1",
        ),
    )
    summary = "a resized partner box pasted in; label weights from class activation maps"
    needs_model = True

    def mix(self, h, y, partner, lam, generator, model: ModelView | None = None):
        """``(mixed, sources, weights)`` at the input (stage 0); ``model.cam`` gives the
        maps. Draws, from ``generator``: ``r`` (mix or not), ``lam1``, then the box
        centres (rows, columns of box a, then of box b)."""
        if model is None:
            raise ValueError("snapmix needs the model's class activation maps (model=)")
        height, width = h.shape[2:]
        n, dev = lam.numel(), h.device
        apply = torch.rand(1, generator=generator, device=dev) < self.values["prob"]
        lam1 = self.sample_lam(n, generator, dev)
        centres = [
            torch.randint(0, size, (n,), generator=generator, device=dev)
            for size in (height, width, height, width)
        ]
        box_a = cutmix_boxes(lam.reshape(-1), height, width, centres[0], centres[1])
        box_b = cutmix_boxes(lam1, height, width, centres[2], centres[3])
        return snapmix_step(h, y, partner, box_a, box_b, model.cam(h), apply)


def snapmix_step(
    h: torch.Tensor,
    y: torch.Tensor,
    partner: torch.Tensor,
    box_a: torch.Tensor,
    box_b: torch.Tensor,
    cam: torch.Tensor,
    apply: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SnapMix with every draw given: the mixed batch, sources ``[i, partner[i]]`` and
    weights ``[w_i, w_partner]``. Where a box is empty or ``apply`` is false the batch is
    unchanged with weights ``(1, 0)``, as in the reference."""
    b, _, height, width = h.shape
    area_a = (box_a[:, 1] - box_a[:, 0]) * (box_a[:, 3] - box_a[:, 2])
    area_b = (box_b[:, 1] - box_b[:, 0]) * (box_b[:, 3] - box_b[:, 2])
    mixes = (apply & (area_a > 0) & (area_b > 0)).expand(b)  # [B]
    lam_a, lam_b = snapmix_weights(spm(cam, y, height, width), y, partner, box_a, box_b)
    pasted = paste_resized(h, partner, box_a, box_b)
    mixed = torch.where(mixes.view(b, 1, 1, 1), pasted, h)
    weights = torch.stack([torch.where(mixes, lam_a, 1.0), torch.where(mixes, lam_b, 0.0)], dim=1)
    sources = torch.stack([torch.arange(b, device=h.device), partner], dim=1)
    return mixed, sources, weights


@hookimpl
def register_methods(register):
    """Register ``snapmix``."""
    register(SnapMix)
