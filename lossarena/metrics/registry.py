"""The registry of full-reference image-quality metrics.

Conventions (one for every metric, documented in the README):

* argument order ``metric(x, y)``: ``x`` is the **distorted** image, ``y`` the **reference**
  (``input, target`` as in ``torch.nn`` losses, and piq's order);
* images are float RGB, NCHW, values in [0, 1], batched, on any device (checked by
  :func:`~lossarena.metrics.validate.validate_images`);
* the function returns one value per image, shape ``(N,)``; the module's ``forward`` does the same
  unless ``reduction="mean"|"sum"``;
* :func:`get_loss` always returns a lower-is-better, differentiable ``nn.Module``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..registry import Registry


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """What a metric is. ``function(x, y, **kw) -> (N,)``; ``module(**kw)`` an ``nn.Module``."""

    name: str
    lower_better: bool
    differentiable: bool
    citation: str
    function: Callable[..., torch.Tensor]
    module: Callable[..., nn.Module]
    needs_weights: tuple[str, ...] = ()  # backbone names in lossarena.metrics.weights.BACKBONES
    input_range: tuple[float, float] = (0.0, 1.0)
    min_size: int = 1  # smallest side in px with the default settings
    best_value: float | None = None  # value for identical images (1 for SSIM, 0 for MSE); None = unbounded
    description: str = ""
    aliases: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lower_better": self.lower_better,
            "differentiable": self.differentiable,
            "needs_weights": list(self.needs_weights),
            "input_range": list(self.input_range),
            "min_size": self.min_size,
            "citation": self.citation,
        }


METRICS: Registry[MetricSpec] = Registry("metric")


def register_metric(spec: MetricSpec, *, replace: bool = False) -> MetricSpec:
    METRICS.add(spec.name, spec, aliases=spec.aliases, replace=replace)
    return spec


PLUGIN_GROUP = "lossarena.metrics"
_plugins_loaded = False


def _ensure_builtins() -> None:
    """Register the built-in metrics, then plugins.

    Importing the implementation modules registers them. Metrics defined in higher layers (DPIS in
    ``lossarena.benchmark``) or in other packages register through the ``lossarena.metrics`` entry-point
    group, so this layer never imports a higher one by name.
    """
    global _plugins_loaded
    from . import builtin  # noqa: F401

    if _plugins_loaded:
        return
    _plugins_loaded = True  # before loading: a plugin may list the registry while it registers
    import warnings
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken plugin must not take the registry down
            warnings.warn(f"metric plugin {ep.name} ({ep.value}) failed to load: {e}", stacklevel=2)


def get_metric(name: str) -> MetricSpec:
    _ensure_builtins()
    return METRICS.get(name)


def list_metrics() -> list[MetricSpec]:
    _ensure_builtins()
    return [METRICS.get(n) for n in METRICS.names()]


def metric_names() -> list[str]:
    _ensure_builtins()
    return METRICS.names()


def weights_present(spec: MetricSpec) -> bool:
    from .weights import backbone_status

    return all(backbone_status(b).ok for b in spec.needs_weights)


class FunctionalMetric(nn.Module):
    """``nn.Module`` wrapper around a functional metric (no learnable state)."""

    def __init__(self, fn: Callable[..., torch.Tensor], reduction: str = "none", **kwargs):
        super().__init__()
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"expected reduction 'none', 'mean' or 'sum', got {reduction!r}")
        self.fn = fn
        self.kwargs = kwargs
        self.reduction = reduction

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return reduce(self.fn(x, y, **self.kwargs), self.reduction)


def reduce(v: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return v.mean()
    if reduction == "sum":
        return v.sum()
    return v


def _clamp_straight_through(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] in the forward pass, identity gradient in the backward pass."""
    return x + (x.clamp(0.0, 1.0) - x).detach()


class MetricLoss(nn.Module):
    """Lower-is-better loss built from a metric: ``v`` (lower better), ``best - v`` or ``-v``.

    The distorted input (a codec's x̂, which can leave [0, 1] during training) is clamped to [0, 1]
    with a straight-through gradient so that every metric sees a valid image and the gradient
    still flows. ``forward`` returns the batch mean.
    """

    def __init__(self, spec: MetricSpec, **kwargs):
        super().__init__()
        self.spec = spec
        self.metric = spec.module(**kwargs)
        if spec.lower_better:
            self.sign, self.offset = 1.0, 0.0
        elif spec.best_value is not None:
            self.sign, self.offset = -1.0, float(spec.best_value)
        else:
            self.sign, self.offset = -1.0, 0.0

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        v = self.metric(_clamp_straight_through(x_hat), x)
        return (self.offset + self.sign * v).mean()


def get_loss(name: str, **kwargs) -> MetricLoss:
    """A differentiable, lower-is-better loss module for metric ``name`` (for D in λ·D + R)."""
    spec = get_metric(name)
    if not spec.differentiable:
        raise ValueError(f"metric '{spec.name}' is not differentiable and cannot be used as a loss")
    return MetricLoss(spec, **kwargs)


def compute(name: str, x: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
    """Per-image values of metric ``name`` for distorted ``x`` and reference ``y``."""
    return get_metric(name).function(x, y, **kwargs)
