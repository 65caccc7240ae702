"""PuzzleMix for msda-arena: Kim, Choo & Song, "Puzzle Mix: Exploiting Saliency and
Local Statistics for Optimal Mixup", ICML 2020 (reference code: github.com/snu-mllab/PuzzleMix,
``mixup.py``: ``mixup_graph``, ``graphcut_multi``, ``neigh_penalty``, ``mask_transport``,
``transport_image``, ``cost_matrix``).

One call of :meth:`PuzzleMix.mix` on a batch ``x`` ``[B, C, H, W]``, partner ``j = partner[i]``
and lambda (one per batch or one per sample):

1. **Block grid.** ``block_num`` is drawn uniformly from the reference's choices
   ``{2, 4, 8, 16}`` (``2 ** randint(1, 5)``), one per call, from the generator; at sizes
   where a choice does not divide both ``H`` and ``W`` it is left out (see
   :func:`block_geometries`). Blocks are ``H / block_num`` x ``W / block_num`` pixels.
2. **Unary term.** The saliency ``s`` ``[B, H, W]`` (the model's input-gradient RMS over
   channels) is average-pooled over blocks and normalised to sum 1 per image:
   ``u_i``; ``u_j = u_i[partner]``.
3. **Data smoothness.** Images (on a pixel scale: ``x * pixel_std``; the reference uses
   ``x * std + mean`` and the mean cancels in differences) are average-pooled in
   ``neigh_size`` cells; for each pair of adjacent blocks and each of the four
   (image of one block, image of the other) choices, the mean absolute difference across
   the shared border, times ``beta / block_num / 16 * gamma`` (``neigh_penalty``).
   These are folded into the unaries and the edge weights exactly as the reference does.
4. **Graph cut** (``graphcut_multi``), one per sample, with ``gco.cut_grid_graph`` and
   ``algorithm='swap'``: ``n_labels`` labels ``m in {1, ..., 0}`` (the weight of ``x_i``);
   label cost ``(1 - t) * u_j + t * u_i + eta * prior / block_num**2`` with
   ``t = 1 - m`` and the binomial prior ``-log P(m | lambda)``; pairwise cost
   ``(l - l')**2 / (n_labels - 1)**2`` times ``edge + beta``. Costs are scaled by
   ``1000 * block_num**2`` and truncated to integers, as in the reference.
5. **Transport** (``transport=True``; ``mask_transport``/``transport_image``): on a grid of
   ``t_size`` x ``t_size`` cells the mask is upsampled (nearest) and, separately for
   ``x_i`` (mask ``> 0``) and ``x_j`` (``1 - mask > 0``), the iterative assignment moves
   whole cells: cost ``t_eps * |p - q|^2 / (grid - 1)^2 - u(p) * [mask(q) > 0]``; each
   source picks its cheapest destination, each destination keeps its cheapest claimant,
   losers pay 1 more; ``grid`` rounds; the last round's winners are the plan.
6. ``mixed = M * T(x_i) + (1 - M) * T(x_j)``; the label weight is ``mean(M)`` (the
   reference's ``ratio``).

Differences from the reference are listed in README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from msda_arena import MixMethod, Param, hookimpl
from msda_arena.contract import ALPHA

__version__ = "0.1.0"

__all__ = [
    "BLOCK_CHOICES",
    "MAX_TRANSPORT_CELLS",
    "BlockGeometry",
    "PuzzleMix",
    "block_geometries",
    "graph_cut_masks",
    "transport_plan",
]

#: The reference's choices of the graph-cut grid, ``2 ** np.random.randint(1, 5)``.
BLOCK_CHOICES = (2, 4, 8, 16)
#: The largest transport grid allowed (cells). The reference's largest is 16 x 16 (its
#: ``cost_matrix_dict``); the assignment holds ``2 B cells^2`` floats, so 32 x 32 is the cap.
MAX_TRANSPORT_CELLS = 1024
#: CIFAR-100's per-channel std (the harness's normalisation), averaged: the scale that
#: turns normalised differences back into the [0, 1] pixel differences the reference uses.
CIFAR100_PIXEL_STD = 0.2666


def _finite_nonneg(v: float) -> bool:
    return 0 <= v < float("inf")


@dataclass(frozen=True)
class BlockGeometry:
    """One admissible block grid for an ``H`` x ``W`` image.

    Attributes:
        block_num: graph-cut cells per side.
        bh, bw: block height and width in pixels.
        nh, nw: the ``neigh_size`` pooling cell (the largest divisor of the block side
            that is at most ``neigh_size``; ``min(neigh_size, block)`` wherever the
            reference runs).
        th, tw: the transport cell (``min(t_size, block)`` if it tiles the block, else
            the block, as ``t_size=-1``).
        gh, gw: the transport grid (``H / th`` x ``W / tw``).
    """

    block_num: int
    bh: int
    bw: int
    nh: int
    nw: int
    th: int
    tw: int
    gh: int
    gw: int


def _largest_divisor_at_most(n: int, k: int) -> int:
    return max(d for d in range(1, min(n, k) + 1) if n % d == 0)


def _transport_cell(block: int, t_size: int) -> int:
    if t_size == -1:
        return block
    t = min(t_size, block)
    return t if block % t == 0 else block


def block_geometries(
    height: int, width: int, neigh_size: int = 4, t_size: int = 4
) -> tuple[BlockGeometry, ...]:
    """The block grids PuzzleMix may draw for ``height`` x ``width`` images.

    The reference draws ``block_num`` from ``(2, 4, 8, 16)`` and needs it to divide the
    (square) image side; here it must divide both ``height`` and ``width`` (blocks may be
    rectangular), and choices that do not are left out. At 32 x 32 all four remain.

    Raises:
        ValueError: no choice divides both sides (an odd side), or a transport grid
            would exceed :data:`MAX_TRANSPORT_CELLS` cells.
    """
    out = []
    for bn in BLOCK_CHOICES:
        if height % bn or width % bn:
            continue
        bh, bw = height // bn, width // bn
        th, tw = _transport_cell(bh, t_size), _transport_cell(bw, t_size)
        out.append(
            BlockGeometry(
                bn,
                bh,
                bw,
                _largest_divisor_at_most(bh, neigh_size),
                _largest_divisor_at_most(bw, neigh_size),
                th,
                tw,
                height // th,
                width // tw,
            )
        )
    if not out:
        raise ValueError(
            f"puzzlemix needs a block grid of 2, 4, 8 or 16 cells per side that divides "
            f"the image; {height}x{width} has none (both sides must be even)"
        )
    return tuple(out)


def _check_transport_size(geoms: tuple[BlockGeometry, ...], height: int, width: int) -> None:
    worst = max(geoms, key=lambda g: g.gh * g.gw)
    if worst.gh * worst.gw > MAX_TRANSPORT_CELLS:
        raise ValueError(
            f"puzzlemix: at {height}x{width} with block_num={worst.block_num} the transport "
            f"grid would be {worst.gh}x{worst.gw} cells (at most {MAX_TRANSPORT_CELLS}; the "
            "reference's t_size=4 is its CIFAR setting for 32 px); use a larger t_size, "
            "t_size=-1 (transport on the graph-cut grid, the reference's ImageNet setting) "
            "or transport=false"
        )


def _normalised_pool(s: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Saliency ``[B, H, W]`` average-pooled in ``kh x kw`` cells, each image's cells
    summing to 1 (an all-zero map stays zero; the reference divides by zero there)."""
    pooled = F.avg_pool2d(s.unsqueeze(1), (kh, kw)).squeeze(1)
    total = pooled.sum(dim=(1, 2), keepdim=True)
    return pooled / torch.where(total > 0, total, torch.ones_like(total))


def _neigh_penalty(
    first: torch.Tensor, second: torch.Tensor, geom: BlockGeometry
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean absolute difference across each block border (the reference's
    ``neigh_penalty``) for pooled images ``[N, C, H / nh, W / nw]``: the upper (left)
    block from ``first`` and the lower (right) one from ``second``. Returns
    ``([N, bn - 1, bn], [N, bn, bn - 1])``."""
    kh, kw = geom.bh // geom.nh, geom.bw // geom.nw
    vert = (first[:, :, :-1, :] - second[:, :, 1:, :])[:, :, kh - 1 :: kh, :]
    horiz = (first[:, :, :, :-1] - second[:, :, :, 1:])[:, :, :, kw - 1 :: kw]
    vert = F.avg_pool2d(vert.abs().mean(1), kernel_size=(1, kw))
    horiz = F.avg_pool2d(horiz.abs().mean(1), kernel_size=(kh, 1))
    return vert, horiz


def _graph_terms(
    x: torch.Tensor,
    s: torch.Tensor,
    partner: torch.Tensor,
    geom: BlockGeometry,
    beta: float,
    gamma: float,
    pixel_std: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The graph cut's inputs, batched on ``x``'s device (the reference's ``mixup_graph``
    up to its CPU copy): ``(cost_partner, cost_own, edge_v, edge_h)``, see
    :func:`graph_cut_masks`."""
    b = x.shape[0]
    bn = geom.block_num
    beta_n = beta / bn / 16
    u_own = _normalised_pool(s, geom.bh, geom.bw)  # [B, bn, bn]
    u_partner = u_own[partner]

    pooled = F.avg_pool2d(x.float() * pixel_std, (geom.nh, geom.nw))
    pooled_p = pooled[partner]
    # (first, second) = (partner, partner), (partner, own), (own, partner), (own, own):
    # the reference's pw[:, 0, 0], pw[:, 0, 1], pw[:, 1, 0], pw[:, 1, 1].
    first = torch.cat([pooled_p, pooled_p, pooled, pooled])
    second = torch.cat([pooled_p, pooled, pooled_p, pooled])
    vert, horiz = _neigh_penalty(first, second, geom)
    vert = (beta_n * gamma * vert).view(4, b, bn - 1, bn)
    horiz = (beta_n * gamma * horiz).view(4, b, bn, bn - 1)
    v00, v01, v10, v11 = vert.unbind(0)
    h00, h01, h10, h11 = horiz.unbind(0)

    # The reference's unary2 (cost of label "x_i", i.e. the partner's saliency lost) and
    # unary1 (cost of label "x_j"), each with half of the expected border costs.
    un_p = u_partner.clone()
    un_o = u_own.clone()
    un_p[:, :-1, :] += (v10 + v11) / 2.0
    un_o[:, :-1, :] += (v01 + v00) / 2.0
    un_p[:, 1:, :] += (v01 + v11) / 2.0
    un_o[:, 1:, :] += (v10 + v00) / 2.0
    un_p[:, :, :-1] += (h10 + h11) / 2.0
    un_o[:, :, :-1] += (h01 + h00) / 2.0
    un_p[:, :, 1:] += (h01 + h11) / 2.0
    un_o[:, :, 1:] += (h10 + h00) / 2.0
    edge_v = (v10 + v01 - v11 - v00) / 2
    edge_h = (h10 + h01 - h11 - h00) / 2
    return un_p, un_o, edge_v, edge_h


def _prior(lam: np.ndarray, n_labels: int, eps: float = 1e-8) -> np.ndarray:
    """``-log P(label)`` ``[B, n_labels]``: label ``l`` has weight ``1 - l / (n - 1)`` on
    ``x_i`` and binomial probability ``C(n-1, l) lam^(n-1-l) (1-lam)^l`` (the reference's
    tables for 2, 3 and 4 labels)."""
    lam = lam.astype(np.float64)[:, None]
    k = np.arange(n_labels)[None, :]
    comb = np.array([math.comb(n_labels - 1, int(i)) for i in range(n_labels)], np.float64)
    p = comb[None, :] * lam ** (n_labels - 1 - k) * (1 - lam) ** k
    return -np.log(p + eps)


def graph_cut_masks(
    cost_partner: np.ndarray,
    cost_own: np.ndarray,
    edge_v: np.ndarray,
    edge_h: np.ndarray,
    lam: np.ndarray,
    beta: float,
    eta: float,
    n_labels: int,
) -> np.ndarray:
    """The reference's ``graphcut_multi`` for a batch, one ``gco.cut_grid_graph`` call
    per sample: masks ``[B, bn, bn]`` float32 in ``{0, 1 / (n - 1), ..., 1}``, the weight
    of ``x_i`` per block.

    Args:
        cost_partner: ``[B, bn, bn]`` float32, the reference's ``unary2``: the cost of
            giving a block wholly to ``x_i`` (the partner's normalised saliency lost there,
            plus half the expected border terms).
        cost_own: the reference's ``unary1``: the cost of giving it wholly to ``x_j``.
        edge_v, edge_h: ``[B, bn - 1, bn]`` and ``[B, bn, bn - 1]`` float32 edge terms.
        lam: ``[B]``, the prior's lambda per sample.
        beta: the normalised ``beta / block_num / 16``.

    The reference hands gco a float32 pairwise table, so gco scales unaries by 1e5, edge
    weights by 1e3 and the table by 100 (truncating) before its integer solver; here the
    integers are built directly at 1/1000 of that scale (unaries x 100, edge weights as
    they are, the table x 100 truncated), so every energy is the reference's divided by
    1000: the same labelling, without the int32 overflow the 1e5 factor causes for a
    block holding a large share of the saliency at block_num 16.
    """
    import gco

    b, bn, _ = cost_own.shape
    large_val = 1000 * bn**2
    prior = (eta * _prior(lam, n_labels) / bn**2).astype(np.float32)  # [B, L]
    # float32 arithmetic as the reference (numpy scalars times float32 arrays).
    # label l (weight 1 - t on x_i, t = l / (n - 1)) costs (1 - t) * cost_partner +
    # t * cost_own: the reference's graphcut_multi(unary2[i], unary1[i], ...)
    t = np.linspace(0, 1, n_labels)
    unary = np.stack(
        [np.float32(1 - ti) * cost_partner + np.float32(ti) * cost_own for ti in t], axis=-1
    )  # [B, bn, bn, L]
    unary = (unary + prior[:, None, None, :]) * np.float32(large_val)
    unary = np.trunc(unary).astype(np.int64) * 100
    beta32 = np.float32(beta)
    cost_v = np.trunc((edge_v + beta32) * np.float32(large_val)).astype(np.int64)
    cost_h = np.trunc((edge_h + beta32) * np.float32(large_val)).astype(np.int64)
    levels = np.arange(n_labels)
    table = ((levels[:, None] - levels[None, :]) ** 2 / (n_labels - 1) ** 2).astype(np.float32)
    table = (table * np.float32(100)).astype(np.int32)
    limit = np.iinfo(np.int32).max
    for arr, scale in ((unary, 1), (cost_v, int(table.max())), (cost_h, int(table.max()))):
        if arr.size and np.abs(arr).max() * scale > limit:
            raise ValueError("puzzlemix: graph-cut costs overflow int32; lower beta, gamma or eta")
    unary = unary.astype(np.int32)
    cost_v = cost_v.astype(np.int32)
    cost_h = cost_h.astype(np.int32)
    masks = np.empty((b, bn, bn), dtype=np.float32)
    for i in range(b):
        labels = gco.cut_grid_graph(unary[i], table, cost_v[i], cost_h[i], algorithm="swap")
        masks[i] = (1.0 - labels / (n_labels - 1)).reshape(bn, bn)
    return masks


def _cost_matrix(gh: int, gw: int, device: torch.device) -> torch.Tensor:
    """``|p - q|^2 / (side - 1)^2`` between the cells of a ``gh x gw`` grid (row-major),
    ``side = max(gh, gw)``: the reference's ``cost_matrix(width)`` for a square grid."""
    rows = torch.arange(gh, device=device).repeat_interleave(gw)
    cols = torch.arange(gw, device=device).repeat(gh)
    d2 = (rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2
    return d2.float() / float((max(gh, gw) - 1) ** 2)


def transport_plan(
    cost: torch.Tensor, n_iter: int, n_loop: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's ``mask_transport`` assignment, batched and sparse.

    ``cost`` ``[N, n, n]`` (source row, destination column) is updated in place. Each
    round, every source takes its cheapest destination (first on ties); each destination
    keeps the claimant that ``min`` over the column of ``plan * cost`` picks (first on
    ties, where a row that did not claim it counts as 0, so a column whose claimants all
    cost more than 0 keeps nobody); every other claimant pays 1 more. The winners of
    round ``n_iter`` are the plan, exactly the dense ``plan_win`` of the reference.

    ``n_loop`` (>= ``n_iter``) runs that many rounds and keeps round ``n_iter``'s result,
    so the torch program is the same whatever grid a call draws.

    Returns:
        ``(dest, won)``: ``[N, n]`` each source's destination and whether it won it.
    """
    big, n, _ = cost.shape
    idx = torch.arange(n, device=cost.device).expand(big, n)
    inf = torch.full((big, n), float("inf"), device=cost.device)
    none = torch.full((big, n), n, dtype=torch.long, device=cost.device)
    kept: tuple[torch.Tensor, torch.Tensor] | None = None
    for rnd in range(max(n_iter, n_loop or 0)):
        val, dest = cost.min(-1)  # [N, n]; the reference's cost.min(-1)[1]
        col_min = inf.scatter_reduce(-1, dest, val, "amin")
        claims = torch.zeros_like(val).scatter_add(-1, dest, torch.ones_like(val))
        # the column minimum of plan * cost: unclaimed rows count as 0
        col_min = torch.where(claims < n, col_min.clamp(max=0.0), col_min)
        hit = val == col_min.gather(-1, dest)
        first_hit = none.scatter_reduce(-1, dest, torch.where(hit, idx, none), "amin")
        # the first row that did not claim column j: 0, unless row 0 claimed j; then the
        # first row whose destination differs from row 0's (n if none)
        differs = dest != dest[:, :1]
        first_other = torch.where(differs.any(-1), differs.int().argmax(-1), n)
        first_free = torch.zeros_like(dest).scatter(-1, dest[:, :1], first_other.unsqueeze(-1))
        winner = torch.where(col_min == 0, torch.minimum(first_hit, first_free), first_hit)
        won = winner.gather(-1, dest) == idx
        cost.scatter_add_(-1, dest.unsqueeze(-1), (~won).unsqueeze(-1).float())
        if rnd < n_iter:
            kept = (dest, won)
    assert kept is not None
    return kept


def _move_cells(
    images: torch.Tensor, dest: torch.Tensor, won: torch.Tensor, geom: BlockGeometry
) -> torch.Tensor:
    """``images`` ``[N, C, H, W]`` with each transport cell moved to its destination
    (``transport_image``). A destination no source won keeps its own cell (the reference
    leaves it zero; that happens only where the mask gives the image no weight, unless
    the saliency of a kept cell is exactly 0)."""
    big, c, h, w = images.shape
    n = geom.gh * geom.gw
    idx = torch.arange(n, device=images.device).expand(big, n)
    src = torch.full((big, n), -1, dtype=torch.long, device=images.device)
    src = src.scatter_reduce(-1, dest, torch.where(won, idx, -1), "amax")
    src = torch.where(src < 0, idx, src)
    cells = images.reshape(big, c, geom.gh, geom.th, geom.gw, geom.tw)
    cells = cells.permute(0, 2, 4, 1, 3, 5).reshape(big, n, c, geom.th, geom.tw)
    moved = cells[torch.arange(big, device=images.device).unsqueeze(1), src]
    moved = moved.reshape(big, geom.gh, geom.gw, c, geom.th, geom.tw)
    return moved.permute(0, 3, 1, 4, 2, 5).reshape(big, c, h, w)


class PuzzleMix(MixMethod):
    """PuzzleMix (Kim, Choo, Song, ICML 2020): a saliency-guided graph-cut mask with
    optimal transport of salient blocks, as in the reference code's ``mixup_graph``
    (see the module docstring and README.md for the steps and the differences)."""

    name = "puzzlemix"
    needs_saliency = True
    summary = "saliency graph-cut masks + block transport (Kim et al., ICML 2020)"
    params = (
        ALPHA,
        Param(
            "n_labels",
            int,
            3,
            "mask levels per block (2: binary; 3: 0, 0.5, 1)",
            lambda v: v in (2, 3, 4),
            "n_labels in 2, 3, 4",
        ),
        Param("eta", float, 0.2, "weight of the lambda prior", _finite_nonneg, "eta >= 0"),
        Param("beta", float, 1.2, "label smoothness", _finite_nonneg, "beta >= 0"),
        Param("gamma", float, 0.5, "data local smoothness", _finite_nonneg, "gamma >= 0"),
        Param(
            "neigh_size",
            int,
            4,
            "pooling cell (px) for the data smoothness term",
            lambda v: v >= 1,
            "neigh_size >= 1",
        ),
        Param("transport", bool, True, "move salient blocks into the kept region"),
        Param(
            "t_size",
            int,
            4,
            "transport cell (px); -1: the graph-cut block",
            lambda v: v == -1 or v >= 1,
            "t_size >= 1 or t_size = -1",
        ),
        Param("t_eps", float, 0.8, "transport distance cost", _finite_nonneg, "t_eps >= 0"),
        Param(
            "pixel_std",
            float,
            CIFAR100_PIXEL_STD,
            "dataset std that un-normalises images for the smoothness term",
            lambda v: 0 < v < float("inf"),
            "pixel_std > 0",
        ),
    )

    def mix(self, x, y, partner, lam, generator, saliency=None):
        if saliency is None:
            raise ValueError("puzzlemix needs the model's saliency; pass saliency=")
        if x.ndim != 4:
            raise ValueError(f"puzzlemix takes images [B, C, H, W], got {list(x.shape)}")
        b, _, h, w = x.shape
        v = self.values
        geoms = block_geometries(h, w, v["neigh_size"], v["t_size"])
        if v["transport"]:
            _check_transport_size(geoms, h, w)
        if lam.numel() not in (1, b):
            raise ValueError(f"lam must have 1 or {b} values, got shape {list(lam.shape)}")

        s = saliency(x)
        if tuple(s.shape) != (b, h, w):
            raise ValueError(f"saliency must return [B, H, W] = {[b, h, w]}, got {list(s.shape)}")
        with torch.no_grad():
            s = torch.nan_to_num(s.detach().float(), nan=0.0, posinf=0.0, neginf=0.0)
            pick = torch.randint(len(geoms), (1,), generator=generator, device=x.device)
            geom = geoms[int(pick.item())]
            mask = self._graph_cut(x, s, partner, lam.float().reshape(-1).expand(b), geom)
            # [B, bn, bn] -> pixels (the reference's nearest F.interpolate)
            mask_px = mask.repeat_interleave(geom.bh, 1).repeat_interleave(geom.bw, 2)
            mask_px = mask_px.unsqueeze(1)  # [B, 1, H, W]
            own, other = x, x[partner]
            if v["transport"]:
                own, other = self._transport(x, s, partner, mask, geom, geoms)
            m = mask_px.to(x.dtype)
            mixed = m * own + (1 - m) * other
            weight = mask_px.mean(dim=(1, 2, 3))
        return mixed, weight

    def _graph_cut(
        self,
        x: torch.Tensor,
        s: torch.Tensor,
        partner: torch.Tensor,
        lam: torch.Tensor,
        geom: BlockGeometry,
    ) -> torch.Tensor:
        """Masks ``[B, bn, bn]`` (float32, on ``x``'s device): the terms are built on the
        device, copied to the CPU once, cut per sample by gco, and copied back once."""
        v = self.values
        b, bn = x.shape[0], geom.block_num
        un_p, un_o, edge_v, edge_h = _graph_terms(
            x, s, partner, geom, v["beta"], v["gamma"], v["pixel_std"]
        )
        packed = torch.cat(
            [un_p.flatten(1), un_o.flatten(1), edge_v.flatten(1), edge_h.flatten(1), lam[:, None]],
            dim=1,
        )
        host = packed.cpu().numpy()
        k = bn * bn
        e = (bn - 1) * bn
        cost_p = host[:, :k].reshape(b, bn, bn)
        cost_o = host[:, k : 2 * k].reshape(b, bn, bn)
        ev = host[:, 2 * k : 2 * k + e].reshape(b, bn - 1, bn)
        eh = host[:, 2 * k + e : 2 * k + 2 * e].reshape(b, bn, bn - 1)
        masks = graph_cut_masks(
            cost_p, cost_o, ev, eh, host[:, -1], v["beta"] / bn / 16, v["eta"], v["n_labels"]
        )
        return torch.from_numpy(masks).to(x.device)

    def _transport(
        self,
        x: torch.Tensor,
        s: torch.Tensor,
        partner: torch.Tensor,
        mask: torch.Tensor,
        geom: BlockGeometry,
        geoms: tuple[BlockGeometry, ...],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x_i`` and ``x_j`` with their cells moved (both in one batched assignment)."""
        b = x.shape[0]
        fh, fw = geom.gh // geom.block_num, geom.gw // geom.block_num
        mask_t = mask.repeat_interleave(fh, 1).repeat_interleave(fw, 2)  # [B, gh, gw]
        u = _normalised_pool(s, geom.th, geom.tw)
        keep = torch.cat([mask_t > 0, (1 - mask_t) > 0]).flatten(1).float()  # [2B, n]
        sal = torch.cat([u, u[partner]]).flatten(1)  # [2B, n]
        c = _cost_matrix(geom.gh, geom.gw, x.device)
        cost = self.values["t_eps"] * c.unsqueeze(0) - sal.unsqueeze(-1) * keep.unsqueeze(1)
        n_loop = max(max(g.gh, g.gw) for g in geoms)
        dest, won = transport_plan(cost, max(geom.gh, geom.gw), n_loop)
        moved = _move_cells(torch.cat([x, x[partner]]), dest, won, geom)
        return moved[:b], moved[b:]


@hookimpl
def register_mask_methods(register):
    """Register PuzzleMix as ``puzzlemix``."""
    register(PuzzleMix)
