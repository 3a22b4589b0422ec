"""Building blocks shared by FSIM and VSI (both from Lin Zhang's group; same MATLAB conventions).

Everything here reproduces a MATLAB idiom exactly and is safe for autograd: no ``sqrt``, ``pow`` or
division is ever evaluated at a point where its derivative is infinite (those points get the
subgradient 0 instead), so gradients stay finite on flat and black images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._ops import device_cache, safe_sqrt


def safe_div(num: torch.Tensor, den: torch.Tensor, fill: float | torch.Tensor = 0.0) -> torch.Tensor:
    """``num / den`` where ``den != 0``, ``fill`` elsewhere; no NaN leaks into the gradient."""
    ok = den != 0
    return torch.where(ok, num / torch.where(ok, den, 1.0), fill)


def real_pow(v: torch.Tensor, p: float, tiny: float = 1e-12) -> torch.Tensor:
    """MATLAB's ``real(v .^ p)`` for real ``v`` and fractional ``p``.

    For ``v < 0`` MATLAB's power is complex, ``|v|^p e^{i p pi}``; its real part is
    ``|v|^p cos(p pi)``. ``|v|`` is floored at ``tiny`` so the derivative stays finite at 0
    (this changes the value only where ``|v| < tiny``, i.e. on a set of measure zero).
    """
    mag = v.abs().clamp_min(tiny).pow(p)
    return torch.where(v < 0, mag * math.cos(p * math.pi), mag)


def colour_transform(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``out[:, c] = sum_k matrix[c, k] * x[:, k]`` for (B, 3, H, W) (a 1x1 convolution: fast both ways).

    ``matrix`` (3, 3) must already be on ``x``'s device in its dtype (see :func:`colour_matrix`)."""
    return F.conv2d(x, matrix[:, :, None, None])


@device_cache()
def _colour_matrix(rows: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def colour_matrix(rows: tuple[tuple[float, ...], ...], like: torch.Tensor) -> torch.Tensor:
    """A (3, 3) colour matrix given as nested tuples, on ``like``'s device and dtype (cached)."""
    return _colour_matrix(rows, device=like.device, dtype=like.dtype)


def grad_scope(t: torch.Tensor) -> torch.set_grad_enabled:
    """Autograd on for ``t``'s branch only if it needs it: the reference's branch is usually
    evaluated without building a graph, which halves the backward pass."""
    return torch.set_grad_enabled(torch.is_grad_enabled() and t.requires_grad)


def similarity(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """The similarity map ``(2ab + c) / (a^2 + b^2 + c)`` used by SSIM-like indices."""
    return (2.0 * a * b + c) / (a * a + b * b + c)


def matlab_average_downsample(x: torch.Tensor, f: int) -> torch.Tensor:
    """``conv2(x, fspecial('average', F), 'same')`` followed by ``x(1:F:end, 1:F:end)``.

    ``conv2(..., 'same')`` pads with zeros: ``F - 1 - floor(F/2)`` before and ``floor(F/2)`` after,
    so for odd ``F`` the window is centred and the first output includes zero padding; for
    ``F = 2`` this equals a plain 2x2 average pooling. The output has ``ceil(H/F) x ceil(W/F)`` px.
    """
    if f <= 1:
        return x
    before, after = f - 1 - f // 2, f // 2
    x = F.pad(x, (before, after, before, after))
    return F.avg_pool2d(x, f, stride=f)


def scharr_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of a (B, 1, H, W) map: ``sqrt(conv2(x, dx,'same')^2 + conv2(x, dy,'same')^2)``.

    ``dx = [3 0 -3; 10 0 -10; 3 0 -3]/16`` and ``dy = dx'`` with zero padding, as in both MATLAB
    files. Computed separably with shifted slices ([3 10 3] smoothing, [1 0 -1] difference), which
    is exact and much faster on the CPU than a 1->2 channel convolution and its backward.
    """
    p = F.pad(x, (1, 1, 1, 1))
    sv = 3.0 * p[..., :-2, :] + 10.0 * p[..., 1:-1, :] + 3.0 * p[..., 2:, :]  # (H, W+2)
    sh = 3.0 * p[..., :, :-2] + 10.0 * p[..., :, 1:-1] + 3.0 * p[..., :, 2:]  # (H+2, W)
    gx = (sv[..., :, :-2] - sv[..., :, 2:]) / 16.0
    gy = (sh[..., :-2, :] - sh[..., 2:, :]) / 16.0
    return safe_sqrt(gx * gx + gy * gy)


def _triangle(t: torch.Tensor) -> torch.Tensor:
    return (1.0 - t.abs()).clamp_min(0.0)


@device_cache(maxsize=32)
def _imresize_matrix(in_len: int, out_len: int, antialias: bool) -> torch.Tensor:
    """The (out_len, in_len) matrix of MATLAB's ``imresize(..., 'bilinear')`` along one axis.

    Follows MATLAB's ``contributions``: scale = out/in; when shrinking (with antialiasing, MATLAB's
    default) the triangle kernel is stretched by 1/scale; source positions
    ``u = x/scale + 0.5 (1 - 1/scale)``; weights normalised to sum 1; out-of-range taps are
    mirrored (``[1:in, in:-1:1]``).
    """
    scale = out_len / in_len
    width = 2.0
    if scale < 1 and antialias:
        def kern(t):
            return scale * _triangle(scale * t)
        width = width / scale
    else:
        kern = _triangle
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    ind = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based
    w = kern(u[:, None] - ind)
    w = w / w.sum(dim=1, keepdim=True)
    aux = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    idx = aux[torch.remainder(ind.long() - 1, 2 * in_len)]
    m = torch.zeros(out_len, in_len, dtype=torch.float64)
    m.scatter_add_(1, idx, w)
    return m


def imresize_matrix(in_len: int, out_len: int, *, dtype: torch.dtype, device: torch.device | str,
                    antialias: bool = True) -> torch.Tensor:
    """The (out_len, in_len) resampling matrix of MATLAB's bilinear ``imresize`` along one axis, cached
    per (sizes, device, dtype)."""
    return _imresize_matrix(in_len, out_len, antialias, device=device, dtype=dtype)


def imresize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """MATLAB ``imresize(x, size, 'bilinear')`` (antialiased when shrinking) on (..., H, W) tensors.

    Separable, so it is two small matrix products: exact, differentiable and fast. Resizing to the
    same size is the identity in MATLAB (weights 1, 0, 0), so it is skipped.
    """
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    rh = imresize_matrix(h, size[0], dtype=x.dtype, device=x.device)
    rw = imresize_matrix(w, size[1], dtype=x.dtype, device=x.device)
    return torch.matmul(torch.matmul(rh, x), rw.t())
