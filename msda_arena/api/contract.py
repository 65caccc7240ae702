"""The three method contracts, built-in or plugin: mask, mixing and feature methods.

A mask method (Park, Yun, Chun, "A Unified Analysis of Mixed Sample Data
Augmentation: A Loss Function Perspective", NeurIPS 2022) is defined by its mask
distribution M(lambda): the harness mixes ``x = M * x_i + (1 - M) * x_j`` and
``y = w * y_i + (1 - w) * y_j`` with ``w = mean(M)``. A method therefore does two
things only:

* :meth:`MaskMethod.sample_lam` draws the mixing ratios (default Beta(alpha, alpha));
* :meth:`MaskMethod.masks` turns ratios into masks ``[B, 1, H, W]``, float in
  ``[0, 1]``, on ``lam``'s device, vectorised over the batch and reproducible from
  the ``torch.Generator`` it is given.

Pairing samples, mixing pixels and labels, and the loss belong to the harness
(:mod:`msda_arena.train.mixing`), so every method is compared under identical training.

A mixing method (:class:`MixMethod`) is the second kind, for methods that must see the
images or the model (SaliencyMix, PuzzleMix, ResizeMix...): it mixes the paired batch
itself and returns each sample's label weight. A method that needs nothing but lambda
should stay a mask method: its masks can be checked, drawn and fingerprinted alone.

A feature method (:class:`FeatureMixMethod`, kind ``"feature"``) is the third kind, for
every MSDA family the first two cannot express: methods that mix hidden features
(Manifold Mixup), read the model's class activation maps (SnapMix), weigh labels by
more than pixel shares, or mix more than two inputs per output (Co-Mixup).

Design note: one contract for all of these rather than one flag per method. Per batch:

1. **Where** -- :meth:`FeatureMixMethod.stage` picks one of the model's
   stages (:class:`Stage`): 0 is the input images, ``s >= 1`` the output of the module timm
   lists as the model's ``feature_info[s - 1]`` (the same stages
   ``timm.create_model(..., features_only=True)`` returns). It draws from a CPU
   generator the harness passes, so choosing a stage costs no device sync.
2. **What** -- :meth:`FeatureMixMethod.mix` gets the features ``h`` at that stage (the
   images at stage 0; a forward hook hands it the module's output otherwise), the
   labels, the harness's partner index and lambdas, the generator, and, if it sets
   ``needs_model``, a :class:`ModelView` (saliency and class activation maps of the
   current model). It returns ``(mixed, sources, weights)``: ``mixed`` like ``h``;
   ``sources`` ``[B, k]`` long, the batch rows output ``i`` mixes (``k >= 1``, any
   number of inputs per output); ``weights`` ``[B, k]``, the label weight of each
   source, finite and >= 0, not required to sum to 1.
3. **The loss** stays the harness's: ``mean_i sum_j weights[i, j] * CE(logits_i,
   y[sources[i, j]])``. The harness also keeps the optimiser, the schedule, evaluation,
   time and memory accounting (the ModelView's extra passes run inside the step, so
   they count in the cell), and checks every batch without a per-step sync.
4. **Cost**: feature methods train without ``torch.compile`` (their hook changes from
   batch to batch); the mask and mixing kinds' step, rules and records are unchanged.

Where (stage), which inputs (sources, any k), how much of each label (weights) and
what the model says (ModelView) are the four axes the families differ on; each method
uses the ones it needs, and the harness checks all of them the same way.

A method that mixes only the images with two sources whose weights sum to 1 should
stay a mixing method (its mixing can be drawn); a feature method cannot be drawn or
fingerprinted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, get_args, get_origin

from msda_arena.api._beta import sample_beta
from msda_arena.api.spec import SpecError, canonical

if TYPE_CHECKING:
    import torch

__all__ = [
    "ALPHA",
    "KINDS",
    "FeatureMix",
    "FeatureMixMethod",
    "MaskMethod",
    "Method",
    "MethodBase",
    "MixMethod",
    "ModelView",
    "Param",
    "Saliency",
    "Stage",
]


@dataclass(frozen=True)
class Param:
    """One typed parameter of a method: ``Param("r", float, 0.5, "box side ratio",
    lambda r: 0 < r <= 1, "0 < r <= 1")``.

    Args:
        name: the key used in specs, ``hmix(r=0.25)``; also the instance's attribute.
        type: ``float`` (ints are accepted), ``int``, ``bool``, ``str``, or a tuple of
            one of them, ``tuple[int, ...]``, written ``grids=(2,4,8)`` in specs.
        default: the value when the spec does not set it, of ``type`` (a tuple for a
            tuple type); the canonical spec omits a value equal to it.
        help: one line for ``arena methods``.
        check: an optional predicate on the converted value (the whole tuple).
        check_help: what ``check`` demands, for the error message (e.g. ``"0 < r <= 1"``).
    """

    name: str
    type: Any
    default: Any
    help: str = ""
    check: Callable[[Any], bool] | None = None
    check_help: str = ""

    def convert(self, value: Any, method: str) -> Any:
        """Return ``value`` as this parameter's type or raise :class:`SpecError`."""
        item = get_args(self.type)[0] if get_origin(self.type) is tuple else None
        if item is None:
            ok, value = _convert(value, self.type)
        elif ok := isinstance(value, (tuple, list)):
            pairs = [_convert(v, item) for v in value]
            ok, value = all(good for good, _ in pairs), tuple(v for _, v in pairs)
        if not ok:
            kind = self.type.__name__ if item is None else self.type
            number = self.type is str and isinstance(value, (int, float))
            quote = f" (quote a string: {self.name}='{value}')" if number else ""
            raise SpecError(
                f"{method}: parameter {self.name!r} must be {kind}, got {value!r}{quote}"
            )
        if self.check is not None and not self.check(value):
            raise SpecError(
                f"{method}: parameter {self.name}={value!r} is out of range; "
                f"need {self.check_help or 'a valid value'}"
            )
        return value


def _convert(value: Any, kind: type) -> tuple[bool, Any]:
    """Whether ``value`` is a ``kind`` (an int counts as a float, a bool only as a bool),
    and ``value`` as one."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return True, float(value)
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool)), value


def _positive(x: float) -> bool:
    return x > 0 and x < float("inf")


ALPHA = Param(
    "alpha", float, 1.0, "Beta(alpha, alpha) concentration of lambda", _positive, "alpha > 0"
)


class MethodBase:
    """What both method kinds share: a name, typed parameters and lambda's draw.

    Subclass :class:`MaskMethod`, :class:`MixMethod` or :class:`FeatureMixMethod`, not
    this class. Parameter
    values are validated in ``__init__`` and available as attributes (``self.alpha``)
    and as :attr:`values`. Draw every random number from the ``generator`` the harness
    passes (a second lambda: ``self.sample_lam(n, generator, device)``), never from
    torch's, NumPy's or Python's global state, so a cell is reproducible.
    """

    #: The kind, as ``arena methods`` shows it: ``"mask"``, ``"mix"`` or ``"feature"``.
    kind: ClassVar[str] = ""

    #: The method's name, as typed in specs: lower case, digits, ``-`` and ``_``.
    name: ClassVar[str] = ""
    #: The method's parameters. Include :data:`ALPHA` when lambda is Beta(alpha, alpha).
    params: ClassVar[tuple[Param, ...]] = (ALPHA,)
    #: One-line description for ``arena methods``.
    summary: ClassVar[str] = ""

    def __init__(self, **values: Any) -> None:
        known = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(known))
        if unknown:
            allowed = ", ".join(known) or "none"
            raise SpecError(
                f"{self.name}: unknown parameter {unknown[0]!r}; its parameters are: {allowed}"
            )
        self.values: dict[str, Any] = {}
        for p in self.params:
            value = p.convert(values[p.name], self.name) if p.name in values else p.default
            self.values[p.name] = value
            setattr(self, p.name, value)

    @property
    def spec(self) -> str:
        """The canonical spec string of this method and parameter set."""
        return canonical(self.name, self.values, {p.name: p.default for p in self.params})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"

    def sample_lam(
        self, n: int, generator: torch.Generator, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Draw ``n`` mixing ratios, float32 in ``[0, 1]``, on ``device``.

        The default is Beta(alpha, alpha) drawn from ``generator`` alone; ``generator``
        must live on ``device``.
        """

        alpha = float(self.values.get("alpha", 1.0))
        return sample_beta(alpha, alpha, n, generator, device)


class MaskMethod(MethodBase):
    """Base class of mask methods. Subclass it, set ``name`` and ``params``, implement
    :meth:`masks`; override :meth:`sample_lam` to own how lambda is drawn."""

    kind: ClassVar[str] = "mask"

    def masks(
        self, lam: torch.Tensor, height: int, width: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Masks for ratios ``lam`` (shape ``[B]``): a float tensor ``[B, 1, H, W]`` in
        ``[0, 1]`` on ``lam``'s device, the weight of the first image of each pair."""
        raise NotImplementedError(f"{type(self).__name__} must implement masks()")


Saliency = Callable[["torch.Tensor"], "torch.Tensor"]
"""What a mixing method that sets ``needs_saliency`` receives: ``saliency(images)``, with
images ``[B, C, H, W]`` in the batch's order, returns the current model's input-gradient
magnitude ``[B, H, W]`` (float32, >= 0): the root mean square over channels of
d CE(model(images[i]), y[i]) / d images[i], in evaluation mode, as PuzzleMix computes it.
Row ``i`` is scored against the batch's label ``y[i]``, so the partners' saliency is
``saliency(x)[partner]``; ``saliency(x[partner])`` silently scores them against the wrong
labels. Each call costs one forward and backward, counted in the cell's time; the weights,
their gradients and BatchNorm statistics are untouched."""


class MixMethod(MethodBase):
    """Base class of mixing methods: methods that see the images (and, if they ask,
    the model's saliency). Subclass it, set ``name``, ``params`` and ``summary``,
    implement :meth:`mix`; override :meth:`sample_lam` to own how lambda is drawn
    (ResizeMix draws its paste scale); set ``needs_saliency = True`` to receive a
    :data:`Saliency` callable.

    The harness pairs each sample ``i`` with ``partner[i]``, draws ``lam`` with
    :meth:`sample_lam` (one value per batch, or one per sample when the recipe sets
    ``per_sample_masks``), calls :meth:`mix`, and trains on
    ``w * CE(y_i) + (1 - w) * CE(y_partner)`` with the ``w`` it returns.
    """

    kind: ClassVar[str] = "mix"
    #: Whether :meth:`mix` receives the model's input-gradient saliency.
    needs_saliency: ClassVar[bool] = False
    #: Whether the returned weight is the share of ``x[i]``'s pixels in the mixed image
    #: (the mean over pixels of each pixel's weight on ``x[i]``), which ``arena check``'s
    #: ``pixel-share`` rule verifies. Set it ``False``, with :attr:`weight_reason`, for a
    #: method whose label weight is by design something else (SnapMix weighs by class
    #: activation): the rule then reports the gap instead of failing.
    weight_is_pixel_share: ClassVar[bool] = True
    #: Why the weight is not the pixel share; required when ``weight_is_pixel_share`` is
    #: ``False``.
    weight_reason: ClassVar[str] = ""

    def mix(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        partner: torch.Tensor,
        lam: torch.Tensor,
        generator: torch.Generator,
        saliency: Saliency | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a batch.

        Args:
            x: normalised images ``[B, C, H, W]`` (after the scenario's crop).
            y: integer labels ``[B]`` (rarely needed; the harness mixes labels).
            partner: ``[B]`` long, the sample each sample is mixed with.
            lam: ``[1]`` (one per batch) or ``[B]``: the lambdas :meth:`sample_lam` drew.
            generator: draw every random number from it, on ``x``'s device.
            saliency: a :data:`Saliency` callable when ``needs_saliency``, else None.

        Returns:
            ``(mixed, weight)``: ``mixed`` like ``x`` (same shape, dtype and device),
            each pixel a convex combination of pixels of ``x[i]`` and ``x[partner[i]]``;
            ``weight`` float ``[B]`` in ``[0, 1]``, the weight of label ``y[i]``: the
            share of ``x[i]``'s pixels in ``mixed[i]`` unless the class declares
            otherwise (:attr:`weight_is_pixel_share`).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement mix()")


@dataclass(frozen=True)
class Stage:
    """A place in the model where a :class:`FeatureMixMethod` can mix.

    Attributes:
        index: 0 for the input images; ``s >= 1`` for the output of the module timm
            lists as ``model.feature_info[s - 1]``.
        module: that module's name in the model (``"stages.1"``); ``""`` for the input.
        channels: the features' channels there (the images' channels at 0).
        reduction: the features' stride against the input (1 at the input).
    """

    index: int
    module: str
    channels: int
    reduction: int


class ModelView(Protocol):
    """What a :class:`FeatureMixMethod` that sets ``needs_model`` receives: the current
    model, seen through calls whose cost the harness counts in the cell. Each call is
    one forward (and for ``saliency`` one backward) in evaluation mode, on images
    ``[B, C, H, W]`` in the batch's order; the weights, their gradients and BatchNorm
    statistics are untouched."""

    def saliency(self, images: torch.Tensor) -> torch.Tensor:
        """The :data:`Saliency` of ``images`` ``[B, H, W]`` (row ``i`` scored against the
        batch's label ``y[i]``)."""
        ...

    def cam(self, images: torch.Tensor) -> torch.Tensor:
        """Class activation maps ``[B, num_classes, h, w]`` float32 (Zhou et al. 2016):
        the classifier's weights applied to the last feature map at every position, plus
        its bias: ``cam[b, k] = W_k . features[b] + bias_k``, whose spatial mean is the
        logit of class ``k`` for models with global-average pooling."""
        ...


#: What :meth:`FeatureMixMethod.mix` returns: ``(mixed, sources, weights)``.
FeatureMix = tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]


class FeatureMixMethod(MethodBase):
    """Base class of feature methods (the third kind; see the module's design note).

    Subclass it, set ``name``, ``params`` and ``summary``, implement :meth:`mix`;
    override :meth:`stage` to mix hidden features (the default mixes the input images),
    :meth:`sample_lam` to own how lambda is drawn, and set ``needs_model = True`` to
    receive a :class:`ModelView`.

    Per batch the harness draws ``lam`` with :meth:`sample_lam` (``[1]``, or ``[B]``
    when the recipe sets ``per_sample_masks``) and the partner index, asks
    :meth:`stage` where to mix, runs the model up to that stage, calls :meth:`mix` on
    the features there, runs the rest of the model on what it returns, and trains on
    ``mean_i sum_j weights[i, j] * CE(logits_i, y[sources[i, j]])``.
    """

    kind: ClassVar[str] = "feature"
    #: Whether :meth:`mix` receives a :class:`ModelView` of the current model.
    needs_model: ClassVar[bool] = False

    def stage(self, stages: tuple[Stage, ...], generator: torch.Generator) -> int:
        """The index of the :class:`Stage` to mix at for this batch (default 0, the
        input). ``stages`` are the model's (``stages[0]`` the input); ``generator`` is a
        CPU generator for this choice alone (the stage must be known on the host)."""
        return 0

    def mix(
        self,
        h: torch.Tensor,
        y: torch.Tensor,
        partner: torch.Tensor,
        lam: torch.Tensor,
        generator: torch.Generator,
        model: ModelView | None = None,
    ) -> FeatureMix:
        """Mix the batch's features at the chosen stage.

        Args:
            h: the features ``[B, ...]`` at the stage (the normalised, cropped images at
                stage 0), in the step's dtype (bf16 under CUDA autocast).
            y: integer labels ``[B]``.
            partner: ``[B]`` long, the harness's pairing (use it for two-source mixes).
            lam: ``[1]`` (one per batch) or ``[B]``: the lambdas :meth:`sample_lam` drew.
            generator: draw every random number from it, on ``h``'s device.
            model: a :class:`ModelView` when ``needs_model``, else None.

        Returns:
            ``(mixed, sources, weights)``: ``mixed`` like ``h`` (shape, dtype, device),
            each element a convex combination of elements of the rows ``sources[i]`` of
            ``h``, one weight for all channels; ``sources`` ``[B, k]`` long, ``k >= 1``;
            ``weights`` ``[B, k]`` float, finite and >= 0: the weight of label
            ``y[sources[i, j]]`` in the loss (they need not sum to 1).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement mix()")


#: Any kind of method.
Method = MaskMethod | MixMethod | FeatureMixMethod
#: The method kinds by name (``arena methods``, ``arena new-plugin --kind``): the one list.
KINDS: dict[str, type[MethodBase]] = {
    cls.kind: cls for cls in (MaskMethod, MixMethod, FeatureMixMethod)
}
