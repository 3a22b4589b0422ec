"""MSE and PSNR (on [0, 1] RGB, averaged over all channels and pixels)."""

from __future__ import annotations

import torch

from .options import MetricOption
from .registry import FunctionalMetric, MetricSpec, register_metric
from .validate import validate_images


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image, on the [0, 1] scale, over channels and pixels; lower is better.

    Parameters
    ----------
    x : torch.Tensor
        Distorted images, float RGB (N, 3, H, W) in [0, 1].
    y : torch.Tensor
        Reference images, same shape, dtype and device as ``x``.

    Returns
    -------
    torch.Tensor
        Shape (N,), >= 0, 0 for identical images.

    Raises
    ------
    ValueError
        "expected X, got Y" for inputs outside the contract (:func:`~lossarena.metrics.validate_images`).

    Examples
    --------
    >>> import torch
    >>> mse(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5))
    tensor([0.2500])
    """
    validate_images(x, y, name="mse")
    return (x - y).pow(2).flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``-10 log10(MSE + eps)`` with peak 1 (= peak 255 on 8-bit
    images) and the MSE over RGB; higher is better.

    Parameters
    ----------
    x : torch.Tensor
        Distorted images, float RGB (N, 3, H, W) in [0, 1].
    y : torch.Tensor
        Reference images, same shape, dtype and device as ``x``.
    eps : float
        Added to the MSE: identical images give 100 dB instead of infinity.

    Returns
    -------
    torch.Tensor
        Shape (N,), in dB.

    Raises
    ------
    ValueError
        "expected X, got Y" for inputs outside the contract (:func:`~lossarena.metrics.validate_images`).

    Examples
    --------
    >>> import torch
    >>> psnr(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1))
    tensor([20.])
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
