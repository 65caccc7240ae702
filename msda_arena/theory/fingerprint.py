"""The theory lens: what a mask distribution regularises, measured by Monte Carlo.

Park, Yun, Chun (NeurIPS 2022) show that the MSDA loss is the clean loss plus
regularisers on input gradients and Hessians whose weight on the pixel pair ``(p, q)``
is ``E[(1 - M_p)(1 - M_q)]``. Mixup weighs every pair alike; CutMix weighs nearby
pairs strongly and distant pairs weakly. :func:`fingerprint` draws a method's own
lambdas and masks (:meth:`~msda_arena.api.contract.MaskMethod.sample_lam`,
:meth:`~msda_arena.api.contract.MaskMethod.masks`) and measures:

**Pair-weight profile.** For an offset ``d = q - p`` the mean over masks of the
autocorrelation of ``1 - M`` (one zero-padded FFT per mask, power spectra summed over
the batch), divided by the number of positions ``(H - |dy|)(W - |dx|)`` where both
pixels lie in the image, is ``A(d)``: the mean of ``E[(1 - M_p)(1 - M_{p+d})]`` over
the valid ``p``. Binned by distance ``r = round(|d|)`` (integer pixels, ``0 .. R`` with
``R = min(H, W) - 1``, so every bin is a full ring of offsets), weighting offsets by
their number of pixel pairs, that is the raw profile: the mean pair weight of all pixel
pairs at distance ``r``.

*Normalisation.* The raw profile is divided by the **flat level**
``F = E[(1 - mean(M))^2]``: the pair weight of a Mixup whose masks have the same label
weights. Because ``sum_{p,q} (1 - M_p)(1 - M_q) = (H W)^2 (1 - mean(M))^2`` for every
mask, the normalised profile averages exactly to 1 over all pixel pairs for every
method: methods differ only in how they spread one fixed budget over distance. Mixup is
exactly 1 at every distance (its masks are constant, so no Monte Carlo error); a value
above 1 means pairs at that distance are weighted more than Mixup would, below 1 less.

*Locality index* ``L = 1 - P(far) / P(1)``, with ``P`` the normalised profile, ``P(1)``
its value for adjacent pixels and ``P(far)`` its pair-weighted mean over the far band
``R/2 <= r <= R``. ``L = 0`` for a mask that ignores distance (Mixup, to rounding); it
grows to 1 as the weight of far pairs vanishes relative to near ones (CutMix); negative
would mean far pairs are favoured. Distance 1 rather than 0 is the reference, so a mask
with independent pixel noise (which favours no pair of distinct pixels) is not local.

*Correlation length* ``scale``: the distance (pixels, linearly interpolated between
bins) at which the excess ``P(r) - P(far)`` first falls to half its value at ``r = 0``;
NaN when there is no excess (Mixup). A mask made of independent ``k x k`` blocks has a
scale of about ``0.4 k`` and a profile that is flat from ``r = k`` on.

**Coverage map** ``E[1 - M](p)``: how often each pixel comes from the partner image.
Boxes and blobs whose centre is uniform but which are clipped at the border cover the
centre more than the corners. Its spread is reported as ``max / min`` and ``std / mean``
over pixels (both 1 / 0 for a flat map).

**Lambda calibration**: the drawn lambda against the label weight the harness actually
uses, ``w = mean(M)`` per mask: the mean of ``|w - lambda|``, the mean of ``w - lambda``
(bias), and a curve of mean ``w`` per lambda bin (10 bins on ``[0, 1]``). HMix keeps
``w = lambda`` exactly; clipping makes CutMix and GMix differ.

Everything is batched torch; masks are drawn in calls of :data:`CALL_SIZE` (so methods
that draw one coin per call, like ``mixup-cutmix``, mix over many calls) and
transformed in chunks that bound memory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from msda_arena.api.contract import FeatureMixMethod, MixMethod
from msda_arena.api.errors import UsageError
from msda_arena.api.record import LOCALITY_SAMPLES, LOCALITY_SEED, LOCALITY_SIZE
from msda_arena.train.mixing import validate_masks

if TYPE_CHECKING:
    import torch

    from msda_arena.api.contract import MaskMethod

__all__ = [
    "CALIBRATION_BINS",
    "CALL_SIZE",
    "LOCALITY_SAMPLES",
    "LOCALITY_SEED",
    "LOCALITY_SIZE",
    "Fingerprint",
    "default_samples",
    "fingerprint",
    "plot_fingerprints",
    "radial_bins",
    "radial_profile",
]

#: Masks per call of ``method.masks`` (a "batch" for methods with per-call randomness).
CALL_SIZE = 8
#: Lambda bins of the calibration curve, equal width on [0, 1].
CALIBRATION_BINS = 10
#: Complex FFT values per chunk (bounds memory: 2**22 values are 32 MiB).
_CHUNK_VALUES = 2**22


@dataclass
class Fingerprint:
    """The Monte Carlo fingerprint of one mask method (see the module docstring)."""

    method: str  # canonical spec of the method
    size: tuple[int, int]  # (H, W) of the masks
    samples: int  # masks drawn
    seed: int  # seed of the generator
    distances: list[int]  # integer pixel distances 0 .. R of the profile bins
    profile: list[float]  # normalised pair weight per distance (Mixup: 1 everywhere)
    raw_profile: list[float]  # mean E[(1 - M_p)(1 - M_q)] of pixel pairs at each distance
    flat_level: float  # E[(1 - mean(M))^2], the divisor of the normalisation
    far_level: float  # P(far), the normalised pair weight of the far band
    locality: float  # 1 - P(far) / P(1)
    scale: float  # correlation length in pixels (NaN when the profile is flat)
    # normalised A(d) for every offset, [2H - 1, 2W - 1], centre = 0
    pair_map: torch.Tensor = field(repr=False)
    coverage: torch.Tensor = field(repr=False)  # E[1 - M](p), [H, W]
    coverage_max_min: float  # max / min of the coverage map (inf: a pixel never covered)
    coverage_cv: float  # std / mean of the coverage map
    calibration_mae: float  # mean |mean(M) - lambda|
    calibration_bias: float  # mean (mean(M) - lambda)
    # per lambda bin: lo, hi, count, lam (mean drawn lambda), weight (mean label weight), mae
    calibration_bins: list[dict[str, float]] = field(repr=False)
    seconds: float  # wall time of the measurement

    @property
    def far_band(self) -> tuple[float, float]:
        """The distances ``(R / 2, R)`` whose mean is ``P(far)``."""
        r_max = self.distances[-1]
        return r_max / 2.0, float(r_max)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary (NaN and inf become ``None``; the maps are left out)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, list):
                return [clean(v) for v in value]
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            return value

        return clean(
            {
                "method": self.method,
                "size": list(self.size),
                "samples": self.samples,
                "seed": self.seed,
                "locality": self.locality,
                "scale_px": self.scale,
                "flat_level": self.flat_level,
                "near_level": self.profile[1] if len(self.profile) > 1 else math.nan,
                "far_level": self.far_level,
                "far_band": list(self.far_band),
                "distances": list(self.distances),
                "profile": list(self.profile),
                "raw_profile": list(self.raw_profile),
                "coverage": {
                    "mean": float(self.coverage.mean()),
                    "min": float(self.coverage.min()),
                    "max": float(self.coverage.max()),
                    "centre": float(self.coverage[self.size[0] // 2, self.size[1] // 2]),
                    "corner": float(self.coverage[0, 0]),
                    "max_min": self.coverage_max_min,
                    "cv": self.coverage_cv,
                },
                "calibration": {
                    "mae": self.calibration_mae,
                    "bias": self.calibration_bias,
                    "bins": list(self.calibration_bins),
                },
                "seconds": self.seconds,
            }
        )


def _fmt_zero(value: float, fmt: str) -> str:
    """``format`` that prints a rounded-away ``-0`` as ``0``."""
    text = format(value, fmt)
    return text[1:] if text.startswith("-") and float(text) == 0.0 else text


def default_samples(size: Sequence[int]) -> int:
    """A sample count that keeps a fingerprint to seconds: 4096 masks at 32 x 32 and
    fewer for larger images (256 at 224 x 224), never below 256."""
    h, w = int(size[0]), int(size[1])
    return int(min(4096, max(256, 2**22 // (h * w))))


def radial_bins(shape: Sequence[int]) -> torch.Tensor:
    """``round(|d|)`` of every offset of a centred offset map of ``shape``."""
    import torch

    a, b = int(shape[0]) // 2, int(shape[1]) // 2
    dy = torch.arange(-a, a + 1, dtype=torch.float64)
    dx = torch.arange(-b, b + 1, dtype=torch.float64)
    return torch.round(torch.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2))


def radial_profile(
    values: torch.Tensor, weights: torch.Tensor | None = None, max_distance: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin an offset map ``[2a + 1, 2b + 1]`` (centre = offset 0) by distance.

    Offsets are binned by ``round(|d|)``; within a bin ``values`` are averaged with
    ``weights`` (default: equal). Returns ``(distances, means)`` for ``0 .. max_distance``
    (default ``min(a, b)``); empty bins are NaN.
    """
    import torch

    ring = radial_bins(values.shape)
    bins = ring.long().flatten()
    r_max = min(values.shape[0] // 2, values.shape[1] // 2)
    r_max = r_max if max_distance is None else int(max_distance)
    keep = bins <= r_max
    w = torch.ones_like(ring).flatten() if weights is None else weights.to(torch.float64).flatten()
    v = values.to(torch.float64).flatten()
    sums = torch.zeros(r_max + 1, dtype=torch.float64).index_add_(0, bins[keep], (v * w)[keep])
    norm = torch.zeros(r_max + 1, dtype=torch.float64).index_add_(0, bins[keep], w[keep])
    means = torch.where(norm > 0, sums / norm.clamp_min(1e-300), torch.nan)
    return torch.arange(r_max + 1), means


def _draw(
    method: MaskMethod, n: int, h: int, w: int, generator: torch.Generator, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` lambdas and masks ``[n, H, W]`` (float32), in calls of :data:`CALL_SIZE`."""
    import torch

    lams, masks = [], []
    for start in range(0, n, CALL_SIZE):
        k = min(CALL_SIZE, n - start)
        lam = method.sample_lam(k, generator, device).to(torch.float32)
        m = method.masks(lam, h, w, generator)
        validate_masks(m, k, h, w, device)
        lams.append(lam)
        masks.append(m[:, 0].to(torch.float32))
    return torch.cat(lams), torch.cat(masks)


def _half_distance(excess: torch.Tensor) -> float:
    """First distance (interpolated) where ``excess`` falls to half of ``excess[0]``."""
    e0 = float(excess[0])
    if not e0 > 1e-6:
        return math.nan
    target = e0 / 2.0
    values = excess.tolist()
    for r in range(1, len(values)):
        if values[r] <= target:
            prev = values[r - 1]
            frac = (prev - target) / (prev - values[r]) if prev != values[r] else 0.0
            return r - 1 + frac
    return float(len(values) - 1)


def fingerprint(
    method: MaskMethod,
    size: tuple[int, int] = (32, 32),
    samples: int = 4096,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Fingerprint:
    """Measure a mask method's pair-weight profile, locality, coverage and lambda
    calibration by Monte Carlo over its own lambdas and masks.

    Args:
        method: a mask method (``get_method("cutmix")``).
        size: ``(H, W)`` of the masks.
        samples: number of masks to draw.
        seed: seed of the ``torch.Generator`` the lambdas and masks come from.
        device: where to draw and transform.

    Raises:
        ValueError: a bad size or sample count, or a method that never mixes
            (``vanilla``: every pair weight is 0).
        UsageError: a mixing or feature method (it has no masks).
        MaskContractError: the method returns masks that break the contract.
    """
    import torch

    if isinstance(method, FeatureMixMethod):
        raise UsageError(
            f"{method.spec} is a feature method: it mixes inside the model (at a stage it "
            "picks, with label weights of its own), so it has no mask distribution to "
            "fingerprint; check it with `arena check`"
        )
    if isinstance(method, MixMethod):
        raise UsageError(
            f"{method.spec} is a mixing method: its mixing depends on the images, so it has "
            "no mask distribution to fingerprint; draw it with `arena masks` instead"
        )
    h, w = int(size[0]), int(size[1])
    if h < 2 or w < 2:
        raise ValueError(f"size must be at least 2 x 2, got {h} x {w}")
    if samples < 1:
        raise ValueError(f"samples must be positive, got {samples}")
    started = time.perf_counter()
    device = torch.device(device)
    power, coverage, lam, weight = _accumulate(method, h, w, samples, int(seed), device)
    flat = float(((1.0 - weight) ** 2).mean())
    if not flat > 0.0:
        raise ValueError(f"{method.spec} never mixes (every mask is 1): all its pair weights are 0")
    cov = (coverage / samples).to(torch.float32).cpu()
    cov_min, cov_max, mean_cov = float(cov.min()), float(cov.max()), float(cov.mean())
    diff = weight.cpu() - lam.cpu()
    return Fingerprint(
        method=method.spec,
        size=(h, w),
        samples=int(samples),
        seed=int(seed),
        flat_level=flat,
        **_pair_weights(power / samples, h, w, flat),
        coverage=cov,
        coverage_max_min=cov_max / cov_min if cov_min > 0 else math.inf,
        coverage_cv=float(cov.std(unbiased=False)) / mean_cov if mean_cov > 0 else math.nan,
        calibration_mae=float(diff.abs().mean()),
        calibration_bias=float(diff.mean()),
        calibration_bins=_calibration_bins(lam.cpu(), weight.cpu()),
        seconds=time.perf_counter() - started,
    )


def _accumulate(
    method: MaskMethod, h: int, w: int, samples: int, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``samples`` masks in chunks and sum, in float64: the power spectrum of
    ``1 - M`` zero-padded to ``2H x 2W``, the coverage ``1 - M``; and return them with
    every drawn lambda and label weight ``mean(M)``."""
    import torch

    generator = torch.Generator(device).manual_seed(seed)
    fh, fw = 2 * h, 2 * w  # zero padding >= 2H - 1: circular = linear autocorrelation
    chunk = max(CALL_SIZE, _CHUNK_VALUES // (fh * (fw // 2 + 1)))
    power = torch.zeros(fh, fw // 2 + 1, dtype=torch.float64, device=device)
    coverage = torch.zeros(h, w, dtype=torch.float64, device=device)
    lams, weights = [], []
    done = 0
    while done < samples:
        n = min(chunk, samples - done)
        lam, masks = _draw(method, n, h, w, generator, device)
        comp = 1.0 - masks  # [n, H, W]: where the partner image shows
        spec = torch.fft.rfft2(comp, s=(fh, fw))
        power += (spec.real.square() + spec.imag.square()).sum(0, dtype=torch.float64)
        coverage += comp.sum(0, dtype=torch.float64)
        lams.append(lam.to(torch.float64))
        weights.append(masks.mean(dim=(1, 2), dtype=torch.float64))
        done += n
    return power, coverage, torch.cat(lams), torch.cat(weights)


def _pair_weights(mean_power: torch.Tensor, h: int, w: int, flat: float) -> dict[str, Any]:
    """The :class:`Fingerprint` fields of the pair weights, from the mean power
    spectrum of ``1 - M``: pair map, profile, far level, locality and scale."""
    import torch

    device = mean_power.device
    # Mean autocorrelation of 1 - M, centred: offsets -(H-1) .. H-1, -(W-1) .. W-1.
    auto = torch.fft.irfft2(mean_power, s=(2 * h, 2 * w))
    auto = torch.fft.fftshift(auto)[1:, 1:]  # index H-1 (after the cut) is offset 0
    oy = torch.arange(-(h - 1), h, dtype=torch.float64, device=device)
    ox = torch.arange(-(w - 1), w, dtype=torch.float64, device=device)
    pairs = (h - oy.abs())[:, None] * (w - ox.abs())[None, :]
    r_max = min(h, w) - 1
    distances, raw = radial_profile((auto / pairs).cpu(), pairs.cpu(), r_max)
    profile = raw / flat
    # P(far): pixel pairs in the far band, each offset weighted by its pairs (as in a bin).
    ring = radial_bins(pairs.shape).to(device)
    in_far = (ring >= r_max / 2.0) & (ring <= float(r_max))
    far = float((auto * in_far).sum() / (pairs * in_far).sum()) / flat
    near = float(profile[1])
    return {
        "distances": [int(d) for d in distances.tolist()],
        "profile": [float(v) for v in profile.tolist()],
        "raw_profile": [float(v) for v in raw.tolist()],
        "far_level": far,
        "locality": float(1.0 - far / near if near > 0 else math.nan),
        "scale": float(_half_distance(profile - far)),
        "pair_map": (auto / pairs / flat).cpu().to(torch.float32),
    }


def _calibration_bins(lam: torch.Tensor, weight: torch.Tensor) -> list[dict[str, float]]:
    """Per lambda bin (:data:`CALIBRATION_BINS` on [0, 1]): its edges, count, mean
    drawn lambda, mean label weight and mean ``|weight - lambda|``."""
    import torch

    diff = weight - lam
    edges = torch.linspace(0.0, 1.0, CALIBRATION_BINS + 1, dtype=torch.float64)
    idx = torch.bucketize(lam, edges[1:-1], right=True)
    bins = []
    for b in range(CALIBRATION_BINS):
        sel = idx == b
        count = int(sel.sum())
        bins.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "count": count,
                "lam": float(lam[sel].mean()) if count else math.nan,
                "weight": float(weight[sel].mean()) if count else math.nan,
                "mae": float(diff[sel].abs().mean()) if count else math.nan,
            }
        )
    return bins


def plot_fingerprints(fingerprints: Sequence[Fingerprint], out: Any) -> Any:
    """Draw the profiles of all ``fingerprints`` on one axis, and their coverage maps
    below in small panels with one shared colour scale; write to ``out`` (format from
    the suffix) and return its path."""
    from pathlib import Path

    from matplotlib.figure import Figure  # no pyplot: no global state, no display

    fps = list(fingerprints)
    if not fps:
        raise ValueError("nothing to plot")
    n = len(fps)
    cols = max(n, 2)
    fig = Figure(figsize=(max(8.0, 2.3 * cols), 7.4), layout="constrained")
    grid = fig.add_gridspec(2, cols, height_ratios=[2.1, 1.0])
    _draw_profiles(fig.add_subplot(grid[0, :]), fps)
    h, w = fps[0].size
    vmin = min(float(fp.coverage.min()) for fp in fps)
    vmax = max(float(fp.coverage.max()) for fp in fps)
    image = None
    axes = []
    for i, fp in enumerate(fps):
        cax = fig.add_subplot(grid[1, i])
        image = cax.imshow(fp.coverage.numpy(), vmin=vmin, vmax=vmax, cmap="viridis")
        ratio = "∞" if not math.isfinite(fp.coverage_max_min) else f"{fp.coverage_max_min:.2f}"
        cax.set_title(f"{fp.method}\nmax/min {ratio}", fontsize=9)
        cax.set_xticks([0, w - 1])
        cax.set_yticks([0, h - 1])
        cax.tick_params(labelsize=7, length=2)
        cax.set_xlabel("x (px)", fontsize=8, labelpad=-6)
        if i == 0:
            cax.set_ylabel("y (px)", fontsize=8, labelpad=-8)
        axes.append(cax)
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.9)
        bar.set_label("coverage E[1 − M](p):\nshare from the partner", fontsize=9)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _draw_profiles(ax: Any, fps: Sequence[Fingerprint]) -> None:
    """The profiles of ``fps`` on ``ax``, with the flat level and the far band."""
    for fp in fps:
        label = f"{fp.method}  (L = {_fmt_zero(fp.locality, '.2f')})"
        ax.plot(fp.distances, fp.profile, marker="o", markersize=3, linewidth=1.6, label=label)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1.0)
    ax.annotate(
        "flat: Mixup with the same label weights",
        xy=(fps[0].distances[-1], 1.0),
        xytext=(0, 4),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize=8,
        color="grey",
    )
    lo, hi = fps[0].far_band
    ax.axvspan(lo, hi, color="grey", alpha=0.08, linewidth=0)
    ax.text(
        (lo + hi) / 2,
        0.02,
        "far band",
        transform=ax.get_xaxis_transform(),
        ha="center",
        fontsize=8,
        color="grey",
    )
    ax.set_xlabel("pixel distance |p − q| (px)")
    ax.set_ylabel("E[(1−M_p)(1−M_q)] / E[(1−mean M)²]")
    h, w = fps[0].size
    ax.set_title(
        f"Pair-weight profile at {h}×{w} px: weight of a pixel pair relative to Mixup "
        f"({fps[0].samples} masks each)",
        fontsize=11,
    )
    ax.set_xlim(0, fps[0].distances[-1])
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, title="method (locality index L)", title_fontsize=9)
