"""Per-cell metrics beyond top-1, computed in the evaluation pass on the device.

* **Expected calibration error** (Guo et al., ICML 2017), 15 equal-width confidence
  bins: ``ECE = sum_b (n_b / n) * |accuracy_b - confidence_b|``, a fraction in [0, 1];
  lower is better. Mixing is known to change calibration, so it belongs beside top-1.
* **FGSM top-1** (Goodfellow et al., ICLR 2015): top-1 % on inputs moved by one signed
  gradient step, ``x + eps * sign(grad_x loss)``, with ``eps = 8/255`` of the input
  range, clamped to the valid range: the paper's robustness claim, cheaply.

Both accumulate on the device (:class:`EvalAccumulator`) and are read once at the end
of the evaluation, like top-1; FGSM costs one extra forward and backward per test
batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from msda_arena.api.record import EvalMetrics  # what evaluate() returns; the record's columns

__all__ = [
    "ECE_BINS",
    "FGSM_EPS",
    "EvalAccumulator",
    "EvalMetrics",
    "ece",
    "fgsm_bounds",
    "fgsm_inputs",
]

#: Confidence bins of the expected calibration error.
ECE_BINS = 15
#: FGSM step, as a fraction of the input range (the usual 8/255 for 8-bit images).
FGSM_EPS = 8 / 255


def ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Expected calibration error of softmax ``probs`` ``[N, C]`` against ``labels``."""
    acc = EvalAccumulator(probs.shape[1], probs.device, bins=bins)
    acc.add_calibration(probs, labels)
    return acc.ece()


def fgsm_bounds(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(eps, lo, hi)`` per channel, ``[1, C, 1, 1]``, for images normalised as
    ``(x - mean) / std`` from [0, 1]: the step :data:`FGSM_EPS` of the input range and
    the range itself, in normalised units."""
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return FGSM_EPS / s, (0.0 - m) / s, (1.0 - m) / s


def fgsm_inputs(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: torch.Tensor | float,
    lo: torch.Tensor | float,
    hi: torch.Tensor | float,
) -> torch.Tensor:
    """``x`` moved by one FGSM step of size ``eps`` (in ``x``'s units), clamped to
    ``[lo, hi]``; each may be a tensor broadcasting per channel (``[1, C, 1, 1]``), as
    for normalised images, whose range and step differ per channel."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x).float(), y)
        (grad,) = torch.autograd.grad(loss, x)
    moved = x.detach() + torch.as_tensor(eps, device=x.device) * grad.sign()
    hi_t = torch.as_tensor(hi, device=x.device, dtype=moved.dtype)
    lo_t = torch.as_tensor(lo, device=x.device, dtype=moved.dtype)
    return torch.maximum(torch.minimum(moved, hi_t), lo_t)


@dataclass
class EvalAccumulator:
    """Counts on the device for top-1/top-5, calibration bins and FGSM hits; one host
    read in :meth:`result`."""

    num_classes: int
    device: torch.device | str
    bins: int = ECE_BINS
    total: int = 0
    fgsm_total: int = 0
    _c1: torch.Tensor = field(init=False, repr=False)
    _c5: torch.Tensor = field(init=False, repr=False)
    _fgsm: torch.Tensor = field(init=False, repr=False)
    _count: torch.Tensor = field(init=False, repr=False)
    _conf: torch.Tensor = field(init=False, repr=False)
    _hit: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        dev = torch.device(self.device)
        self._c1 = torch.zeros((), device=dev, dtype=torch.long)
        self._c5 = torch.zeros((), device=dev, dtype=torch.long)
        self._fgsm = torch.zeros((), device=dev, dtype=torch.long)
        self._count = torch.zeros(self.bins, device=dev, dtype=torch.float64)
        self._conf = torch.zeros(self.bins, device=dev, dtype=torch.float64)
        self._hit = torch.zeros(self.bins, device=dev, dtype=torch.float64)

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """One batch of clean logits: top-1, top-5 and calibration."""
        logits = logits.float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top == labels.view(-1, 1)
        self._c1 += hit[:, 0].sum()
        self._c5 += hit.any(dim=1).sum()
        self.total += len(labels)
        self.add_calibration(logits.softmax(dim=1), labels)

    def add_calibration(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        """Bin the confidence of each prediction with whether it was right."""
        conf, pred = probs.max(dim=1)
        idx = (conf * self.bins).long().clamp_(0, self.bins - 1)
        conf64 = conf.to(torch.float64)
        self._count.index_add_(0, idx, torch.ones_like(conf64))
        self._conf.index_add_(0, idx, conf64)
        self._hit.index_add_(0, idx, (pred == labels).to(torch.float64))

    def add_fgsm(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """One batch of logits on FGSM inputs."""
        self._fgsm += (logits.argmax(dim=1) == labels).sum()
        self.fgsm_total += len(labels)

    def ece(self) -> float:
        """The expected calibration error of what was added (one host read)."""
        return float(self._ece())

    def _ece(self) -> torch.Tensor:
        return (self._hit - self._conf).abs().sum() / self._count.sum().clamp_min(1)

    def result(self) -> EvalMetrics:
        """Every metric, read from the device once."""
        if self.total == 0:
            raise ValueError("the test split is empty")
        counts = [self._c1, self._c5, self._ece(), self._fgsm]
        c1, c5, calib, fgsm = torch.stack([c.to(torch.float64) for c in counts]).tolist()
        return EvalMetrics(
            top1=100.0 * c1 / self.total,
            top5=100.0 * c5 / self.total,
            ece=calib,
            fgsm_top1=100.0 * fgsm / self.fgsm_total if self.fgsm_total else float("nan"),
        )
