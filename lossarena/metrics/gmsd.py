"""GMSD — Gradient Magnitude Similarity Deviation (Xue, Zhang, Mou & Bovik 2014), as in ``GMSD.m``.

Reproduces the authors' MATLAB code step by step (images given here as RGB in [0, 1]):

1. ``Y = 0.299 R + 0.587 G + 0.114 B`` on the 0-255 scale (for a grey image stored as three equal
   channels, the grey value);
2. ``conv2(Y, fspecial('average', 2), 'same')`` then ``Y(1:2:end, 1:2:end)``: the mean of each
   2x2 block; for an odd side the last sample is averaged with a zero (conv2 pads with zeros);
3. Prewitt kernels ``[1 0 -1; 1 0 -1; 1 0 -1] / 3`` and its transpose, ``conv2(..., 'same')``
   (zero padding, so the border of a flat image has a gradient), gradient magnitude
   ``sqrt(Ix^2 + Iy^2)``;
4. GMS map ``(2 g1 g2 + T) / (g1^2 + g2^2 + T)``, T = 170;
5. score = ``std2`` of the map (sample standard deviation, N - 1).

Lower is better; 0 for identical images.

Gradients: piq's ``gmsd`` takes ``sqrt`` of the squared gradient and of the variance directly, which
gives NaN gradients where a gradient magnitude is 0 (flat or black areas, clipped codec output)
and for a constant GMS map. Here both square roots are ``sqrt(a + 1e-20)``: the value changes by
at most 1e-10, the gradient of ``sqrt(Ix^2 + Iy^2 + eps)`` w.r.t. ``Ix`` stays bounded by 1 (and is
0 at ``Ix = Iy = 0``), so the loss has finite gradients for every input.

The computation runs in float64 by default (``internal_dtype``), like MATLAB; the result is cast
back to the input dtype. GMSD works on half-resolution luma, so this costs little.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._ops import SQRT_EPS, compute_dtype, luma, safe_sqrt
from .options import MetricOption
from .registry import FunctionalMetric, MetricSpec, register_metric
from .validate import validate_images

T_GMSD = 170.0
MIN_SIZE = 3  # the half-resolution map must have >= 2 samples per side for std2 (N - 1)

GMSD_CITATION = (
    "W. Xue, L. Zhang, X. Mou, A. C. Bovik, 'Gradient magnitude similarity deviation: a highly "
    "efficient perceptual image quality index', IEEE Transactions on Image Processing 23(2):684-695, "
    "2014. Reproduces the authors' GMSD.m."
)


def _prewitt(dtype, device) -> torch.Tensor:
    dx = torch.tensor([[1.0, 0.0, -1.0]] * 3, dtype=torch.float64) / 3.0
    return torch.stack([dx, dx.t()]).unsqueeze(1).to(dtype=dtype, device=device)  # (2, 1, 3, 3)


def _gradient_magnitude_sq(img: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    """Ix^2 + Iy^2 of GMSD.m for (N, 3, H, W) RGB in [0, 1]: luma*255, 2x2 mean + decimation, Prewitt."""
    v = luma(img.to(dt)) * 255.0
    h, w = v.shape[-2:]
    if h % 2 or w % 2:
        v = F.pad(v, (0, w % 2, 0, h % 2))  # conv2 'same' zero padding at the bottom/right
    v = F.avg_pool2d(v, kernel_size=2, stride=2)
    g = F.conv2d(v, _prewitt(dt, v.device), padding=1)  # conv2 flips the kernel: sign irrelevant
    return g.pow(2).sum(dim=1, keepdim=True)


def gms_map(x: torch.Tensor, y: torch.Tensor, *, t: float = T_GMSD, internal_dtype="float64") -> torch.Tensor:
    """The GMS map (N, 1, ceil(H/2), ceil(W/2)) of GMSD.m (inputs validated by the caller)."""
    dt = compute_dtype(x, internal_dtype)
    a1 = _gradient_magnitude_sq(x, dt)
    a2 = _gradient_magnitude_sq(y, dt)
    g1, g2 = safe_sqrt(a1), safe_sqrt(a2)
    return (2.0 * g1 * g2 + t) / (a1 + a2 + t)


def gmsd(x: torch.Tensor, y: torch.Tensor, *, t: float = T_GMSD, internal_dtype="float64") -> torch.Tensor:
    """GMSD of distorted ``x`` against reference ``y`` (float RGB NCHW in [0, 1]) -> (N,); 0 = identical.

    ``t``: the constant T (170 for 0-255 images, GMSD.m). ``internal_dtype``: ``'float64'``
    (default, MATLAB parity) or ``None`` to compute in the input dtype.
    """
    validate_images(x, y, name="gmsd", min_size=MIN_SIZE)
    q = gms_map(x, y, t=t, internal_dtype=internal_dtype).flatten(1)
    var = (q - q.mean(dim=1, keepdim=True)).pow(2).sum(dim=1) / (q.shape[1] - 1)  # std2: N - 1
    return safe_sqrt(var, SQRT_EPS).to(x.dtype)


register_metric(MetricSpec(
    name="gmsd", lower_better=True, differentiable=True, function=gmsd,
    module=lambda reduction="none", **kw: FunctionalMetric(gmsd, reduction, **kw),
    best_value=0.0, min_size=MIN_SIZE, citation=GMSD_CITATION,
    description="GMSD as GMSD.m: luma, 2x2 mean + decimation, Prewitt, T=170, std2 of the GMS map",
    options=(
        MetricOption("t", float, T_GMSD, "the stability constant T (for 0-255 values)"),
        MetricOption("internal_dtype", str, "float64", "compute in float64 (MATLAB parity) or in the input dtype",
                     choices=("float64", "float32", "input")),
    ),
))
