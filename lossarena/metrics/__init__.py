"""Full-reference image-quality metrics: the registry and the project's own metrics.

Every metric is called as ``metric(x_distorted, y_reference)`` on float RGB NCHW images in [0, 1]
and returns one value per image, shape ``(N,)``; :func:`get_loss` gives a lower-is-better,
differentiable loss. Metrics are named with optional options, ``NAME[:key=value,...]``
(:func:`parse_metric_spec`). See :mod:`lossarena.metrics.registry` for the conventions.

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
from .options import MetricOption, MetricSpecRef, format_metric_spec, parse_metric_spec
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
    register_metric,
    unregister_metric,
    weights_present,
)
from .validate import validate_images

__all__ = [
    "METRICS",
    "FunctionalMetric",
    "MetricLoss",
    "MetricOption",
    "MetricSpec",
    "MetricSpecRef",
    "compute",
    "format_metric_spec",
    "get_loss",
    "get_metric",
    "list_metrics",
    "load_plugins",
    "metric_names",
    "parse_metric_spec",
    "register_metric",
    "unregister_metric",
    "validate_images",
    "weights_present",
]
