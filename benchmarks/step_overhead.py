"""How much the harness adds to the model's own training step.

For each architecture, times two loops over the same number of steps, on the same
model (same weights, optimizer, precision and memory format):

* model: forward + backward + SGD step on one fixed, pre-normalised batch (the bare
  model step);
* harness: the arena's real step, :class:`msda_arena.train.loop.TrainStep` (what
  ``train_cell`` runs per batch): the next batch of uint8 images indexed on the device
  in the seed's order, normalised, cropped (scenario views), mixed (the method's masks
  and label weights), forward, soft-target loss, backward, SGD and schedule steps, loss
  kept on the device.

and prints harness/model time ratios (1.00 = the harness costs nothing). On CUDA the
loops are timed with CUDA events after a synchronize; medians over interleaved
repeats, after a warm-up. Run:

    python benchmarks/step_overhead.py [--device cpu|cuda] [--arch resnet8_cifar ...] [--compile]
                                       [--threads N]

Figures are recorded in BENCHMARKS.md with the hardware they came from;
``benchmarks/gpu.py`` runs the same measurement for its GPU report.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def seconds_per_call(fn: Callable[[], Any], calls: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls: CUDA events around the loop
    (after a synchronize, so no earlier work is counted) on CUDA, the wall clock
    elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / calls
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def overhead(
    arch: str,
    method_spec: str,
    data: Any,
    scenario: Any,
    device: torch.device,
    batch: int,
    steps: int,
    repeats: int,
    compile: bool = False,
    warmup: int = 3,
    recipe: Any = None,
) -> dict[str, Any]:
    """Time the bare model step and the arena step (see the module docstring).

    ``data``: a tensor dataset on ``device`` with at least ``batch`` training images.
    ``recipe``: the recipe whose optimizer and schedule the step uses (default: the
    ``cifar`` recipe of the arena.toml in use); its batch size and ``compile`` are
    replaced by ``batch`` and ``compile``.

    Returns:
        ``model_ms`` and ``harness_ms`` (median per step), ``ratio`` (harness / model)
        and ``notes`` (the step's, e.g. a compile fallback).
    """
    from msda_arena import get_method
    from msda_arena.grid.config import load_config
    from msda_arena.train.loop import CellSetup, torch_settings

    if recipe is None:
        recipe = load_config().recipes["cifar"]
    recipe = dataclasses.replace(
        recipe, batch_size=batch, compile=compile, train_subset=0,
        threads=torch.get_num_threads(),  # this process's threads (--threads), as before
    )  # fmt: skip
    setup = CellSetup(arch, get_method(method_spec), data, recipe, scenario, 0, device)
    with torch_settings(setup):  # as train_cell runs the step
        return _overhead(setup, steps, repeats, warmup)


def _overhead(setup: Any, steps: int, repeats: int, warmup: int) -> dict[str, Any]:
    from msda_arena.train.loop import TrainStep

    data, device, batch = setup.data, torch.device(setup.device), setup.recipe.batch_size
    step = TrainStep(setup)
    fixed_x = data.normalize(data.train_x[:batch]).contiguous(memory_format=step.memory_format)
    fixed_y = data.train_y[:batch]
    batches = itertools.chain.from_iterable(step.batches(e) for e in itertools.count())

    def model_step() -> None:
        with step.autocast():
            logits = step.net(fixed_x)
        loss = torch.nn.functional.cross_entropy(logits.float(), fixed_y)
        step.opt.zero_grad(set_to_none=True)
        loss.backward()
        step.opt.step()

    def harness_step() -> None:
        xb, yb = next(batches)
        step(xb, yb)

    step.start_epoch(1)
    for _ in range(warmup):  # both paths; the first harness step compiles (if asked)
        harness_step()
        model_step()
    model_t, harness_t = [], []
    for _ in range(repeats):  # interleaved, so drifting machine load hits both alike
        model_t.append(seconds_per_call(model_step, steps, device))
        harness_t.append(seconds_per_call(harness_step, steps, device))
    step.mixer.raise_if_violated()
    model_s, harness_s = statistics.median(model_t), statistics.median(harness_t)
    return {
        "model_ms": model_s * 1e3,
        "harness_ms": harness_s * 1e3,
        "ratio": harness_s / model_s,
        "notes": step.notes,
    }


def main() -> None:
    from msda_arena.data.procedural import procedural_dataset
    from msda_arena.grid.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arch", nargs="+", default=["resnet8_cifar", "preactresnet18_cifar"])
    parser.add_argument("--methods", nargs="+", default=["cutmix", "gmix"])
    parser.add_argument("--scenario", default="large-crop")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="compile the model (both loops)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    scenario = load_config().scenarios[args.scenario]
    data = procedural_dataset(
        train_size=max(4096, args.batch),
        test_size=128,
        num_classes=args.classes,
        image_size=32,
        device=device,
    )
    print(
        f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"batch {args.batch}, scenario {args.scenario}, compile {args.compile}"
    )
    print(f"{'arch':24s} {'method':10s} {'model ms':>9s} {'harness ms':>11s} {'ratio':>6s}")
    for arch in args.arch:
        for method in args.methods:
            r = overhead(
                arch, method, data, scenario, device, args.batch, args.steps, args.repeats,
                compile=args.compile,
            )  # fmt: skip
            note = f"  ({r['notes']})" if r["notes"] else ""
            print(
                f"{arch:24s} {method:10s} {r['model_ms']:9.2f} {r['harness_ms']:11.2f} "
                f"{r['ratio']:6.3f}{note}"
            )


if __name__ == "__main__":
    main()
