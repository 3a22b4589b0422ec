"""SSIM (Wang et al. 2004) and MS-SSIM (Wang, Simoncelli & Bovik 2003), as in Zhou Wang's MATLAB code.

Both take float RGB NCHW images in [0, 1] (distorted first, reference second) and return one value
per image, shape ``(N,)``; 1 means identical. Computing on [0, 1] with ``C = (K * 1)^2`` is the
same as MATLAB's ``C = (K * 255)^2`` on 0-255 pixel values (SSIM is invariant to a common scale of
images and constants).

``ssim`` reproduces ``ssim.m`` (2009 version, default arguments):

1. luma Y = 0.299 R + 0.587 G + 0.114 B (``color='y'``, the default; a grey image loaded as three
   equal channels gives Y = the grey value, i.e. exactly ssim.m on the grey image);
   ``color='rgb'`` averages the SSIM of the three channels instead (piq's default);
2. automatic downsampling by ``f = max(1, round(min(H, W) / 256))`` (MATLAB rounding, half away
   from zero): ``imfilter(img, ones(f)/f^2, 'symmetric', 'same')`` then ``img(1:f:end, 1:f:end)``
   (``downsample=False`` skips it);
3. 11x11 Gaussian window, sigma 1.5 (``fspecial``), K1 = 0.01, K2 = 0.03, L = 255, 'valid'
   filtering (no padding), mean of the SSIM map.

Differences from piq's ``ssim``: piq defaults to RGB (``color='rgb'`` here), downsamples with
``avg_pool2d(kernel=f)`` (drops a last partial block where MATLAB keeps it, and Python's banker's
rounding picks f = 2 where MATLAB picks 3 at min side 640) — identical otherwise.

``ms_ssim`` reproduces ``msssim.m`` (the version with ``imfilter(..., 'symmetric', 'same')``
downsampling and ``mssim(level)^weight(level)``): 5 scales, weights
[0.0448, 0.2856, 0.3001, 0.2363, 0.1333], SSIM constants as above, no automatic downsampling;
between scales ``imfilter(img, ones(2)/4, 'symmetric', 'same')`` and ``img(1:2:end, 1:2:end)``
(2x2 block mean; an odd last row/column is averaged with its own copy); the result is
``prod_{j<5} mean(cs_j)^w_j * mean(ssim_5)^w_5``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._ops import (
    auto_downsample_factor,
    device_cache,
    gaussian_1d,
    matlab_box_downsample,
    min_size_for_scales,
    rgb2gray_uint8,
    sep_filter,
    to_channels,
)
from .options import MetricOption
from .registry import FunctionalMetric, MetricSpec, register_metric
from .validate import validate_images

K1, K2 = 0.01, 0.03
WINDOW, SIGMA = 11, 1.5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
CS_FLOOR = 1e-6  # see ms_ssim: per-scale means are floored here before the fractional powers

SSIM_CITATION = (
    "Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, 'Image quality assessment: from error "
    "visibility to structural similarity', IEEE Transactions on Image Processing 13(4):600-612, 2004. "
    "Defaults of Zhou Wang's ssim.m (luma, automatic downsampling, 11x11 Gaussian sigma 1.5)."
)
MS_SSIM_CITATION = (
    "Z. Wang, E. P. Simoncelli, A. C. Bovik, 'Multiscale structural similarity for image quality "
    "assessment', Proc. 37th Asilomar Conference on Signals, Systems and Computers, vol. 2, "
    "pp. 1398-1402, 2003. Defaults of Zhou Wang's msssim.m (luma, 5 scales)."
)


def _ssim_cs_maps(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps ('valid'), images on [0, 1]: (N, C, h, w) each."""
    c = x.shape[1]
    # one separable filtering of the five moments at once
    filt = sep_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), win)
    mu_x, mu_y, e_xx, e_yy, e_xy = filt.split(c, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    c1, c2 = K1**2, K2**2
    cs = (2.0 * (e_xy - mu_xy) + c2) / ((e_xx - mu_xx) + (e_yy - mu_yy) + c2)
    lum = (2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1)
    return lum * cs, cs


def _ssim_input(x: torch.Tensor, color: str, luma: str) -> torch.Tensor:
    if luma == "bt601":
        return to_channels(x, color, "ssim")
    if luma != "rgb2gray_uint8":
        raise ValueError(f"ssim: expected luma 'bt601' or 'rgb2gray_uint8', got {luma!r}")
    if color != "y":
        raise ValueError(f"ssim: expected color='y' with luma='rgb2gray_uint8', got color={color!r}")
    return rgb2gray_uint8(x)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    color: str = "y",
    downsample: bool = True,
    luma: str = "bt601",
    border: str = "valid",
) -> torch.Tensor:
    """Structural similarity (SSIM) of a distorted image against its reference; higher is better.

    The defaults reproduce Zhou Wang's ``ssim.m``; ``luma="rgb2gray_uint8", downsample=False,
    border="replicate"`` (:data:`SSIM_MATLAB_BUILTIN`) reproduces MATLAB's built-in ``ssim`` applied
    to ``rgb2gray`` of 8-bit images, the protocol of pyiqa's calibration table and many papers. See
    docs/metrics_classical.md for both protocols and their numbers.

    Parameters
    ----------
    x : torch.Tensor
        Distorted images, float RGB (N, 3, H, W) in [0, 1], H, W >= 11.
    y : torch.Tensor
        Reference images, same shape, dtype and device as ``x``.
    color : {"y", "rgb"}
        ``"y"``: SSIM of the luma (ssim.m on the grey image); ``"rgb"``: mean SSIM of R, G and B
        (piq's default).
    downsample : bool
        ssim.m's automatic box downsampling by ``f = max(1, round(min(H, W) / 256))`` (MATLAB
        rounding); ``False`` compares at full resolution, as MATLAB's built-in ``ssim``.
    luma : {"bt601", "rgb2gray_uint8"}
        How the luma is formed for ``color="y"``: ``"bt601"`` is ``0.299 R + 0.587 G + 0.114 B``
        unrounded (ssim.m's ``rgb2gray`` on double images); ``"rgb2gray_uint8"`` is MATLAB's
        ``rgb2gray`` on a uint8 image, ``round(0.298936 R + 0.587043 G + 0.114021 B)`` on 0-255
        (straight-through gradient through the rounding).
    border : {"valid", "replicate"}
        ``"valid"``: mean of the SSIM map where the 11x11 window fits (ssim.m, scikit-image);
        ``"replicate"``: a same-size map with replicate padding (MATLAB's built-in ``ssim``, which
        filters with ``imgaussfilt(..., 'Padding', 'replicate')``).

    Returns
    -------
    torch.Tensor
        Shape (N,), in [-1, 1]; 1 for identical images. Higher is better.

    Raises
    ------
    ValueError
        "expected X, got Y" for images that are not float RGB NCHW in [0, 1] of equal shape, sides
        below 11 px (after downsampling, with ``border="valid"``) or an unknown option value.

    References
    ----------
    Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 13(4):600-612, 2004.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    >>> round(float(ssim(y, y)), 6)
    1.0
    >>> bool(ssim(0.5 * y, y, luma="rgb2gray_uint8", downsample=False, border="replicate") < 1)
    True
    """
    validate_images(x, y, name="ssim", min_size=WINDOW)
    if border not in ("valid", "replicate"):
        raise ValueError(f"ssim: expected border 'valid' or 'replicate', got {border!r}")
    a = _ssim_input(x, color, luma)
    b = _ssim_input(y, color, luma)
    if downsample:
        f = auto_downsample_factor(*x.shape[-2:])
        a, b = matlab_box_downsample(a, f), matlab_box_downsample(b, f)
    if border == "replicate":
        p = WINDOW // 2
        a, b = F.pad(a, (p, p, p, p), mode="replicate"), F.pad(b, (p, p, p, p), mode="replicate")
    elif min(a.shape[-2:]) < WINDOW:  # only reachable for very elongated images
        raise ValueError(
            f"ssim: expected images whose downsampled size is at least {WINDOW}x{WINDOW} px, "
            f"got {tuple(x.shape[-2:])} -> {tuple(a.shape[-2:])}; pass downsample=False"
        )
    win = gaussian_1d(WINDOW, SIGMA, a.dtype, a.device)
    s_map, _ = _ssim_cs_maps(a, b, win)
    return s_map.mean(dim=(-2, -1)).mean(dim=1)


SSIM_MATLAB_BUILTIN = "ssim:luma=rgb2gray_uint8,downsample=false,border=replicate"
"""The metric spec of MATLAB's built-in ``ssim(rgb2gray(A), rgb2gray(ref))`` on 8-bit images."""


def _ms_weights(scales: int | None) -> tuple[float, ...]:
    if scales is None or scales == len(MS_SSIM_WEIGHTS):
        return MS_SSIM_WEIGHTS  # msssim.m's weights, not renormalised (sum 1.0001)
    if not isinstance(scales, int) or not 1 <= scales <= len(MS_SSIM_WEIGHTS):
        raise ValueError(f"ms-ssim: expected scales an integer in 1..5, got {scales!r}")
    w = MS_SSIM_WEIGHTS[:scales]
    s = sum(w)
    return tuple(v / s for v in w)


@device_cache()
def _weight_tensor(weights: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(weights, dtype=torch.float64).view(-1, 1, 1)


def ms_ssim_min_size(scales: int | None = None) -> int:
    """Smallest image side for ``scales`` scales: 10 * 2^(scales-1) + 1 (161 for 5, 81, 41, 21, 11).

    Parameters
    ----------
    scales : int, optional
        1..5 (default 5).

    Returns
    -------
    int
        The minimum side in px.

    Examples
    --------
    >>> ms_ssim_min_size(), ms_ssim_min_size(3)
    (161, 41)
    """
    return min_size_for_scales(len(MS_SSIM_WEIGHTS) if scales is None else scales, WINDOW)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, *, color: str = "y", scales: int | None = None) -> torch.Tensor:
    """Multi-scale SSIM of a distorted image against its reference; higher is better.

    Defaults reproduce ``msssim.m`` on the luma (see the module docstring).

    Parameters
    ----------
    x : torch.Tensor
        Distorted images, float RGB (N, 3, H, W) in [0, 1], sides >= :func:`ms_ssim_min_size`.
    y : torch.Tensor
        Reference images, same shape, dtype and device.
    color : {"y", "rgb"}
        ``'y'`` (default, luma) or ``'rgb'`` (MS-SSIM of each channel, then the mean — piq's convention).
    scales : int, optional
        Number of scales, 1..5 (default 5); see below.

    Returns
    -------
    torch.Tensor
        Shape (N,), in (0, 1]; 1 for identical images.

    Raises
    ------
    ValueError
        "expected X, got Y" for inputs outside the contract, images smaller than the minimum size
        (the message suggests ``scales=``) or a bad option.

    References
    ----------
    Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multiscale structural similarity for image quality
    assessment", Proc. 37th Asilomar Conference, 2003.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    >>> round(float(ms_ssim(y, y, scales=3)), 6)
    1.0

    Notes
    -----
    ``scales``: number of scales, 1..5 (default 5). With ``scales=k`` the first ``k`` paper weights
    are used, renormalised to sum 1 (``w_j / sum_{i<=k} w_i``), and the result is
    ``prod_{j<k} mean(cs_j)^w_j * mean(ssim_k)^w_k`` — i.e. the same pyramid cut after ``k`` levels,
    with luminance taken at level ``k``. It is *not* the 5-scale value; it lets small images
    (e.g. 128 px training patches: ``scales=4``; 64 px: ``scales=3``) be used without resizing.

    Size: with 11x11 'valid' windows the coarsest scale must have >= 11 px, so images need a side of
    at least ``10 * 2^(k-1) + 1`` px (161 for the default 5 scales; msssim.m's own guard,
    ``min(M,N)/2^(level-1) >= 11``, is slightly stricter at 176). Smaller images raise ValueError;
    nothing is resized.

    Negative values: MATLAB raises a negative ``mean(cs_j)`` to a fractional power and returns a
    complex number. Here each per-scale mean is floored at ``1e-6`` before the power (a "floored ReLU":
    identical values to piq's/pytorch_msssim's ``relu`` whenever every mean exceeds 1e-6, which is
    the case for all but adversarial inputs). Unlike ``relu`` followed by ``0 ** w`` the floor keeps
    the product non-zero, so the other scales still give a finite, non-zero gradient.
    """
    weights = _ms_weights(scales)
    n_scales = len(weights)
    m = ms_ssim_min_size(n_scales)
    try:
        validate_images(x, y, name="ms-ssim", min_size=m)
    except ValueError as e:
        if "at least" not in str(e):
            raise
        raise ValueError(
            f"{e}: {n_scales} scales with 11x11 windows need >= {m} px (10*2^(scales-1)+1); for smaller "
            "images pass scales=k (k=4 from 81 px, k=3 from 41 px, k=2 from 21 px) — never resized"
        ) from None
    a = to_channels(x, color, "ms-ssim")
    b = to_channels(y, color, "ms-ssim")
    win = gaussian_1d(WINDOW, SIGMA, a.dtype, a.device)
    vals = []
    for level in range(n_scales):
        if level > 0:
            a, b = matlab_box_downsample(a, 2), matlab_box_downsample(b, 2)
        s_map, cs_map = _ssim_cs_maps(a, b, win)
        m_map = s_map if level == n_scales - 1 else cs_map
        vals.append(m_map.mean(dim=(-2, -1)))  # (N, C)
    v = torch.stack(vals, dim=0).clamp_min(CS_FLOOR)  # (S, N, C)
    w = _weight_tensor(weights, device=v.device, dtype=v.dtype)
    return v.pow(w).prod(dim=0).mean(dim=1)


register_metric(MetricSpec(
    name="ssim", lower_better=False, differentiable=True, function=ssim,
    module=lambda reduction="none", **kw: FunctionalMetric(ssim, reduction, **kw),
    best_value=1.0, min_size=WINDOW, citation=SSIM_CITATION,
    description="SSIM as ssim.m: luma, auto-downsampling, 11x11 Gaussian (sigma 1.5), valid",
    options=(
        MetricOption("color", str, "y", "'y': luma (ssim.m on the grey image); 'rgb': mean over R, G, B",
                     choices=("y", "rgb")),
        MetricOption("downsample", bool, True, "ssim.m's automatic box downsampling by round(min(H, W)/256)"),
        MetricOption("luma", str, "bt601", "'bt601': .299R+.587G+.114B unrounded (ssim.m); 'rgb2gray_uint8': "
                     "MATLAB rgb2gray of uint8 images, rounded", choices=("bt601", "rgb2gray_uint8")),
        MetricOption("border", str, "valid", "'valid': mean where the window fits (ssim.m); 'replicate': "
                     "same-size map, replicate padding (MATLAB built-in ssim)", choices=("valid", "replicate")),
    ),
))
register_metric(MetricSpec(
    name="ms-ssim", lower_better=False, differentiable=True, function=ms_ssim,
    module=lambda reduction="none", **kw: FunctionalMetric(ms_ssim, reduction, **kw),
    best_value=1.0, min_size=ms_ssim_min_size(), citation=MS_SSIM_CITATION,
    description="MS-SSIM as msssim.m: luma, 5 scales (>= 161 px; scales=k for smaller images)",
    aliases=("msssim", "ms_ssim"),
    options=(
        MetricOption("color", str, "y", "'y': luma (msssim.m); 'rgb': mean of the per-channel MS-SSIM",
                     choices=("y", "rgb")),
        MetricOption("scales", int, 5, "number of scales; k < 5 allows sides from 10*2^(k-1)+1 px",
                     choices=(1, 2, 3, 4, 5)),
    ),
    min_size_for=lambda scales=None, **_: ms_ssim_min_size(scales),
))
