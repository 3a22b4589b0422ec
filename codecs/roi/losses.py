"""Training losses of the ROI codec (seed 002, Eq. 3–5); see :mod:`lossarena.codecs.roi.train`."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

_WARNED: set[str] = set()


def _warn_once(key: str, msg: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(msg, stacklevel=3)


def _st_clamp(x):
    return x + (x.clamp(0, 1) - x).detach()


def msssim_scales_for(size: int, max_scales: int = 5) -> int:
    s = 1
    while s < max_scales and 11 * 2 ** s <= size:
        s += 1
    return s


class _PiqSSIM(torch.nn.Module):
    def forward(self, x_hat, x):
        import piq

        return 1.0 - piq.ssim(_st_clamp(x_hat), x, data_range=1.0, downsample=False, reduction="mean")


class _PiqMSSSIM(torch.nn.Module):
    def __init__(self, size: int):
        super().__init__()
        w = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])[: msssim_scales_for(size)]
        self.register_buffer("w", w / w.sum())

    def forward(self, x_hat, x):
        import piq

        return 1.0 - piq.multi_scale_ssim(_st_clamp(x_hat), x, data_range=1.0, scale_weights=self.w,
                                          reduction="mean")


def _registered(name: str):
    from lossarena.metrics import metric_names

    return name in metric_names()


def make_bg_losses(perceptual: str, patch: int):
    """``(ssim_loss, perceptual_loss, perceptual_name)``, each ``(x_hat, x) -> scalar``, lower better."""
    from lossarena.metrics import get_loss, get_metric, weights_present

    ssim = get_loss("ssim") if _registered("ssim") else _PiqSSIM()
    name = perceptual
    if perceptual and _registered(perceptual):
        spec = get_metric(perceptual)
        if weights_present(spec) and spec.min_size <= patch:
            return ssim, get_loss(perceptual), spec.name
        why = f"its backbone ({', '.join(spec.needs_weights)}) is missing" if not weights_present(spec) \
            else f"it needs ≥ {spec.min_size} px"
    else:
        why = "it is not registered"
    if _registered("ms-ssim") and get_metric("ms-ssim").min_size <= patch:
        fb, fname = get_loss("ms-ssim"), "ms-ssim"
    else:
        fb, fname = _PiqMSSSIM(patch), f"ms-ssim(piq, {msssim_scales_for(patch)} scales)"
    _warn_once("bg-perceptual", f"ROI codec: background perceptual term '{name}' unavailable ({why}); using the "
                                f"weight-free 1 - {fname} instead (install the backbone with "
                                "`lossarena weights download` for LPIPS)")
    return ssim, fb, fname


def roi_distortion(x_hat, x, rm, ssim_loss, perc_loss, dcfg) -> dict:
    d_roi = float(dcfg["mse_scale"]) * (rm * (x_hat - x) ** 2).mean()
    xt = rm * x + (1 - rm) * x_hat
    d_ssim = ssim_loss(xt, x)
    d_p = perc_loss(xt, x)
    d_bg = d_ssim + float(dcfg["lambda_p"]) * d_p
    return {"d_roi": d_roi, "d_bg": d_bg, "D": d_roi + float(dcfg["bg_weight"]) * d_bg}


def bits_per_image(likelihoods: dict) -> torch.Tensor:
    return sum((-torch.log2(v)).flatten(1).sum(1) for v in likelihoods.values())


def sample_alpha(rng: np.random.Generator, n: int, acfg: dict, default: float) -> torch.Tensor:
    if not acfg:
        return torch.full((n,), float(default))
    lo, hi = math.log(float(acfg["min"])), math.log(float(acfg["max"]))
    a = np.exp(rng.uniform(lo, hi, n))
    off = rng.random(n) < float(acfg.get("p_off", 0.0))
    a[off] = np.inf
    return torch.tensor(a, dtype=torch.float32)

