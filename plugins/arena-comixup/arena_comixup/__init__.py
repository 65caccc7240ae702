"""Co-Mixup for msda-arena: each output mixes blocks of several inputs of its partition,
chosen jointly for all outputs by graph cuts on the model's saliency.

Kim, Choo, Jeong, Song, "Co-Mixup: Saliency Guided Joint Mixup with Supermodular
Diversity", ICLR 2021. Reference code: https://github.com/snu-mllab/Co-Mixup
(``main.py``: the saliency and the compatibility matrix; ``mixup.py``:
``mixup_process``, the partitions; ``match.py``: ``get_onehot_matrix``,
``graphcut_wrapper``, ``graphcut_multi``, ``resolve_label``, ``obj_fn``, ``mix_input``).

Per batch: the input-gradient saliency of every image, average-pooled to a
``block_num x block_num`` grid and normalised to sum 1, is the unary term (the
negative saliency an output keeps by taking a block from an input); a Dirichlet prior
over the inputs of each partition of ``part`` consecutive images is added. For each
partition the assignment of every output block to an input (or to the half-half mix of
two inputs) minimises that unary term, a label-smoothness term (``beta``) and a
supermodular diversity penalty (``gamma``, with threshold ``thres`` and input
compatibility ``omega``), by the reference's iterative algorithm: ``niter`` rounds, each
re-solving one output at a time with an alpha-beta-swap graph cut (gco) against the
modularised penalty of the others. The mixed image takes each block from its
input(s); its label weights are the inputs' shares of its blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gco
import numpy as np
import torch
import torch.nn.functional as F

from msda_arena import FeatureMixMethod, ModelView, Param, hookimpl

__all__ = [
    "CoMixup",
    "Settings",
    "assign",
    "block_costs",
    "block_grid",
    "comixup_step",
    "compatibility",
    "draw",
    "mix_blocks",
    "objective",
    "resolve_label",
]

__version__ = "0.1.0"

_F32 = np.float32
# The soft labels of three assigned inputs (graphcut_wrapper's soft_label) and their
# pairwise costs against the inputs (graphcut_multi, n_label == 3).
_SOFT = np.array([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]], dtype=_F32)
_SOFT_PAIRWISE = np.array([[0.25, 0.25, 1.0], [0.25, 1.0, 0.25], [1.0, 0.25, 0.25]])
_SALIENT_WINDOW = 8  # main.py: the most salient location is that of an 8 x 8 mean


@dataclass(frozen=True)
class Settings:
    """The assignment's parameters, as the reference names them (``args.m_*``); the
    defaults are its CIFAR-100 command's."""

    m_part: int = 20
    m_beta: float = 0.32
    m_gamma: float = 1.0
    m_thres: float = 0.83
    m_thres_type: str = "hard"
    m_eta: float = 0.05
    m_omega: float = 0.001
    m_niter: int = 4
    set_resolve: bool = True


def block_grid(height: int, width: int, block_num: int) -> tuple[int, int]:
    """The labelling grid: ``block_num`` blocks a side (the reference's ``m_block_num``),
    fewer on a side with fewer pixels."""
    return min(block_num, height), min(block_num, width)


def compatibility(sc: torch.Tensor) -> torch.Tensor:
    """The reference's ``A_dist`` ``[B, B]`` (``main.py``): the L1 distance between the
    grid positions of the images' most salient 8 x 8 windows (mean saliency, stride 1;
    the window shrinks to the image when it is smaller)."""
    b, h, w = sc.shape
    z = F.avg_pool2d(sc, kernel_size=min(_SALIENT_WINDOW, h, w), stride=1)
    at = z.reshape(b, -1).argmax(dim=1)
    pos = torch.stack([at // z.shape[-1], at % z.shape[-1]], dim=1).float()
    return (pos.unsqueeze(1) - pos.unsqueeze(0)).abs().sum(-1)


def block_costs(
    sc: torch.Tensor, grid: tuple[int, int], prior: torch.Tensor, eta: float
) -> torch.Tensor:
    """The unary costs ``[B, gh, gw]`` float32: minus the saliency pooled per block and
    normalised to sum 1 per image (``mixup.py``), plus ``eta / (gh gw)`` times minus the
    log of each image's Dirichlet prior weight ``prior`` ``[B]`` (``get_onehot_matrix``).
    An image whose saliency is all zero gets no saliency term (the reference: NaN)."""
    b, h, w = sc.shape
    gh, gw = grid
    if h % gh == 0 and w % gw == 0:
        pooled = F.avg_pool2d(sc, (h // gh, w // gw))  # the reference's avg_pool2d(sc, block)
    else:  # a grid that does not tile the image (the reference needs one that does)
        pooled = F.adaptive_avg_pool2d(sc, grid)
    total = pooled.reshape(b, -1).sum(1).reshape(b, 1, 1)
    cost = torch.where(total > 0, -(pooled / total), torch.zeros_like(pooled))
    return cost - eta / gh / gw * torch.log(prior.reshape(b, 1, 1) + 1e-8)


def draw(
    batch: int,
    grid: tuple[int, int],
    part: int,
    alpha: float,
    generator: torch.Generator,
    device: torch.device | str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's random draws, from ``generator``: ``(prior, init)``. ``prior``
    ``[B]``: per partition of ``part`` consecutive rows, a Dirichlet(alpha, ..., alpha)
    draw over its inputs (normalised Gamma(alpha) draws, as ``torch.distributions.Dirichlet``
    samples); ``init`` ``[B, gh, gw]`` long: each output block's initial input, uniform
    over its partition (``random_initialize``)."""
    concentration = torch.full((batch,), float(alpha), device=device)
    # torch's own Dirichlet sampler (Gamma draws), here with an explicit generator
    gammas = torch._standard_gamma(concentration, generator=generator)
    parts = -(-batch // part)
    padded = torch.cat([gammas, gammas.new_zeros(parts * part - batch)])
    sums = padded.view(parts, part).sum(1)  # a fixed order (index_add's is not, on CUDA)
    which = torch.div(torch.arange(batch, device=device), part, rounding_mode="floor")
    prior = gammas / sums[which]
    size = (batch - which * part).clamp(max=part)  # the partition's number of inputs
    u = torch.rand(batch, *grid, generator=generator, device=device)
    init = (u * size.view(-1, 1, 1)).long().minimum(size.view(-1, 1, 1) - 1)
    return prior, init


def _onehot(index: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n, dtype=_F32)[index]


def objective(cost: np.ndarray, mask: np.ndarray, beta: float, gamma: float) -> float:
    """The reference's ``obj_fn`` (the objective without the threshold): unary, label
    smoothness and supermodular diversity of ``mask`` ``[n_out, gh, gw, n_in]`` under
    ``cost`` ``[n_in, gh, gw]`` (``beta``, ``gamma`` already divided by the grid size).
    In float64 (it only decides when the iterations stop)."""
    mask = mask.astype(np.float64)
    n_out, gh, gw, n_in = mask.shape
    counts = mask.reshape(n_out, gh * gw, n_in).sum(1)
    loss = float(np.sum(cost.transpose(1, 2, 0)[None].astype(np.float64) * mask))
    down = np.sum((mask[:, :-1] - mask[:, 1:]) ** 2)
    across = np.sum((mask[:, :, :-1] - mask[:, :, 1:]) ** 2)
    loss += beta / 2 * float(down + across)
    loss += gamma * float(np.sum(counts.sum(0) ** 2) - np.sum(counts**2))
    return loss


def resolve_label(assigned: np.ndarray) -> np.ndarray:
    """The reference's ``resolve_label``: for each pair of outputs ``i1 < i2`` that use
    the same set of inputs (``assigned`` ``[n_out, n_in]``, 0/1), an extra cost on the
    set's first input for ``i1`` and on its second for ``i2``."""
    add_cost = np.zeros_like(assigned)
    dist = np.minimum(np.abs(assigned[:, None] - assigned[None]).sum(-1), 1.0)
    for i1, i2 in np.argwhere(np.triu(1.0 - dist, k=1)):
        inputs = np.flatnonzero(assigned[i1])
        if len(inputs) > 1:
            add_cost[i1, inputs[0]] = 1.0
            add_cost[i2, inputs[1]] = 1.0
    return add_cost


def _cut(unary: np.ndarray, pairwise: np.ndarray, beta: float) -> np.ndarray:
    """``graphcut_multi``'s call: gco's alpha-beta swap on the grid, float32 costs (gco
    scales them to integers itself), smoothness ``beta`` on every edge."""
    gh, gw, _ = unary.shape
    cost_v = beta * np.ones((gh - 1, gw), dtype=_F32)
    cost_h = beta * np.ones((gh, gw - 1), dtype=_F32)
    unary = np.ascontiguousarray(unary)
    return gco.cut_grid_graph(unary, pairwise, cost_v, cost_h, algorithm="swap")


def _top3(count: np.ndarray) -> np.ndarray:
    """The three most used inputs, ties to the lower index: the reference's
    ``torch.topk(label_count, k=3)`` as CUDA computes it (ATen's ``gatherTopK`` keeps
    the first-seen values equal to the k-th; the CPU kernel chooses otherwise)."""
    return np.argsort(-count, kind="stable")[:3]


def _relabel(cost: np.ndarray, count: np.ndarray, beta: float, first: bool) -> np.ndarray:
    """``graphcut_wrapper``: one output's mask ``[gh, gw, n]`` for unary costs ``cost``
    ``[gh, gw, n]``. After the first round an output that uses two inputs may also give
    a block half to each (one extra label), one that uses three or more the half-half
    mixes of its three most used (three extra labels)."""
    gh, gw, n = cost.shape
    assigned = count > 0
    n_label = 0 if first else int(assigned.sum())
    if n_label == 2:
        extra = cost[:, :, assigned].sum(-1, keepdims=True) / _F32(2) - 5e-4  # their mean
        pairwise = np.ones((n + 1, n + 1), dtype=_F32) - np.eye(n + 1, dtype=_F32)
        pairwise[-1, :-1][assigned] = 0.25
        pairwise[:-1, -1][assigned] = 0.25
        labels = _cut(np.concatenate([cost, extra], axis=-1), pairwise, beta)
        onehot = _onehot(labels, n + 1).reshape(gh, gw, n + 1)
        half = np.zeros(n, dtype=_F32)
        half[assigned] = 0.5
        return onehot[:, :, :n] + onehot[:, :, n:] * half
    if n_label >= 3:
        assigned = np.zeros(n, dtype=bool)
        assigned[_top3(count)] = True
        extra = cost[:, :, assigned] @ _SOFT - 5e-4
        pairwise = np.ones((n + 3, n + 3), dtype=_F32) - np.eye(n + 3, dtype=_F32)
        pairwise[-3:, :-3][:, assigned] = _SOFT_PAIRWISE
        pairwise[:-3, -3:][assigned, :] = _SOFT_PAIRWISE
        labels = _cut(np.concatenate([cost, extra], axis=-1), pairwise, beta)
        onehot = _onehot(labels, n + 3).reshape(gh, gw, n + 3)
        halves = np.zeros((3, n), dtype=_F32)
        halves[:, assigned] = _SOFT
        return onehot[:, :, :n] + onehot[:, :, n:] @ halves
    pairwise = np.ones((n, n), dtype=_F32) - np.eye(n, dtype=_F32)
    return _onehot(_cut(cost, pairwise, beta), n).reshape(gh, gw, n)


def assign(cost: np.ndarray, a: np.ndarray, init: np.ndarray, s: Settings) -> np.ndarray:
    """The reference's ``get_onehot_matrix`` for one partition, after its prior: the mask
    ``[n, gh, gw, n]`` float32 (output, block row, block column, input; each block's
    weights 0, 1/2 or 1, summing to 1) from unary costs ``cost`` ``[n, gh, gw]``
    float32, the compatibility matrix ``a`` ``[n, n]`` float32 and the initial labels
    ``init`` ``[n, gh, gw]``.

    ``m_niter`` rounds (fewer when the objective stops changing, relative change
    below 1e-6); in each, every output in turn is re-solved with one graph cut against
    the thresholded penalty ``2 gamma (A p)`` of the inputs the other outputs use
    (``p``: their block counts), so the work is ``m_niter x n`` sequential graph cuts,
    as in the reference. ``A p`` is computed in float64 and rounded to float32 (the
    reference: a float32 product whose rounding depends on the BLAS)."""
    n_in, gh, gw = cost.shape
    n_out = init.shape[0]
    size = gh * gw
    thres = s.m_thres * gh * gw
    beta = s.m_beta / gh / gw
    gamma = s.m_gamma / gh / gw
    a64 = a.astype(np.float64)
    mask = _onehot(init.reshape(-1), n_in).reshape(n_out, gh, gw, n_in)
    loss_prev = objective(cost, mask, beta, gamma)
    penalty = mask.reshape(-1, n_in).sum(0)
    add_cost = None
    for it in range(s.m_niter):
        for i in range(n_out):
            count = mask[i].reshape(size, n_in).sum(0)
            penalty -= count
            ap = (a64 @ penalty.astype(np.float64)).astype(_F32)
            over = (ap > thres).astype(_F32)
            if s.m_thres_type == "hard":
                # (A p > thres) * A @ p: Python applies * before @, so the indicator
                # scales A's columns, (over * A) @ p, as the reference computes it
                kept = ((over * a).astype(np.float64) @ penalty.astype(np.float64)).astype(_F32)
                modular = 2 * gamma * kept
            else:
                modular = 2 * gamma * (over * (ap - thres))
            unary = cost + modular.reshape(-1, 1, 1)
            if add_cost is not None:
                unary = unary + gamma * add_cost[i].reshape(-1, 1, 1)
            mask[i] = _relabel(unary.transpose(1, 2, 0), count, beta, first=it == 0)
            penalty += mask[i].reshape(size, n_in).sum(0)
        if it == s.m_niter - 2 and s.set_resolve:
            used = (mask.reshape(n_out, -1, n_in).sum(1) > 0).astype(_F32)
            add_cost = resolve_label(used)
        loss = objective(cost, mask, beta, gamma)
        if loss != 0 and abs(loss_prev - loss) / abs(loss) < 1e-6:
            break
        loss_prev = loss
    return mask


def _partition_matrix(a_dist: np.ndarray, omega: float) -> np.ndarray:
    """``mixup.py``'s ``A`` for one partition: ``(1 - omega) I + omega A_dist`` with
    ``A_dist`` scaled to sum ``n``. All-zero distances (every image's salient window at
    the same place) stay zero (the reference: 0/0, NaN costs)."""
    n = a_dist.shape[0]
    total = a_dist.sum()
    scaled = a_dist / total * n if total > 0 else a_dist
    return (1 - omega) * np.eye(n, dtype=_F32) + omega * scaled


def comixup_step(
    h: torch.Tensor,
    sc: torch.Tensor,
    prior: torch.Tensor,
    init: torch.Tensor,
    grid: tuple[int, int],
    settings: Settings = Settings(),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """Co-Mixup with every draw given: ``(mixed, sources, weights, masks)``.

    Args:
        h: images ``[B, C, H, W]``.
        sc: their saliency ``[B, H, W]`` (float32, >= 0).
        prior, init: :func:`draw`'s Dirichlet weights and initial labels.
        grid: :func:`block_grid`.
        settings: the assignment's parameters.

    Returns ``mixed`` like ``h``; ``sources`` ``[B, k]`` (``k = min(m_part, B)``: the
    rows of output ``i``'s partition, padded with its first row at weight 0 in a short
    last partition) and ``weights`` ``[B, k]`` float32, each input's share of the
    output's blocks (the reference's soft label, summing to 1); ``masks``, the
    partitions' masks ``[n, gh, gw, n]`` (numpy), in order.
    """
    b = h.shape[0]
    part = settings.m_part
    k = min(part, b)
    cost = block_costs(sc.float(), grid, prior, settings.m_eta).cpu().numpy()
    a_dist = compatibility(sc.float()).cpu().numpy()
    init_np = init.cpu().numpy()
    gh, gw = grid
    index = np.zeros((b, 2, gh, gw), dtype=np.int64)
    weight = np.zeros((b, 2, gh, gw), dtype=_F32)
    sources = np.zeros((b, k), dtype=np.int64)
    weights = np.zeros((b, k), dtype=_F32)
    masks = []
    for start in range(0, b, part):
        stop = min(start + part, b)
        n = stop - start
        if n == 1:  # one image: itself (the reference's one-label cut, without its NaNs)
            mask = np.ones((1, gh, gw, 1), dtype=_F32)
        else:
            a = _partition_matrix(a_dist[start:stop, start:stop], settings.m_omega)
            mask = assign(cost[start:stop], a, init_np[start:stop], settings)
        masks.append(mask)
        # every block draws on at most two inputs: the two largest weights and their rows
        padded = np.concatenate([mask, np.zeros((n, gh, gw, 1), dtype=_F32)], axis=-1)
        top = np.argsort(-padded, axis=-1, kind="stable")[..., :2]
        top_w = np.take_along_axis(padded, top, axis=-1)
        index[start:stop] = np.minimum(top, n - 1).transpose(0, 3, 1, 2) + start
        weight[start:stop] = top_w.transpose(0, 3, 1, 2)
        counts = mask.reshape(n, gh * gw, n).sum(1)
        sources[start:stop] = start
        sources[start:stop, :n] = np.arange(start, stop)
        weights[start:stop, :n] = counts / counts.sum(-1, keepdims=True)
    dev = h.device
    mixed = mix_blocks(h, torch.from_numpy(index).to(dev), torch.from_numpy(weight).to(dev))
    out_sources = torch.from_numpy(sources).to(dev)
    return mixed, out_sources, torch.from_numpy(weights).to(dev), masks


def mix_blocks(h: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``mixed[i] = sum_t weight[i, t] * h[index[i, t]]`` per block, the blocks upsampled
    to the image by nearest neighbour (``mix_input``'s ``F.interpolate``); ``index``,
    ``weight`` ``[B, 2, gh, gw]``. In float32, returned in ``h``'s dtype."""
    b, c, height, width = h.shape
    size = (height, width)
    w_pix = F.interpolate(weight, size=size, mode="nearest").reshape(b, 2, -1)
    i_pix = F.interpolate(index.float(), size=size, mode="nearest").long().reshape(b, 2, -1)
    pixels = height * width
    flat = h.float().permute(1, 0, 2, 3).reshape(c, b * pixels)
    at = i_pix * pixels + torch.arange(pixels, device=h.device)
    src = flat[:, at]  # [C, B, 2, H*W]
    mixed = src[:, :, 0] * w_pix[:, 0] + src[:, :, 1] * w_pix[:, 1]
    return mixed.reshape(c, b, height, width).permute(1, 0, 2, 3).to(h.dtype)


def _settings(values: dict[str, Any]) -> Settings:
    return Settings(**{key: values[key] for key in Settings.__dataclass_fields__})


class CoMixup(FeatureMixMethod):
    """Co-Mixup: saliency-guided joint mixup of several inputs per output."""

    name = "comixup"
    params = (
        Param(
            "m_part",
            int,
            20,
            "partition size: the inputs an output may draw on",
            lambda v: v >= 1,
            "m_part >= 1",
        ),
        Param(
            "m_block_num",
            int,
            4,
            "labelling grid side in blocks; -1: 2, 4, 8 or 16 drawn per batch",
            lambda v: v >= 1 or v == -1,
            "m_block_num >= 1 or -1",
        ),
        Param(
            "mixup_alpha",
            float,
            2.0,
            "Dirichlet(alpha) concentration of the prior",
            lambda v: 0 < v < float("inf"),
            "mixup_alpha > 0",
        ),
        Param(
            "m_beta", float, 0.32, "label smoothness coefficient", lambda v: v >= 0, "m_beta >= 0"
        ),
        Param(
            "m_gamma",
            float,
            1.0,
            "supermodular diversity coefficient",
            lambda v: v >= 0,
            "m_gamma >= 0",
        ),
        Param(
            "m_thres",
            float,
            0.83,
            "diversity penalty threshold (tau)",
            lambda v: v >= 0,
            "m_thres >= 0",
        ),
        Param(
            "m_thres_type",
            str,
            "hard",
            "thresholding: 'hard' or 'soft'",
            lambda v: v in ("hard", "soft"),
            "'hard' or 'soft'",
        ),
        Param("m_eta", float, 0.05, "prior coefficient", lambda v: v >= 0, "m_eta >= 0"),
        Param(
            "m_omega",
            float,
            0.001,
            "input compatibility coefficient",
            lambda v: 0 <= v <= 1,
            "0 <= m_omega <= 1",
        ),
        Param(
            "m_niter",
            int,
            4,
            "outer iterations of the assignment",
            lambda v: v >= 1,
            "m_niter >= 1",
        ),
        Param("set_resolve", bool, True, "separate outputs that use the same inputs"),
    )
    summary = "several inputs per output: blocks assigned jointly by saliency graph cuts"
    needs_model = True

    def sample_lam(
        self, n: int, generator: torch.Generator, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Ones, drawing nothing: Co-Mixup has no lambda (its mixing proportions come out
        of the assignment, its prior is drawn in :meth:`mix`)."""
        return torch.ones(n, device=device if device is not None else generator.device)

    def mix(self, h, y, partner, lam, generator, model: ModelView | None = None):
        """``(mixed, sources, weights)`` at the input (stage 0): the saliency from
        ``model.saliency``; ``partner`` and ``lam`` are not used (partitions are runs of
        consecutive rows). Draws, from ``generator``: the grid when ``m_block_num`` is
        -1, then :func:`draw`'s prior and initial labels."""
        if model is None:
            raise ValueError("comixup needs the model's saliency (model=)")
        if h.ndim != 4:
            raise ValueError(
                f"comixup mixes images [B, C, H, W], got features of shape "
                f"{list(h.shape)}; use it at stage 0"
            )
        b, _, height, width = h.shape
        block_num = self.values["m_block_num"]
        if block_num == -1:  # mixup.py: 2 ** np.random.randint(1, 5)
            block_num = 2 ** int(torch.randint(1, 5, (1,), generator=generator, device=h.device))
        grid = block_grid(height, width, block_num)
        settings = _settings(self.values)
        alpha = self.values["mixup_alpha"]
        prior, init = draw(b, grid, settings.m_part, alpha, generator, h.device)
        sc = model.saliency(h)
        mixed, sources, weights, _ = comixup_step(h, sc, prior, init, grid, settings)
        return mixed, sources, weights


@hookimpl
def register_methods(register):
    """Register ``comixup``."""
    register(CoMixup)
