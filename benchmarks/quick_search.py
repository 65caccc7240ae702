"""A first search for the ``quick`` profile's regime (issue 19), on held-out training images.

The quick profile's procedural data is generated with a candidate's training images plus
the profile's number of training images more: the first part trains the candidate (with
its ``label_noise`` applied to it alone), the rest is held out and is the only data a
candidate is judged on. The profile's test split is never read.

Each candidate (label noise, epochs, training images) trains vanilla, mixup and cutmix
on the profile's two models, on the crop scenarios and ``standard``, with one seed,
through the arena's own :func:`msda_arena.train.loop.train_cell`, and reports held-out
top-1 per method and scenario, the gain of mixup and cutmix over vanilla, and vanilla's
final training loss (whether the un-mixed model fits its training set).

    python benchmarks/quick_search.py [--workers 2] [--candidates 0x8x1024,0.2x32x256]

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
CANDIDATES: tuple[tuple[float, int, int], ...] = (
    (0.0, 8, 1024), (0.2, 8, 1024), (0.4, 8, 1024), (0.2, 16, 1024),
    (0.0, 32, 256), (0.2, 32, 256), (0.0, 64, 128),
)  # fmt: skip


def parse_candidates(text: str) -> tuple[tuple[float, int, int], ...]:
    """``"0.2x8x1024,0x32x256"`` -> ``((0.2, 8, 1024), (0.0, 32, 256))``."""
    items = (item.split("x") for item in text.split(","))
    return tuple((float(a), int(b), int(c)) for a, b, c in items)


def held_out_data(label_noise: float, n: int) -> Any:
    """The quick profile's dataset with ``n`` training images (``label_noise`` applied to
    them) and the profile's number of held-out training images as the test split."""
    from msda_arena.data import load_dataset, with_label_noise
    from msda_arena.grid.config import load_config

    options = dict(load_config().profiles["quick"].dataset_options)
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


def run_one(job: tuple[str, float, int, int, str, str, int]) -> dict[str, Any]:
    """Train one cell of one candidate; what a worker process runs."""
    from msda_arena import get_method
    from msda_arena.grid.config import load_config
    from msda_arena.train.loop import train_cell

    arch, noise, epochs, n, method, scenario, seed = job
    config = load_config()
    recipe = dataclasses.replace(config.recipes["quick"], epochs=epochs, threads=1)
    result = train_cell(
        arch, get_method(method), held_out_data(noise, n), recipe, config.scenarios[scenario], seed
    )
    return dict(
        arch=arch, noise=noise, epochs=epochs, n=n, method=method, scenario=scenario,
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
        (arch, noise, epochs, n, method, scenario, args.seed)
        for noise, epochs, n in args.candidates
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
    print(head + " | mixup - vanilla | cutmix - vanilla | vanilla train loss |")
    print("|" + "---|" * (head.count("|") + 3))
    for candidate in args.candidates:
        for scenario in SCENARIOS:
            mine = [
                r for r in rows
                if (r["noise"], r["epochs"], r["n"], r["scenario"]) == (*candidate, scenario)
            ]  # fmt: skip
            top = {m: statistics.mean(r["top1"] for r in mine if r["method"] == m) for m in METHODS}
            loss = statistics.mean(r["train_loss"] for r in mine if r["method"] == "vanilla")
            print(
                f"| {' x '.join(map(str, candidate))} | {scenario} | "
                + " | ".join(f"{top[m]:.2f}" for m in METHODS)
                + f" | {top['mixup'] - top['vanilla']:+.2f} | {top['cutmix'] - top['vanilla']:+.2f}"
                + f" | {loss:.3f} |"
            )


if __name__ == "__main__":
    main()
