"""A first search for the ``quick`` profile's regime (issue 19), on held-out training images.

The quick profile's procedural data is generated with a candidate's training images plus
the profile's number of training images more: the first part trains the candidate (with
its ``label_noise`` applied to it alone), the rest is held out and is the only data a
candidate is judged on. The profile's test split is never read.

Each candidate (label noise, epochs, training images, and optionally image side and batch
size; the profile's own otherwise) trains vanilla, mixup and cutmix
on the profile's two models, on the crop scenarios and ``standard``, with one seed,
through the arena's own :func:`msda_arena.train.loop.train_cell`, and reports held-out
top-1 per method and scenario, the gain of mixup and cutmix over vanilla, and vanilla's
final training loss (whether the un-mixed model fits its training set), and the mean
seconds of a cell, whose ratio to the profile's own recipe in the same run is the
candidate's cost.

    python benchmarks/quick_search.py [--workers 2] [--candidates 0x8x1024,0.2x32x256x16x32]

Cells run in ``--workers`` processes with one thread each. Figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import platform
import statistics
import time
from typing import Any

METHODS = ("vanilla", "mixup", "cutmix")
SCENARIOS = ("large-crop", "small-crop", "standard")
#: (label_noise, epochs, training images) of the first round: the profile's recipe with
#: label noise, and as much compute per cell on fewer images; ``--candidates`` runs others.
#: A candidate: (label_noise, epochs, training images, image side, batch size); a side or
#: batch of 0 is the profile's own.
Candidate = tuple[float, int, int, int, int]
CANDIDATES: tuple[Candidate, ...] = (
    (0.0, 8, 1024, 0, 0), (0.2, 8, 1024, 0, 0), (0.4, 8, 1024, 0, 0), (0.2, 16, 1024, 0, 0),
    (0.0, 32, 256, 0, 0), (0.2, 32, 256, 0, 0), (0.0, 64, 128, 0, 0),
)  # fmt: skip


def parse_candidates(text: str) -> tuple[Candidate, ...]:
    """``"0.2x8x1024,0x32x256x16x32"`` -> ``((0.2, 8, 1024, 0, 0), (0.0, 32, 256, 16, 32))``:
    label noise x epochs x images, then optionally x image side and x batch size."""
    out = []
    for item in text.split(","):
        noise, *ints = item.split("x")
        if not 2 <= len(ints) <= 4:
            raise argparse.ArgumentTypeError(f"{item!r}: write NOISExEPOCHSxIMAGES[xSIDE[xBATCH]]")
        epochs, n, side, batch = [*map(int, ints), 0, 0][:4]
        out.append((float(noise), epochs, n, side, batch))
    return tuple(out)


def label(candidate: Candidate) -> str:
    """The candidate as its table row names it (side and batch only where not the profile's)."""
    *named, side, batch = candidate
    extra = [side or "-", batch] if batch else [side] if side else []
    return " x ".join(map(str, [*named, *extra]))


def held_out_data(label_noise: float, n: int, side: int = 0) -> Any:
    """The quick profile's dataset with ``n`` training images (``label_noise`` applied to
    them), at ``side`` pixels (0: the profile's), and the profile's number of held-out
    training images as the test split."""
    from msda_arena.data import load_dataset, with_label_noise
    from msda_arena.grid.config import load_config

    options = dict(load_config().profiles["quick"].dataset_options)
    if side:
        options["image_size"] = side
    held = options["train_size"]
    data = load_dataset("procedural", **{**options, "train_size": held + n})
    split = dataclasses.replace(
        data,
        train_x=data.train_x[:n],
        train_y=data.train_y[:n],
        test_x=data.train_x[n : n + held],
        test_y=data.train_y[n : n + held],
        info=dict(data.info, split=f"train[:{n}] / held-out train[{n}:]"),
    )
    return with_label_noise(split, label_noise) if label_noise else split


def run_one(job: tuple[str, Candidate, str, str, int]) -> dict[str, Any]:
    """Train one cell of one candidate; what a worker process runs."""
    from msda_arena import get_method
    from msda_arena.grid.config import load_config
    from msda_arena.train.loop import train_cell

    arch, candidate, method, scenario, seed = job
    noise, epochs, n, side, batch = candidate
    config = load_config()
    recipe = config.recipes["quick"]
    batch = batch or recipe.batch_size
    recipe = dataclasses.replace(recipe, epochs=epochs, threads=1, batch_size=batch)
    data = held_out_data(noise, n, side)
    result = train_cell(arch, get_method(method), data, recipe, config.scenarios[scenario], seed)
    return dict(
        arch=arch, candidate=candidate, method=method, scenario=scenario,
        top1=result.top1, train_loss=result.train_loss, seconds=result.wall_time_s,
    )  # fmt: skip


def main() -> None:
    from msda_arena.grid.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", type=parse_candidates, default=CANDIDATES)
    args = parser.parse_args()
    archs = load_config().profiles["quick"].archs
    jobs = [
        (arch, candidate, method, scenario, args.seed)
        for candidate in args.candidates
        for arch in archs
        for method in METHODS
        for scenario in SCENARIOS
    ]
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        rows = list(pool.imap_unordered(run_one, jobs))
    wall = time.perf_counter() - t0
    print(
        f"quick profile, seed {args.seed}, held-out top-1 (mean of {', '.join(archs)}) "
        f"({platform.processor() or platform.machine()}, {args.workers} workers, "
        f"{wall / 60:.1f} min)\n"
    )
    head = "| label noise x epochs x images | scenario | " + " | ".join(METHODS)
    print(head + " | mixup - vanilla | cutmix - vanilla | vanilla train loss | cell s |")
    print("|" + "---|" * (head.count("|") + 4))
    for candidate in args.candidates:
        for scenario in SCENARIOS:
            mine = [r for r in rows if (r["candidate"], r["scenario"]) == (candidate, scenario)]
            top = {m: statistics.mean(r["top1"] for r in mine if r["method"] == m) for m in METHODS}
            loss = statistics.mean(r["train_loss"] for r in mine if r["method"] == "vanilla")
            print(
                f"| {label(candidate)} | {scenario} | "
                + " | ".join(f"{top[m]:.2f}" for m in METHODS)
                + f" | {top['mixup'] - top['vanilla']:+.2f} | {top['cutmix'] - top['vanilla']:+.2f}"
                + f" | {loss:.3f} | {statistics.mean(r['seconds'] for r in mine):.1f} |"
            )


if __name__ == "__main__":
    main()
