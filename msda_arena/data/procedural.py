"""A procedural image-classification dataset, generated on the fly, offline, deterministically.

Each image holds one object on a cluttered background. The class is the object's *shape*,
*texture* and *cut*, three local properties (the kind of evidence that a crop can cut away
or a mask can mix in), and never its colour or position:

* shapes: disc, square, triangle, ring, cross;
* textures: solid, stripes (random orientation), checker, dots; the texture's period is
  relative to the object (about 3 cycles across it), so it zooms with the object;
* cuts: whole, or gaps through the object's centre that show the background: a
  horizontal one (``cut-h``), a vertical one (``cut-v``), both (``cut-plus``, the object in
  quarters) or both diagonals (``cut-x``). Each gap is 0.28 of the object's side wide, so
  it zooms with the object too, and every cut looks the same after a horizontal flip (the
  crop scenarios flip), so no augmentation changes a class;
* class ``k`` is cut ``k // 20`` with shape ``j % 5`` and texture ``(j % 5 + j // 5) % 4``,
  ``j = k % 20``: classes 0..19 are whole objects, every one of the 20 shape x texture
  combinations once (for ``num_classes=20``); for 10 classes each shape appears with two
  textures and each texture with two or three shapes, so neither shape nor texture alone
  identifies the class; classes 20..99 repeat the 20 combinations with each of the four
  cuts, so ``num_classes=100`` holds every shape x texture x cut once (CIFAR-100's class
  count), and from 21 classes on the cut is needed to tell classes apart;
* colours are random per image (object colour, texture colour and background are kept
  apart in every channel, so the object is always visible);
* background: a random colour with a linear luminance gradient and three thin line
  segments of random brightness (clutter, behind the object); uniform luminance noise
  (std 0.06) over everything.

``object_scale`` is the side of the object's square bounding box as a fraction of the image
side (jittered by +-15% per image); the object always lies fully inside the image. Its area
is therefore about ``object_scale**2`` times the shape's fill factor (0.5 triangle .. 0.79
disc) of the image area. With ``return_masks=True`` the generator also returns the exact
binary object masks, which the tests use to measure what the crop scenarios do to object
scale.

Generation is vectorised torch (Python loops run over chunks of 512 images, the five
shapes, four textures, four cuts and three clutter lines, never over images): 10,000 32x32
RGB images take about half a second on one CPU core. With ``device`` it renders on that
device (a GPU): the random numbers are still drawn on the CPU from the seed's generator, in
the same order, so a GPU renders the same images as the CPU (up to float rounding: a few
pixels may differ by one level, or at a texture's edge).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from msda_arena.api.errors import UsageError
from msda_arena.data.base import OptionRule, TensorData

__all__ = [
    "CUTS",
    "MAX_CLASSES",
    "OPTIONS",
    "SHAPES",
    "TEXTURES",
    "check_options",
    "class_names",
    "generate",
    "procedural_dataset",
]

SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "ring", "cross")
TEXTURES: tuple[str, ...] = ("solid", "stripes", "checker", "dots")
CUTS: tuple[str, ...] = ("whole", "cut-h", "cut-v", "cut-plus", "cut-x")
MAX_CLASSES = len(SHAPES) * len(TEXTURES) * len(CUTS)

#: Defaults of :func:`procedural_dataset` that the option checks need.
TRAIN_SIZE, TEST_SIZE, IMAGE_SIZE = 10_000, 2_000, 32
MAX_IMAGES = 1_000_000  # per split
MAX_IMAGE_SIZE = 512
MAX_BYTES = 4 * 2**30  # train + test as uint8; the whole set is also moved to the device

#: ``dataset_options`` of ``procedural`` in arena.toml (see :func:`check_options`).
OPTIONS: dict[str, OptionRule] = {
    "train_size": OptionRule(int, 1, MAX_IMAGES, why="images; the set is held in memory"),
    "test_size": OptionRule(int, 1, MAX_IMAGES, why="images; the set is held in memory"),
    "num_classes": OptionRule(
        int,
        2,
        MAX_CLASSES,
        why=f"{len(SHAPES)} shapes x {len(TEXTURES)} textures x {len(CUTS)} cuts",
    ),
    "image_size": OptionRule(
        int, 8, MAX_IMAGE_SIZE, why="pixels a side; what the crops and the models handle"
    ),
    "object_scale": OptionRule(float, 0, 1, lo_exclusive=True, why="object side / image side"),
    "seed": OptionRule(int, 0, 2**31 - 1),
}

_CHUNK_PIXELS = 512 * 32 * 32  # pixels generated at once: small tensors stay in cache
_SIZE_JITTER = 0.15
_CYCLES = (2.5, 3.5)  # texture cycles across the object's bounding box
_NOISE_STD = 0.06
_N_LINES = 3
_CUT_HALF = 0.14  # half-width of a cut's gap, in object half-sides (local units)


def class_names(num_classes: int = 10) -> list[str]:
    """Human-readable class names, e.g. ``["disc/solid", "square/stripes", ...]``; a cut
    object's name ends with its cut, e.g. ``"disc/solid/cut-h"``."""
    return [
        f"{SHAPES[s]}/{TEXTURES[t]}" + (f"/{CUTS[c]}" if c else "")
        for s, t, c in _class_table(num_classes)
    ]


def _class_table(num_classes: int) -> list[tuple[int, int, int]]:
    """(shape, texture, cut) of each class (see the module docstring)."""
    if not 2 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in 2..{MAX_CLASSES}, got {num_classes}")
    ns, nt = len(SHAPES), len(TEXTURES)
    table = []
    for k in range(num_classes):
        j = k % (ns * nt)
        table.append((j % ns, (j % ns + j // ns) % nt, k // (ns * nt)))
    return table


def _shape_mask(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Boolean mask of a shape in local coordinates u, v in [-1, 1] (v points down)."""
    name = SHAPES[shape]
    if name == "disc":
        return u * u + v * v <= 1.0
    if name == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.85
    if name == "triangle":  # apex up, base at v = 0.9
        return (v <= 0.9) & (u.abs() <= (v + 1.0) / 1.9)
    if name == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.55**2)
    if name == "cross":
        return ((u.abs() <= 0.33) & (v.abs() <= 1.0)) | ((v.abs() <= 0.33) & (u.abs() <= 1.0))
    raise AssertionError(name)


def _texture(
    texture: int,
    u: torch.Tensor,
    v: torch.Tensor,
    freq: torch.Tensor,
    phase: torch.Tensor,
    angle: torch.Tensor,
) -> torch.Tensor:
    """Boolean 'second colour' pattern; ``freq`` = cycles per object side, per image.

    Computed from separable factors: sin(a + b) = sin a cos b + cos a sin b.
    """
    name = TEXTURES[texture]
    w = math.pi * freq  # u spans 2 units across the object: period 2 / freq
    if name == "solid":
        return torch.zeros(
            torch.broadcast_shapes(u.shape, v.shape), dtype=torch.bool, device=u.device
        )
    if name == "stripes":
        a = w * u * angle.cos() + phase[..., 0]
        b = w * v * angle.sin()
        return a.sin() * b.cos() + a.cos() * b.sin() > 0
    if name == "checker":
        return torch.sin(w * u + phase[..., 0]) * torch.sin(w * v + phase[..., 1]) > 0
    if name == "dots":
        cu = torch.cos(w * u + phase[..., 0])
        cv = torch.cos(w * v + phase[..., 1])
        return (cu + 1.0) * (cv + 1.0) > 2.2  # round spots around the peaks, ~20% coverage
    raise AssertionError(name)


def _cut(cut: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Boolean gap of a cut in local coordinates (True: background shows through)."""
    name = CUTS[cut]
    w = _CUT_HALF
    if name == "cut-h":
        return v.abs() <= w
    if name == "cut-v":
        return u.abs() <= w
    if name == "cut-plus":
        return (u.abs() <= w) | (v.abs() <= w)
    if name == "cut-x":  # distance to each diagonal, |u -+ v| / sqrt(2), within w
        return ((u - v).abs() <= w * math.sqrt(2)) | ((u + v).abs() <= w * math.sqrt(2))
    raise AssertionError(name)


def _col(t: torch.Tensor) -> torch.Tensor:  # [n] -> [n, 1, 1]
    return t.view(-1, 1, 1)


def _background(
    grad: torch.Tensor,
    line_c: torch.Tensor,
    line_a: torch.Tensor,
    line_len: torch.Tensor,
    line_v: torch.Tensor,
    xs: torch.Tensor,
    ys: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """Background luminance [n, H, W]: a gradient plus anti-aliased line segments."""
    lum = (
        _col(grad[:, 0]) * (xs - size / 2) / size * 2
        + _col(grad[:, 1]) * (ys - size / 2) / size * 2
    )
    width = max(1.0, size / 32) / 2 + 0.5
    for i in range(_N_LINES):
        ca, sa = _col(line_a[:, i].cos()), _col(line_a[:, i].sin())
        dx, dy = xs - _col(line_c[:, i, 0]), ys - _col(line_c[:, i, 1])
        across = (dx * sa - dy * ca).abs_()
        along = (dx * ca + dy * sa).abs_()
        alpha = (width - across).clamp_(0, 1).mul_(along <= _col(line_len[:, i]))
        lum = lum + alpha * _col(line_v[:, i])
    return lum


def _object(
    ids: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    freq: torch.Tensor,
    phase: torch.Tensor,
    angle: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The object's mask and its texture's second-colour pixels (bool [n, H, W] each),
    per shape / cut / texture group (not per image); ``ids``: [n, 3] shape, texture, cut."""
    n, size = u.shape[0], u.shape[2]
    mask = torch.zeros(n, size, size, dtype=torch.bool, device=u.device)
    second = torch.zeros_like(mask)
    for s in range(len(SHAPES)):
        idx = (ids[:, 0] == s).nonzero().squeeze(1)
        if idx.numel():
            mask[idx] = _shape_mask(s, u[idx], v[idx])
    for c in range(1, len(CUTS)):  # cut 0 (whole) removes nothing
        idx = (ids[:, 2] == c).nonzero().squeeze(1)
        if idx.numel():
            mask[idx] &= ~_cut(c, u[idx], v[idx])
    for k in range(1, len(TEXTURES)):  # texture 0 (solid) has no second colour
        idx = (ids[:, 1] == k).nonzero().squeeze(1)
        if idx.numel():
            second[idx] = _texture(
                k, u[idx], v[idx], _col(freq[idx]), phase[idx].view(-1, 1, 1, 2), _col(angle[idx])
            )
    return mask, second


def _generate_chunk(
    n: int,
    labels: torch.Tensor,
    table: torch.Tensor,
    size: int,
    object_scale: float,
    g: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk of images (float [n, 3, H, W], 0..255 scale) and masks (bool [n, H, W]),
    on ``device``; the random numbers come from ``g`` on the CPU.

    Every full-resolution operation is a broadcast of per-image [n, 1, W] and [n, H, 1]
    factors, so the cost is a few dozen elementwise passes over the chunk.
    """

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g).to(device)

    # Geometry: half-side in pixels, centre such that the object lies inside the image.
    half = 0.5 * size * object_scale * (1 + _SIZE_JITTER * (2 * rand(n) - 1))
    half = half.clamp(max=size / 2)
    cx = half + rand(n) * (size - 2 * half)
    cy = half + rand(n) * (size - 2 * half)
    freq = _CYCLES[0] + rand(n) * (_CYCLES[1] - _CYCLES[0])
    phase = rand(n, 2) * (2 * math.pi)
    angle = rand(n) * math.pi

    # Colours, per channel: c1 (object) differs from c2 (texture) and from the background by
    # at least 0.25, c2 from the background by at least 0.17, so the object always shows.
    c1 = rand(n, 3)
    c2 = (c1 + 1 / 3 + 0.16 * (rand(n, 3) - 0.5)) % 1.0
    bg = (c1 + 2 / 3 + 0.16 * (rand(n, 3) - 0.5)) % 1.0
    grad = 0.3 * (rand(n, 2) - 0.5)  # luminance gradient per pixel across the image, x and y
    line_c = rand(n, _N_LINES, 2) * size  # clutter: line centres
    line_a = rand(n, _N_LINES) * math.pi  # directions
    line_len = (0.2 + 0.4 * rand(n, _N_LINES)) * size  # half-lengths
    line_v = 0.8 * (rand(n, _N_LINES) - 0.5)  # luminance offsets (dark or light strokes)
    noise = rand(n, 1, size, size).sub_(0.5).mul_(_NOISE_STD * 12**0.5)

    coords = torch.arange(size, dtype=torch.float32, device=device) + 0.5
    xs, ys = coords.view(1, 1, size), coords.view(1, size, 1)

    lum = _background(grad, line_c, line_a, line_len, line_v, xs, ys, size)
    u = (xs - _col(cx)) / _col(half)  # [n, 1, W]
    v = (ys - _col(cy)) / _col(half)  # [n, H, 1]
    mask, second = _object(table[labels], u, v, freq, phase, angle)
    c1, c2, bg = (c.mul(255).view(n, 3, 1, 1) for c in (c1, c2, bg))
    obj = torch.where(second.unsqueeze(1), c2, c1)
    img = torch.where(mask.unsqueeze(1), obj, lum.unsqueeze(1) * 255 + bg)
    img.add_(noise.mul_(255))
    return img, mask


def generate(
    n: int,
    num_classes: int = 10,
    image_size: int = 32,
    object_scale: float = 0.5,
    seed: int = 0,
    return_masks: bool = False,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Generate ``n`` procedural images.

    Args:
        n: number of images.
        num_classes: 2..100 (see the module docstring for the class table).
        image_size: side of the square images, in pixels (>= 8).
        object_scale: side of the object's bounding box as a fraction of the image side,
            in (0, 1]; jittered by +-15% per image and clipped to the image.
        seed: the images are a deterministic function of ``(n, num_classes, image_size,
            object_scale, seed)``.
        return_masks: also return the objects' binary masks.
        device: where to render and return the tensors (default: the CPU). The random
            numbers are drawn on the CPU whatever the device, so every device renders
            the same images (up to float rounding).

    Returns:
        ``(images, labels)`` or ``(images, labels, masks)``: uint8 [n, 3, H, W], int64 [n]
        (balanced: each class appears ``n // num_classes`` or one more times, shuffled),
        and bool [n, 1, H, W] masks of the object pixels (cut gaps excluded).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    if not 0 < object_scale <= 1:
        raise ValueError(f"object_scale must be in (0, 1], got {object_scale}")
    dev = torch.device("cpu" if device is None else device)
    table = torch.tensor(_class_table(num_classes), dtype=torch.int64, device=dev)
    g = torch.Generator().manual_seed(int(seed))
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)].to(dev)

    images = torch.empty(n, 3, image_size, image_size, dtype=torch.uint8, device=dev)
    masks = (
        torch.empty(n, 1, image_size, image_size, dtype=torch.bool, device=dev)
        if return_masks
        else None
    )
    chunk = max(1, _CHUNK_PIXELS // (image_size * image_size))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        img, mask = _generate_chunk(
            stop - start, labels[start:stop], table, image_size, object_scale, g, dev
        )
        images[start:stop] = img.add_(0.5).clamp_(0, 255).to(torch.uint8)  # round half up
        if masks is not None:
            masks[start:stop, 0] = mask
    if masks is not None:
        return images, labels, masks
    return images, labels


def check_options(options: Mapping[str, Any]) -> int:
    """Checks across options (each value is already in its :data:`OPTIONS` range).

    Returns:
        The number of training images.

    Raises:
        UsageError: the dataset would not fit in :data:`MAX_BYTES` of memory.
    """
    train = int(options.get("train_size", TRAIN_SIZE))
    test = int(options.get("test_size", TEST_SIZE))
    size = int(options.get("image_size", IMAGE_SIZE))
    need = (train + test) * 3 * size * size
    if need > MAX_BYTES:
        raise UsageError(
            f"dataset 'procedural': train_size + test_size = {train + test} images of "
            f"3x{size}x{size} pixels need {need / 2**30:.1f} GiB, over the "
            f"{MAX_BYTES / 2**30:.0f} GiB limit; use fewer images or a smaller image_size"
        )
    return train


def procedural_dataset(
    train_size: int = TRAIN_SIZE,
    test_size: int = TEST_SIZE,
    num_classes: int = 10,
    image_size: int = IMAGE_SIZE,
    object_scale: float = 0.5,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> TensorData:
    """The procedural dataset as :class:`TensorData`, on ``device`` (default: the CPU).

    The training set uses generator seed ``2 * seed`` and the test set ``2 * seed + 1``, so
    train and test images never share a random stream. ``mean``/``std`` are measured on the
    training images. With ``device`` (a GPU) the images are rendered there (see
    :func:`generate`): CIFAR-100's shapes (50,000 + 10,000 images of 32x32, 100 classes)
    take seconds.
    """
    train_x, train_y = generate(
        train_size, num_classes, image_size, object_scale, 2 * seed, device=device
    )
    test_x, test_y = generate(
        test_size, num_classes, image_size, object_scale, 2 * seed + 1, device=device
    )
    xf = train_x.float().div_(255)
    mean = tuple(float(m) for m in xf.mean(dim=(0, 2, 3)))
    std = tuple(float(s) for s in xf.std(dim=(0, 2, 3)))
    return TensorData(
        name="procedural",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=num_classes,
        mean=mean,
        std=std,
        info={
            "generator": "msda_arena.data.procedural",
            "object_scale": object_scale,
            "seed": seed,
            "classes": class_names(num_classes),
        },
    )


def load(name: str, root: Path | None, **options: Any) -> TensorData:
    """The arena's loader entry point: ``root`` is ignored (the images are generated)."""
    return procedural_dataset(**options)
