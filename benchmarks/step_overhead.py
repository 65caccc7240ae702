"""How much the harness adds to the model's own training step.

For each architecture, times two loops over the same number of steps:

* model: forward + backward + SGD step on one fixed, pre-normalised batch;
* harness: what ``arena run`` does per step for a tensor dataset: index a random
  batch of uint8 images on the device, normalise, crop (scenario views), mix
  (the method's masks and label weights), then the same model step.

and prints harness/model time ratios (1.00 = the harness costs nothing). Run:

    python benchmarks/step_overhead.py [--device cpu|cuda] [--arch resnet8_cifar ...]

Figures are recorded in BENCHMARKS.md with the hardware they came from.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(
    arch: str,
    method_spec: str,
    scenario_name: str,
    device: torch.device,
    batch: int,
    steps: int,
    repeats: int,
) -> tuple[float, float]:
    import timm

    import msda_arena.models  # noqa: F401
    from msda_arena import get_method
    from msda_arena.config import load_config
    from msda_arena.data import load_dataset
    from msda_arena.data.crops import train_views
    from msda_arena.mixing import Mixer

    cfg = load_config()
    scenario = cfg.scenarios[scenario_name]
    data = load_dataset(
        "procedural", train_size=4096, test_size=128, num_classes=10, image_size=32
    ).to(device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=10).to(device)
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    )
    mixer = Mixer(get_method(method_spec))
    gen = torch.Generator(device=device).manual_seed(0)
    fixed_x = data.normalize(data.train_x[:batch]).contiguous(memory_format=fmt)
    fixed_y = data.train_y[:batch]

    def model_step(x, y):
        with autocast():
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def harness_step():
        idx = torch.randint(0, len(data.train_x), (batch,), generator=gen, device=device)
        x = train_views(data.normalize(data.train_x[idx]), scenario, gen)
        mixed = mixer(x, data.train_y[idx], gen)
        with autocast():
            logits = model(mixed.inputs.contiguous(memory_format=fmt))
        loss = mixed.loss(logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(fn) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        _sync(device)
        return (time.perf_counter() - t0) / steps

    for _ in range(3):  # warm-up both paths
        model_step(fixed_x, fixed_y)
        harness_step()
    model_t, harness_t = [], []
    for _ in range(repeats):  # interleaved, so drifting machine load hits both alike
        model_t.append(timed(lambda: model_step(fixed_x, fixed_y)))
        harness_t.append(timed(harness_step))
    return statistics.median(model_t), statistics.median(harness_t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arch", nargs="+", default=["resnet8_cifar", "preactresnet18_cifar"])
    parser.add_argument("--methods", nargs="+", default=["cutmix", "gmix"])
    parser.add_argument("--scenario", default="large-crop")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    print(
        f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"batch {args.batch}, scenario {args.scenario}"
    )
    print(f"{'arch':24s} {'method':10s} {'model ms':>9s} {'harness ms':>11s} {'ratio':>6s}")
    for arch in args.arch:
        for method in args.methods:
            m, h = bench(arch, method, args.scenario, device, args.batch, args.steps, args.repeats)
            print(f"{arch:24s} {method:10s} {m * 1e3:9.2f} {h * 1e3:11.2f} {h / m:6.3f}")


if __name__ == "__main__":
    main()
