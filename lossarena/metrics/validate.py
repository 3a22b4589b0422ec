"""The single input validator for every metric and loss.

Every public metric takes images as float tensors, RGB, NCHW, values in [0, 1], batched, on any
device. Anything else raises ``ValueError`` with a message of the form "expected X, got Y".

Cost on a GPU: the type, dtype, shape and size checks read only metadata and run on every call.
The value checks (finite, within [0, 1]) must read the data on the host, which synchronises with
the device; they run on the **first** call for each (metric, shape, dtype, device) and then no
more, so a training loop has no host<->device sync in its steady state. Set the environment
variable ``LOSSARENA_DEBUG=1`` to check the values on every call (e.g. to find the step where a
NaN appears); :func:`reset_checked` forgets which keys were checked.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import Any

import torch

RANGE_TOL = 1e-6
DEBUG_ENV = "LOSSARENA_DEBUG"
_MAX_KEYS = 4096

_checked: OrderedDict[tuple[Any, ...], None] = OrderedDict()


def debug_enabled() -> bool:
    """True when ``LOSSARENA_DEBUG`` is ``1`` (or ``true``/``yes``): check values on every call."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def reset_checked() -> None:
    """Forget which (metric, shape, dtype, device) keys had their values checked."""
    _checked.clear()


def validate_images(
    x: Any,
    y: Any = None,
    *,
    name: str = "metric",
    channels: tuple[int, ...] = (3,),
    min_size: int = 1,
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> None:
    """Check one image batch, or a (distorted, reference) pair, against the public contract.

    Parameters
    ----------
    x : torch.Tensor
        Images (the distorted ones when ``y`` is given), float (N, C, H, W).
    y : torch.Tensor, optional
        Reference images, same shape as ``x``.
    name : str
        Metric name, the prefix of every message.
    channels : tuple of int
        Allowed channel counts (RGB: ``(3,)``).
    min_size : int
        Smallest allowed side in px.
    value_range : tuple of float or None
        Allowed value range (``None``: any finite value). Checked, with finiteness, on the first
        call per (name, shape, dtype, device) only, unless ``LOSSARENA_DEBUG=1`` (module docstring).

    Returns
    -------
    None
        The inputs are valid.

    Raises
    ------
    ValueError
        "<name>: expected X, got Y": not a tensor, not floating point, not 4-D, wrong channel count,
        empty batch, too small, NaN/inf values, values outside ``value_range`` or shapes that differ.

    Examples
    --------
    >>> import torch
    >>> validate_images(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), name="ssim")
    >>> validate_images(torch.rand(2, 3, 8, 8) * 255, name="ssim")
    Traceback (most recent call last):
    ...
    ValueError: ssim: expected x values in [0, 1], got [...] (0-255 images must be divided by 255)
    """
    pairs = [("x", x)] if y is None else [("x (distorted)", x), ("y (reference)", y)]
    for label, t in pairs:
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: expected {label} to be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(
                f"{name}: expected {label} with a floating dtype (values in [0, 1]), got {t.dtype}; "
                "convert uint8 images with x.float() / 255"
            )
        if t.dim() != 4:
            raise ValueError(f"{name}: expected {label} as a 4-D NCHW batch, got shape {tuple(t.shape)}")
        if t.shape[1] not in channels:
            want = " or ".join(str(c) for c in channels)
            raise ValueError(
                f"{name}: expected {label} with {want} channels (NCHW, RGB), got {t.shape[1]} channels "
                f"in shape {tuple(t.shape)}"
            )
        if t.shape[0] == 0:
            raise ValueError(f"{name}: expected a non-empty batch for {label}, got batch size 0")
        h, w = t.shape[-2:]
        if min(h, w) < min_size:
            raise ValueError(
                f"{name}: expected images of at least {min_size}x{min_size} px, got {h}x{w} ({label})"
            )
    if y is not None and x.shape != y.shape:
        raise ValueError(
            f"{name}: expected distorted and reference of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    key = (name, tuple(x.shape), x.dtype, x.device, y is None or (y.dtype, y.device), value_range)
    if key in _checked and not debug_enabled():
        return
    for label, t in pairs:
        _check_values(t, label, name, value_range)
    _checked[key] = None
    if len(_checked) > _MAX_KEYS:
        _checked.popitem(last=False)


def _check_values(t: torch.Tensor, label: str, name: str, value_range: tuple[float, float] | None) -> None:
    """Finite values within ``value_range``: one host<->device sync."""
    td = t.detach()
    tmin_t, tmax_t = torch.aminmax(td)
    tmin, tmax = float(tmin_t), float(tmax_t)
    if not (math.isfinite(tmin) and math.isfinite(tmax)):  # NaN propagates through min/max
        bad = int((~torch.isfinite(td)).sum())
        raise ValueError(f"{name}: expected finite values in {label}, got {bad} NaN/inf values")
    if value_range is not None:
        lo, hi = value_range
        if tmin < lo - RANGE_TOL or tmax > hi + RANGE_TOL:
            hint = " (0-255 images must be divided by 255)" if tmax > 1.5 else ""
            raise ValueError(
                f"{name}: expected {label} values in [{lo:g}, {hi:g}], got [{tmin:.4g}, {tmax:.4g}]{hint}"
            )
