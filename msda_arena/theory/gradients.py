"""Gradient maps of trained models: Figure 4 of Park, Yun, Chun (NeurIPS 2022).

The MSDA loss regularises products of input gradients ``g_v g_{v+p}`` with the weight
``E[(1 - M_v)(1 - M_{v+p})]`` (see :mod:`msda_arena.theory.fingerprint`), so a model trained with
CutMix should have small products for nearby pixels relative to a Mixup-trained one,
which pays for every offset alike. This module measures that on trained cells:

:func:`input_gradients` (``g(v) = sum_c |dL/dx_c(v)|``, eval mode), then
:func:`pair_statistic` ``S(p)`` over a window of offsets, normalised by ``S(0)`` (the
largest, since ``g(v) g(u) <= max g^2``), and :func:`distance_curve` (``S`` per integer
distance); :func:`gradient_maps` computes both for cells trained with
``--save-checkpoints`` (weights through safetensors only, never a pickle), and
:func:`plot_gradient_maps` draws them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msda_arena.models.cifar  # noqa: F401
from msda_arena.api.errors import StoreError, UsageError
from msda_arena.data import load_dataset
from msda_arena.data.crops import test_views
from msda_arena.data.imagefolder import make_loader
from msda_arena.grid.config import load_config
from msda_arena.methods.registry import get_method
from msda_arena.store.current import latest_code, latest_recipe
from msda_arena.store.results import checkpoint_path, load_results
from msda_arena.theory.fingerprint import radial_profile
from msda_arena.train.saliency import input_gradients

if TYPE_CHECKING:
    import torch

__all__ = [
    "GradientMap",
    "distance_curve",
    "gradient_maps",
    "input_gradients",
    "pair_statistic",
    "plot_gradient_maps",
]


def pair_statistic(g: torch.Tensor, window: int = 8, normalize: bool = True) -> torch.Tensor:
    """``S(p) = max_{b, v} |g_b(v) g_b(v + p)|`` for offsets ``p`` in ``[-w, w]^2``.

    Args:
        g: gradient magnitudes ``[B, H, W]`` (or ``[H, W]``).
        window: ``w``; offsets beyond the image are clipped to it (``w <= min(H, W) - 1``).
        normalize: divide by the largest value over offsets (1 at the centre).

    Returns:
        ``[2w + 1, 2w + 1]``, float64, row = ``dy + w``, column = ``dx + w``.
    """
    import torch

    if g.ndim == 2:
        g = g.unsqueeze(0)
    if g.ndim != 3:
        raise ValueError(f"expected g of shape [B, H, W], got {tuple(g.shape)}")
    _, h, w_img = g.shape
    w = int(window)
    if w < 0 or w > min(h, w_img) - 1:
        raise ValueError(f"window {w} must be between 0 and {min(h, w_img) - 1} for {h}x{w_img}")
    a = g.detach().to(torch.float64).abs()
    out = torch.zeros(2 * w + 1, 2 * w + 1, dtype=torch.float64, device=a.device)
    for dy in range(-w, w + 1):
        rows_v = slice(max(0, -dy), h - max(0, dy))
        rows_u = slice(max(0, dy), h - max(0, -dy))
        for dx in range(-w, w + 1):
            cols_v = slice(max(0, -dx), w_img - max(0, dx))
            cols_u = slice(max(0, dx), w_img - max(0, -dx))
            prod = a[:, rows_v, cols_v] * a[:, rows_u, cols_u]
            out[dy + w, dx + w] = prod.amax()
    out = out.cpu()
    if normalize:
        top = float(out.max())
        if top > 0:
            out = out / top
    return out


def distance_curve(stat: torch.Tensor) -> tuple[list[int], list[float]]:
    """The pair statistic averaged over the offsets at each integer distance
    ``round(|p|) = 0 .. w``."""
    distances, means = radial_profile(stat)
    return [int(d) for d in distances.tolist()], [float(v) for v in means.tolist()]


@dataclass
class GradientMap:
    """The pair statistic of one method (one architecture and scenario; seeds averaged)."""

    method: str  # canonical spec
    arch: str  # timm architecture
    scenario: str  # crop scenario
    dataset: str
    keys: list[str]  # the cells (one per seed) whose maps were averaged
    inputs: int  # test inputs per cell
    window: int  # w
    stat: torch.Tensor = field(repr=False)  # normalised S, [2w + 1, 2w + 1], mean over cells
    distances: list[int] = field(default_factory=list)  # 0 .. w
    curve: list[float] = field(default_factory=list)  # S averaged per distance

    def to_dict(self, with_map: bool = True) -> dict[str, Any]:
        """A JSON-safe summary (with the map as nested lists unless ``with_map`` is off)."""
        out: dict[str, Any] = {
            "method": self.method,
            "arch": self.arch,
            "scenario": self.scenario,
            "dataset": self.dataset,
            "cells": list(self.keys),
            "inputs": self.inputs,
            "window": self.window,
            "distances": list(self.distances),
            "curve": [v if math.isfinite(v) else None for v in self.curve],
        }
        if with_map:
            out["stat"] = [[float(v) for v in row] for row in self.stat.tolist()]
        return out


def _load_model(arch: str, path: Path, num_classes: int, in_chans: int, device: Any) -> Any:
    import timm
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (OSError, RuntimeError, ValueError) as exc:  # a damaged or foreign file
        raise StoreError(f"cannot read checkpoint {path}: {exc}") from None
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise StoreError(f"checkpoint {path} does not fit {arch}: {first}") from None
    return model.to(device).eval()


def _test_inputs(data: Any, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``samples`` test images (uint8) and labels of a dataset."""
    import torch

    if hasattr(data, "test_x"):
        return data.test_x[:samples], data.test_y[:samples]

    xs, ys, have = [], [], 0
    for x, y in make_loader(data, "val", batch_size=min(samples, 128), workers=0, shuffle=False):
        xs.append(x)
        ys.append(y)
        have += len(y)
        if have >= samples:
            break
    if not xs:
        raise UsageError(f"{data.name}: the validation split is empty")
    return torch.cat(xs)[:samples], torch.cat(ys)[:samples]


def _select(
    results: Path,
    methods: Sequence[str] | None,
    profile: str | None,
    arch: str | None,
    scenario: str | None,
    notes: list[str],
) -> tuple[Any, str]:
    """The ok records with a checkpoint that match the filters, and their profile;
    results of an older recipe or older method code are left out (as the report
    leaves them out), with a line in ``notes``."""
    frame, _ = load_results(results)
    frame = frame[frame.status == "ok"]
    frame = latest_code(latest_recipe(frame, notes), notes)
    has = [
        checkpoint_path(results, d, k).is_file()
        for d, k in zip(frame.dataset, frame.key, strict=True)
    ]
    frame = frame[has] if len(frame) else frame
    hint = "train cells with `arena run --save-checkpoints`"
    if not len(frame):
        raise UsageError(f"no ok result in {results} has a checkpoint; {hint}")
    wanted = [get_method(m).spec for m in methods] if methods else None
    for column, value, option in (
        ("profile", profile, "--profile"),
        ("arch", arch, "--arch"),
        ("scenario", scenario, "--scenario"),
    ):
        if value is not None:
            if value not in set(frame[column]):
                have = ", ".join(sorted(set(frame[column])))
                raise UsageError(
                    f"{option} {value}: no checkpointed cell in {results} has it; there are: {have}"
                )
            frame = frame[frame[column] == value]
    if wanted is not None:
        missing = [m for m in wanted if m not in set(frame.method)]
        if missing:
            have = ", ".join(sorted(set(frame.method))) or "none"
            raise UsageError(
                f"--method {missing[0]}: no checkpointed cell in {results} matches "
                f"(checkpointed methods: {have}); {hint}"
            )
        frame = frame[frame.method.isin(wanted)]
    profiles = sorted(set(frame.profile))
    if len(profiles) > 1:
        raise UsageError(
            f"the checkpointed cells in {results} come from profiles {', '.join(profiles)}; "
            "choose one with --profile"
        )
    return frame, profiles[0]


def gradient_maps(
    results: str | os.PathLike[str],
    methods: Sequence[str] | None = None,
    profile: str | None = None,
    config: str | os.PathLike[str] | None = None,
    data_root: str | None = None,
    samples: int = 256,
    window: int = 8,
    arch: str | None = None,
    scenario: str | None = None,
    device: Any = "cpu",
    batch_size: int = 128,
    notes: list[str] | None = None,
) -> list[GradientMap]:
    """The gradient pair statistic of every checkpointed cell in a result store.

    Cells are the ok records under ``results`` whose checkpoint exists, filtered by
    ``methods`` (specs), ``profile``, ``arch`` and ``scenario``. Each cell's model is
    built with timm and loaded from ``<results>/<dataset>/checkpoints/<key>.safetensors``;
    its test inputs are the first ``samples`` test images of the profile's dataset,
    normalised and viewed as the cell was evaluated (the scenario's test view). Cells
    that differ only by seed are averaged into one :class:`GradientMap`, in the order of
    ``methods`` (else by method name). Cells of an older recipe or older method code
    are left out, as the report leaves them out; a line in ``notes`` (when given) says
    how many.

    Raises:
        UsageError: nothing matches, the cells span several profiles, or the profile is
            not in the configuration.
        StoreError: a checkpoint that cannot be read or does not fit its architecture.
    """
    import torch

    if samples < 1:
        raise UsageError(f"--samples {samples}: must be at least 1")
    root = Path(results)
    frame, prof_name = _select(
        root, methods, profile, arch, scenario, notes if notes is not None else []
    )
    cfg = load_config(config)
    if prof_name not in cfg.profiles:
        raise UsageError(
            f"the cells come from profile {prof_name!r}, which {cfg.path} does not define; "
            "pass the arena.toml they were trained with (--config)"
        )
    prof = cfg.profiles[prof_name]
    data = load_dataset(prof.dataset, data_root or prof.data_root, **prof.dataset_options)
    x_raw, y_all = _test_inputs(data, samples)
    x_all = data.normalize(x_raw)
    maps = []
    for (method, arch_name, scen), rows in _groups(frame, methods):
        stats = []
        for row in rows:
            if row.scenario not in cfg.scenarios:
                raise UsageError(f"scenario {row.scenario!r} is not in {cfg.path}")
            path = checkpoint_path(root, row.dataset, row.key)
            model = _load_model(row.arch, path, data.num_classes, data.in_chans, device)
            view = cfg.scenarios[row.scenario]
            g = _gradients(model, x_all, y_all, view, batch_size, device)
            stats.append(pair_statistic(g, min(window, min(g.shape[-2:]) - 1)))
        stat = torch.stack(stats).mean(0)
        distances, curve = distance_curve(stat)
        maps.append(
            GradientMap(
                method=method,
                arch=arch_name,
                scenario=scen,
                dataset=prof.dataset,
                keys=[r.key for r in rows],
                inputs=len(y_all),
                window=int(stat.shape[0] // 2),
                stat=stat,
                distances=distances,
                curve=curve,
            )
        )
    return maps


def _gradients(
    model: Any, x: torch.Tensor, y: torch.Tensor, view: Any, batch_size: int, device: Any
) -> torch.Tensor:
    """Input-gradient magnitudes ``[N, H, W]`` of ``model`` on the test views of ``x``."""
    import torch

    grads = []
    for i in range(0, len(y), batch_size):
        xb = test_views(x[i : i + batch_size].to(device), view)
        grads.append(input_gradients(model, xb, y[i : i + batch_size].to(device)))
    return torch.cat(grads)


def _groups(
    frame: Any, methods: Sequence[str] | None
) -> list[tuple[tuple[str, str, str], list[Any]]]:
    """The rows of ``frame`` by (method, arch, scenario), seeds in order; groups in the
    order of ``methods`` (specs), then by name."""
    order = list(dict.fromkeys(get_method(m).spec for m in methods or []))
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for row in frame.sort_values(["method", "arch", "scenario", "seed"]).itertuples():
        groups.setdefault((row.method, row.arch, row.scenario), []).append(row)

    def rank(key: tuple[str, str, str]) -> tuple[int, tuple[str, str, str]]:
        return (order.index(key[0]) if key[0] in order else len(order), key)

    return [(key, groups[key]) for key in sorted(groups, key=rank)]


def plot_gradient_maps(maps: Sequence[GradientMap], out: str | os.PathLike[str]) -> Path:
    """One heat map of the pair statistic per map, side by side with one colour scale,
    and the statistic against distance for all of them; write ``out`` and return it."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display
    from matplotlib.ticker import MaxNLocator

    maps = list(maps)
    if not maps:
        raise ValueError("nothing to plot")
    n = len(maps)
    several = len({(m.arch, m.scenario) for m in maps}) > 1
    fig = Figure(figsize=(max(8.0, 3.0 * n + 1.0), 7.6), layout="constrained")
    grid = fig.add_gridspec(2, n, height_ratios=[1.0, 0.85])
    # The centre is 1 by construction; the scale spans the off-centre values so they show.
    off = []
    for m in maps:
        s = m.stat.clone()
        s[m.window, m.window] = float("nan")
        off.append(s)
    vmax = max(float(s[~s.isnan()].max()) if s.numel() > 1 else 1.0 for s in off)
    vmin = min(float(s[~s.isnan()].min()) if s.numel() > 1 else 0.0 for s in off)
    image, axes = None, []
    for i, m in enumerate(maps):
        ax = fig.add_subplot(grid[0, i])
        w = m.window
        image = ax.imshow(
            m.stat.numpy(),
            cmap="magma",
            vmin=vmin,
            vmax=vmax,
            extent=(-w - 0.5, w + 0.5, w + 0.5, -w - 0.5),
        )
        title = m.method
        if several:
            title += f"\n{m.arch}, {m.scenario}"
        title += f"\n{len(m.keys)} cell(s), {m.inputs} inputs"
        ax.set_title(title, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.set_xlabel("offset p_x (px)", fontsize=9)
        if i == 0:
            ax.set_ylabel("offset p_y (px)", fontsize=9)
        axes.append(ax)
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.9, extend="max")
        bar.set_label("max |g_v g_(v+p)| / max at p = 0\n(centre = 1, above scale)", fontsize=9)
    cax = fig.add_subplot(grid[1, :])
    for m in maps:
        label = m.method if not several else f"{m.method} ({m.arch}, {m.scenario})"
        cax.plot(m.distances, m.curve, marker="o", markersize=4, linewidth=1.6, label=label)
    cax.set_xlabel("pixel distance |p| (px)")
    cax.set_ylabel("normalised max |g_v g_(v+p)|\n(mean over offsets at |p|)")
    cax.set_xlim(0, max(m.window for m in maps))
    cax.xaxis.set_major_locator(MaxNLocator(integer=True))
    cax.set_ylim(bottom=0)
    cax.grid(alpha=0.3)
    cax.legend(fontsize=9)
    first = maps[0]
    fig.suptitle(
        f"Input-gradient pair statistic (Park et al. 2022, Fig. 4): {first.dataset}, "
        f"{first.arch if not several else 'several cells'}, "
        f"{first.scenario if not several else ''}".rstrip(", "),
        fontsize=11,
    )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
