"""Any arena method in your own training loop: :func:`mixer`, a drop-in for timm's ``Mixup``.

``x, target = mix(x, target)`` mixes a batch with any registered method (a mask method
or a mixing method, built in or a plugin) and returns soft targets in timm's format:
float32 ``[B, num_classes]``, each row summing to 1, label smoothing as timm's
``mixup_target`` computes it. Under it runs the harness's own :class:`Mixer` (pairing,
lambda draw, masks, contract checks, label weights) and
:meth:`MixedBatch.soft_targets`, so what a user trains with is what ``arena run``
measured. Everything stays on the batch's device and nothing is read back per step.
"""

from __future__ import annotations

import torch

from msda_arena.api.contract import FeatureMixMethod, Method, MixMethod
from msda_arena.methods.registry import get_method
from msda_arena.train.mixing import MixedBatch, Mixer, Pairing
from msda_arena.train.saliency import model_saliency

__all__ = ["BatchMixer", "MixTransform", "mixer"]


def mixer(
    spec: str | Method,
    num_classes: int,
    label_smoothing: float = 0.0,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    per_sample: bool = False,
    pairing: Pairing = "flip",
    validate: bool = True,
) -> BatchMixer:
    """A callable ``(x, y) -> (x_mixed, y_soft)`` that mixes with the method ``spec``.

    It replaces timm's ``Mixup`` (``x, target = mix(x, target)``, train with timm's
    ``SoftTargetCrossEntropy``) in timm's training script or any loop, on CPU or GPU.
    A mixing method that needs the model's saliency (``puzzlemix``) takes the model:
    ``mix(x, y, model=model)``.

    Args:
        spec: a method spec (``"hmix(r=0.25)"``, ``"puzzlemix"``) or a method object.
        num_classes: the number of classes; labels are indices in ``[0, num_classes)``.
        label_smoothing: smooths each one-hot target before mixing, as timm does.
        seed: seeds the mixing generator (one per device); None draws the seed from
            torch's global generator, so ``torch.manual_seed`` makes runs repeat.
        generator: draw from this generator instead (it must be on the batch's device).
        per_sample: one lambda and mask per sample; default one per batch, as ``arena
            run`` and the reference code.
        pairing: ``"flip"`` (the reversed batch, as ``arena run``) or ``"permute"``.
        validate: check each batch against the method's contract, as ``arena run`` does
            (no sync per step; :meth:`BatchMixer.check` reports a later violation).

    Raises:
        SpecError: ``spec`` names no installed method or has bad parameters.
        ValueError: ``num_classes``, ``label_smoothing`` or ``pairing`` is out of range;
            a feature method (it mixes inside the model's forward pass).
    """
    method = get_method(spec) if isinstance(spec, str) else spec
    if isinstance(method, FeatureMixMethod):
        raise ValueError(
            f"method '{method.spec}' mixes the model's hidden features inside its forward "
            "pass, so it cannot mix a batch before the model: mixer() takes mask and "
            "mixing methods; train a feature method with arena run"
        )
    return BatchMixer(
        method,
        num_classes,
        label_smoothing,
        seed=seed,
        generator=generator,
        per_sample=per_sample,
        pairing=pairing,
        validate=validate,
    )


class BatchMixer:
    """Mixes batches with one method and returns timm-format soft targets; see :func:`mixer`.

    Attributes:
        method: the method.
        num_classes, label_smoothing: as given.
        mixup_enabled: set False to pass batches through unmixed (with smoothed one-hot
            targets), as timm's training script does to its ``Mixup`` at
            ``--mixup-off-epoch``.
        seed: the seed of the mixing generators.
    """

    def __init__(
        self,
        method: Method,
        num_classes: int,
        label_smoothing: float = 0.0,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        per_sample: bool = False,
        pairing: Pairing = "flip",
        validate: bool = True,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")
        self.method = method
        self.num_classes = num_classes
        self.label_smoothing = float(label_smoothing)
        self.mixup_enabled = True
        self._mixer = Mixer(method, per_sample=per_sample, pairing=pairing, validate=validate)
        if seed is None:  # from torch's global generator: torch.manual_seed repeats it
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        self.seed = seed
        self._given = generator
        self._generators: dict[torch.device, torch.Generator] = {}
        self._labels_checked: set[torch.device] = set()
        self._needs_model = isinstance(method, MixMethod) and method.needs_saliency

    def __repr__(self) -> str:
        return (
            f"BatchMixer({self.method.spec!r}, num_classes={self.num_classes}, "
            f"label_smoothing={self.label_smoothing})"
        )

    def generator(self, device: torch.device | str) -> torch.Generator:
        """The generator the batches on ``device`` draw from (made on first use)."""
        device = torch.device(device)
        if self._given is not None:
            given = self._given.device
            if given.type != device.type or given.index not in (None, device.index):
                raise ValueError(
                    f"the generator is on {given} but the batch is on {device}; "
                    "pass a generator on the batch's device, or seed= instead"
                )
            return self._given
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, model: torch.nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix images ``x`` ``[B, C, H, W]`` (float) with class indices ``y`` ``[B]``:
        returns the mixed images and the soft targets, float32 ``[B, num_classes]``.

        ``model``: the model being trained, for a method that needs its saliency."""
        batch = self.mix(x, y, model)
        return batch.inputs, batch.soft_targets(self.num_classes, self.label_smoothing)

    def mix(
        self, x: torch.Tensor, y: torch.Tensor, model: torch.nn.Module | None = None
    ) -> MixedBatch:
        """The mixed batch as the harness trains on it: inputs, both label sets and the
        label weight; ``.loss(logits)`` is the harness's loss (no one-hot made)."""
        self._check_batch(x, y)
        if self._needs_model and model is None:
            raise ValueError(
                f"method '{self.method.spec}' needs the model's saliency: "
                "call mix(x, y, model=model)"
            )
        if not self.mixup_enabled:
            ones = torch.ones(y.shape[0], device=y.device)
            return MixedBatch(x, y, y, ones, ones[:1], None)
        saliency = model_saliency(model, y) if self._needs_model and model is not None else None
        return self._mixer(x, y, self.generator(x.device), saliency)

    def check(self) -> None:
        """Raise :class:`~msda_arena.train.mixing.MethodContractError` if a batch so far
        broke a value rule of the method's contract (one host sync; call it once an
        epoch, as ``arena run`` does). The first batch is checked when it is mixed."""
        self._mixer.raise_if_violated()

    def transform(self) -> MixTransform:
        """This mixer as a torchvision-v2-style batch transform (same generator)."""
        return MixTransform(self)

    def _check_batch(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Shapes and types (no sync); the labels' range on the CPU, and once per other
        device (one sync) so a wrong ``num_classes`` fails in one line, not in a kernel."""
        if not (isinstance(x, torch.Tensor) and x.ndim == 4 and x.is_floating_point()):
            what = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"mixer takes float images [B, C, H, W], got {what}")
        if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],) or y.is_floating_point():
            what = f"{y.dtype} {list(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(
                f"mixer takes class indices [B] (an integer tensor of {x.shape[0]}), got {what}"
            )
        if y.device.type == "cpu" or y.device not in self._labels_checked:
            self._labels_checked.add(y.device)
            lo, hi = (int(v) for v in torch.aminmax(y))
            if lo < 0 or hi >= self.num_classes:
                raise ValueError(
                    f"labels must lie in [0, {self.num_classes}) for num_classes="
                    f"{self.num_classes}, found [{lo}, {hi}]; pass the dataset's class count"
                )


class MixTransform(torch.nn.Module):
    """A :class:`BatchMixer` as a torchvision-v2-style batch transform, like
    ``torchvision.transforms.v2.MixUp``: ``images, labels = t(images, labels)`` or
    ``t((images, labels))``, e.g. after ``default_collate`` in a DataLoader's
    ``collate_fn``. Not for a method that needs the model."""

    def __init__(self, mixer: BatchMixer) -> None:
        super().__init__()
        self.mixer = mixer

    def forward(self, *inputs: object) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, labels)``, as two arguments or one pair, to ``(mixed, soft labels)``."""
        pair = inputs[0] if len(inputs) == 1 else inputs
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError("the transform takes (images, labels), as two arguments or one pair")
        images, labels = pair
        return self.mixer(images, labels)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return repr(self.mixer)
