"""Benchmark: ``arena report`` over a store of 100,000 result rows.

Builds a store in a temporary directory (one-row parquet files in exactly the store's
format, written with pyarrow in two processes), then measures

* cold load: :func:`msda_arena.store.results.load_results` with no index (reads every file and
  builds ``.index.parquet``);
* warm load: the same call again (scan + index);
* warm report in-process: load + build_report + render (the ``arena report`` command
  function, output discarded);
* warm report as a fresh process: ``python -m``-style run of the command, including
  Python start-up and imports (what a user waits for).

Usage: ``python benchmarks/report_bench.py [--rows 100000] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATASETS = ("cifar100", "imagenet100")
ARCHS = (
    "resnet56_cifar",
    "wrn28_2_cifar",
    "preactresnet18_cifar",
    "preactresnet34_cifar",
    "preactresnet50_cifar",
)
SCENARIOS = ("standard", "large-crop", "small-crop")
BUILTIN = ("vanilla", "mixup", "cutmix", "mixup-cutmix", "hmix", "gmix")
N_METHODS = 50


def _methods() -> list[str]:
    extra = [f"hmix(r={0.02 * i:.2f})" for i in range(1, N_METHODS - len(BUILTIN) + 1)]
    return list(BUILTIN) + extra


def _cells(n_rows: int):
    """(dataset, arch, scenario, method, seed) for n_rows results, seeds outermost."""
    methods = _methods()
    i = 0
    seed = 0
    while True:
        for d in DATASETS:
            for a in ARCHS:
                for s in SCENARIOS:
                    for m in methods:
                        if i == n_rows:
                            return
                        yield i, d, a, s, m, seed
                        i += 1
        seed += 1


def _curve(epochs: int) -> str:
    """A learning curve of ``epochs`` entries, as the trainer stores it."""
    from msda_arena.api.record import EpochPoint, encode_curve

    points = range(1, epochs + 1)
    return encode_curve([EpochPoint(epoch=e, train_loss=1 / e, lr=0.1, seconds=9) for e in points])


def _write_chunk(args: tuple[str, int, int, int, int, bool]) -> int:
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    from msda_arena.api.record import COLUMNS, LATER_COLUMNS, SCHEMA_VERSION, arrow_schema, cell_key
    from msda_arena.store.results import WRITE_OPTIONS

    root, n_rows, start, stop, epochs, before_curves = args
    rng = random.Random(start)
    curve = "" if before_curves else _curve(epochs)
    columns = [c for c in COLUMNS if not (before_curves and c in LATER_COLUMNS)]
    rows: dict[str, list] = {c: [] for c in columns}
    paths = []
    for i, d, a, s, m, seed in _cells(n_rows):
        if i < start:
            continue
        if i >= stop:
            break
        failed = rng.random() < 0.01
        key = cell_key("paper", a, s, m, seed, "0123abcd")
        base = 70.0 + (hash((d, a, s, m)) % 600) / 100.0
        values = {
            "schema_version": SCHEMA_VERSION, "key": key,
            "status": "failed" if failed else "ok", "error": "CUDA OOM" if failed else "",
            "profile": "paper", "dataset": d, "arch": a, "scenario": s, "method": m,
            "method_name": m.split("(")[0], "seed": seed, "recipe_hash": "0123abcd",
            "top1": float("nan") if failed else base + rng.gauss(0, 0.3),
            "top5": float("nan") if failed else 92.0 + rng.gauss(0, 0.3),
            "ece": 0.05, "fgsm_top1": 20.0, "locality": 0.5,
            "train_loss": 1.2, "epochs": epochs, "wall_time_s": 3600.0, "images_per_s": 5000.0,
            "peak_mem_mb": 2048.0, "method_package": "msda-arena", "method_version": "0.1.0",
            "method_code": "0.1.0:abcdef012345", "plugins": "msda-arena==0.1.0",
            "torch_version": "2.14.1", "timm_version": "1.0.31", "cuda_version": "12.8",
            "device_name": "NVIDIA H100", "host": "node1", "arena_version": "0.1.0",
            "git_commit": "abc1234", "config_hash": "cafe", "notes": "",
            "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T01:00:00+00:00",
            "threads": 1, "deterministic": 0, "curve": "" if failed else curve,
        }  # fmt: skip
        for c in columns:
            rows[c].append(values[c])
        paths.append(os.path.join(root, d, f"{key}.parquet"))
    schema = arrow_schema()
    schema = pa.schema([schema.field(c) for c in columns])
    table = pa.Table.from_pydict(rows, schema=schema)
    for k, path in enumerate(paths):
        pq.write_table(table.slice(k, 1), path, **WRITE_OPTIONS)
    return len(paths)


def build_store(
    root: Path, n_rows: int, epochs: int = 300, before_curves: bool = False, processes: int = 2
) -> float:
    """Write ``n_rows`` result files under ``root`` (each ok record with a learning curve of
    ``epochs`` entries, or without the columns added after the first schema-2 files if
    ``before_curves``); returns seconds taken."""
    t0 = time.perf_counter()
    for d in DATASETS:
        (root / d).mkdir(parents=True, exist_ok=True)
    step = 5000
    chunks = [
        (str(root), n_rows, a, min(a + step, n_rows), epochs, before_curves)
        for a in range(0, n_rows, step)
    ]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        written = sum(pool.map(_write_chunk, chunks))
    assert written == n_rows, (written, n_rows)
    return time.perf_counter() - t0


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def _timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="build the store here, keep it")
    parser.add_argument("--epochs", type=int, default=300, help="epochs (curve length) per cell")
    parser.add_argument(
        "--before-curves", action="store_true",
        help="write records as before learning curves (threads, deterministic, curve absent)",
    )  # fmt: skip
    args = parser.parse_args()

    from msda_arena.report.show import leaderboard
    from msda_arena.store.results import INDEX_NAME, load_results

    tmp = None
    if args.keep:
        root = args.keep
    else:
        tmp = tempfile.mkdtemp(prefix="arena-bench-")
        root = Path(tmp) / "results"
    try:
        if not any(root.glob("*/*.parquet")):
            print(f"building {args.rows:,} result files in {root} ...", file=sys.stderr)
            build_s = build_store(root, args.rows, args.epochs, args.before_curves)
        else:
            build_s = float("nan")
        (root / INDEX_NAME).unlink(missing_ok=True)

        t0 = time.perf_counter()
        frame, warnings = load_results(root)
        cold = time.perf_counter() - t0
        assert len(frame) == args.rows and not warnings, (len(frame), warnings[:3])

        warm_load = _timed(lambda: load_results(root), args.repeat)

        def run_report(fmt: str) -> None:
            with redirect_stdout(io.StringIO()):
                leaderboard(root, compare="hmix(r=0.02)", fmt=fmt)

        warm_table = _timed(lambda: run_report("table"), args.repeat)
        warm_md = _timed(lambda: run_report("markdown"), args.repeat)
        script = (
            "from msda_arena.cli.main import main; "
            f"main(['report', '--results', {str(root)!r}, '--compare', 'hmix(r=0.02)'])"
        )

        def fresh() -> None:
            subprocess.run(
                [sys.executable, "-c", script],
                check=True,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        fresh_proc = _timed(fresh, max(2, args.repeat // 2))
        python_start = _timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 3)
        imports = (
            "import pandas, pyarrow.parquet, pyarrow.compute, rich.table, tabulate, scipy.special"
        )
        imports_only = _timed(
            lambda: subprocess.run([sys.executable, "-c", imports], check=True), 3
        )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    print(
        f"arena report benchmark: {args.rows:,} result rows "
        f"({len(DATASETS) * len(ARCHS) * len(SCENARIOS)} columns x {N_METHODS} methods)"
    )
    print(f"CPU: {_cpu_model()} ({os.cpu_count()} cores), Python {platform.python_version()}")
    rows = [
        ("build store (pyarrow, 2 processes)", build_s),
        ("cold load (read every file, build index)", cold),
        ("warm load (scan + index)", med(warm_load)),
        ("warm report, table, in-process", med(warm_table)),
        ("warm report, markdown, in-process", med(warm_md)),
        ("warm report, table, fresh process", med(fresh_proc)),
        ("  of which: python start-up alone", med(python_start)),
        ("  of which: start-up + imports + exit (no work)", med(imports_only)),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  seconds (median)")
    for name, secs in rows:
        print(f"{name:<{width}}  {secs:8.2f}")


if __name__ == "__main__":
    main()
