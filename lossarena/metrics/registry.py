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
import functools
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ..registry import Registry
from .options import (
    MetricOption,
    MetricSpecRef,
    coerce_options,
    format_metric_spec,
    split_metric_spec,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """What a metric is, and how to build it.

    Parameters
    ----------
    name : str
        Registry name (lower case, e.g. ``"ms-ssim"``).
    lower_better : bool
        Direction: ``True`` for distances (MSE, LPIPS), ``False`` for similarities (SSIM, PSNR).
    differentiable : bool
        Whether :func:`get_loss` may build a training loss from it.
    citation : str
        The paper (and the reference implementation reproduced).
    function : callable
        ``function(x_distorted, y_reference, **options) -> Tensor (N,)``.
    module : callable
        ``module(reduction="none", **options) -> nn.Module`` with ``forward(x, y)``.
    needs_weights : tuple of str
        Backbone names in :data:`lossarena.metrics.weights.BACKBONES`.
    input_range : tuple of float
        Value range of the inputs (always ``(0, 1)`` for the built-in metrics).
    min_size : int
        Smallest image side in px with the current options.
    best_value : float or None
        Value for identical images (1 for SSIM, 0 for MSE); ``None`` when unbounded (PSNR).
    description : str
        One line for listings.
    aliases : tuple of str
        Other names accepted by the registry.
    options : tuple of MetricOption
        The typed keyword options the metric accepts (see :mod:`lossarena.metrics.options`).
    min_size_for : callable, optional
        ``min_size_for(**options) -> int`` when the minimum size depends on an option.
    bound : tuple of (str, Any)
        Options bound into :attr:`function` and :attr:`module` by :func:`get_metric` (empty for the
        registered spec).
    spec_string : str
        The string the metric was asked for (``"ssim:downsample=false"``), see :attr:`key`.

    Examples
    --------
    >>> spec = get_metric("ms-ssim:scales=3")
    >>> spec.name, spec.lower_better, spec.best_value, spec.min_size, spec.kwargs
    ('ms-ssim', False, 1.0, 41, {'scales': 3})
    """

    name: str
    lower_better: bool
    differentiable: bool
    citation: str
    function: Callable[..., torch.Tensor]
    module: Callable[..., nn.Module]
    needs_weights: tuple[str, ...] = ()
    input_range: tuple[float, float] = (0.0, 1.0)
    min_size: int = 1
    best_value: float | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    options: tuple[MetricOption, ...] = ()
    min_size_for: Callable[..., int] | None = None
    bound: tuple[tuple[str, Any], ...] = ()
    spec_string: str = ""

    @property
    def key(self) -> str:
        """The spec string when options were bound (``"ssim:downsample=false"``), else :attr:`name`."""
        return self.spec_string or self.name

    @property
    def kwargs(self) -> dict[str, Any]:
        """The options bound into this spec (``{}`` for the registered default)."""
        return dict(self.bound)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able summary (name, direction, weights, size, options, citation)."""
        return {
            "name": self.name,
            "key": self.key,
            "lower_better": self.lower_better,
            "differentiable": self.differentiable,
            "needs_weights": list(self.needs_weights),
            "input_range": list(self.input_range),
            "min_size": self.min_size,
            "options": {o.name: {"type": o.type.__name__, "default": o.default, "help": o.help,
                                 "choices": list(o.choices) if o.choices else None} for o in self.options},
            "bound": self.kwargs,
            "citation": self.citation,
        }


METRICS: Registry[MetricSpec] = Registry("metric")
"""The registry itself; use :func:`register_metric` / :func:`get_metric` rather than this object."""


def register_metric(spec: MetricSpec, *, replace: bool = False) -> MetricSpec:
    """Add a metric to the registry (the public registration API).

    The project's own metrics register when :mod:`lossarena.metrics` is imported; metrics defined in
    higher layers (the learned DPIS and ROI-MLP metrics of :mod:`lossarena.benchmark`) call this
    explicitly; third-party packages may instead expose a module in the ``lossarena.metrics``
    entry-point group, which is imported only when a name is not found (see :func:`load_plugins`).

    Parameters
    ----------
    spec : MetricSpec
        The metric. ``spec.name`` and ``spec.aliases`` must be new unless ``replace``.
    replace : bool
        Replace an existing metric of the same name.

    Returns
    -------
    MetricSpec
        ``spec`` (or the equal spec already registered: registering the same spec twice is a no-op).

    Raises
    ------
    ValueError
        When the name is taken by a different metric and ``replace`` is false, or ``spec`` carries
        bound options (register the plain spec).

    Examples
    --------
    >>> import torch
    >>> from lossarena.metrics import FunctionalMetric, MetricSpec, register_metric, unregister_metric
    >>> def l1(x, y):
    ...     return (x - y).abs().flatten(1).mean(1)
    >>> spec = register_metric(MetricSpec(
    ...     name="l1-demo", lower_better=True, differentiable=True, citation="mean absolute error",
    ...     function=l1, module=lambda reduction="none": FunctionalMetric(l1, reduction)))
    >>> float(get_metric("l1-demo").function(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4))[0])
    1.0
    >>> unregister_metric("l1-demo")
    """
    if spec.bound:
        raise ValueError(f"expected a spec without bound options, got {spec.key!r}; register the plain spec")
    if not replace and spec.name.lower() in METRICS.names():
        old = METRICS.get(spec.name)
        if old == spec:
            return old
    METRICS.add(spec.name, spec, aliases=spec.aliases, replace=replace)
    return spec


def unregister_metric(name: str) -> None:
    """Remove a metric (and its aliases) from the registry.

    Parameters
    ----------
    name : str
        Registry name or alias.

    Returns
    -------
    None

    Raises
    ------
    UnknownNameError
        When no such metric is registered.

    Examples
    --------
    See :func:`register_metric`.
    """
    METRICS.remove(name)


PLUGIN_GROUP = "lossarena.metrics"
_plugins_loaded = False


def load_plugins() -> list[str]:
    """Import the modules of the ``lossarena.metrics`` entry-point group (third-party metrics), once.

    Called automatically the first time a name is not found in the registry, and by
    ``lossarena metrics list``; never needed for the project's own metrics. A plugin that fails to
    import is logged as a warning and skipped.

    Returns
    -------
    list of str
        Entry-point names loaded by this call (empty when already loaded).

    Examples
    --------
    >>> names = load_plugins()   # third-party metrics, if any are installed
    >>> isinstance(names, list)
    True
    """
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True  # before loading: a plugin may use the registry while it registers
    from importlib.metadata import entry_points

    loaded = []
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken third-party plugin must not take the registry down
            log.warning("metric plugin %s (%s) failed to load: %s", ep.name, ep.value, e)
            continue
        loaded.append(ep.name)
    return loaded


def find_spec(name: str) -> MetricSpec:
    """The registered spec for ``name`` (or an alias), loading plugins on a miss.

    Parameters
    ----------
    name : str
        Registry name or alias, without options.

    Returns
    -------
    MetricSpec
        The registered object.

    Raises
    ------
    UnknownNameError
        (a ``ValueError``) with a did-you-mean hint.
    """
    if name not in METRICS and not _plugins_loaded:
        load_plugins()
    return METRICS.get(name)


def get_metric(name: str, **options: Any) -> MetricSpec:
    """The metric ``name``, optionally with options bound: ``NAME[:key=value,...]`` or keywords.

    Parameters
    ----------
    name : str
        Registry name or alias, optionally with options (``"ssim:downsample=false,color=rgb"``;
        see :func:`~lossarena.metrics.options.parse_metric_spec`).
    **options
        Options as Python values (``get_metric("ssim", downsample=False)``).

    Returns
    -------
    MetricSpec
        The registered spec when no option is given; otherwise a copy whose ``function`` and
        ``module`` have the options bound, with ``kwargs``, ``key`` (the spec string, to report
        results under) and ``min_size`` updated. A tool that reports results keys them by the string
        the user gave (``-m lpips`` -> ``"lpips"``), which is ``key`` whenever options were given.

    Raises
    ------
    UnknownNameError
        Unknown metric (did-you-mean hint).
    UnknownOptionError
        An option the metric does not declare (did-you-mean hint).
    ValueError
        A malformed spec or a value of the wrong type.

    Examples
    --------
    >>> spec = get_metric("ssim:downsample=false")
    >>> spec.name, spec.kwargs, spec.key, spec.lower_better
    ('ssim', {'downsample': False}, 'ssim:downsample=false', False)
    """
    ref = parse_metric_spec(name, **options)
    spec = find_spec(ref.name)
    if not ref.options:
        return spec  # the registered object itself (aliases too)
    kw = ref.kwargs
    min_size = spec.min_size_for(**kw) if spec.min_size_for is not None else spec.min_size
    return dataclasses.replace(
        spec, function=functools.partial(spec.function, **kw), module=functools.partial(spec.module, **kw),
        min_size=min_size, bound=ref.options, spec_string=ref.key,
    )


def list_metrics(*, plugins: bool = False) -> list[MetricSpec]:
    """Every registered metric (the project's own and those registered explicitly).

    Parameters
    ----------
    plugins : bool
        Also import the ``lossarena.metrics`` entry-point plugins first.

    Returns
    -------
    list of MetricSpec
        In registration order.

    Examples
    --------
    >>> [s.name for s in list_metrics()][:2]
    ['mse', 'psnr']
    """
    if plugins:
        load_plugins()
    return [METRICS.get(n) for n in METRICS.names()]


def metric_names(*, plugins: bool = False) -> list[str]:
    """Names of the registered metrics (see :func:`list_metrics`).

    Parameters
    ----------
    plugins : bool
        Also import the entry-point plugins first.

    Returns
    -------
    list of str
        Canonical names, in registration order.

    Examples
    --------
    >>> {"mse", "ssim", "ms-ssim"} <= set(metric_names())
    True
    """
    if plugins:
        load_plugins()
    return METRICS.names()


def weights_present(spec: MetricSpec) -> bool:
    """True when every backbone ``spec`` needs is on this machine (verified, or an enabled stand-in).

    Parameters
    ----------
    spec : MetricSpec
        The metric.

    Returns
    -------
    bool
        Always true for metrics without weights.

    Examples
    --------
    >>> weights_present(get_metric("ssim"))
    True
    """
    from .weights import backbone_status

    return all(backbone_status(b).ok for b in spec.needs_weights)


class FunctionalMetric(nn.Module):
    """``nn.Module`` wrapper around a functional metric (no learnable state).

    Parameters
    ----------
    fn : callable
        ``fn(x_distorted, y_reference, **kwargs) -> Tensor (N,)``.
    reduction : {"none", "mean", "sum"}
        ``"none"`` returns the per-image values ``(N,)``; otherwise their mean or sum (a scalar).
    **kwargs
        Options passed to ``fn`` on every call.

    Raises
    ------
    ValueError
        For an unknown ``reduction``.

    Examples
    --------
    >>> import torch
    >>> from lossarena.metrics.basic import mse
    >>> FunctionalMetric(mse, "mean")(torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8))
    tensor(1.)
    """

    def __init__(self, fn: Callable[..., torch.Tensor], reduction: str = "none", **kwargs: Any):
        super().__init__()
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"expected reduction 'none', 'mean' or 'sum', got {reduction!r}")
        self.fn = fn
        self.kwargs = kwargs
        self.reduction = reduction

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Metric of distorted ``x`` against reference ``y`` (float RGB NCHW in [0, 1]), reduced."""
        return reduce(self.fn(x, y, **self.kwargs), self.reduction)


def reduce(v: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-image values.

    Parameters
    ----------
    v : torch.Tensor
        Shape (N,).
    reduction : {"none", "mean", "sum"}
        What to return.

    Returns
    -------
    torch.Tensor
        ``v`` unchanged for ``"none"``, else its mean or sum (a scalar).

    Examples
    --------
    >>> import torch
    >>> reduce(torch.tensor([1.0, 3.0]), "mean")
    tensor(2.)
    """
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
    still flows.

    Parameters
    ----------
    spec : MetricSpec
        The metric (with any options bound, see :func:`get_metric`).
    **kwargs
        Passed to ``spec.module``.

    Examples
    --------
    >>> import torch
    >>> loss = MetricLoss(get_metric("ssim"))
    >>> x = torch.rand(2, 3, 32, 32)
    >>> float(loss(x, x))
    0.0
    """

    def __init__(self, spec: MetricSpec, **kwargs: Any):
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
        """Batch-mean loss (a scalar tensor) of reconstruction ``x_hat`` against original ``x``."""
        v = self.metric(_clamp_straight_through(x_hat), x)
        return (self.offset + self.sign * v).mean()


def get_loss(name: str, **options: Any) -> MetricLoss:
    """A differentiable, lower-is-better loss module for a metric (the D in λ·D + R).

    Parameters
    ----------
    name : str
        Metric name, optionally with options: ``"ms-ssim:scales=3"``.
    **options
        Metric options as Python values (``get_loss("ms-ssim", scales=3)``).

    Returns
    -------
    MetricLoss
        ``forward(x_hat, x) -> scalar``: the batch mean of ``v`` (lower-is-better metrics),
        ``best - v`` (e.g. ``1 - SSIM``) or ``-v`` (PSNR). Inputs float RGB NCHW in [0, 1].

    Raises
    ------
    UnknownNameError, UnknownOptionError, ValueError
        As :func:`get_metric`; ``ValueError`` also for a non-differentiable metric.

    Examples
    --------
    >>> import torch
    >>> loss = get_loss("ssim:downsample=false")
    >>> x = torch.rand(1, 3, 32, 32, requires_grad=True)
    >>> loss(x, torch.rand(1, 3, 32, 32)).backward()
    >>> x.grad.shape
    torch.Size([1, 3, 32, 32])
    """
    spec = get_metric(name, **options)
    if not spec.differentiable:
        raise ValueError(f"expected a differentiable metric for a loss, got '{spec.name}'")
    return MetricLoss(spec)


def compute(name: str, x: torch.Tensor, y: torch.Tensor, **options: Any) -> torch.Tensor:
    """Per-image values of a metric for distorted ``x`` and reference ``y``.

    Parameters
    ----------
    name : str
        Metric name, optionally with options (``"ssim:color=rgb"``).
    x, y : torch.Tensor
        Distorted and reference images, float RGB (N, 3, H, W) in [0, 1], same shape and device.
    **options
        Metric options as Python values.

    Returns
    -------
    torch.Tensor
        Shape (N,); direction given by ``get_metric(name).lower_better``.

    Raises
    ------
    ValueError
        Bad images ("expected X, got Y"), unknown metric or option.

    Examples
    --------
    >>> import torch
    >>> compute("mse", torch.zeros(2, 3, 8, 8), torch.full((2, 3, 8, 8), 0.5))
    tensor([0.2500, 0.2500])
    """
    return get_metric(name, **options).function(x, y)


def parse_metric_spec(text: str, **options: Any) -> MetricSpecRef:
    """Parse ``NAME[:key=value,...]`` into a :class:`MetricSpecRef` with typed options.

    Parameters
    ----------
    text : str
        A metric name or alias, optionally followed by ``:`` and ``key=value`` options separated by
        commas (``"ssim:downsample=false,color=rgb"``).
    **options
        More options as Python (or YAML) values, e.g. ``parse_metric_spec("ssim", downsample=False)``;
        an option may not be given both ways.

    Returns
    -------
    MetricSpecRef
        ``name`` canonical, ``kwargs`` coerced to each option's declared type, ``key`` the text as
        given (with Python options appended in spec syntax).

    Raises
    ------
    UnknownNameError
        (a ``ValueError``) for an unknown metric, with a did-you-mean hint.
    UnknownOptionError
        (a ``ValueError``) for an option the metric does not declare.
    ValueError
        For malformed text or a value of the wrong type.

    Examples
    --------
    >>> parse_metric_spec("ms-ssim:scales=3").kwargs
    {'scales': 3}
    >>> parse_metric_spec("ssim", downsample=False).key
    'ssim:downsample=false'
    """
    name, pairs = split_metric_spec(text)
    spec = find_spec(name)
    given: dict[str, Any] = dict(pairs)
    for k in options:
        if k in given:
            raise InputError(f"{spec.name}: expected option {k!r} once, got it in {text!r} and as a keyword")
    given.update(options)
    kwargs = coerce_options(spec.name, spec.options, given)
    key = text if not options else (
        text + ("," if pairs else ":") + format_metric_spec("", {k: kwargs[k] for k in options})[1:]
    )
    return MetricSpecRef(spec.name, tuple(kwargs.items()), key)
