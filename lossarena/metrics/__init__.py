"""The metric registry (see :mod:`lossarena.metrics.registry` for the conventions)."""

from .registry import (
    METRICS,
    MetricLoss,
    MetricSpec,
    compute,
    get_loss,
    get_metric,
    list_metrics,
    metric_names,
    register_metric,
    weights_present,
)
from .validate import validate_images

__all__ = [
    "METRICS",
    "MetricLoss",
    "MetricSpec",
    "compute",
    "get_loss",
    "get_metric",
    "list_metrics",
    "metric_names",
    "register_metric",
    "validate_images",
    "weights_present",
]
