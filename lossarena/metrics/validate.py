"""The single input validator for every metric and loss.

Every public metric takes images as float tensors, RGB, NCHW, values in [0, 1], batched, on any
device. Anything else raises ``ValueError`` with a message of the form "expected X, got Y".
"""

from __future__ import annotations

import math

import torch

RANGE_TOL = 1e-6


def validate_images(
    x,
    y=None,
    *,
    name: str = "metric",
    channels: tuple[int, ...] = (3,),
    min_size: int = 1,
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> None:
    """Check one image batch, or a (distorted, reference) pair, against the public contract.

    Raises ``ValueError`` whose message says what was expected and what was given.
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
    if y is not None and x.shape != y.shape:
        raise ValueError(
            f"{name}: expected distorted and reference of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
