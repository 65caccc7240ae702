"""Beta sampling from an explicit ``torch.Generator``, on any device, without a sync.

``torch.distributions.Beta`` uses the global random state, so results would depend
on everything else that draws random numbers. Here Beta(a, b) = X / (X + Y) with
X ~ Gamma(a), Y ~ Gamma(b), each Gamma drawn by Marsaglia & Tsang's method
(ACM TOMS 26(3), 2000) with a fixed number of vectorised proposal rounds, and
shape < 1 boosted by U^(1/a). Work is done in log space so tiny alphas do not
underflow to 0/0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_ROUNDS = 16  # P(all rounds rejected) < 0.05**16 for shape >= 1.


def _log_gamma(shape: float, n: int, generator: torch.Generator, device) -> torch.Tensor:
    import torch  # here, not at the top: the contract imports this module, `arena --help` too

    boost = shape < 1.0
    a = shape + 1.0 if boost else shape
    d = a - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    z = torch.randn(_ROUNDS, n, generator=generator, device=device, dtype=torch.float64)
    u = torch.rand(_ROUNDS, n, generator=generator, device=device, dtype=torch.float64)
    v = (1.0 + c * z) ** 3
    ok = (v > 0) & (torch.log(u) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-300)))
    first = ok.to(torch.int8).argmax(dim=0)
    v_first = v.gather(0, first[None]).squeeze(0)
    any_ok = ok.any(dim=0)
    log_g = torch.where(
        any_ok,
        torch.log(d * v_first.clamp_min(1e-300)),
        torch.log(torch.tensor(a, dtype=torch.float64, device=device)),
    )
    if boost:
        ub = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        log_g = log_g + torch.log(ub.clamp_min(1e-300)) / shape
    return log_g


def sample_beta(
    a: float, b: float, n: int, generator: torch.Generator, device=None
) -> torch.Tensor:
    """``n`` draws of Beta(a, b) as float32 on ``device`` (default: the generator's)."""
    import torch  # see _log_gamma

    if a <= 0 or b <= 0:
        raise ValueError(f"Beta parameters must be positive, got a={a}, b={b}")
    device = torch.device(device) if device is not None else generator.device
    if a == 1.0 and b == 1.0:
        return torch.rand(n, generator=generator, device=device)
    lx = _log_gamma(a, n, generator, device)
    ly = _log_gamma(b, n, generator, device)
    return torch.sigmoid(lx - ly).to(torch.float32)
