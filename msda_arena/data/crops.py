"""Crop scenarios, applied on the device to a whole normalised batch at once.

A scenario decides how large objects look to the network. Park et al. (NeurIPS 2022) show
that the best mask depends on it: with large crops (small objects) CutMix beats Mixup, with
small crops (large objects) Mixup catches up. Their ImageNet-100 crop ranges are not
published with the code, so the arena defines its own (:data:`DEFAULT_SCENARIOS`) and says so.

Geometry. ``scale`` is the crop's area as a fraction of the source image's area, drawn
log-uniformly from ``scale=(lo, hi)``:

* ``scale < 1`` zooms in: a window inside the image is resized to the output, so objects look
  ``1 / scale`` times larger (in area) and may be cut by the window;
* ``scale > 1`` zooms out: the crop window is larger than the image, which sits entirely
  inside it and is surrounded by zeros, so objects look ``1 / scale`` times as large and are
  never cut. Call these functions *after* normalisation, so zero is the dataset mean;
* ``scale == 1`` keeps the size; ``translate`` shifts the image by up to that fraction of its
  side (zero padding), which is pad-and-random-crop. When the output has the input's size,
  the shift is a whole number of pixels, drawn uniformly, exactly as in the usual
  ``RandomCrop(32, padding=4)``.

``ratio`` is the crop's aspect ratio (width / height, relative to the source's), drawn
log-uniformly; ``flip`` mirrors half of the views horizontally. The window's position is
uniform over the positions that keep the crop inside the image (``scale <= 1``) or the image
inside the crop (``scale > 1``), widened by ``translate``.

Implementation: one ``affine_grid`` + ``grid_sample`` (bilinear, zero padding) for the whole
batch; every random number comes from the ``torch.Generator`` passed in, on the batch's
device, in one draw. :func:`sample_params` and :func:`apply_params` expose the two halves,
for galleries and tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from msda_arena.api.errors import ConfigError

__all__ = [
    "DEFAULT_SCENARIOS",
    "CropParams",
    "Scenario",
    "apply_params",
    "sample_params",
    "test_params",
    "test_views",
    "train_views",
]

OutSize = int | tuple[int, int] | None


#: Allowed ranges of a scenario's numbers: crop area / image area, and aspect ratio.
SCALE_RANGE = (0.01, 100.0)
RATIO_RANGE = (0.1, 10.0)


def _real(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not a bool or a string), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # a Python int beyond float range
        return math.inf


def _pair(value: Any, what: str, bounds: tuple[float, float]) -> tuple[float, float]:
    if _real(value) is not None:
        value = (value, value)
    pair = [_real(v) for v in value] if isinstance(value, (list, tuple)) else []
    if len(pair) != 2 or pair[0] is None or pair[1] is None:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ValueError(f"{what} must be a number or a pair [lo, hi] of numbers, got {shown}")
    lo, hi = pair[0], pair[1]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{what} must hold finite numbers, got ({lo}, {hi})")
    if not 0 < lo <= hi:
        raise ValueError(f"{what} must satisfy 0 < lo <= hi, got ({lo}, {hi})")
    if lo < bounds[0] or hi > bounds[1]:
        raise ValueError(
            f"{what} must lie within {bounds[0]:g} .. {bounds[1]:g}, got ({lo:g}, {hi:g})"
        )
    return lo, hi


@dataclass(frozen=True)
class Scenario:
    """A crop scenario (see the module docstring for the geometry).

    Attributes:
        name: scenario name, e.g. ``"large-crop"``.
        scale: (lo, hi) crop area / source area, log-uniform; > 1 zooms out, < 1 zooms in.
        ratio: (lo, hi) crop aspect ratio, log-uniform; (1, 1) keeps the shape.
        translate: extra random shift, as a fraction of the source side (0 .. 1).
        flip: random horizontal flip with probability 0.5.
        description: one line for reports and arena.toml.
    """

    name: str
    scale: tuple[float, float] = (1.0, 1.0)
    ratio: tuple[float, float] = (1.0, 1.0)
    translate: float = 0.0
    flip: bool = True
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = f"scenario {self.name!r}"
        scale = _pair(self.scale, f"{where}: scale (crop area / image area)", SCALE_RANGE)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "ratio", _pair(self.ratio, f"{where}: ratio", RATIO_RANGE))
        translate = _real(self.translate)
        if translate is None or not 0 <= translate < 1:  # also refuses nan
            raise ValueError(
                f"{where}: translate must be a number in [0, 1), got {self.translate!r}"
            )
        object.__setattr__(self, "translate", translate)
        if not isinstance(self.flip, bool):
            raise ValueError(f"{where}: flip must be true or false, got {self.flip!r}")
        if not isinstance(self.description, str):
            raise ValueError(f"{where}: description must be a string, got {self.description!r}")

    @classmethod
    def from_dict(cls, name: str, values: Mapping[str, Any]) -> Scenario:
        """Build from an arena.toml table, e.g. ``{scale = [2.0, 4.0], flip = true}``.

        Raises:
            ConfigError: unknown key or invalid value (one line naming the scenario).
        """
        allowed = {"scale", "ratio", "translate", "flip", "description"}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ConfigError(
                f"scenario {name!r}: unknown key(s) {', '.join(map(repr, unknown))} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
        try:
            return cls(name=name, **dict(values))
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def to_dict(self) -> dict[str, Any]:
        """The scenario's arena.toml table (without the name, which is its key) as plain data."""
        d = asdict(self)
        del d["name"]
        d["scale"], d["ratio"] = list(self.scale), list(self.ratio)
        return d

    @property
    def test_scale(self) -> float:
        """Scale of the deterministic test view: the geometric mean of the scale range."""
        return math.sqrt(self.scale[0] * self.scale[1])

    @property
    def test_ratio(self) -> float:
        """Aspect ratio of the test view: the geometric mean of the ratio range."""
        return math.sqrt(self.ratio[0] * self.ratio[1])


DEFAULT_SCENARIOS: dict[str, Scenario] = {
    "standard": Scenario(
        "standard",
        scale=(1.0, 1.0),
        translate=4 / 32,
        flip=True,
        description="pad-4 random crop and flip: objects at their native size",
    ),
    "large-crop": Scenario(
        "large-crop",
        scale=(2.0, 4.0),
        ratio=(3 / 4, 4 / 3),
        flip=True,
        description="zoom out 2-4x in area: objects small (test view 2.83x smaller)",
    ),
    "small-crop": Scenario(
        "small-crop",
        scale=(0.25, 0.5),
        ratio=(3 / 4, 4 / 3),
        flip=True,
        description="zoom in 2-4x in area: objects large and often cut (test view 2.83x larger)",
    ),
}
"""The arena's scenarios (ours, not the paper's: its crop ranges are unpublished)."""


@dataclass(frozen=True)
class CropParams:
    """Per-sample crop geometry, all tensors of shape [B] on one device.

    Attributes:
        scale: crop area / source area.
        ratio: crop aspect ratio (relative to the source's).
        width: crop width as a fraction of the source width (``sqrt(scale * ratio)``).
        height: crop height as a fraction of the source height (``sqrt(scale / ratio)``).
        cx: crop centre, x, in normalised source coordinates (-1 left edge .. 1 right edge).
        cy: crop centre, y, likewise.
        flip: horizontal flip.
    """

    scale: torch.Tensor
    ratio: torch.Tensor
    width: torch.Tensor
    height: torch.Tensor
    cx: torch.Tensor
    cy: torch.Tensor
    flip: torch.Tensor


def _out_hw(x: torch.Tensor, out_size: OutSize) -> tuple[int, int]:
    if out_size is None:
        return int(x.shape[-2]), int(x.shape[-1])
    if isinstance(out_size, int):
        return out_size, out_size
    h, w = out_size
    return int(h), int(w)


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"crops take a normalised float batch [B, C, H, W], got {x.dtype} {tuple(x.shape)}"
        )


def sample_params(
    scenario: Scenario,
    batch_size: int,
    generator: torch.Generator,
    in_size: tuple[int, int],
    out_size: tuple[int, int] | None = None,
) -> CropParams:
    """Draw random crop geometry for a batch (one draw from ``generator``, on its device).

    Args:
        generator: the only source of randomness; the params live on its device.
        in_size: (H, W) of the source images.
        out_size: (H, W) of the views (default ``in_size``); when a dimension keeps its size
            and the scenario never rescales, shifts are whole pixels.
    """
    out_size = out_size or in_size
    device = generator.device
    u = torch.rand(batch_size, 5, generator=generator, device=device)
    (s_lo, s_hi), (r_lo, r_hi) = scenario.scale, scenario.ratio
    scale = torch.exp(math.log(s_lo) + u[:, 0] * (math.log(s_hi) - math.log(s_lo)))
    ratio = torch.exp(math.log(r_lo) + u[:, 1] * (math.log(r_hi) - math.log(r_lo)))
    width, height = torch.sqrt(scale * ratio), torch.sqrt(scale / ratio)

    fixed_size = s_lo == s_hi == 1.0 and r_lo == r_hi == 1.0
    centres = []
    for k, (extent, n_in, n_out) in enumerate(
        ((width, in_size[1], out_size[1]), (height, in_size[0], out_size[0]))
    ):
        if fixed_size and n_in == n_out:
            # Whole-pixel shifts, uniform over -k .. k, exactly like pad-k random crop.
            k_px = round(scenario.translate * n_in)
            shift = torch.floor(u[:, 2 + k] * (2 * k_px + 1)) - k_px
            centres.append(shift * (2.0 / n_in))
        else:
            free = (1.0 - extent).abs() + 2.0 * scenario.translate
            centres.append((2.0 * u[:, 2 + k] - 1.0) * free)
    flip = (
        u[:, 4] < 0.5 if scenario.flip else torch.zeros(batch_size, dtype=torch.bool, device=device)
    )
    return CropParams(
        scale=scale,
        ratio=ratio,
        width=width,
        height=height,
        cx=centres[0],
        cy=centres[1],
        flip=flip,
    )


def apply_params(x: torch.Tensor, params: CropParams, out_size: OutSize = None) -> torch.Tensor:
    """Resample a batch with the given crop geometry (bilinear, zeros outside the image).

    Args:
        x: float batch [B, C, H, W], normalised (so zero padding is the dataset mean).
        params: geometry for the B views (on ``x``'s device).
        out_size: output side or (H, W); default: the input's.

    Returns:
        The views, float [B, C, *out_size], in ``x``'s dtype.
    """
    _check_batch(x)
    b = x.shape[0]
    if params.cx.shape != (b,):
        raise ValueError(f"params are for {params.cx.shape[0]} views, the batch has {b}")
    h, w = _out_hw(x, out_size)
    sign = 1.0 - 2.0 * params.flip.to(torch.float32)
    theta = torch.zeros(b, 2, 3, dtype=torch.float32, device=x.device)
    theta[:, 0, 0] = params.width * sign
    theta[:, 0, 2] = params.cx
    theta[:, 1, 1] = params.height
    theta[:, 1, 2] = params.cy
    grid = F.affine_grid(theta, [b, x.shape[1], h, w], align_corners=False)
    src = x if x.dtype in (torch.float32, torch.float64) else x.float()
    out = F.grid_sample(
        src, grid.to(src.dtype), mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out.to(x.dtype)


def _check_generator(x: torch.Tensor, generator: torch.Generator) -> None:
    gd, xd = generator.device, x.device
    if gd.type != xd.type or (gd.type != "cpu" and (gd.index or 0) != (xd.index or 0)):
        raise ValueError(
            f"the generator is on {gd} but the batch is on {xd}; create it on the batch's device"
        )


def train_views(
    x: torch.Tensor,
    scenario: Scenario,
    generator: torch.Generator,
    out_size: OutSize = None,
) -> torch.Tensor:
    """Random training views of a normalised batch under ``scenario``.

    Args:
        x: float batch [B, C, H, W] on any device, normalised (zero = dataset mean).
        generator: a ``torch.Generator`` on ``x``'s device; the only randomness used.
        out_size: output side or (H, W); default: the input's.

    Returns:
        float [B, C, *out_size], same dtype and device as ``x``.
    """
    _check_batch(x)
    _check_generator(x, generator)
    in_hw = (int(x.shape[-2]), int(x.shape[-1]))
    params = sample_params(scenario, x.shape[0], generator, in_hw, _out_hw(x, out_size))
    return apply_params(x, params, out_size)


def test_params(
    scenario: Scenario, batch_size: int, device: torch.device | str = "cpu"
) -> CropParams:
    """The deterministic test geometry: centred, geometric-mean scale and ratio, no flip."""
    s, r = scenario.test_scale, scenario.test_ratio
    full = lambda v: torch.full((batch_size,), v, dtype=torch.float32, device=device)  # noqa: E731
    return CropParams(
        scale=full(s),
        ratio=full(r),
        width=full(math.sqrt(s * r)),
        height=full(math.sqrt(s / r)),
        cx=full(0.0),
        cy=full(0.0),
        flip=torch.zeros(batch_size, dtype=torch.bool, device=device),
    )


def test_views(x: torch.Tensor, scenario: Scenario, out_size: OutSize = None) -> torch.Tensor:
    """The deterministic evaluation view of a normalised batch under ``scenario``.

    Centred, at the geometric mean of the scale range (and of the ratio range), no flip and
    no shift. When that is the identity (``standard`` at the input size) ``x`` itself is
    returned, unchanged.
    """
    _check_batch(x)
    if (
        scenario.test_scale == 1.0
        and scenario.test_ratio == 1.0
        and _out_hw(x, out_size) == x.shape[-2:]
    ):
        return x
    return apply_params(x, test_params(scenario, x.shape[0], x.device), out_size)


test_params.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
test_views.__test__ = False  # type: ignore[attr-defined]
