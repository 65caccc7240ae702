"""ResizeMix's two geometries: the paper's reading (default) and OpenMixup's
(``openmixup/models/augments/resizemix.py``, Westlake-AI/openmixup commit 755103b, the
code behind most published ResizeMix numbers), and what the choice changes.

Run ``python plugins/arena-resizemix/tests/test_fidelity.py`` to print the figures the
README quotes (100,000 draws at 32 px)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from arena_resizemix import ResizeMix, cutmix_box

from msda_arena import SpecError, get_method
from msda_arena.testing import assert_conforms


def test_openmixup_geometry_conforms():
    assert_conforms("resizemix(geometry=openmixup)")
    assert get_method("resizemix").geometry == "paper"
    with pytest.raises(SpecError, match="paper or openmixup"):
        get_method("resizemix(geometry=square)")


def test_openmixup_squashes_the_partner_into_cutmixs_clipped_box_nearest():
    # OpenMixup: cut = int(side * tau), centre uniform over the pixels, the box
    # centre -+ cut // 2 clipped to the image, the whole partner resized into it with
    # F.interpolate(mode="nearest"), weight 1 - box area / image area.
    b, c, h, w = 12, 3, 32, 28
    x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(0))
    partner = torch.randperm(b, generator=torch.Generator().manual_seed(1))
    method = get_method("resizemix(geometry=openmixup)")
    for seed, lam in enumerate((torch.rand(b) * 0.7 + 0.1, torch.tensor([0.45]))):
        mixed, weight = method.mix(x, None, partner, lam, torch.Generator().manual_seed(seed))
        # the same two uniforms the method drew: the centre
        u = torch.rand(
            2, lam.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        for i in range(b):
            k = i if lam.shape[0] == b else 0
            tau = float(lam[k].double())
            cut_h, cut_w = int(h * tau), int(w * tau)
            cy, cx = int(float(u[0, k]) * h), int(float(u[1, k]) * w)
            y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
            x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
            expect = x[i].clone()
            if y2 > y1 and x2 > x1:
                expect[:, y1:y2, x1:x2] = F.interpolate(
                    x[partner[i]][None], size=(y2 - y1, x2 - x1), mode="nearest"
                )[0]
            assert torch.equal(mixed[i], expect)
            assert float(weight[i]) == pytest.approx(1 - (y2 - y1) * (x2 - x1) / (h * w), abs=1e-7)


def measure(draws: int, size: int = 32) -> dict[str, dict[str, float]]:
    """Per geometry at ``size`` px, tau ~ U(0.1, 0.8): the mean weight of y_i, the mean
    pasted area (a fraction of the image) and the share of pasted partners whose box
    is not the uncut ``cut x cut`` square (squashed: distorted or shrunk)."""
    g = torch.Generator().manual_seed(0)
    method = ResizeMix()
    tau = method.sample_lam(draws, g).double()
    cut = torch.floor(tau * size).long()
    u = torch.rand(2, draws, generator=g, dtype=torch.float64)
    out = {}
    _, _, box_h, box_w = cutmix_box(u, cut, cut, size, size)
    for name, (bh, bw) in (("paper", (cut, cut)), ("openmixup", (box_h, box_w))):
        area = (bh * bw).double() / size**2
        squashed = ((bh != cut // 2 * 2) | (bw != cut // 2 * 2)).double().mean()
        out[name] = {
            "weight": float(1 - area.mean()),
            "area": float(area.mean()),
            "squashed": float(squashed) if name == "openmixup" else 0.0,
            "aspect_changed": float((bh != bw).double().mean()),
        }
    return out


def test_openmixup_pastes_less_than_the_papers_reading():
    figures = measure(20000)
    assert figures["openmixup"]["area"] < figures["paper"]["area"] - 0.05
    assert figures["paper"]["aspect_changed"] == 0.0 < figures["openmixup"]["aspect_changed"]


def test_the_geometry_the_method_uses_is_the_one_measured():
    # the measured weights are what mix() returns: one draw per sample at 32 px
    figures = measure(40000)
    for geometry in ("paper", "openmixup"):
        method = get_method(f"resizemix(geometry={geometry})")
        g = torch.Generator().manual_seed(3)
        lam = method.sample_lam(4000, g)
        x = torch.zeros(4000, 1, 32, 32)
        _, weight = method.mix(x, None, torch.arange(4000).flip(0), lam, g)
        assert abs(float(weight.mean()) - figures[geometry]["weight"]) < 0.01


if __name__ == "__main__":
    for name, row in measure(100000).items():
        print(name, ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
