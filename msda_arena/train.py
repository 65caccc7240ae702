"""Train and evaluate one grid cell. Knows nothing of stores, executors or the CLI.

Tensor datasets (procedural, CIFAR, Fashion-MNIST) live on the training device: each
step indexes a batch, normalises, crops (:mod:`msda_arena.data.crops`) and mixes
(:class:`msda_arena.mixing.Mixer`) it there with batched tensor work, so the harness
adds little to the model's own step. ImageFolder data comes through a DataLoader with
workers and gets the same device-side crops and mixing.

Seeding: model initialisation, data order and crops depend on the seed alone, and the
mixing draws from its own generator, so two methods at one seed see the same model
init and the same batches (paired comparisons compare like with like). On CUDA the
step runs in bf16 autocast with channels_last; ``recipe.compile`` adds torch.compile.

Guards, all without a host sync per step: every batch's lambdas and masks are checked
against the contract (:class:`msda_arena.mixing.Mixer`), a method whose code raises
fails the cell (:class:`msda_arena.mixing.MethodError`) instead of ending the grid,
and the loss is watched for NaN/inf and for finite explosions (see
:data:`EXPLODED_FACTOR`). At the end of each epoch, in that order, the masks are
judged before the loss, so a NaN that came from the masks names the mask rule.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from msda_arena import interrupts
from msda_arena.config import Recipe
from msda_arena.contract import MaskMethod
from msda_arena.errors import ArenaError
from msda_arena.mixing import Mixer

__all__ = ["EXPLODED_FACTOR", "EpochEvent", "TrainResult", "TrainingDiverged", "train_cell"]

_MIX_SEED_OFFSET = 1_000_003

#: A cell diverged when any step's loss exceeds this many times ``ln(num_classes)``,
#: the cross-entropy of a uniform guess (where training starts). Soft-target
#: cross-entropy of a training model stays within a few times that, transient spikes
#: included; 100x (139 for 4 classes, 461 for 100, 691 for 1000) means logits apart by
#: hundreds, which only a blown-up model produces, so no healthy run trips it.
EXPLODED_FACTOR = 100.0


class TrainingDiverged(ArenaError):
    """The training loss became NaN or infinite, or exploded past
    :data:`EXPLODED_FACTOR` times the loss of a uniform guess."""


@dataclass(frozen=True)
class EpochEvent:
    """Reported after every epoch (one host sync per epoch, none per step)."""

    epoch: int
    epochs: int
    train_loss: float
    images: int
    seconds: float


@dataclass
class TrainResult:
    """What one cell measured."""

    top1: float
    top5: float
    train_loss: float
    epochs: int
    wall_time_s: float
    images_per_s: float
    peak_mem_mb: float
    device_name: str
    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False)


def device_name(device: torch.device) -> str:
    """A human name of the device: the GPU model, or the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)  # no decay on norms and biases
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _train_batches(
    data: Any, recipe: Recipe, device: torch.device, gen: torch.Generator, seed: int, epoch: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """uint8 image batches and labels on ``device``, full batches only."""
    bs = recipe.batch_size
    if hasattr(data, "train_x"):
        n = _n_train(data, recipe)
        perm = torch.randperm(n, generator=gen, device=device)
        for i in range(n // bs):
            idx = perm[i * bs : (i + 1) * bs]
            yield data.train_x[idx], data.train_y[idx]
        return
    from msda_arena.data.imagefolder import make_loader

    loader = make_loader(
        data, "train", batch_size=bs, shuffle=True, seed=seed * 1000 + epoch, drop_last=True
    )
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _test_batches(
    data: Any, recipe: Recipe, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    bs = recipe.eval_batch_size
    if hasattr(data, "test_x"):
        for i in range(0, len(data.test_x), bs):
            yield data.test_x[i : i + bs], data.test_y[i : i + bs]
        return
    from msda_arena.data.imagefolder import make_loader

    for x, y in make_loader(data, "val", batch_size=bs, shuffle=False):
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _n_train(data: Any, recipe: Recipe) -> int:
    if hasattr(data, "train_x"):
        n = len(data.train_x)
        return min(n, recipe.train_subset) if recipe.train_subset else n
    return data.num_train if hasattr(data, "num_train") else 0


def train_cell(
    arch: str,
    method: MaskMethod,
    data: Any,
    recipe: Recipe,
    scenario: Any,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[EpochEvent], None] | None = None,
    keep_weights: bool = False,
) -> TrainResult:
    """Train ``arch`` with ``method`` on ``data`` (already on ``device`` for tensor data)
    under ``recipe`` and crop ``scenario``, then evaluate top-1/top-5 on the test views.

    Raises:
        MaskContractError: some batch's lambdas or masks break the contract (the
            message names the rule and the batch).
        MethodError: the method's code raised, ``SystemExit`` and a ``KeyboardInterrupt``
            that was not the user's Ctrl-C included.
        TrainingDiverged: the loss became NaN/inf or exploded (:data:`EXPLODED_FACTOR`).
        ValueError: the batch size exceeds the training set.
        KeyboardInterrupt: the user pressed Ctrl-C.
    """
    with interrupts.watching():
        return _train_cell(
            arch, method, data, recipe, scenario, seed, device, progress, keep_weights
        )


def _train_cell(
    arch: str,
    method: MaskMethod,
    data: Any,
    recipe: Recipe,
    scenario: Any,
    seed: int,
    device: torch.device | str,
    progress: Callable[[EpochEvent], None] | None,
    keep_weights: bool,
) -> TrainResult:
    import timm

    import msda_arena.models  # noqa: F401  (registers the CIFAR-stem models into timm)
    from msda_arena.data.crops import test_views, train_views

    device = torch.device(device)
    cuda = device.type == "cuda"
    t_start = time.perf_counter()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(seed)
    model = timm.create_model(
        arch, pretrained=False, num_classes=data.num_classes, in_chans=data.in_chans
    )
    model = model.to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if recipe.compile else model

    n_train = _n_train(data, recipe)
    steps = n_train // recipe.batch_size
    if steps < 1:
        raise ValueError(f"batch size {recipe.batch_size} exceeds the {n_train} training images")
    opt = torch.optim.SGD(
        _param_groups(model, recipe.weight_decay),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_lambda(recipe.epochs * steps, recipe.warmup_epochs * steps)
    )
    data_gen = torch.Generator(device=device).manual_seed(seed)
    mix_gen = torch.Generator(device=device).manual_seed(seed + _MIX_SEED_OFFSET)
    mixer = Mixer(method, per_sample=recipe.per_sample_masks, pairing=recipe.pairing)  # type: ignore[arg-type]
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    )
    fmt = torch.channels_last if cuda else torch.contiguous_format

    train_seconds = 0.0
    images = 0
    train_loss = float("nan")
    uniform_loss = math.log(data.num_classes)
    for epoch in range(recipe.epochs):
        model.train()
        mixer.start_epoch(epoch + 1)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        loss_max = torch.zeros((), device=device)
        n_steps = 0
        for xb, yb in _train_batches(data, recipe, device, data_gen, seed, epoch):
            x = train_views(data.normalize(xb), scenario, data_gen)
            mixed = mixer(x, yb, mix_gen)
            with autocast():
                logits = step_model(mixed.inputs.contiguous(memory_format=fmt))
            loss = mixed.loss(logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach()
            loss_max = torch.maximum(loss_max, loss.detach())  # NaN propagates
            n_steps += 1
        mixer.raise_if_violated()  # the epoch's sync; masks are judged before the loss
        train_loss, worst = torch.stack([loss_sum / max(n_steps, 1), loss_max]).tolist()
        epoch_seconds = time.perf_counter() - t0
        train_seconds += epoch_seconds
        images += n_steps * recipe.batch_size
        if not (math.isfinite(train_loss) and math.isfinite(worst)):
            bad = train_loss if not math.isfinite(train_loss) else worst
            raise TrainingDiverged(f"training loss became {bad} in epoch {epoch + 1}; lower lr")
        if worst > EXPLODED_FACTOR * uniform_loss:
            raise TrainingDiverged(
                f"training loss exploded to {worst:.3g} in epoch {epoch + 1} (over "
                f"{EXPLODED_FACTOR:g} x the loss of a uniform guess, {uniform_loss:.3g}); "
                "lower lr or check the method"
            )
        if progress is not None:
            progress(EpochEvent(epoch + 1, recipe.epochs, train_loss, images, epoch_seconds))

    model.eval()
    correct1 = torch.zeros((), device=device, dtype=torch.long)
    correct5 = torch.zeros((), device=device, dtype=torch.long)
    total = 0
    k = min(5, data.num_classes)
    with torch.no_grad(), autocast():
        for xb, yb in _test_batches(data, recipe, device):
            x = test_views(data.normalize(xb), scenario).contiguous(memory_format=fmt)
            top = step_model(x).float().topk(k, dim=1).indices
            hit = top == yb.view(-1, 1)
            correct1 += hit[:, 0].sum()
            correct5 += hit.any(dim=1).sum()
            total += len(yb)
    if total == 0:
        raise ValueError("the test split is empty")
    top1 = 100.0 * float(correct1) / total
    top5 = 100.0 * float(correct5) / total
    state = None
    if keep_weights:
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return TrainResult(
        top1=top1,
        top5=top5,
        train_loss=train_loss,
        epochs=recipe.epochs,
        wall_time_s=time.perf_counter() - t_start,
        images_per_s=images / train_seconds if train_seconds > 0 else 0.0,
        peak_mem_mb=_peak_mem_mb(device),
        device_name=device_name(device),
        state_dict=state,
    )
