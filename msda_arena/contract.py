"""The mask contract every method, built-in or plugin, implements.

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
(:mod:`msda_arena.mixing`), so every method is compared under identical training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from msda_arena.spec import SpecError, canonical

if TYPE_CHECKING:
    import torch

__all__ = ["MaskMethod", "Param"]


@dataclass(frozen=True)
class Param:
    """One typed parameter of a mask method.

    Args:
        name: the key used in specs, ``hmix(r=0.25)``.
        type: ``float``, ``int``, ``bool`` or ``str``; ints are accepted for floats.
        default: the value when the spec does not set it.
        help: one line for ``arena methods``.
        check: an optional predicate on the converted value.
        check_help: what ``check`` demands, for the error message (e.g. ``"0 < r <= 1"``).
    """

    name: str
    type: type
    default: Any
    help: str = ""
    check: Callable[[Any], bool] | None = None
    check_help: str = ""

    def convert(self, value: Any, method: str) -> Any:
        """Return ``value`` as this parameter's type or raise :class:`SpecError`."""
        ok = isinstance(value, self.type) and not (
            self.type is not bool and isinstance(value, bool)
        )
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise SpecError(
                f"{method}: parameter {self.name!r} must be {self.type.__name__}, got {value!r}"
            )
        if self.check is not None and not self.check(value):
            raise SpecError(
                f"{method}: parameter {self.name}={value!r} is out of range; "
                f"need {self.check_help or 'a valid value'}"
            )
        return value


def _positive(x: float) -> bool:
    return x > 0 and x < float("inf")


ALPHA = Param(
    "alpha", float, 1.0, "Beta(alpha, alpha) concentration of lambda", _positive, "alpha > 0"
)


class MaskMethod:
    """Base class of mask methods. Subclass it, set ``name`` and ``params``, implement
    :meth:`masks`; override :meth:`sample_lam` to own how lambda is drawn.

    Parameter values are validated in ``__init__`` and available as attributes
    (``self.alpha``) and as :attr:`values`.
    """

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
        from msda_arena.methods._beta import sample_beta

        alpha = float(self.values.get("alpha", 1.0))
        return sample_beta(alpha, alpha, n, generator, device)

    def masks(
        self, lam: torch.Tensor, height: int, width: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Masks for ratios ``lam`` (shape ``[B]``): a float tensor ``[B, 1, H, W]`` in
        ``[0, 1]`` on ``lam``'s device, the weight of the first image of each pair."""
        raise NotImplementedError(f"{type(self).__name__} must implement masks()")
