"""FSIM and FSIMc (Zhang, Zhang, Mou, Zhang 2011), reproducing the authors' ``FeatureSIM.m``.

What is reproduced, step by step (MATLAB names in brackets):

* inputs on the 0-255 scale; YIQ with ``Y = .299R + .587G + .114B``, ``I = .596R - .274G - .322B``,
  ``Q = .211R - .523G + .312B``;
* automatic downsampling ``F = max(1, round(min(H, W) / 256))`` (MATLAB rounding) with an FxF
  average filter (``conv2 'same'``, zero padding) and ``(1:F:end)`` subsampling;
* phase congruency of Y as in ``phasecong2``: 4 scales x 4 orientations of log-Gabor filters
  (minWaveLength 6, mult 2, sigmaOnf 0.55, dThetaOnSigma 1.2, Butterworth low-pass 0.45 / order 15),
  ``epsilon = 1e-4`` in the weighted mean phase, noise threshold from the median squared response
  at the smallest scale (k = 2, Rayleigh model, /1.7), ``PC = sum_o max(E_o - T_o, 0) / sum An``;
* Scharr gradient magnitude; ``S_PC`` with T1 = 0.85, ``S_G`` with T2 = 160; weights ``max(PC1, PC2)``;
* FSIMc: ``S_I``, ``S_Q`` with T3 = T4 = 200 and ``real((S_I S_Q)^0.03)`` (MATLAB's real part of the
  complex power when the product is negative; piq uses ``|S_I S_Q|^0.03`` instead).

Grey images: ``FeatureSIM.m`` treats a 2-D input as Y with ``I = Q = 1`` for both images, so FSIMc
of a grey pair equals FSIM. lossarena receives grey images as three equal channels; then ``I = Q =
0`` exactly and the chromatic factor is 1 as well, so ``fsim(x, y)`` (chromatic=True, the default)
reproduces MATLAB's FSIM on grey pairs and FSIMc on colour pairs, as the authors' own call does.
``chromatic=False`` gives FSIM (luma only) on colour pairs.

Differences from MATLAB, none of which changes a value where MATLAB's is defined:

* the image mean is subtracted before the FFT (the filters are 0 at DC, so this is exact; it only
  removes round-off from flat images);
* ``0/0`` (a flat image, no filter response) gives PC = 0 instead of NaN, and when neither image
  has any phase congruency at all the weights become uniform instead of ``0/0``;
* square roots and fractional powers use subgradient 0 at 0 (finite gradients on flat images);
* the median of even-length vectors is MATLAB's (mean of the two middle values).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ._ops import auto_downsample_factor, device_cache, safe_sqrt
from ._zhang_common import (
    colour_matrix,
    colour_transform,
    grad_scope,
    matlab_average_downsample,
    real_pow,
    safe_div,
    scharr_magnitude,
    similarity,
)
from .options import MetricOption
from .registry import FunctionalMetric, MetricSpec, register_metric
from .validate import validate_images

# phasecong2 defaults as in FeatureSIM.m
NSCALE, NORIENT = 4, 4
MIN_WAVELENGTH, MULT, SIGMA_ON_F, D_THETA_ON_SIGMA = 6, 2, 0.55, 1.2
K_NOISE, EPSILON = 2.0, 1e-4
T1, T2, T3, T4, LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03
MIN_SIZE = 8

_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def _freq_grid(n: int) -> torch.Tensor:
    """phasecong2's normalised frequency range for one axis (odd and even lengths differ)."""
    if n % 2:
        return torch.arange(-(n - 1) / 2, (n - 1) / 2 + 0.5, dtype=torch.float64) / max(n - 1, 1)
    return torch.arange(-n / 2, n / 2, dtype=torch.float64) / n


def _ifftshift2(a: torch.Tensor) -> torch.Tensor:
    return torch.fft.ifftshift(a, dim=(-2, -1))


@device_cache(maxsize=8)
def _filter_bank(rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-Gabor filters (O, S, rows, cols) and the per-orientation noise constants (float64)."""
    yr, xr = _freq_grid(rows), _freq_grid(cols)
    y, x = torch.meshgrid(yr, xr, indexing="ij")
    radius = torch.sqrt(x * x + y * y)
    theta = torch.atan2(-y, x)
    lp = _ifftshift2(1.0 / (1.0 + (radius / 0.45) ** (2 * 15)))
    radius = _ifftshift2(radius).clone()
    theta = _ifftshift2(theta)
    radius[0, 0] = 1.0
    sint, cost = torch.sin(theta), torch.cos(theta)
    log_gabor = []
    for s in range(NSCALE):
        fo = 1.0 / (MIN_WAVELENGTH * MULT**s)
        lg = torch.exp(-(torch.log(radius / fo) ** 2) / (2 * math.log(SIGMA_ON_F) ** 2)) * lp
        lg[0, 0] = 0.0
        log_gabor.append(lg)
    theta_sigma = math.pi / NORIENT / D_THETA_ON_SIGMA
    filters = torch.empty(NORIENT, NSCALE, rows, cols, dtype=torch.float64)
    for o in range(NORIENT):
        angl = o * math.pi / NORIENT
        ds = sint * math.cos(angl) - cost * math.sin(angl)
        dc = cost * math.cos(angl) + sint * math.sin(angl)
        spread = torch.exp(-(torch.atan2(ds, dc).abs() ** 2) / (2 * theta_sigma**2))
        for s in range(NSCALE):
            filters[o, s] = log_gabor[s] * spread
    em_n = filters[:, 0].pow(2).sum(dim=(-2, -1))  # (O,)
    ifft_filt = torch.fft.ifft2(filters).real * math.sqrt(rows * cols)  # (O, S, rows, cols)
    sum_an2 = ifft_filt.pow(2).sum(dim=(1, 2, 3))
    sum_aiaj = torch.zeros(NORIENT, dtype=torch.float64)
    for si in range(NSCALE - 1):
        for sj in range(si + 1, NSCALE):
            sum_aiaj += (ifft_filt[:, si] * ifft_filt[:, sj]).sum(dim=(-2, -1))
    # EstNoiseEnergy2 = noisePower * (2 sumAn2 + 4 sumAiAj);  noisePower = meanE2n / EM_n
    noise_gain = (2.0 * sum_an2 + 4.0 * sum_aiaj) / em_n  # (O,)
    # The image spectrum X is Hermitian, so with f = f_even + f_odd (f_even(u) = f_even(-u),
    # f_odd(u) = -f_odd(-u)): real(ifft2(X f)) = ifft2(X f_even) and imag(ifft2(X f)) =
    # ifft2(-i X f_odd), both Hermitian -> both are exact real inverse FFTs of half spectra.
    mirrored = torch.roll(torch.flip(filters, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    half = cols // 2 + 1
    f_even = (0.5 * (filters + mirrored))[..., :half]
    f_odd = (0.5 * (filters - mirrored))[..., :half]
    bank = torch.stack([f_even.to(torch.complex128), -1j * f_odd.to(torch.complex128)])  # (2, O, S, H, W/2+1)
    return bank, noise_gain


def _median_last(v: torch.Tensor) -> torch.Tensor:
    """MATLAB ``median`` along the last dim (mean of the two middle values for even lengths)."""
    n = v.shape[-1]
    lo = torch.kthvalue(v, (n + 1) // 2, dim=-1).values
    if n % 2:
        return lo
    hi = torch.kthvalue(v, n // 2 + 1, dim=-1).values
    return 0.5 * (lo + hi)


class _PhaseEnergy(torch.autograd.Function):
    """Per-orientation PC energy, total amplitude and smallest-scale power, hand-differentiated.

    Input: ``eo`` of shape (B, 2, O, S, H, W): even (``eo[:, 0]``) and odd (``eo[:, 1]``) filter
    responses for O orientations and S scales. Forward (phasecong2's names):
    ``An = |E + iO|``, ``sumE = sum_s E``, ``sumO = sum_s O``, ``XEnergy = |sumE + i sumO| + eps``,
    ``MeanE, MeanO = sumE, sumO / XEnergy``,
    ``Energy = sum_s (E MeanE + O MeanO - |E MeanO - O MeanE|)``.
    Returns ``Energy`` (B, O, H, W), ``sum_{o,s} An`` (B, H, W) and ``|EO_{s=0}|^2`` (B, O, H, W,
    for the noise estimate). This is the hot loop; the explicit backward touches each big tensor
    a handful of times instead of autograd's dozens, and uses subgradient 0 where an amplitude is 0.
    """

    @staticmethod
    def forward(ctx: Any, eo: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e, o = eo[:, 0], eo[:, 1]
        an = torch.hypot(e, o)
        an_all = an.sum(dim=(1, 2))
        se, so = e.sum(dim=2), o.sum(dim=2)
        r = torch.hypot(se, so)
        xe = r + eps
        me, mo = (se / xe).unsqueeze(2), (so / xe).unsqueeze(2)
        c = torch.addcmul(e * mo, o, me, value=-1.0)  # E MeanO - O MeanE
        energy = r * r / xe - c.abs().sum(dim=2)
        e0, o0 = e[:, :, 0], o[:, :, 0]
        power0 = e0 * e0 + o0 * o0
        ctx.save_for_backward(eo, an, c, se, so, r)
        ctx.eps = eps
        return energy, an_all, power0

    @staticmethod
    def backward(ctx, g_en, g_an, g_p0):
        eo, an, c, se, so, r = ctx.saved_tensors
        eps = ctx.eps
        e, o = eo[:, 0], eo[:, 1]
        grad = torch.zeros_like(eo)
        ge, go = grad[:, 0], grad[:, 1]
        if g_an is not None:
            # d An / d(E, O) = (E, O) / An; where An == 0, E = O = 0 and the product is 0
            w = g_an[:, None, None] / an.clamp_min(1e-30)
            torch.mul(e, w, out=ge)
            torch.mul(o, w, out=go)
        if g_en is not None:
            xe = r + eps
            me, mo = se / xe, so / xe
            sg = torch.sign(c)
            a_sum = (sg * e).sum(dim=2)  # d sum|c| / d MeanO
            b_sum = (sg * o).sum(dim=2)  # -d sum|c| / d MeanE
            rs = torch.where(r > 0, r, 1.0)
            k = 1.0 / (rs * xe * xe)
            t = se * so * k
            dme_dse, dme_dso = 1.0 / xe - se * se * k, -t
            dmo_dse, dmo_dso = -t, 1.0 / xe - so * so * k
            p = (r + 2 * eps) / (xe * xe)  # d(r^2 / xe)/dr / r
            d_se = se * p - (a_sum * dmo_dse - b_sum * dme_dse)
            d_so = so * p - (a_sum * dmo_dso - b_sum * dme_dso)
            ge.add_((g_en * d_se).unsqueeze(2)).addcmul_(sg, (g_en * mo).unsqueeze(2), value=-1.0)
            go.add_((g_en * d_so).unsqueeze(2)).addcmul_(sg, (g_en * me).unsqueeze(2))
        if g_p0 is not None:
            ge[:, :, 0].addcmul_(g_p0, e[:, :, 0], value=2.0)
            go[:, :, 0].addcmul_(g_p0, o[:, :, 0], value=2.0)
        return grad, None


def phase_congruency(y: torch.Tensor) -> torch.Tensor:
    """phasecong2 of FeatureSIM.m for a (B, 1, H, W) luma batch on the 0-255 scale -> (B, 1, H, W)."""
    b, _, rows, cols = y.shape
    bank, noise_gain = _filter_bank(rows, cols, device=y.device, dtype=y.dtype)  # built/uploaded once

    yc = y - y.mean(dim=(-2, -1), keepdim=True)  # exact: every filter is 0 at DC
    spec = torch.fft.rfft2(yc)  # (B, 1, H, W/2+1)
    eo = torch.fft.irfft2(spec.unsqueeze(1).unsqueeze(1) * bank, s=(rows, cols))  # (B, 2, O, S, H, W)
    energy, an_all, power0 = _PhaseEnergy.apply(eo, EPSILON)

    median_e2n = _median_last(power0.flatten(2))  # (B, O), |EO|^2 at the smallest scale
    mean_e2n = -median_e2n / math.log(0.5)
    tau = safe_sqrt(mean_e2n * noise_gain / 2.0)  # Rayleigh parameter
    thresh = tau * (math.sqrt(math.pi / 2) + K_NOISE * math.sqrt(2 - math.pi / 2)) / 1.7
    energy_all = torch.relu(energy - thresh[..., None, None]).sum(dim=1, keepdim=True)
    return safe_div(energy_all, an_all.unsqueeze(1), 0.0)


def fsim(x_dist: torch.Tensor, y_ref: torch.Tensor, chromatic: bool = True) -> torch.Tensor:
    """FSIMc (``chromatic=True``, default) or FSIM of a distorted image against its reference;
    higher is better.

    Grey images given as three equal channels give MATLAB's grey FSIM with either setting (see the
    module docstring).

    Parameters
    ----------
    x_dist : torch.Tensor
        Distorted images, float RGB (N, 3, H, W) in [0, 1], sides >= 8.
    y_ref : torch.Tensor
        Reference images, same shape, dtype and device.
    chromatic : bool
        FSIMc (with the I and Q similarity, default) or luma-only FSIM.

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
    L. Zhang, L. Zhang, X. Mou, D. Zhang, "FSIM: A Feature Similarity Index for Image Quality
    Assessment", IEEE TIP 20(8):2378-2386, 2011.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> round(float(fsim(y, y)), 6)
    1.0
    """
    validate_images(x_dist, y_ref, name="fsim", min_size=MIN_SIZE)
    f = auto_downsample_factor(*x_dist.shape[-2:])

    def features(img):
        yiq = matlab_average_downsample(colour_transform(img * 255.0, colour_matrix(_YIQ, img)), f)
        lum = yiq[:, :1]
        return yiq, phase_congruency(lum), scharr_magnitude(lum)

    with grad_scope(x_dist):
        yiq1, pc1, g1 = features(x_dist)
    with grad_scope(y_ref):
        yiq2, pc2, g2 = features(y_ref)
    pcm = torch.maximum(pc1, pc2)
    sim = similarity(pc1, pc2, T1) * similarity(g1, g2, T2)
    if chromatic:
        i1, i2 = yiq1[:, 1:2], yiq2[:, 1:2]
        q1, q2 = yiq1[:, 2:3], yiq2[:, 2:3]
        sim = sim * real_pow(similarity(i1, i2, T3) * similarity(q1, q2, T4), LAMBDA)
    num = (sim * pcm).flatten(1).sum(1)
    den = pcm.flatten(1).sum(1)
    # no phase congruency anywhere in either image (e.g. two flat images): uniform weights
    return safe_div(num, den, sim.flatten(1).mean(1))


def _module(reduction: str = "none", **kw: Any) -> FunctionalMetric:
    return FunctionalMetric(fsim, reduction, **kw)


register_metric(MetricSpec(
    name="fsim", lower_better=False, differentiable=True, function=fsim, module=_module,
    best_value=1.0, min_size=MIN_SIZE,
    citation=("L. Zhang, L. Zhang, X. Mou, D. Zhang, 'FSIM: A Feature Similarity Index for Image "
              "Quality Assessment', IEEE TIP 20(8):2378-2386, 2011"),
    description="FSIMc on colour, FSIM on grey (chromatic=False: luma-only FSIM); FeatureSIM.m defaults",
    aliases=("fsimc",),
    options=(MetricOption("chromatic", bool, True, "FSIMc (I and Q similarity); false: luma-only FSIM"),),
))
