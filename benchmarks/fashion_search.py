"""The recipe search behind the ``fashion`` profile, on the training split only.

Fashion-MNIST's 60,000 training images are split once: the first 50,000 are where
each candidate's training subset comes from (its first ``train_subset`` images, as
the profile takes them), the last 10,000 are held out and are the only images a
candidate is judged on. The 10,000 test images are never read.

Each candidate recipe (training subset, epochs, learning rate, and optionally the
``label_noise`` dataset option, applied to the 50,000 training images before the subset
is taken, as the profile applies it) trains vanilla, mixup and cutmix on both crop
scenarios (or ``--scenarios``) with one seed through the arena's own
:func:`msda_arena.train.loop.train_cell`, and is scored by the mean held-out top-1 over
those cells: a recipe good for every method, not one picked to make mixing win. The
table also shows each candidate's final training loss of vanilla against its held-out
top-1, the overfitting the profile is meant to have.

    python benchmarks/fashion_search.py [--workers 2] [--arch preactresnet10_tiny_cifar]
    python benchmarks/fashion_search.py --scenarios standard --candidates 1000x60x0.1x0.2

Cells run in ``--workers`` processes with one thread each. The figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import platform
import statistics
import time
from typing import Any

HOLDOUT = 10_000
METHODS = ("vanilla", "mixup", "cutmix")
SCENARIOS = ("large-crop", "small-crop")
#: (train_subset, epochs, lr, label_noise) of the first round: equal compute per cell
#: (about 100,000 images seen). ``--candidates`` runs others.
CANDIDATES: tuple[tuple[int, int, float, float], ...] = (
    (5_000, 20, 0.1, 0.0),
    (5_000, 20, 0.05, 0.0),
    (10_000, 10, 0.1, 0.0),
    (10_000, 10, 0.05, 0.0),
)


def parse_candidates(text: str) -> tuple[tuple[int, int, float, float], ...]:
    """``"2000x50x0.1,1000x60x0.1x0.2"`` -> ``((2000, 50, 0.1, 0.0), (1000, 60, 0.1, 0.2))``:
    subset x epochs x lr, then optionally x label noise."""
    out = []
    for item in text.split(","):
        subset, epochs, lr, *noise = item.strip().split("x")
        out.append((int(subset), int(epochs), float(lr), float(noise[0]) if noise else 0.0))
    return tuple(out)


def held_out_data(label_noise: float = 0.0) -> Any:
    """Fashion-MNIST with the last :data:`HOLDOUT` training images as the test split and
    ``label_noise`` applied to the rest."""
    from msda_arena.data import load_dataset, with_label_noise

    data = load_dataset("fashion_mnist")
    n = data.train_x.shape[0] - HOLDOUT
    split = dataclasses.replace(
        data,
        train_x=data.train_x[:n],
        train_y=data.train_y[:n],
        test_x=data.train_x[n:],
        test_y=data.train_y[n:],
        info=dict(data.info, split=f"train[:{n}] / held-out train[{n}:]"),
    )
    return with_label_noise(split, label_noise) if label_noise else split


def run_one(job: tuple[str, int, int, float, float, str, str, int]) -> dict[str, Any]:
    """Train one cell of one candidate; what a worker process runs."""
    import torch

    torch.set_num_threads(1)
    from msda_arena import get_method
    from msda_arena.grid.config import load_config
    from msda_arena.train.loop import train_cell

    arch, subset, epochs, lr, noise, method, scenario, seed = job
    config = load_config()
    base = config.recipes["fashion"]
    recipe = dataclasses.replace(base, epochs=epochs, lr=lr, train_subset=subset)
    result = train_cell(
        arch, get_method(method), held_out_data(noise), recipe, config.scenarios[scenario], seed
    )
    return dict(
        subset=subset,
        epochs=epochs,
        lr=lr,
        noise=noise,
        method=method,
        scenario=scenario,
        top1=result.top1,
        train_loss=result.train_loss,
        seconds=result.wall_time_s,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--arch", default="preactresnet10_tiny_cifar")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--candidates",
        type=parse_candidates,
        default=CANDIDATES,
        help="SUBSETxEPOCHSxLR[xNOISE],... (default: the first round)",
    )
    parser.add_argument(
        "--scenarios",
        type=lambda text: tuple(text.split(",")),
        default=SCENARIOS,
        help="comma-separated scenarios (default: large-crop,small-crop)",
    )
    args = parser.parse_args()
    candidates = args.candidates
    scenarios = args.scenarios
    jobs = [
        (args.arch, subset, epochs, lr, noise, method, scenario, args.seed)
        for subset, epochs, lr, noise in candidates
        for method in METHODS
        for scenario in scenarios
    ]
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        rows = []
        for row in pool.imap_unordered(run_one, jobs):
            rows.append(row)
            print(
                f"[{len(rows)}/{len(jobs)}] subset {row['subset']} x {row['epochs']} ep, "
                f"lr {row['lr']}, noise {row['noise']}: {row['method']} {row['scenario']} "
                f"top-1 {row['top1']:.2f} "
                f"(train loss {row['train_loss']:.3f}, {row['seconds']:.0f} s)",
                flush=True,
            )
    wall = time.perf_counter() - t0
    print(
        f"\n{args.arch}, seed {args.seed}, held-out top-1 on train[50000:] "
        f"({platform.processor() or platform.machine()}, {args.workers} workers, "
        f"{wall / 60:.1f} min)\n"
    )
    head = (
        "| train_subset x epochs | lr | label noise | "
        + " | ".join(f"{m} {s}" for m in METHODS for s in scenarios)
        + " | mean | vanilla train loss | cell s |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for candidate in candidates:
        subset, epochs, lr, noise = candidate
        mine = [r for r in rows if (r["subset"], r["epochs"], r["lr"], r["noise"]) == candidate]
        cells = {(r["method"], r["scenario"]): r for r in mine}
        tops = [cells[m, s]["top1"] for m in METHODS for s in scenarios]
        loss = statistics.mean(cells["vanilla", s]["train_loss"] for s in scenarios)
        print(
            f"| {subset} x {epochs} | {lr} | {noise} | "
            + " | ".join(f"{t:.2f}" for t in tops)
            + f" | **{statistics.mean(tops):.2f}** | {loss:.3f}"
            + f" | {statistics.mean(r['seconds'] for r in mine):.0f} |"
        )


if __name__ == "__main__":
    main()
