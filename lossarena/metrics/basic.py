"""MSE and PSNR (on [0, 1] RGB, averaged over all channels and pixels)."""

from __future__ import annotations

import torch

from .options import MetricOption
from .registry import FunctionalMetric, MetricSpec, register_metric
from .validate import validate_images


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image, on the [0, 1] scale, over channels and pixels."""
    validate_images(x, y, name="mse")
    return (x - y).pow(2).flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """PSNR in dB with peak 1 (equal to peak 255 on 8-bit images), RGB MSE.

    ``eps`` bounds identical images at 100 dB instead of infinity.
    """
    validate_images(x, y, name="psnr")
    return -10.0 * torch.log10((x - y).pow(2).flatten(1).mean(1) + eps)


register_metric(MetricSpec(
    name="mse", lower_better=True, differentiable=True, function=mse,
    module=lambda reduction="none", **kw: FunctionalMetric(mse, reduction, **kw),
    best_value=0.0, citation="mean squared error", description="mean squared error on [0, 1] RGB",
))
register_metric(MetricSpec(
    name="psnr", lower_better=False, differentiable=True, function=psnr,
    module=lambda reduction="none", **kw: FunctionalMetric(psnr, reduction, **kw),
    best_value=None, citation="peak signal-to-noise ratio, 10 log10(1/MSE)",
    options=(MetricOption("eps", float, 1e-10, "added to the MSE; identical images give 100 dB"),),
    description="PSNR in dB over RGB",
))
