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
* :func:`safe_sqrt` — exact ``sqrt`` with the subgradient 0 at 0 (finite gradients on flat images);
* :func:`matlab_round` — MATLAB's round half away from zero;
* :func:`device_cache` — metric constants built once and uploaded once per (device, dtype).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _on(obj: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Move a tensor (or a tuple of them) to ``device``; real tensors to ``dtype``, complex ones to the
    matching complex dtype; anything else unchanged."""
    if isinstance(obj, tuple):
        return tuple(_on(o, device, dtype) for o in obj)
    if not isinstance(obj, torch.Tensor):
        return obj
    if obj.is_complex():
        return obj.to(device=device, dtype=torch.complex128 if dtype == torch.float64 else torch.complex64)
    return obj.to(device=device, dtype=dtype).contiguous()


def device_cache(maxsize: int = 32) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Cache a metric constant per (arguments, device, dtype): built once, uploaded once.

    Decorates ``build(*args) -> Tensor | tuple`` (built on the CPU, usually in float64); the result is
    called as ``f(*args, device=..., dtype=...)`` and returns the constant(s) on that device in that
    dtype (complex tensors in the matching complex dtype). Constants are built with autograd and
    inference mode off, so a constant first made inside ``torch.inference_mode()`` can still be used
    in a training step. ``f.cache_clear()`` empties the cache.

    Parameters
    ----------
    maxsize : int
        Entries kept (least recently used dropped); each entry is one (args, device, dtype).

    Returns
    -------
    callable
        The decorator.

    Examples
    --------
    >>> @device_cache()
    ... def ones3():
    ...     return torch.ones(3, dtype=torch.float64)
    >>> ones3(device=torch.device("cpu"), dtype=torch.float32) is ones3(device=torch.device("cpu"),
    ...                                                                  dtype=torch.float32)
    True
    """

    def deco(build: Callable[..., Any]) -> Callable[..., Any]:
        @functools.lru_cache(maxsize=maxsize)
        def cached(device: torch.device, dtype: torch.dtype, *args: Any) -> Any:
            with torch.inference_mode(False), torch.no_grad():
                return _on(build(*args), device, dtype)

        @functools.wraps(build)
        def get(*args: Any, device: torch.device | str, dtype: torch.dtype) -> Any:
            return cached(torch.device(device), dtype, *args)

        get.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return get

    return deco


@device_cache()
def _luma_weights() -> torch.Tensor:
    return torch.tensor(LUMA_WEIGHTS, dtype=torch.float64).view(1, 3, 1, 1)



def luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) Y = 0.299 R + 0.587 G + 0.114 B (same scale as the input)."""
    # a weighted channel sum, not x[:, 0:1] slices: slicing's backward fills full-size zero tensors
    return (x * _luma_weights(device=x.device, dtype=x.dtype)).sum(dim=1, keepdim=True)


def _rgb2gray_coefficients() -> tuple[float, float, float]:
    """MATLAB ``rgb2gray``'s weights: the first row of ``inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703])``
    (0.298936, 0.587043, 0.114021), computed in float64 as MATLAB does."""
    ntsc = torch.tensor([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]], dtype=torch.float64)
    r, g, b = torch.linalg.inv(ntsc)[0].tolist()
    return (r, g, b)


RGB2GRAY_WEIGHTS = _rgb2gray_coefficients()


@device_cache()
def _rgb2gray_weights() -> torch.Tensor:
    return torch.tensor(RGB2GRAY_WEIGHTS, dtype=torch.float64).view(1, 3, 1, 1)


def rgb2gray_uint8(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``rgb2gray`` of a uint8 image: ``round(0.298936 R + 0.587043 G + 0.114021 B)`` on 0-255.

    Parameters
    ----------
    x : torch.Tensor
        (N, 3, H, W) RGB in [0, 1] (8-bit images divided by 255).

    Returns
    -------
    torch.Tensor
        (N, 1, H, W) in [0, 1]: the uint8 luma divided by 255, in ``x``'s dtype. The weighted sum is
        formed in float64 and rounded half away from zero (``imapplymatrix`` for uint8 output);
        the rounding has a straight-through (identity) gradient, so it can be part of a loss.
    """
    w = _rgb2gray_weights(device=x.device, dtype=torch.float64)
    v = (x.to(torch.float64) * w).sum(dim=1, keepdim=True) * 255.0
    r = torch.floor(v.detach() + 0.5).clamp(0.0, 255.0)
    return (v + (r - v).detach()).to(x.dtype) / 255.0


def to_channels(x: torch.Tensor, color: str, name: str) -> torch.Tensor:
    """``'y'`` -> the luma channel (N, 1, H, W); ``'rgb'`` -> the three channels unchanged."""
    if color == "y":
        return luma(x)
    if color == "rgb":
        return x
    raise ValueError(f"{name}: expected color='y' or 'rgb', got {color!r}")


class _SafeSqrt(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        out = torch.sqrt(t.clamp_min(0.0))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return torch.where(out > 0, g / (2.0 * out), 0.0)


def safe_sqrt(t: torch.Tensor) -> torch.Tensor:
    """Square root with a finite gradient everywhere: ``sqrt(max(t, 0))``, gradient 0 where ``t == 0``.

    ``torch.sqrt`` has an infinite derivative at 0, which becomes NaN (``inf * 0``) wherever the inner
    derivative is 0 too — e.g. a gradient magnitude ``sqrt(gx^2 + gy^2)`` on a flat or black image.
    Here the value is exact and the gradient at 0 is the subgradient 0. For ``t = u^2 + v^2`` the
    gradient w.r.t. ``u`` is ``u / sqrt(t)``, bounded by 1. Used by GMSD, NLPD, FSIM and VSI.

    Parameters
    ----------
    t : torch.Tensor
        Any shape; negative values (round-off) are treated as 0.

    Returns
    -------
    torch.Tensor
        ``sqrt(max(t, 0))``, same shape and dtype.

    Examples
    --------
    >>> t = torch.zeros(2, requires_grad=True)
    >>> safe_sqrt(t).sum().backward()
    >>> t.grad
    tensor([0., 0.])
    """
    out: torch.Tensor = _SafeSqrt.apply(t)
    return out


def matlab_round(v: float) -> int:
    """MATLAB's ``round``: halves away from zero (Python's ``round`` rounds halves to even).

    Parameters
    ----------
    v : float
        Any finite number.

    Returns
    -------
    int
        ``floor(v + 0.5)`` for ``v >= 0``, ``-floor(-v + 0.5)`` below.

    Examples
    --------
    >>> matlab_round(2.5), round(2.5), matlab_round(-2.5)
    (3, 2, -3)
    """
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


def auto_downsample_factor(h: int, w: int) -> int:
    """``max(1, round(min(H, W) / 256))`` with MATLAB rounding: the automatic downsampling factor of
    ssim.m, FeatureSIM.m and VSI.m."""
    return max(1, matlab_round(min(h, w) / 256.0))


@device_cache(maxsize=128)
def _symmetric_index_cpu(n: int, before: int, after: int) -> torch.Tensor:
    i = torch.arange(-before, n + after)
    m = torch.remainder(i, 2 * n)
    return torch.where(m < n, m, 2 * n - 1 - m)


def _symmetric_index(n: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    return _symmetric_index_cpu(n, before, after, device=device, dtype=torch.int64)


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


@device_cache()
def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(r**2) / (2.0 * sigma**2))
    return g / g.sum()


def gaussian_1d(size: int, sigma: float, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)`` (normalised to sum 1), cached per
    (size, sigma, device, dtype); do not modify the returned tensor in place."""
    return _gaussian_1d(size, sigma, device=device, dtype=dtype)


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
    """The dtype to compute in: ``None`` or ``'input'`` -> the input's; ``'float64'``, ``'float32'`` or a
    ``torch.dtype`` -> that one."""
    if internal is None or internal == "input":
        return x.dtype
    if isinstance(internal, str):
        if internal not in ("float64", "float32"):
            raise ValueError(f"expected internal_dtype 'float64', 'float32' or 'input', got {internal!r}")
        return torch.float64 if internal == "float64" else torch.float32
    return internal


def min_size_for_scales(scales: int, window: int = 11) -> int:
    """Smallest side for ``scales`` 2x (ceil) downsamplings to leave >= ``window`` px: 10*2^(s-1)+1."""
    return (window - 1) * 2 ** (scales - 1) + 1

