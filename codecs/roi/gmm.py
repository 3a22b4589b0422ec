"""Discretised Gaussian-mixture entropy model (Cheng et al., CVPR 2020) with real rANS coding.

Training / estimation (:func:`gmm_likelihood`): for a quantised latent ``ŷ`` (integers, or ``y + u`` with
uniform noise while training) and K mixture components,

    p(ŷ) = Σ_k w_k [Φ((ŷ + ½ − μ_k) / σ_k) − Φ((ŷ − ½ − μ_k) / σ_k)],   w = softmax(logits).

Coding (:func:`build_cdfs`): CompressAI has no mixture coder, so per symbol we build an integer CDF over a
window of ``2R + 1`` integers centred on ``c = round(Σ w_k μ_k)`` with ``R = ceil(max_k |μ_k − c| + T σ_k)``
(T = 8, capped), plus CompressAI's escape slot (values outside the window are coded exactly, in bypass mode).
Probabilities are computed in float64 and quantised to 16 bits (every symbol ≥ 1/2^16, the rounding
remainder goes to the most probable symbol). The rANS coder is CompressAI's ``BufferedRansEncoder`` /
``RansDecoder`` with one CDF per symbol (``indexes = 0..C−1`` into the position's table list).

Bit-exactness: the decoder must rebuild identical tables. Both sides call the same function with tensors of
the same shape (one latent position at a time, as in CompressAI's autoregressive ``compress``), and the
mixture parameters are first snapped to a grid (means to 1/256, log-scales to 1/64, weight logits to 1/64),
so that a last-bit difference in the network output almost never changes a table. Exactness is guaranteed
for encoder and decoder on the same platform and library versions; across platforms it is very likely but,
as for every learned codec with float entropy parameters, not guaranteed.
"""

from __future__ import annotations

import math

import torch

SCALE_MIN = 0.11
SCALE_MAX = 256.0
LIKELIHOOD_BOUND = 1e-9
PRECISION = 16
TAIL_T = 8.0
R_MAX = 512
MEAN_GRID = 256.0
LOGSCALE_GRID = 64.0
LOGIT_GRID = 64.0


def split_params(params: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(N, 3·K·C, H, W)`` → weight logits, means, scales, each ``(N, K, C, H, W)``."""
    n, ch, h, w = params.shape
    c = ch // (3 * K)
    p = params.view(n, 3, K, c, h, w)
    return p[:, 0], p[:, 1], p[:, 2]


def _phi(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2 ** -0.5))


def gmm_likelihood(y: torch.Tensor, logits: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Bin probability of ``y`` (N, C, H, W) under the mixture (params (N, K, C, H, W)), bounded below."""
    w = torch.softmax(logits, dim=1)
    s = scales.abs().clamp(SCALE_MIN, SCALE_MAX)
    v = (y.unsqueeze(1) - means).abs()
    upper = _phi((0.5 - v) / s)
    lower = _phi((-0.5 - v) / s)
    p = (w * (upper - lower)).sum(1)
    return p.clamp_min(LIKELIHOOD_BOUND)


def snap_params(logits: torch.Tensor, means: torch.Tensor, scales: torch.Tensor):
    """Parameters snapped to a coarse grid in float64 (see module docstring)."""
    lg = torch.round(logits.double() * LOGIT_GRID) / LOGIT_GRID
    mu = torch.round(means.double() * MEAN_GRID) / MEAN_GRID
    ls = torch.round(torch.log2(scales.double().abs().clamp(SCALE_MIN, SCALE_MAX)) * LOGSCALE_GRID) / LOGSCALE_GRID
    return lg, mu, torch.exp2(ls)


def build_cdfs(logits: torch.Tensor, means: torch.Tensor, scales: torch.Tensor):
    """Integer CDF tables for C symbols; params are ``(K, C)``.

    Returns ``(cdfs, lengths, offsets)`` as Python lists for CompressAI's rANS: ``cdfs[i]`` has
    ``lengths[i]`` entries ``0 … 2^16`` (``2R_i + 1`` window symbols, one escape slot, the end), and the
    symbol value ``v`` is coded as ``v − offsets[i]``.
    """
    lg, mu, sc = snap_params(logits, means, scales)  # (K, C)
    w = torch.softmax(lg, dim=0)
    center = torch.round((w * mu).sum(0))  # (C,)
    reach = ((mu - center).abs() + TAIL_T * sc).amax(0)
    R = torch.ceil(reach).clamp(1, R_MAX)  # (C,)
    rmax = int(R.max().item())
    j = torch.arange(2 * rmax + 2, dtype=torch.float64)  # edge index
    edges = (center - R)[:, None] - 0.5 + j[None, :]  # (C, 2rmax+2)
    n_edges = (2 * R + 2).long()  # edges used per row: window has 2R+1 bins
    valid = j[None, :] < n_edges[:, None].double()
    z = (edges[None] - mu[:, :, None]) / sc[:, :, None]  # (K, C, E)
    cdf_c = (w[:, :, None] * _phi(z)).sum(0)  # (C, E)
    last = (n_edges - 1)[:, None]
    cdf_c = torch.where(valid, cdf_c, cdf_c.gather(1, last))  # flat beyond the window
    pmf = (cdf_c[:, 1:] - cdf_c[:, :-1]).clamp_min(0.0)  # (C, 2rmax+1) window bins (0 beyond)
    inside = cdf_c.gather(1, last).squeeze(1) - cdf_c[:, 0]
    escape = (1.0 - inside).clamp_min(0.0)
    n_sym = (2 * R + 2).long()  # window bins + escape
    # scatter the escape mass right after each row's window
    bins = torch.zeros(pmf.shape[0], pmf.shape[1] + 1, dtype=torch.float64)
    bins[:, :-1] = pmf
    bins.scatter_(1, (n_sym - 1)[:, None], escape[:, None])
    used = torch.arange(bins.shape[1])[None, :] < n_sym[:, None]
    total = bins.sum(1, keepdim=True)
    bins = bins / total
    scale = float(1 << PRECISION) - n_sym[:, None].double()
    freq = torch.where(used, torch.floor(bins * scale) + 1.0, torch.zeros_like(bins)).long()
    rem = (1 << PRECISION) - freq.sum(1)
    top = freq.argmax(1)
    freq[torch.arange(freq.shape[0]), top] += rem
    cdf = torch.zeros(freq.shape[0], freq.shape[1] + 1, dtype=torch.long)
    cdf[:, 1:] = torch.cumsum(freq, 1)
    lengths = (n_sym + 1).tolist()
    rows = cdf.tolist()
    cdfs = [r[:n] for r, n in zip(rows, lengths)]
    offsets = (center - R).long().tolist()
    return cdfs, lengths, offsets


def table_bits(cdfs, offsets, symbols) -> float:
    """Ideal code length in bits of ``symbols`` under integer tables (escapes counted as the escape slot)."""
    bits = 0.0
    for cdf, off, s in zip(cdfs, offsets, symbols):
        v = s - off
        n = len(cdf) - 2
        if v < 0 or v >= n:
            v = n
        bits -= math.log2((cdf[v + 1] - cdf[v]) / (1 << PRECISION))
    return bits
