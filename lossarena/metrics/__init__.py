"""Full-reference image-quality metrics: the registry and the project's own metrics.

Every metric is called as ``metric(x_distorted, y_reference)`` on float RGB NCHW images in [0, 1]
and returns one value per image, shape ``(N,)``; :func:`get_loss` gives a lower-is-better,
differentiable loss. Metrics are named with optional options, ``NAME[:key=value,...]``
(:func:`parse_metric_spec`). See :mod:`lossarena.metrics.registry` for the conventions.

Shared helpers, one of each (use these instead of local copies): :func:`validate_images` (the
input contract), :func:`safe_sqrt`, :func:`matlab_round`, :func:`gms_map` (GMSD's similarity map),
:data:`MS_SSIM_WEIGHTS`, :func:`vgg16_trunk` (VGG16 + L2 pooling, DISTS and DPIS) and
:func:`device_cache` (constants cached per device and dtype).

Examples
--------
>>> import torch
>>> from lossarena.metrics import compute, get_metric
>>> x = torch.rand(1, 3, 64, 64)
>>> float(compute("ssim:downsample=false", x, x))
1.0
>>> get_metric("ssim").lower_better
False
"""

from . import builtin as _builtin  # noqa: F401  (registers the project's own metrics)
from ._ops import device_cache, matlab_round, safe_sqrt
from .deep import VGG16Trunk, vgg16_trunk
from .gmsd import gms_map
from .options import MetricOption, MetricSpecRef, format_metric_spec
from .registry import (
    METRICS,
    FunctionalMetric,
    MetricLoss,
    MetricSpec,
    compute,
    get_loss,
    get_metric,
    list_metrics,
    load_plugins,
    metric_names,
    parse_metric_spec,
    register_metric,
    unregister_metric,
    weights_present,
)
from .ssim import MS_SSIM_WEIGHTS, SSIM_MATLAB_BUILTIN
from .validate import validate_images

__all__ = [
    "METRICS",
    "MS_SSIM_WEIGHTS",
    "SSIM_MATLAB_BUILTIN",
    "VGG16Trunk",
    "FunctionalMetric",
    "MetricLoss",
    "MetricOption",
    "MetricSpec",
    "MetricSpecRef",
    "compute",
    "device_cache",
    "format_metric_spec",
    "get_loss",
    "get_metric",
    "gms_map",
    "list_metrics",
    "load_plugins",
    "matlab_round",
    "metric_names",
    "parse_metric_spec",
    "register_metric",
    "safe_sqrt",
    "unregister_metric",
    "validate_images",
    "vgg16_trunk",
    "weights_present",
]
