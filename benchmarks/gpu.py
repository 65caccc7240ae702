"""The GPU path measured: step overhead, seconds per cell, cells per GPU-hour, masks/s.

One script, under 8 minutes on one H100; prints a table and writes JSON (``--out``,
default ``benchmarks/gpu.json``) with the device name, torch version and date:

a. **Step overhead**: the arena's real step (:class:`msda_arena.train.loop.TrainStep`, what
   ``train_cell`` runs per batch) over the bare model step (same model, batch and
   precision: forward + backward + SGD on a fixed pre-normalised batch), for
   ``preactresnet18_cifar`` at 32x32, batch 128 and 512, eager and compiled. CUDA
   events after a synchronize, warm-up, interleaved repeats, median. Target: <= 1.03.
b. **Seconds per cell**: one CIFAR-100-shaped ``preactresnet18_cifar`` cell on the
   ``speed`` profile's data (procedural, 32 px, 100 classes, 50,000 / 10,000 images,
   rendered on the GPU) with the profile's recipe (``cifar``: batch 128) through
   :func:`msda_arena.train.loop.train_cell`, a few epochs with compile off and on; the first
   epoch (compiling, warm-up) is dropped from the per-epoch figure, and the 200-epoch
   cell is extrapolated: set-up and evaluation + the first epoch's extra time + 200 x
   the steady epoch. Target: under 5 minutes.
c. **Cells per GPU-hour** with 1, 2 and 4 cells sharing one GPU: that many processes,
   each training a short cell (the same model, recipe and compile setting, on the
   first 12,800 images), start together after their first epoch; each one's steady
   epoch is scaled to the full 390 steps and extrapolated as in (b); cells per hour =
   the sum of 3600 / (each process's 200-epoch cell time).
d. **Masks per second** of every built-in method at 32 and 224 px, batch 256 (one
   mask per sample): ``sample_lam`` + ``masks``, timed like (a).

On a machine without CUDA it runs the same code with small settings (the tiny
``resnet8_tiny_cifar``, a few steps, a 2,560-image set, 1 and 2 processes, one thread
per process) in about a minute, and every GPU row reads ``GPU: not measured``, in the
table and in the JSON.
``--quick`` is a smoke test of every section in seconds. Run:

    python benchmarks/gpu.py [--quick] [--device auto|cpu|cuda] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from step_overhead import overhead, seconds_per_call  # noqa: E402

NOT_MEASURED = "GPU: not measured"
MEASURED = "measured"
OVER_BUDGET = "skipped: over the time budget"
TARGET_RATIO = 1.03
TARGET_CELL_S = 300.0
METHOD = "cutmix"
SCENARIO = "large-crop"
CONC_SUBSET = 12_800  # (c): training images of each concurrent cell (100 steps of 128)


@dataclass(frozen=True)
class Plan:
    """What one run measures; :data:`GPU_PLAN` is the real one."""

    mode: str  # "gpu", "cpu" or "quick"
    budget_s: float
    data: dict[str, Any]  # procedural options of (a) and (b); (c) takes conc_data
    overhead_arch: str = "preactresnet18_cifar"
    overhead_batches: tuple[int, ...] = (128, 512)
    overhead_compile: tuple[bool, ...] = (False, True)
    overhead_steps: int = 20
    overhead_repeats: int = 5
    overhead_warmup: int = 5
    cell_arch: str = "preactresnet18_cifar"
    cell_epochs: int = 3
    cell_compile: tuple[bool, ...] = (False, True)
    conc_arch: str = "preactresnet18_cifar"
    conc_counts: tuple[int, ...] = (1, 2, 4)
    conc_data: dict[str, Any] = field(default_factory=dict)
    conc_epochs: int = 3
    conc_compile: bool | str = "auto"  # the recipe's own setting: compiled on CUDA
    mask_batch: int = 256
    mask_sizes: tuple[int, ...] = (32, 224)
    mask_calls: int = 20
    mask_warmup: int = 3


def speed_profile() -> tuple[dict[str, Any], Any, Any]:
    """The shipped ``speed`` profile's dataset options, recipe and the scenario used
    here (from the arena.toml embedded in the package, so a local one cannot change it)."""
    from msda_arena.grid.config import parse_config

    text = resources.files("msda_arena.grid").joinpath("default_arena.toml").read_text("utf-8")
    cfg = parse_config(text, "arena.toml (embedded default)")
    prof = cfg.profiles["speed"]
    return dict(prof.dataset_options), cfg.recipes[prof.recipe], cfg.scenarios[SCENARIO]


def make_plans() -> dict[str, Plan]:
    speed, _, _ = speed_profile()
    conc = {**speed, "train_size": CONC_SUBSET, "test_size": 2_000}
    tiny = {**speed, "train_size": 2_560, "test_size": 512}
    return {
        "gpu": Plan("gpu", 390.0, speed, conc_data=conc),
        "cpu": Plan(
            "cpu", 150.0, tiny,
            overhead_arch="resnet8_tiny_cifar", overhead_compile=(False,),
            overhead_steps=4, overhead_repeats=3, overhead_warmup=2,
            cell_arch="resnet8_tiny_cifar", cell_compile=(False,),
            conc_arch="resnet8_tiny_cifar", conc_counts=(1, 2),
            conc_data={**speed, "train_size": 1_280, "test_size": 256},
            mask_calls=3, mask_warmup=1,
        ),
        "quick": Plan(
            "quick", 120.0, {**speed, "train_size": 256, "test_size": 64},
            overhead_arch="resnet8_tiny_cifar", overhead_batches=(32,),
            overhead_compile=(False,), overhead_steps=2, overhead_repeats=1, overhead_warmup=1,
            cell_arch="resnet8_tiny_cifar", cell_epochs=2, cell_compile=(False,),
            conc_arch="resnet8_tiny_cifar", conc_counts=(1,),
            conc_data={**speed, "train_size": 256, "test_size": 64}, conc_epochs=2,
            conc_compile=False,
            mask_batch=16, mask_calls=1, mask_warmup=1,
        ),
    }  # fmt: skip


class Budget:
    """The run's time limit: rows that would start after it are skipped, and said so."""

    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.seconds = seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


# ----------------------------------------------------------------------------- (a)


def section_overhead(plan: Plan, device: torch.device, data: Any, budget: Budget) -> list[dict]:
    _, recipe, scenario = speed_profile()
    rows = []
    for batch in plan.overhead_batches:
        for compiled in plan.overhead_compile:
            row: dict[str, Any] = {
                "device": device.type, "arch": plan.overhead_arch, "image_size": 32,
                "batch": batch, "compile": compiled, "method": METHOD, "scenario": SCENARIO,
            }  # fmt: skip
            if budget.left() <= 0:
                rows.append({**row, "status": OVER_BUDGET})
                continue
            r = overhead(
                plan.overhead_arch, METHOD, data, scenario, device, batch,
                plan.overhead_steps, plan.overhead_repeats, compile=compiled,
                warmup=plan.overhead_warmup, recipe=recipe,
            )  # fmt: skip
            rows.append({**row, **r, "status": MEASURED})
    return rows


# ----------------------------------------------------------------------------- (b), (c)


def extrapolate(
    epoch_s: list[float], steps: int, full_steps: int, epochs: int, other_s: float
) -> dict[str, float]:
    """A full cell's time from a short run's epochs: ``other_s`` (set-up, evaluation)
    + the first epoch's extra time (compiling, warm-up) + ``epochs`` steady epochs of
    ``full_steps`` steps, the steady step time taken from the epochs after the first."""
    steady = statistics.median(epoch_s[1:]) if len(epoch_s) > 1 else epoch_s[0]
    full_epoch = steady / steps * full_steps
    first_extra = max(0.0, epoch_s[0] - steady)
    return {
        "steady_epoch_s": steady,
        "full_epoch_s": full_epoch,
        "first_epoch_extra_s": first_extra,
        "setup_eval_s": other_s,
        "cell_s": other_s + first_extra + epochs * full_epoch,
    }


def section_cell(plan: Plan, device: torch.device, data: Any, budget: Budget) -> list[dict]:
    from msda_arena import get_method
    from msda_arena.train.loop import train_cell

    speed, recipe, scenario = speed_profile()
    full_steps = speed["train_size"] // recipe.batch_size
    rows = []
    for compiled in plan.cell_compile:
        row: dict[str, Any] = {
            "device": device.type, "arch": plan.cell_arch, "compile": compiled,
            "recipe": recipe.name, "recipe_epochs": recipe.epochs, "batch": recipe.batch_size,
            "train_images": len(data.train_x), "test_images": len(data.test_x),
            "target_s": TARGET_CELL_S,
        }  # fmt: skip
        if budget.left() <= 0:
            rows.append({**row, "status": OVER_BUDGET})
            continue
        short = dataclasses.replace(
            recipe,
            epochs=plan.cell_epochs,
            warmup_epochs=min(recipe.warmup_epochs, plan.cell_epochs),
            compile=compiled,
        )
        events: list[Any] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a compile fallback is in the result's notes
            r = train_cell(
                plan.cell_arch, get_method(METHOD), data, short, scenario, seed=0,
                device=device, progress=events.append,
            )  # fmt: skip
        epoch_s = [e.seconds for e in events]
        steps = len(data.train_x) // recipe.batch_size
        x = extrapolate(epoch_s, steps, full_steps, recipe.epochs, r.wall_time_s - sum(epoch_s))
        rows.append(
            {
                **row,
                "epochs_run": len(epoch_s),
                "steps_per_epoch_run": steps,
                "epoch_s": epoch_s,
                **x,
                "top1": r.top1,
                "notes": r.notes,
                "status": MEASURED,
            }
        )
    return rows


def child_main(spec: dict[str, Any]) -> None:
    """One concurrent cell of (c): train, wait for the others after the first epoch,
    print one JSON line."""
    from msda_arena import get_method
    from msda_arena.data.crops import Scenario
    from msda_arena.data.procedural import procedural_dataset
    from msda_arena.grid.config import Recipe
    from msda_arena.train.loop import train_cell

    t0 = time.perf_counter()
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    data = procedural_dataset(**spec["data"], device=device)
    recipe = Recipe(**spec["recipe"])
    scenario = Scenario.from_dict(spec["scenario_name"], spec["scenario"])
    barrier = Path(spec["barrier"])
    epoch_s: list[float] = []
    waited = [0.0]

    def progress(event: Any) -> None:
        epoch_s.append(event.seconds)
        if event.epoch == 1:  # start the timed epochs together
            t = time.monotonic()
            (barrier / f"ready-{spec['index']}").touch()
            while (
                len(list(barrier.glob("ready-*"))) < spec["count"]
                and time.monotonic() - t < spec["barrier_timeout"]
            ):
                time.sleep(0.02)
            waited[0] = time.monotonic() - t

    setup = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = train_cell(
            spec["arch"], get_method(spec["method"]), data, recipe, scenario,
            seed=spec["index"], device=device, progress=progress,
            threads=torch.get_num_threads(),  # spec["threads"], or torch's default
        )  # fmt: skip
    print(
        json.dumps(
            {
                "epoch_s": epoch_s,
                "other_s": r.wall_time_s - sum(epoch_s) - waited[0],
                "setup_s": setup,
                "waited_s": waited[0],
                "top1": r.top1,
                "notes": r.notes,
            }
        )
    )


def _one_concurrency(
    n: int, plan: Plan, device: torch.device, recipe: Any, scenario: Any, timeout: float
) -> tuple[float, list[dict[str, Any]], str]:
    """Run ``n`` child cells at once; (wall seconds, their results, an error or '')."""
    threads = 0 if device.type == "cuda" else 1  # on a CPU: one thread per cell
    with tempfile.TemporaryDirectory(prefix="arena-gpu-bench-") as barrier:
        specs = [
            {
                "arch": plan.conc_arch,
                "device": str(device),
                "data": plan.conc_data,
                "recipe": dataclasses.asdict(recipe),
                "scenario_name": scenario.name,
                "scenario": scenario.to_dict(),
                "method": METHOD,
                "index": i,
                "count": n,
                "barrier": barrier,
                "barrier_timeout": max(30.0, timeout / 2),
                "threads": threads,
            }
            for i in range(n)
        ]
        t0 = time.monotonic()
        procs = [
            subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            for spec in specs
        ]
        results, error = [], ""
        try:
            for p in procs:
                left = max(1.0, timeout - (time.monotonic() - t0))
                out, err = p.communicate(timeout=left)
                if p.returncode != 0:
                    lines = err.strip().splitlines()
                    error = error or f"a cell process exited {p.returncode}: " + (
                        lines[-1] if lines else "no output"
                    )
                    continue
                results.append(json.loads(out.strip().splitlines()[-1]))
        except subprocess.TimeoutExpired:
            error = f"the cell processes ran past {timeout:.0f} s"
        finally:
            for p in procs:  # only ours, by handle
                if p.poll() is None:
                    p.kill()
                    p.communicate()
        return time.monotonic() - t0, results, error


def section_concurrency(plan: Plan, device: torch.device, budget: Budget) -> list[dict]:
    speed, recipe, scenario = speed_profile()
    full_steps = speed["train_size"] // recipe.batch_size
    short = dataclasses.replace(
        recipe,
        epochs=plan.conc_epochs,
        warmup_epochs=min(recipe.warmup_epochs, plan.conc_epochs),
        compile=plan.conc_compile,
    )
    steps = plan.conc_data["train_size"] // recipe.batch_size
    rows = []
    if device.type == "cuda":
        torch.cuda.empty_cache()  # leave the GPU's memory to the cell processes
    for n in plan.conc_counts:
        row: dict[str, Any] = {
            "device": device.type, "arch": plan.conc_arch, "cells": n,
            "compile": plan.conc_compile, "train_images": plan.conc_data["train_size"],
            "epochs_run": plan.conc_epochs,
        }  # fmt: skip
        if budget.left() <= 0:
            rows.append({**row, "status": OVER_BUDGET})
            continue
        timeout = max(60.0, min(400.0, budget.left() + 60.0))
        wall, results, error = _one_concurrency(n, plan, device, short, scenario, timeout)
        if error or len(results) != n:
            rows.append({**row, "wall_s": wall, "status": f"failed: {error}"})
            continue
        cells = [
            extrapolate(r["epoch_s"], steps, full_steps, recipe.epochs, r["other_s"])
            for r in results
        ]
        rows.append(
            {
                **row,
                "wall_s": wall,
                "steady_epoch_s": statistics.mean(c["steady_epoch_s"] for c in cells),
                "full_epoch_s": statistics.mean(c["full_epoch_s"] for c in cells),
                "cell_s": statistics.mean(c["cell_s"] for c in cells),
                "cells_per_gpu_hour": sum(3600.0 / c["cell_s"] for c in cells),
                "notes": "; ".join(sorted({r["notes"] for r in results if r["notes"]})),
                "status": MEASURED,
            }
        )
    return rows


# ----------------------------------------------------------------------------- (d)


def section_masks(plan: Plan, device: torch.device, budget: Budget) -> list[dict]:
    from msda_arena.methods import BUILTINS

    rows = []
    for cls in BUILTINS:
        for size in plan.mask_sizes:
            row: dict[str, Any] = {
                "device": device.type, "method": cls.name, "size": size,
                "batch": plan.mask_batch,
            }  # fmt: skip
            if budget.left() <= 0:
                rows.append({**row, "status": OVER_BUDGET})
                continue
            method = cls()
            gen = torch.Generator(device=device).manual_seed(0)

            def call(method: Any = method, gen: torch.Generator = gen, size: int = size) -> None:
                lam = method.sample_lam(plan.mask_batch, gen, device)
                method.masks(lam, size, size, gen)

            for _ in range(plan.mask_warmup):
                call()
            s = seconds_per_call(call, plan.mask_calls, device)
            rows.append(
                {**row, "masks_per_s": plan.mask_batch / s, "ms_per_call": s * 1e3,
                 "status": MEASURED}
            )  # fmt: skip
    return rows


# ----------------------------------------------------------------------------- report


def gpu_rows_not_measured() -> dict[str, list[dict[str, Any]]]:
    """The GPU plan's rows, each marked ``GPU: not measured`` (for a run without CUDA)."""
    from msda_arena.methods import BUILTINS

    g = make_plans()["gpu"]
    na = {"device": "cuda", "status": NOT_MEASURED}
    return {
        "step_overhead": [
            {**na, "arch": g.overhead_arch, "image_size": 32, "batch": b, "compile": c,
             "method": METHOD, "scenario": SCENARIO}
            for b in g.overhead_batches for c in g.overhead_compile
        ],
        "cell_time": [
            {**na, "arch": g.cell_arch, "compile": c, "target_s": TARGET_CELL_S}
            for c in g.cell_compile
        ],
        "cells_per_gpu_hour": [
            {**na, "arch": g.conc_arch, "cells": n, "compile": "auto"} for n in g.conc_counts
        ],
        "mask_throughput": [
            {**na, "method": cls.name, "size": s, "batch": g.mask_batch}
            for cls in BUILTINS for s in g.mask_sizes
        ],
    }  # fmt: skip


SECTIONS: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "step_overhead": (
        "(a) step overhead: the arena step / the bare model step (target <= 1.03)",
        [("device", "device", "s"), ("arch", "arch", "s"), ("batch", "batch", "d"),
         ("compile", "compile", "s"), ("model_ms", "model ms", ".2f"),
         ("harness_ms", "arena ms", ".2f"), ("ratio", "ratio", ".3f")],
    ),
    "cell_time": (
        "(b) one CIFAR-100-shaped cell: seconds per epoch, 200 epochs extrapolated "
        "(target < 300 s)",
        [("device", "device", "s"), ("arch", "arch", "s"), ("compile", "compile", "s"),
         ("train_images", "images", "d"), ("steady_epoch_s", "epoch s", ".2f"),
         ("full_epoch_s", "50k epoch s", ".2f"), ("first_epoch_extra_s", "1st extra s", ".1f"),
         ("cell_s", "200-ep cell s", ".0f")],
    ),
    "cells_per_gpu_hour": (
        "(c) cells sharing one device: 200-epoch cells per device-hour",
        [("device", "device", "s"), ("arch", "arch", "s"), ("cells", "cells", "d"),
         ("compile", "compile", "s"), ("wall_s", "wall s", ".1f"),
         ("full_epoch_s", "50k epoch s", ".2f"), ("cell_s", "cell s", ".0f"),
         ("cells_per_gpu_hour", "cells/h", ".2f")],
    ),
    "mask_throughput": (
        "(d) masks per second, one mask per sample",
        [("device", "device", "s"), ("method", "method", "s"), ("size", "px", "d"),
         ("batch", "batch", "d"), ("masks_per_s", "masks/s", ",.0f"),
         ("ms_per_call", "ms/call", ".2f")],
    ),
}  # fmt: skip


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return ""
    if fmt == "s" or isinstance(value, (str, bool)):
        return str(value)
    return format(value, fmt)


def render(report: dict[str, Any]) -> str:
    """The report as plain-text tables; rows not measured say why in place of numbers."""
    meta = report["meta"]
    lines = [
        f"device: {meta['device']} | torch {meta['torch']} | CUDA {meta['cuda'] or '-'} | "
        f"{meta['date']} | mode {meta['mode']} | {meta['seconds']:.0f} s",
    ]
    if not meta["gpu_measured"]:
        lines.append(f"{NOT_MEASURED}: no CUDA device here; the GPU rows below are placeholders")
    for key, (title, columns) in SECTIONS.items():
        lines += ["", title]
        table = []
        for row in report[key]["rows"]:
            if row["status"] == MEASURED:
                cells = [_cell(row.get(k), f) for k, _, f in columns]
                tail = f"({row['notes']})" if row.get("notes") else ""
            else:  # the row's identity, then why it has no numbers
                cells = [_cell(row.get(k), f) if f in ("s", "d") else "" for k, _, f in columns]
                tail = row["status"]
            table.append((cells, tail))
        widths = [
            max([len(h)] + [len(cells[i]) for cells, _ in table])
            for i, (_, h, _) in enumerate(columns)
        ]
        lines.append("  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths, strict=True)))
        for cells, tail in table:
            text = "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
            lines.append(f"{text}  {tail}".rstrip())
    return "\n".join(lines)


def device_label(device: torch.device) -> str:
    from msda_arena.train.loop import device_name

    return device_name(device)


def run(plan: Plan, device: torch.device, sections: set[str]) -> dict[str, Any]:
    from msda_arena.data.procedural import procedural_dataset
    from msda_arena.store.provenance import utc_now

    budget = Budget(plan.budget_s)
    date = utc_now()
    if device.type != "cuda":
        torch.set_num_threads(1)  # one thread per cell: steady timings on a shared machine
    t = time.perf_counter()
    data = procedural_dataset(**plan.data, device=device)
    gen_s = time.perf_counter() - t
    report: dict[str, Any] = {}
    # The cheap section first, so a long compile cannot crowd it out of the budget.
    steps: list[tuple[str, Callable[[], list[dict]]]] = [
        ("mask_throughput", lambda: section_masks(plan, device, budget)),
        ("step_overhead", lambda: section_overhead(plan, device, data, budget)),
        ("cell_time", lambda: section_cell(plan, device, data, budget)),
        ("cells_per_gpu_hour", lambda: section_concurrency(plan, device, budget)),
    ]
    for key, fn in steps:
        t = time.perf_counter()
        rows = fn() if key in sections else []
        report[key] = {"rows": rows, "seconds": time.perf_counter() - t}
    gpu = device.type == "cuda"
    if not gpu:
        for key, rows in gpu_rows_not_measured().items():
            report[key]["rows"] += rows
    for key, (title, _) in SECTIONS.items():
        report[key]["what"] = title
        report[key]["gpu"] = MEASURED if gpu else NOT_MEASURED
    import timm

    report["meta"] = {
        "date": date,
        "device": device_label(device),
        "device_type": device.type,
        "gpu_measured": gpu,
        "gpu": MEASURED if gpu else NOT_MEASURED,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if gpu else None,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "mode": plan.mode,
        "budget_s": plan.budget_s,
        "data": {**plan.data, "generated_s": gen_s, "on": device.type},
        "seconds": budget.elapsed(),
    }
    order = ["meta", *SECTIONS]
    return {k: report[k] for k in order}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    parser.add_argument("--out", default=str(HERE / "gpu.json"), help="the JSON report")
    parser.add_argument("--quick", action="store_true", help="a smoke test of every section")
    parser.add_argument("--budget-s", type=float, default=None, help="skip rows past this")
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=list(SECTIONS),
        default=list(SECTIONS),
        help="measure only these (the others are left empty)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    plans = make_plans()
    plan = plans["quick"] if args.quick else plans["gpu" if device.type == "cuda" else "cpu"]
    if args.budget_s is not None:
        plan = dataclasses.replace(plan, budget_s=args.budget_s)
    report = run(plan, device, set(args.sections))
    print(render(report))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
