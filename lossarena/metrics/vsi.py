"""VSI, the Visual Saliency-induced Index (Zhang, Shen, Li 2014), reproducing the authors' ``VSI.m``.

What is reproduced (MATLAB names in brackets), on the 0-255 scale:

* saliency by SDSP [``SDSP``]: each image is resized to **256x256** with MATLAB's
  ``imresize(..., 'bilinear')`` (antialiased when shrinking), converted to CIE L*a*b* (sRGB, D50
  white as in the authors' ``RGB2Lab``), filtered with a log-Gabor filter in the frequency domain
  (omega0 = 0.021, sigmaF = 1.34), multiplied by the location prior (sigmaD = 145) and the warm-colour
  prior on min-max normalised a*, b* (sigmaC = 0.001), resized back with ``imresize`` and min-max
  normalised [``mat2gray``]. The 256x256 resize is part of the metric's definition (it fixes the
  scale at which saliency is measured); the inputs themselves are never resized. ``resize="octave"``
  swaps MATLAB's ``imresize`` for GNU Octave's (2020) corner-aligned, non-antialiased bilinear
  interpolation, which is how the quoted reference value 0.96405 was produced (see :func:`vsi`).
* the opponent colour space ``L = .06R + .63G + .27B``, ``M = .30R + .04G - .35B``,
  ``N = .34R - .60G + .17B``;
* downsampling by ``F = max(1, round(min(H, W) / 256))`` with an FxF average filter
  (``conv2 'same'``) and ``(1:F:end)`` subsampling of L, M, N and both saliency maps;
* Scharr gradient magnitude of L; similarity maps with C1 = 1.27 (saliency), C2 = 386 (gradient),
  C3 = 130 (M and N); ``S = S_VS * S_G^0.40 * real((S_M S_N)^0.02)``, weighted by
  ``max(VS1, VS2)``.

Why piq.vsi gives NaN (piq 0.8.0) and what is done here instead:

* its L*a*b* conversion computes ``t^(1/3) * mask`` for every pixel; at a black pixel ``t = 0`` and
  the backward pass evaluates ``inf * 0 = NaN`` (the masked branch still gets a gradient). Here the
  cube root is evaluated on ``t.clamp_min(0.008856)`` and the branch chosen with ``torch.where``;
* ``sqrt`` at 0 in the Scharr magnitude and in the saliency magnitude ``sqrt(L^2 + a^2 + b^2)``
  (flat regions, exactly repeated pixel values) has an infinite derivative, which times a 0 inner
  derivative is NaN; here square roots use the subgradient 0 at 0;
* ``(x - min) / (max - min)`` in the a*/b* normalisation and in ``mat2gray`` is ``0/0`` on flat
  images (piq adds machine epsilon; MATLAB returns NaN); here a constant channel maps to 0;
* the weighted mean is ``0/0`` when both saliency maps are 0 everywhere (two flat images): then
  the weights are uniform.

None of these changes a value where MATLAB's is defined.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ._ops import auto_downsample_factor, device_cache, safe_sqrt
from ._zhang_common import (
    colour_matrix,
    colour_transform,
    grad_scope,
    imresize_bilinear,
    matlab_average_downsample,
    real_pow,
    safe_div,
    scharr_magnitude,
    similarity,
)
from .options import MetricOption
from .registry import FunctionalMetric, MetricSpec, register_metric
from .validate import validate_images

C1, C2, C3 = 1.27, 386.0, 130.0
ALPHA, BETA = 0.40, 0.02
OMEGA0, SIGMA_F, SIGMA_D, SIGMA_C = 0.021, 1.34, 145.0, 0.001
SALIENCY_SIZE = 256
MIN_SIZE = 8

_LMN = ((0.06, 0.63, 0.27), (0.30, 0.04, -0.35), (0.34, -0.60, 0.17))
_RGB2XYZ = ((0.4124564, 0.3575761, 0.1804375),
            (0.2126729, 0.7151522, 0.0721750),
            (0.0193339, 0.1191920, 0.9503041))
_WHITE_D50 = (0.9642, 1.0, 0.8251)
_LAB_EPS, _LAB_KAPPA = 0.008856, 903.3


def rgb_to_lab(rgb255: torch.Tensor) -> torch.Tensor:
    """The authors' ``RGB2Lab`` (sRGB companding, D50 white) for (B, 3, H, W) on 0-255; safe gradients."""
    c = rgb255 / 255.0
    low = c <= 0.04045
    lin = torch.where(low, c / 12.92, ((c.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    xyz = colour_transform(lin, colour_matrix(_RGB2XYZ, lin))
    white = _white_d50(device=c.device, dtype=c.dtype)
    t = xyz / white
    above = t > _LAB_EPS
    f = torch.where(above, t.clamp_min(_LAB_EPS) ** (1.0 / 3.0), (_LAB_KAPPA * t + 16.0) / 116.0)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


@device_cache()
def _white_d50() -> torch.Tensor:
    return torch.tensor(_WHITE_D50, dtype=torch.float64).view(1, 3, 1, 1)


@device_cache(maxsize=4)
def _sdsp_constants(rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Half-spectrum log-Gabor filter (rows, cols//2+1) and the location prior (rows, cols)."""
    u1 = (torch.arange(1, cols + 1, dtype=torch.float64) - (cols // 2 + 1)) / (cols - cols % 2)
    u2 = (torch.arange(1, rows + 1, dtype=torch.float64) - (rows // 2 + 1)) / (rows - rows % 2)
    v2, v1 = torch.meshgrid(u2, u1, indexing="ij")
    radius = torch.fft.ifftshift(torch.sqrt(v1 * v1 + v2 * v2), dim=(-2, -1))
    inside = radius <= 0.5  # MATLAB zeroes u1, u2 outside: log(0) -> LG = 0 there
    r = torch.where(inside, radius, 1.0).clone()
    r[0, 0] = 1.0
    lg = torch.exp(-(torch.log(r / OMEGA0) ** 2) / (2 * SIGMA_F**2))
    lg = torch.where(inside, lg, 0.0)
    lg[0, 0] = 0.0
    # lg(u) == lg(-u) (radial), so real(ifft2(X lg)) == irfft2 of the half spectrum: exact.
    ii = torch.arange(1, rows + 1, dtype=torch.float64)[:, None] - rows / 2
    jj = torch.arange(1, cols + 1, dtype=torch.float64)[None, :] - cols / 2
    sd = torch.exp(-(ii * ii + jj * jj) / SIGMA_D**2)
    return lg[:, : cols // 2 + 1].contiguous(), sd


def _minmax(v: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel ``(v - min) / (max - min)``; a constant channel maps to 0."""
    lo = v.amin(dim=(-2, -1), keepdim=True)
    rng = v.amax(dim=(-2, -1), keepdim=True) - lo
    ok = rng > 0
    return (v - lo) / torch.where(ok, rng, 1.0) * ok


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if mode == "matlab":
        return imresize_bilinear(x, size)
    if mode == "octave":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    raise ValueError(f"vsi: expected resize 'matlab' or 'octave', got {mode!r}")


def sdsp(rgb255: torch.Tensor, resize: str = "matlab") -> torch.Tensor:
    """SDSP saliency (as in VSI.m) of a (B, 3, H, W) batch on 0-255 -> (B, 1, H, W) in [0, 1]."""
    h, w = rgb255.shape[-2:]
    s = SALIENCY_SIZE
    small = _resize(rgb255, (s, s), resize)
    lab = rgb_to_lab(small)
    lg, sd = _sdsp_constants(s, s, device=lab.device, dtype=lab.dtype)  # built/uploaded once
    filtered = torch.fft.irfft2(torch.fft.rfft2(lab) * lg, s=(s, s))
    sf = safe_sqrt(filtered.pow(2).sum(dim=1, keepdim=True))
    ab = _minmax(lab[:, 1:3])
    sc = 1.0 - torch.exp(-ab.pow(2).sum(dim=1, keepdim=True) / SIGMA_C**2)
    vs = sf * sd * sc
    vs = _resize(vs, (h, w), resize)
    return _minmax(vs)


def vsi(x_dist: torch.Tensor, y_ref: torch.Tensor, resize: str = "matlab") -> torch.Tensor:
    """Visual Saliency-induced Index of a distorted image against its reference; higher is better.

    Symmetric in its arguments. Grey images (three equal channels) are handled as VSI.m handles an
    RGB image with equal channels.

    Parameters
    ----------
    x_dist : torch.Tensor
        Distorted images, float RGB (N, 3, H, W) in [0, 1], sides >= 8.
    y_ref : torch.Tensor
        Reference images, same shape, dtype and device.
    resize : {"matlab", "octave"}
        The ``imresize`` used inside SDSP: ``"matlab"`` (default; MATLAB's antialiased bilinear
        ``imresize``, what VSI.m does under MATLAB) or ``"octave"`` (bilinear on a corner-aligned
        grid without antialiasing, as GNU Octave's image package did in 2020; the widely quoted
        reference VSI(I01, i01_01_5) = 0.96405 was computed in Octave).

    Returns
    -------
    torch.Tensor
        Shape (N,), in [0, 1]; 1 for identical images.

    Raises
    ------
    ValueError
        "expected X, got Y" for inputs outside the contract (:func:`~lossarena.metrics.validate_images`).

    References
    ----------
    L. Zhang, Y. Shen, H. Li, "VSI: A Visual Saliency-Induced Index for Perceptual Image Quality
    Assessment", IEEE TIP 23(10):4270-4281, 2014.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> round(float(vsi(y, y)), 6)
    1.0
    """
    validate_images(x_dist, y_ref, name="vsi", min_size=MIN_SIZE)
    f = auto_downsample_factor(*x_dist.shape[-2:])

    def features(img):
        img = img * 255.0
        vs = matlab_average_downsample(sdsp(img, resize), f)
        lmn = matlab_average_downsample(colour_transform(img, colour_matrix(_LMN, img)), f)
        return vs, lmn, scharr_magnitude(lmn[:, :1])

    with grad_scope(x_dist):
        vs1, lmn1, gm1 = features(x_dist)
    with grad_scope(y_ref):
        vs2, lmn2, gm2 = features(y_ref)
    s_vs = similarity(vs1, vs2, C1)
    s_gm = similarity(gm1, gm2, C2)
    s_m = similarity(lmn1[:, 1:2], lmn2[:, 1:2], C3)
    s_n = similarity(lmn1[:, 2:3], lmn2[:, 2:3], C3)
    sim = s_vs * s_gm.pow(ALPHA) * real_pow(s_m * s_n, BETA)
    weight = torch.maximum(vs1, vs2)
    num = (sim * weight).flatten(1).sum(1)
    den = weight.flatten(1).sum(1)
    return safe_div(num, den, sim.flatten(1).mean(1))


def _module(reduction: str = "none", **kw: Any) -> FunctionalMetric:
    return FunctionalMetric(vsi, reduction, **kw)


register_metric(MetricSpec(
    name="vsi", lower_better=False, differentiable=True, function=vsi, module=_module,
    best_value=1.0, min_size=MIN_SIZE,
    citation=("L. Zhang, Y. Shen, H. Li, 'VSI: A Visual Saliency-Induced Index for Perceptual Image "
              "Quality Assessment', IEEE TIP 23(10):4270-4281, 2014"),
    description="VSI with SDSP saliency (computed at 256x256 as in VSI.m); VSI.m defaults",
    options=(MetricOption("resize", str, "matlab", "imresize inside SDSP: MATLAB's (antialiased) or Octave's 2020",
                          choices=("matlab", "octave")),),
))
