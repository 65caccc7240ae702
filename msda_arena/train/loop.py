"""Train and evaluate one grid cell. Knows nothing of stores, executors or the CLI.

Tensor datasets (procedural, CIFAR, Fashion-MNIST) live on the training device: each
step indexes a batch, normalises, crops (:mod:`msda_arena.data.crops`) and mixes
(:class:`msda_arena.train.mixing.Mixer`) it there with batched tensor work, so the harness
adds little to the model's own step. ImageFolder data comes through a DataLoader with
workers and gets the same device-side crops and mixing.

One step function: :func:`train_cell` runs :class:`TrainStep` and ``benchmarks/`` time
it, so a benchmark times the real step.

Seeding: model initialisation, data order and crops depend on the seed alone, and the
mixing draws from its own generator, so two methods at one seed see the same model
init and the same batches (paired comparisons compare like with like). Same seed and
torch threads, same result on the CPU: the recipe's thread count and deterministic
setting are part of what a cell is trained with (:class:`CellSetup`), set for the cell
and restored after (:func:`torch_settings`).

On CUDA the step runs in bf16 autocast with channels_last and cuDNN autotuning, and
``recipe.compile`` (``true``, ``false`` or ``"auto"``: on for CUDA, off elsewhere)
compiles the model with ``torch.compile`` (static shapes: every training batch is a
full batch). A compile that fails, when the model is wrapped or on the first compiled
step, falls back to the eager model with one warning
(:class:`CompileFallbackWarning`) and the cell's :attr:`TrainResult.notes` says so;
the failed step is rerun eagerly from the state it started from, so the cell trains as
an eager one would. Evaluation runs the eager model (no recompiles for eval mode or the
last short batch) and counts top-1/top-5 on the device, read once at the end.

Guards, all without a host sync per step: every batch's lambdas and masks are checked
against the contract (:class:`msda_arena.train.mixing.Mixer`), a method whose code raises
fails the cell (:class:`msda_arena.train.mixing.MethodError`) instead of ending the grid,
and the loss is watched for NaN/inf and for finite explosions (see
:data:`EXPLODED_FACTOR`). At the end of each epoch, in that order, the masks are
judged before the loss, so a NaN that came from the masks names the mask rule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

import msda_arena.models.cifar  # noqa: F401
from msda_arena.api.contract import FeatureMixMethod, Method, Saliency
from msda_arena.api.errors import ArenaError
from msda_arena.api.record import EpochPoint, Measurements, encode_curve
from msda_arena.data.crops import test_views, train_views
from msda_arena.data.imagefolder import make_loader
from msda_arena.grid.config import DEFAULT_THREADS, Recipe
from msda_arena.train import interrupts
from msda_arena.train.evaluate import EvalAccumulator, EvalMetrics, fgsm_bounds, fgsm_inputs
from msda_arena.train.feature_mixing import FeatureMixer, TrainModelView, feature_stages
from msda_arena.train.mixing import Mixer
from msda_arena.train.saliency import model_saliency

__all__ = [
    "DEFAULT_THREADS",
    "EXPLODED_FACTOR",
    "CellSetup",
    "CompileFallbackWarning",
    "EpochEvent",
    "TrainResult",
    "TrainStep",
    "TrainingDiverged",
    "compile_wanted",
    "torch_settings",
    "train_cell",
]

_MIX_SEED_OFFSET = 1_000_003
_HOST_SEED_OFFSET = 2_000_003  # a feature method's stage draws (CPU generator)

#: A cell diverged when any step's loss exceeds this many times ``ln(num_classes)``,
#: the cross-entropy of a uniform guess (where training starts). Soft-target
#: cross-entropy of a training model stays within a few times that, transient spikes
#: included; 100x (139 for 4 classes, 461 for 100, 691 for 1000) means logits apart by
#: hundreds, which only a blown-up model produces, so no healthy run trips it.
EXPLODED_FACTOR = 100.0

#: The ``torch.compile`` backend of the training step (tests set a broken one to see
#: the fallback to eager work).
COMPILE_BACKEND: str | Callable[..., Any] = "inductor"

_NOTE_LIMIT = 300  # characters of the compile error kept in the note


class TrainingDiverged(ArenaError):
    """The training loss became NaN or infinite, or exploded past
    :data:`EXPLODED_FACTOR` times the loss of a uniform guess."""


class CompileFallbackWarning(RuntimeWarning):
    """``torch.compile`` failed for a cell, which trained with the eager model instead."""


@dataclass(frozen=True, kw_only=True)
class EpochEvent(EpochPoint):
    """Reported after every epoch (one host sync per epoch, none per step): the epoch's
    point of the learning curve, the epochs in all, and the images trained on so far."""

    epochs: int
    images: int


@dataclass(frozen=True)
class CellSetup:
    """What a cell is trained with: everything that decides its numbers (the recipe's
    ``threads`` and ``deterministic`` included, see :func:`torch_settings`)."""

    arch: str
    method: Method
    data: Any
    recipe: Recipe
    scenario: Any
    seed: int
    device: torch.device | str = "cpu"


@dataclass(frozen=True, kw_only=True)
class TrainResult(Measurements):
    """What one cell measured (:class:`~msda_arena.api.record.Measurements`, which the
    record stores as it is), and the trained weights when asked for."""

    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False, compare=False)


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


def compile_wanted(setting: bool | str, device: torch.device | str) -> bool:
    """Whether a recipe's ``compile`` setting compiles on ``device``: ``True`` and
    ``False`` as written, ``"auto"`` on CUDA only."""
    if isinstance(setting, str):
        if setting != "auto":
            raise ValueError(f"compile must be true, false or 'auto', got {setting!r}")
        return torch.device(device).type == "cuda"
    return bool(setting)


def _describe_compile_error(exc: BaseException) -> str:
    """``Type: message`` on one line, without torch's hints about verbose logging."""
    lines = [
        line.strip()
        for line in str(exc).splitlines()
        if line.strip() and "TORCHDYNAMO_VERBOSE" not in line and "TORCH_LOGS" not in line
    ]
    text = f"{type(exc).__name__}: {' '.join(lines)}".rstrip(": ")
    return text if len(text) <= _NOTE_LIMIT else text[: _NOTE_LIMIT - 3] + "..."


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

    for x, y in make_loader(data, "val", batch_size=bs, shuffle=False):
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _n_train(data: Any, recipe: Recipe) -> int:
    if hasattr(data, "train_x"):
        n = len(data.train_x)
        return min(n, recipe.train_subset) if recipe.train_subset else n
    return data.num_train if hasattr(data, "num_train") else 0


class TrainStep:
    """The training step of one cell, built once per cell: what :func:`train_cell` runs
    for every batch and what the benchmarks time.

    Building it seeds torch with the setup's ``seed`` and creates the model, SGD, the
    schedule, the data and mixing generators and the Mixer in a fixed order (the order
    fixes the numbers). Per epoch: :meth:`start_epoch` (1-based), ``step(xb, yb)`` for
    each of :meth:`batches`, :meth:`end_epoch` (its one host sync); then :meth:`evaluate`.

    Attributes:
        model: the eager model (evaluation and weights).
        net: what the step calls: the compiled model, or ``model``.
        steps_per_epoch: full batches per epoch.
        notes: ``""``, or why the step runs eager though compiling was asked for.

    Raises (building):
        ValueError: the batch size exceeds the training set.
    """

    def __init__(self, setup: CellSetup) -> None:
        import timm

        data, recipe, seed, method = setup.data, setup.recipe, setup.seed, setup.method
        self.device = device = torch.device(setup.device)
        self.cuda = cuda = device.type == "cuda"
        self.data, self.recipe, self.scenario, self.seed = data, recipe, setup.scenario, seed
        n_train = _n_train(data, recipe)
        self.steps_per_epoch = n_train // recipe.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"batch size {recipe.batch_size} exceeds the {n_train} training images"
            )
        torch.manual_seed(seed)
        model = timm.create_model(
            setup.arch, pretrained=False, num_classes=data.num_classes, in_chans=data.in_chans
        )
        model = model.to(device)
        self.memory_format = torch.channels_last if cuda else torch.contiguous_format
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        self.model: torch.nn.Module = model
        self.opt = torch.optim.SGD(
            _param_groups(model, recipe.weight_decay),
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=recipe.nesterov and recipe.momentum > 0,
        )
        steps = self.steps_per_epoch
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, _lr_lambda(recipe.epochs * steps, recipe.warmup_epochs * steps)
        )
        self.data_gen = torch.Generator(device=device).manual_seed(seed)
        self.mix_gen = torch.Generator(device=device).manual_seed(seed + _MIX_SEED_OFFSET)
        self._feature = isinstance(method, FeatureMixMethod)
        self.mixer = self._make_mixer(method, model, data.in_chans)
        self._wants_saliency = bool(getattr(method, "needs_saliency", False))
        self._wants_model = bool(getattr(method, "needs_model", False))
        self.notes = ""
        self.net: Callable[[torch.Tensor], torch.Tensor] = model
        self._trial = False  # the next step is the first compiled one
        if self._feature and compile_wanted(recipe.compile, device):
            # The method's forward hook changes from batch to batch (stage, or none).
            self.notes = "feature method: trained eager (torch.compile not used)"
        elif compile_wanted(recipe.compile, device):
            try:
                self.net = torch.compile(model, backend=COMPILE_BACKEND, dynamic=False)
                self._trial = True
            except Exception as exc:  # e.g. an unknown backend, a missing compiler
                self._fall_back(exc)
        self.epoch = 0
        self.epoch_steps = 0
        self.lr = recipe.lr  # of the last step taken (a float the optimiser holds: no sync)
        self._loss_sum = torch.zeros((), device=device)
        self._loss_max = torch.zeros((), device=device)
        self._uniform_loss = math.log(data.num_classes)

    def _make_mixer(self, method: Method, model: torch.nn.Module, in_chans: int) -> Mixer:
        """The method's mixer; a feature method's also gets the model's stages and the CPU
        generator its stage is drawn from (:data:`_HOST_SEED_OFFSET`)."""
        recipe = self.recipe
        if not isinstance(method, FeatureMixMethod):
            return Mixer(method, per_sample=recipe.per_sample_masks, pairing=recipe.pairing)  # type: ignore[arg-type]
        self.host_gen = torch.Generator().manual_seed(self.seed + _HOST_SEED_OFFSET)
        self.stages = feature_stages(model, in_chans)
        return FeatureMixer(method, model, self.stages, recipe.per_sample_masks, recipe.pairing)  # type: ignore[arg-type]

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA; nothing elsewhere."""
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The uint8 batches and labels of 0-based ``epoch``, on the device, full
        batches only, in the seed's order."""
        return _train_batches(self.data, self.recipe, self.device, self.data_gen, self.seed, epoch)

    def start_epoch(self, epoch: int) -> None:
        """Begin 1-based ``epoch``: training mode, the mixer's batch numbering, and the
        epoch's loss sum and maximum reset (on the device)."""
        self.model.train()
        self.mixer.start_epoch(epoch)
        self.epoch = epoch
        self.epoch_steps = 0
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_max = torch.zeros((), device=self.device)

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """One training step on a uint8 batch ``xb`` with labels ``yb`` (on the device):
        normalise, crop, mix, forward, loss, backward, SGD and schedule steps. Returns
        the detached loss, on the device; nothing is read back.

        Raises:
            MethodContractError, MethodError: from the mixer (see
                :class:`~msda_arena.train.mixing.Mixer`).
        """
        x = train_views(self.data.normalize(xb), self.scenario, self.data_gen)
        if self._feature:
            mixed: Any = self._mix_features(x, yb)
        else:
            saliency = self._saliency(yb) if self._wants_saliency else None
            mixed = self.mixer(x, yb, self.mix_gen, saliency)
        inputs = mixed.inputs.contiguous(memory_format=self.memory_format)
        if self._trial:
            loss = self._first_compiled_step(inputs, mixed)
        else:
            loss = self._forward_backward(inputs, mixed)
        self.lr = self.opt.param_groups[0]["lr"]
        self.opt.step()
        self.sched.step()
        loss = loss.detach()
        self._loss_sum += loss
        self._loss_max = torch.maximum(self._loss_max, loss)  # NaN propagates
        self.epoch_steps += 1
        return loss

    def _mix_features(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        """A feature method's batch: its stage drawn on the host, mixed now (stage 0) or
        by a hook in the coming forward; a :class:`TrainModelView` if it asks."""
        view = None
        if self._wants_model:
            view = TrainModelView(self.model, y, self.autocast, self.memory_format)
        return self.mixer(x, y, self.mix_gen, self.host_gen, view)  # type: ignore[call-arg]

    def _saliency(self, y: torch.Tensor) -> Saliency:
        """The :data:`~msda_arena.api.contract.Saliency` callable of this batch
        (:func:`~msda_arena.train.saliency.model_saliency` of the eager model, under the
        step's autocast and memory format), inside the step and so inside the cell's time."""
        return model_saliency(self.model, y, self.autocast, self.memory_format)

    def _forward_backward(self, inputs: torch.Tensor, mixed: Any) -> torch.Tensor:
        with self.autocast():
            logits = self.net(inputs)
        loss = mixed.loss(logits)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def _first_compiled_step(self, inputs: torch.Tensor, mixed: Any) -> torch.Tensor:
        """The first step through the compiled model, where compiling happens. If it
        raises, the model's buffers (BatchNorm statistics) and the random state are put
        back as they were, and the step runs again with the eager model: a failed
        compile leaves the cell exactly as an eager run would have it."""
        buffers = [b.detach().clone() for b in self.model.buffers()]
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.cuda else None
        try:
            return self._forward_backward(inputs, mixed)
        except Exception as exc:
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), buffers, strict=True):
                    b.copy_(saved)
            torch.set_rng_state(cpu_rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, self.device)
            self._fall_back(exc)
            return self._forward_backward(inputs, mixed)
        finally:
            self._trial = False

    def _fall_back(self, exc: BaseException) -> None:
        """Run eager from now on; one warning, and the cell's note."""
        self.net = self.model
        self._trial = False
        self.notes = f"torch.compile failed ({_describe_compile_error(exc)}); ran eager"
        warnings.warn(self.notes, CompileFallbackWarning, stacklevel=3)

    def end_epoch(self) -> float:
        """End the epoch: judge its masks, then its loss (one host sync). Returns the
        epoch's mean training loss.

        Raises:
            MethodContractError: a batch's lambdas, masks or mixed batch broke a value rule.
            TrainingDiverged: the loss became NaN/inf or exploded
                (:data:`EXPLODED_FACTOR`).
        """
        self.mixer.raise_if_violated()  # the epoch's sync; masks are judged before the loss
        n = max(self.epoch_steps, 1)
        train_loss, worst = torch.stack([self._loss_sum / n, self._loss_max]).tolist()
        if not (math.isfinite(train_loss) and math.isfinite(worst)):
            bad = train_loss if not math.isfinite(train_loss) else worst
            raise TrainingDiverged(f"training loss became {bad} in epoch {self.epoch}; lower lr")
        if worst > EXPLODED_FACTOR * self._uniform_loss:
            raise TrainingDiverged(
                f"training loss exploded to {worst:.3g} in epoch {self.epoch} (over "
                f"{EXPLODED_FACTOR:g} x the loss of a uniform guess, "
                f"{self._uniform_loss:.3g}); lower lr or check the method"
            )
        return train_loss

    def evaluate(self, fgsm: bool = True) -> EvalMetrics:
        """Top-1 and top-5 accuracy (%), expected calibration error and FGSM top-1 (NaN
        without ``fgsm``: the learning curve's evaluations) of the eager model on the
        test views (:mod:`msda_arena.train.evaluate`), counted on the device and read once.

        Raises:
            ValueError: the test split is empty.
        """
        self.model.eval()
        acc = EvalAccumulator(self.data.num_classes, self.device)
        eps, lo, hi = fgsm_bounds(self.data.mean, self.data.std, self.device)
        fmt = self.memory_format
        chunk = self.recipe.batch_size  # FGSM's backward never needs more than training's
        for xb, yb in _test_batches(self.data, self.recipe, self.device):
            x = test_views(self.data.normalize(xb), self.scenario).contiguous(memory_format=fmt)
            with torch.no_grad(), self.autocast():
                acc.add(self.model(x), yb)
            if not fgsm:
                continue
            for i in range(0, len(yb), chunk):
                xc, yc = x[i : i + chunk], yb[i : i + chunk]
                # the gradient's sign in float32 on every device, so FGSM figures compare
                moved = fgsm_inputs(self.model, xc, yc, eps, lo, hi)
                with torch.no_grad(), self.autocast():
                    acc.add_fgsm(self.model(moved.contiguous(memory_format=fmt)), yc)
        return acc.result()  # the one read


@contextlib.contextmanager
def torch_settings(setup: CellSetup) -> Iterator[None]:
    """Around a cell's training: the recipe's ``threads`` torch threads (the numbers
    depend on them) and, if ``deterministic``, torch's deterministic algorithms (on CUDA
    also cuDNN's); otherwise on CUDA cuDNN autotuning (it picks the fastest kernels for
    the step's fixed shapes). All restored after."""
    cudnn, threads = torch.backends.cudnn, torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_before = cudnn.benchmark, cudnn.deterministic
    deterministic = setup.recipe.deterministic
    if deterministic:  # cuBLAS's deterministic workspace (read when cuBLAS first runs)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(setup.recipe.threads)
    # warn_only: an operation without a deterministic kernel warns rather than fails the cell
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    cudnn.deterministic = deterministic
    cudnn.benchmark = torch.device(setup.device).type == "cuda" and not deterministic
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        cudnn.benchmark, cudnn.deterministic = cudnn_before


def train_cell(
    arch: str,
    method: Method,
    data: Any,
    recipe: Recipe,
    scenario: Any,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[EpochEvent], None] | None = None,
    keep_weights: bool = False,
    threads: int | None = None,
    deterministic: bool | None = None,
) -> TrainResult:
    """Train ``arch`` with ``method`` on ``data`` (already on ``device`` for tensor data)
    under ``recipe`` and crop ``scenario``, then evaluate top-1/top-5 on the test views,
    with ``threads`` torch threads and, if ``deterministic``, torch's deterministic
    algorithms (:func:`torch_settings`); None: the recipe's.

    Raises:
        MethodContractError: some batch's lambdas, masks or mixed batch break the contract (the
            message names the rule and the batch).
        MethodError: the method's code raised, ``SystemExit`` and a ``KeyboardInterrupt``
            that was not the user's Ctrl-C included.
        TrainingDiverged: the loss became NaN/inf or exploded (:data:`EXPLODED_FACTOR`).
        ValueError: the batch size exceeds the training set; ``threads`` below 1.
        KeyboardInterrupt: the user pressed Ctrl-C.
    """
    overrides = {"threads": threads, "deterministic": deterministic}
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    if recipe.threads < 1:
        raise ValueError(f"threads must be at least 1, got {recipe.threads}")
    setup = CellSetup(arch, method, data, recipe, scenario, seed, device)
    with interrupts.watching():
        return _train_cell(setup, progress, keep_weights)


def _train_cell(
    setup: CellSetup, progress: Callable[[EpochEvent], None] | None, keep_weights: bool
) -> TrainResult:
    device, epochs = torch.device(setup.device), setup.recipe.epochs
    t_start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch_settings(setup):
        step = TrainStep(setup)
        train_seconds, images, train_loss = 0.0, 0, math.nan
        curve: list[EpochPoint] = []
        every = setup.recipe.eval_every
        for epoch in range(1, epochs + 1):
            step.start_epoch(epoch)
            t0 = time.perf_counter()
            for xb, yb in step.batches(epoch - 1):
                step(xb, yb)
            train_loss = step.end_epoch()
            epoch_seconds = time.perf_counter() - t0
            train_seconds += epoch_seconds
            images += step.epoch_steps * setup.recipe.batch_size
            # the last epoch's top-1 is the final evaluation's (below)
            evaluate_now = every > 0 and epoch % every == 0 and epoch < epochs
            top1 = step.evaluate(fgsm=False).top1 if evaluate_now else math.nan
            point = EpochPoint(
                epoch=epoch, train_loss=train_loss, lr=step.lr, seconds=epoch_seconds, top1=top1
            )
            curve.append(point)
            if progress is not None:
                progress(EpochEvent(**dataclasses.asdict(point), epochs=epochs, images=images))
        metrics = step.evaluate()
        curve[-1] = dataclasses.replace(curve[-1], top1=metrics.top1)
        threads, name = torch.get_num_threads(), device_name(device)  # the cell's own
    state = None
    if keep_weights:
        state = {k: v.detach().to("cpu").contiguous() for k, v in step.model.state_dict().items()}
    return TrainResult(
        **dataclasses.asdict(metrics),
        train_loss=train_loss,
        epochs=epochs,
        wall_time_s=time.perf_counter() - t_start,
        images_per_s=images / train_seconds if train_seconds > 0 else 0.0,
        peak_mem_mb=_peak_mem_mb(device),
        device_name=name,
        notes=step.notes,
        threads=threads,
        deterministic=int(setup.recipe.deterministic),
        curve=encode_curve(curve),
        state_dict=state,
    )
