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
and for a constant GMS map. Here both square roots are :func:`~lossarena.metrics.safe_sqrt`: exact
values, the gradient of ``sqrt(Ix^2 + Iy^2)`` w.r.t. ``Ix`` bounded by 1 and 0 at ``Ix = Iy = 0``,
so the loss has finite gradients for every input.

The computation runs in float64 by default (``internal_dtype``), like MATLAB; the result is cast
back to the input dtype. GMSD works on half-resolution luma, so this costs little.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._ops import compute_dtype, device_cache, luma, safe_sqrt
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


@device_cache()
def _prewitt() -> torch.Tensor:
    dx = torch.tensor([[1.0, 0.0, -1.0]] * 3, dtype=torch.float64) / 3.0
    return torch.stack([dx, dx.t()]).unsqueeze(1)  # (2, 1, 3, 3)


def _gradient_magnitude_sq(img: torch.Tensor, dt: torch.dtype, downsample: bool, padding: str) -> torch.Tensor:
    """Ix^2 + Iy^2 of GMSD.m for (N, 3, H, W) RGB in [0, 1]: luma*255, 2x2 mean + decimation, Prewitt."""
    v = luma(img.to(dt)) * 255.0
    if downsample:
        h, w = v.shape[-2:]
        if h % 2 or w % 2:
            v = F.pad(v, (0, w % 2, 0, h % 2))  # conv2 'same' zero padding at the bottom/right
        v = F.avg_pool2d(v, kernel_size=2, stride=2)
    if padding == "replicate":
        v = F.pad(v, (1, 1, 1, 1), mode="replicate")
    # conv2 flips the kernel: the sign is irrelevant for the magnitude
    g = F.conv2d(v, _prewitt(device=v.device, dtype=dt), padding=1 if padding == "zeros" else 0)
    return g.pow(2).sum(dim=1, keepdim=True)


def gms_map(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    t: float = T_GMSD,
    internal_dtype: str | torch.dtype | None = "float64",
    downsample: bool = True,
    padding: str = "zeros",
) -> torch.Tensor:
    """Gradient magnitude similarity (GMS) map of GMSD: ``(2 g1 g2 + T) / (g1^2 + g2^2 + T)``.

    The defaults are GMSD.m's (luma on 0-255, 2x2 mean + decimation, Prewitt with zero padding,
    T = 170). The same map at full resolution with replicate padding (``downsample=False,
    padding="replicate"``) serves as a local distortion map (e.g. for ROI models). Inputs are
    validated by the caller (:func:`gmsd` does; call :func:`~lossarena.metrics.validate_images`).

    Parameters
    ----------
    x, y : torch.Tensor
        Distorted and reference images, float RGB (N, 3, H, W) in [0, 1].
    t : float
        The constant T for 0-255 values (170; T/255^2 = 0.0026 on the [0, 1] scale).
    internal_dtype : {"float64", "float32", "input"} or torch.dtype or None
        Compute dtype (``None``/``"input"``: the input's). The map is returned in that dtype.
    downsample : bool
        GMSD.m's 2x2 block mean and decimation first.
    padding : {"zeros", "replicate"}
        Border handling of the Prewitt filter (``conv2 'same'`` pads with zeros).

    Returns
    -------
    torch.Tensor
        (N, 1, ceil(H/2), ceil(W/2)) (or (N, 1, H, W) without downsampling), values in (0, 1];
        1 where the gradients agree. Higher is more similar.

    Raises
    ------
    ValueError
        For an unknown ``padding`` or ``internal_dtype``.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(1, 3, 16, 16)
    >>> gms_map(y, y).shape, bool(torch.allclose(gms_map(y, y).float(), torch.ones(1)))
    (torch.Size([1, 1, 8, 8]), True)
    >>> gms_map(y, y, downsample=False, padding="replicate").shape
    torch.Size([1, 1, 16, 16])
    """
    if padding not in ("zeros", "replicate"):
        raise ValueError(f"gms_map: expected padding 'zeros' or 'replicate', got {padding!r}")
    dt = compute_dtype(x, internal_dtype)
    a1 = _gradient_magnitude_sq(x, dt, downsample, padding)
    a2 = _gradient_magnitude_sq(y, dt, downsample, padding)
    g1, g2 = safe_sqrt(a1), safe_sqrt(a2)
    return (2.0 * g1 * g2 + t) / (a1 + a2 + t)


def gmsd(
    x: torch.Tensor, y: torch.Tensor, *, t: float = T_GMSD, internal_dtype: str | torch.dtype | None = "float64"
) -> torch.Tensor:
    """Gradient Magnitude Similarity Deviation of a distorted image against its reference; lower is better.

    Parameters
    ----------
    x : torch.Tensor
        Distorted images, float RGB (N, 3, H, W) in [0, 1], H, W >= 3.
    y : torch.Tensor
        Reference images, same shape.
    t : float
        The constant T for 0-255 values (170, GMSD.m).
    internal_dtype : {"float64", "float32", "input"} or torch.dtype or None
        Compute dtype: ``"float64"`` (default, MATLAB parity) or ``"input"``/``None`` for the input's.

    Returns
    -------
    torch.Tensor
        Shape (N,), in the input dtype; >= 0, 0 for identical images. Lower is better.

    Raises
    ------
    ValueError
        "expected X, got Y" for images outside the contract (see :func:`validate_images`).

    References
    ----------
    W. Xue, L. Zhang, X. Mou, A. C. Bovik, "Gradient magnitude similarity deviation: a highly
    efficient perceptual image quality index", IEEE TIP 23(2):684-695, 2014.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> bool((gmsd(y, y) < 1e-12).all())
    True
    >>> bool((gmsd(0.5 * y, y) > 0).all())
    True
    """
    validate_images(x, y, name="gmsd", min_size=MIN_SIZE)
    q = gms_map(x, y, t=t, internal_dtype=internal_dtype).flatten(1)
    var = (q - q.mean(dim=1, keepdim=True)).pow(2).sum(dim=1) / (q.shape[1] - 1)  # std2: N - 1
    return safe_sqrt(var).to(x.dtype)


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
