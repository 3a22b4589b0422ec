"""Small tensor operations shared by the classical metrics (SSIM, MS-SSIM, GMSD, NLPD).

They reproduce MATLAB's boundary conventions exactly, so that the metrics can match the authors'
MATLAB code:

* :func:`symmetric_pad` — ``padarray(..., 'symmetric')`` / ``imfilter(..., 'symmetric')``
  (mirror *including* the edge sample: ``c b a | a b c | c b a``), for any pad width;
* :func:`matlab_box_downsample` — ``imfilter(x, ones(f)/f^2, 'symmetric', 'same')`` followed by
  ``x(1:f:end, 1:f:end)`` (ssim.m's automatic downsampling, msssim.m's 2x2 step);
* :func:`sep_filter` — separable correlation (``filter2`` / ``conv2`` with a symmetric kernel)
  on every channel independently;
* :func:`luma` — Y = 0.299 R + 0.587 G + 0.114 B (as MATLAB's ``rgb2gray`` without rounding, and
  piq's YIQ); grey images stored as three equal channels give back the grey value;
* :func:`safe_sqrt` — ``sqrt(a + eps)``: differentiable at 0 (the gradient of sqrt(u^2 + v^2)
  w.r.t. u stays bounded by 1 and is 0 at u = v = 0) with a value error of at most sqrt(eps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# sqrt(a + SQRT_EPS) - sqrt(a) <= sqrt(SQRT_EPS) = 1e-10 < 1e-9 for every a >= 0
SQRT_EPS = 1e-20


def luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) Y = 0.299 R + 0.587 G + 0.114 B (same scale as the input)."""
    # a weighted channel sum, not x[:, 0:1] slices: slicing's backward fills full-size zero tensors
    w = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def to_channels(x: torch.Tensor, color: str, name: str) -> torch.Tensor:
    """``'y'`` -> the luma channel (N, 1, H, W); ``'rgb'`` -> the three channels unchanged."""
    if color == "y":
        return luma(x)
    if color == "rgb":
        return x
    raise ValueError(f"{name}: expected color='y' or 'rgb', got {color!r}")


def safe_sqrt(a: torch.Tensor, eps: float = SQRT_EPS) -> torch.Tensor:
    """``sqrt(a + eps)`` for ``a >= 0``: finite gradients at 0, value error <= sqrt(eps)."""
    return torch.sqrt(a + eps)


def _symmetric_index(n: int, before: int, after: int, device) -> torch.Tensor:
    i = torch.arange(-before, n + after, device=device)
    m = torch.remainder(i, 2 * n)
    return torch.where(m < n, m, 2 * n - 1 - m)


def symmetric_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """MATLAB 'symmetric' padding of the last two dims (edge sample repeated), any width."""
    h, w = x.shape[-2:]
    if top or bottom:
        x = x.index_select(-2, _symmetric_index(h, top, bottom, x.device))
    if left or right:
        x = x.index_select(-1, _symmetric_index(w, left, right, x.device))
    return x


def matlab_box_downsample(x: torch.Tensor, f: int) -> torch.Tensor:
    """``imfilter(x, ones(f)/f^2, 'symmetric', 'same')`` then ``x(1:f:end, 1:f:end)``.

    MATLAB centres an f-tap kernel at tap ``floor((f + 1) / 2)``, so output sample i averages input
    samples ``i - c + 1 .. i - c + f`` (c the centre); the result has ``ceil(n / f)`` samples per
    dimension. For f = 2 this is the mean of each 2x2 block, with the last row/column repeated
    when a side is odd.
    """
    if f <= 1:
        return x
    c = (f + 1) // 2
    x = symmetric_pad(x, c - 1, f - c, c - 1, f - c)
    return F.avg_pool2d(x, kernel_size=f, stride=f)


def gaussian_1d(size: int, sigma: float, dtype, device) -> torch.Tensor:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)`` (normalised to sum 1)."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(r**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return g.to(dtype=dtype, device=device)


def sep_filter(x: torch.Tensor, k: torch.Tensor, *, padding: int = 0, stride: int = 1) -> torch.Tensor:
    """Correlate every channel of ``x`` (N, C, H, W) with ``outer(k, k)`` (zero padding ``padding``).

    Two depthwise (grouped) 1-D passes; on the CPU these are far faster than the same filter run on
    a (N*C, 1, H, W) reshape, whose backward pass takes a slow path.
    """
    c = x.shape[1]
    kk = k.numel()
    t = F.conv2d(x, k.view(1, 1, kk, 1).expand(c, 1, kk, 1), padding=(padding, 0), stride=(stride, 1), groups=c)
    return F.conv2d(t, k.view(1, 1, 1, kk).expand(c, 1, 1, kk), padding=(0, padding), stride=(1, stride), groups=c)


def compute_dtype(x: torch.Tensor, internal: str | torch.dtype | None) -> torch.dtype:
    """The dtype to compute in: ``None`` -> the input's, ``'float64'``/``torch.float64`` -> that."""
    if internal is None:
        return x.dtype
    if isinstance(internal, str):
        internal = getattr(torch, internal)
    return internal


def min_size_for_scales(scales: int, window: int = 11) -> int:
    """Smallest side for ``scales`` 2x (ceil) downsamplings to leave >= ``window`` px: 10*2^(s-1)+1."""
    return (window - 1) * 2 ** (scales - 1) + 1

