"""NLPD — Normalized Laplacian Pyramid Distance (Laparra, Ballé, Berardino & Simoncelli 2016).

Reproduces the authors' MATLAB reference ``NLP_dist.m`` (cns.nyu.edu/~lcv/NLPyr/, the software
published with the 2016 paper), which takes grey images in [0, 1]:

* **Luminance:** none. The 2016 model works on the pixel values in [0, 1] as given (no gamma /
  display model; the power-law and cd/m^2 front end belong to the later 2017 JOSA-A rendering
  version, "NLPdist_lum", which is not this metric).
* **Laplacian pyramid** (Burt & Adelson), ``N_levels = 6``: 5 band-pass levels and the low-pass
  residual. Filter ``f' * f`` with ``f = [0.05, 0.25, 0.4, 0.25, 0.05]``. Downsampling:
  ``imfilter(J, filter, 'symmetric')`` then ``J(1:2:end, 1:2:end)``. Upsampling: replicate-pad by
  1, insert zeros (``R(1:2:end, 1:2:end) = 4 * I``), ``imfilter`` with zero padding, crop
  ``R(3 : end-2-odd, ...)``. Band ``k`` = ``J - upsample(downsample(J))``.
* **Divisive normalisation** per level k: ``y = z ./ (sigma_k + conv2(|z|, P_k, 'same'))``
  (``conv2``: zero padding, kernel flipped), with the learned 5x5 filters ``P_k`` and
  ``sigma = [0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782]`` of ``DN_filters`` (level 1 includes
  its 0.0072 tap two pixels to the right, which some ports drop).
* **Pooling:** per level the root mean square of the difference of the normalised coefficients
  (exponent 2), then the plain mean over the 6 levels (exponent 1):
  ``NLPD = mean_k sqrt(mean((y_k(x) - y_k(ref))^2))``.

Colour: the reference code is for grey images. ``color='y'`` (default) applies it to the luma
``Y = 0.299 R + 0.587 G + 0.114 B`` in [0, 1] (a grey image stored as three equal channels gives
the grey image itself, i.e. exactly NLP_dist.m); ``color='rgb'`` averages the NLPD of the three
channels (as the authors' later ``NLPdist_RGB`` does per channel).

Lower is better, 0 for identical images, symmetric in its arguments. The RMS square root is
``sqrt(m + 1e-20)`` (value change <= 1e-10) so that identical or nearly identical images give
finite gradients. Computed in the input dtype.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ._ops import device_cache, safe_sqrt, symmetric_pad, to_channels
from .options import MetricOption
from .registry import FunctionalMetric, MetricSpec, register_metric
from .validate import validate_images

N_LEVELS = 6
LAP_FILTER_1D = (0.05, 0.25, 0.4, 0.25, 0.05)
SIGMAS = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)
# DN_filters: 5x5 filters P_k as (row, col, weight), 0-based, centre (2, 2) — NLP_dist.m
DN_TAPS = (
    ((1, 2, 0.1011), (2, 1, 0.1493), (2, 3, 0.1460), (2, 4, 0.0072), (3, 2, 0.1015)),
    ((1, 2, 0.0757), (2, 1, 0.1986), (2, 3, 0.1846), (3, 2, 0.0837)),
    ((1, 2, 0.0477), (2, 1, 0.2138), (2, 3, 0.2243), (3, 2, 0.0467)),
    ((2, 1, 0.2503), (2, 3, 0.2616)),
    ((2, 1, 0.2598), (2, 3, 0.2552)),
    ((2, 1, 0.2215), (2, 3, 0.0717)),
)
# Every one of the 5 downsamplings halves an image of >= 2 px (ceil(17/16) = 2).
MIN_SIZE = 17

NLPD_CITATION = (
    "V. Laparra, J. Ballé, A. Berardino, E. P. Simoncelli, 'Perceptual image quality assessment using "
    "a normalized Laplacian pyramid', Proc. IS&T Electronic Imaging, Human Vision and Electronic "
    "Imaging XXI, 2016(16):1-6, doi:10.2352/ISSN.2470-1173.2016.16.HVEI-103. Reproduces NLP_dist.m."
)


@device_cache()
def _dn_filter(level: int, flipped: bool) -> torch.Tensor:
    p = torch.zeros(5, 5, dtype=torch.float64)
    for r, c, v in DN_TAPS[level]:
        p[r, c] = v
    return p.flip(0, 1) if flipped else p


def dn_filter(level: int, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    """The 5x5 divisive-normalisation filter ``P_k`` of level ``level`` (0-based), as in NLP_dist.m
    (cached per device and dtype; do not modify it in place)."""
    return _dn_filter(level, False, device=device, dtype=dtype)


@device_cache()
def _pyramid_taps() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 5-tap Laplacian filter and the even/odd polyphase taps of the upsampling."""
    return (torch.tensor(LAP_FILTER_1D, dtype=torch.float64), torch.tensor([0.1, 0.8, 0.1], dtype=torch.float64),
            torch.tensor([0.5, 0.5], dtype=torch.float64))


def _dw(x: torch.Tensor, k: torch.Tensor, **kw: Any) -> torch.Tensor:
    """Depthwise conv of (1, B, h, w) with one 2-D kernel ``k``: every image of the batch is a channel.

    (On the CPU a (B, 1, h, w) single-channel convolution takes a far slower path.)
    """
    b = x.shape[1]
    return F.conv2d(x, k.view(1, 1, *k.shape).expand(b, 1, *k.shape), groups=b, **kw)


def _downsample(j: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """imfilter(J, f'*f, 'symmetric') then J(1:2:end, 1:2:end); (1, B, h, w) -> ceil halves."""
    t = symmetric_pad(j, 2, 2, 2, 2)
    t = _dw(t, f.view(5, 1), stride=(2, 1))
    return _dw(t, f.view(1, 5), stride=(1, 2))


def _upsample(i: torch.Tensor, odd_h: int, odd_w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """NLP_dist.m's upsample: replicate-pad 1, zero insertion x4, imfilter (zeros), crop 3:end-2-odd.

    Written in polyphase form, one dimension at a time (factor 2 per dimension): with ``p`` the
    replicate-padded signal, output sample 2j is ``0.1 p[j] + 0.8 p[j+1] + 0.1 p[j+2]`` and sample
    2j+1 is ``0.5 p[j+1] + 0.5 p[j+2]`` (the even/odd taps of ``2 * [.05 .25 .4 .25 .05]``);
    the last sample is dropped where the target side is odd. The test transcribes the MATLAB
    code literally and checks the two agree.
    """
    _, even, odd = _pyramid_taps(device=device, dtype=dtype)
    t = F.pad(i, (1, 1, 1, 1), mode="replicate")
    b, h, w = t.shape[1], t.shape[-2] - 2, t.shape[-1] - 2
    # rows
    e = _dw(t, even.view(3, 1))
    o = _dw(t[..., 1:, :], odd.view(2, 1))
    t = torch.stack([e, o], dim=-2).reshape(1, b, 2 * h, w + 2)
    # columns
    e = _dw(t, even.view(1, 3))
    o = _dw(t[..., 1:], odd.view(1, 2))
    t = torch.stack([e, o], dim=-1).reshape(1, b, 2 * h, 2 * w)
    return t[..., : 2 * h - odd_h, : 2 * w - odd_w]


def laplacian_pyramid(x: torch.Tensor, levels: int = N_LEVELS) -> list[torch.Tensor]:
    """NLP_dist.m's ``laplacian_pyramid_s`` of (1, B, H, W) images (each channel one grey image):
    ``levels - 1`` band-pass images and the low-pass residual."""
    f = _pyramid_taps(device=x.device, dtype=x.dtype)[0]
    pyr = []
    j = x
    for _ in range(levels - 1):
        i = _downsample(j, f)
        odd_h, odd_w = 2 * i.shape[-2] - j.shape[-2], 2 * i.shape[-1] - j.shape[-1]
        pyr.append(j - _upsample(i, odd_h, odd_w, x.dtype, x.device))
        j = i
    pyr.append(j)
    return pyr


def normalized_laplacian_pyramid(x: torch.Tensor) -> list[torch.Tensor]:
    """The 6 normalised levels ``y_k = z_k / (sigma_k + conv2(|z_k|, P_k, 'same'))`` of (1, B, H, W)."""
    out = []
    for k, z in enumerate(laplacian_pyramid(x, N_LEVELS)):
        # conv2 = correlation with the flipped kernel, zero padding 2 ('same' for 5x5)
        p = _dn_filter(k, True, device=z.device, dtype=z.dtype)
        out.append(z / (SIGMAS[k] + _dw(z.abs(), p, padding=2)))
    return out


def nlpd(x: torch.Tensor, y: torch.Tensor, *, color: str = "y") -> torch.Tensor:
    """Normalized Laplacian Pyramid Distance of a distorted image against its reference; lower is better.

    Parameters
    ----------
    x : torch.Tensor
        Distorted images, float RGB (N, 3, H, W) in [0, 1], sides >= 17.
    y : torch.Tensor
        Reference images, same shape, dtype and device.
    color : {"y", "rgb"}
        ``'y'`` (default: NLP_dist.m on the luma) or ``'rgb'`` (mean of the per-channel NLPD).

    Returns
    -------
    torch.Tensor
        Shape (N,), >= 0, 0 for identical images; symmetric in its arguments.

    Raises
    ------
    ValueError
        "expected X, got Y" for inputs outside the contract (:func:`~lossarena.metrics.validate_images`).

    References
    ----------
    V. Laparra, J. Ballé, A. Berardino, E. P. Simoncelli, "Perceptual image quality assessment using
    a normalized Laplacian pyramid", IS&T Electronic Imaging, HVEI XXI, 2016.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> nlpd(y, y)
    tensor([0., 0.])
    """
    validate_images(x, y, name="nlpd", min_size=MIN_SIZE)
    a = to_channels(x, color, "nlpd")
    b = to_channels(y, color, "nlpd")
    n, c, h, w = a.shape
    # every channel of every image is one grey image: (1, N*C, H, W), depthwise convolutions;
    # the two images go through separately so that backward only runs through the distorted one
    px = normalized_laplacian_pyramid(a.reshape(1, n * c, h, w))
    py = normalized_laplacian_pyramid(b.reshape(1, n * c, h, w))
    per_level = []
    for yx, yy in zip(px, py, strict=True):
        d = (yx[0] - yy[0]).pow(2).flatten(1).mean(dim=1)
        per_level.append(safe_sqrt(d))
    dist = torch.stack(per_level, dim=1).mean(dim=1)  # (n*c,)
    return dist.view(n, c).mean(dim=1)


register_metric(MetricSpec(
    name="nlpd", lower_better=True, differentiable=True, function=nlpd,
    module=lambda reduction="none", **kw: FunctionalMetric(nlpd, reduction, **kw),
    best_value=0.0, min_size=MIN_SIZE, citation=NLPD_CITATION,
    description="NLPD as NLP_dist.m (2016): luma in [0,1], 6-level Laplacian pyramid, learned DN, RMS/mean",
    options=(MetricOption("color", str, "y", "'y': NLP_dist.m on the luma; 'rgb': mean of the per-channel NLPD",
                          choices=("y", "rgb")),),
))
