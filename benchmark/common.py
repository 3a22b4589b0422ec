"""Helpers shared by the benchmark's modules (2AFC scoring, ROI-MLP features, DPIS training).

One place for what :mod:`.twoafc`, :mod:`.roi_mlp` and :mod:`.dpis` all need, so that none of them
imports another's internals: an LRU cache of images, same-size triplet batches, the centre crop,
and where learned-metric checkpoints live by default.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch
from lossarena.data.images import load_image

from lossarena.errors import InputError


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre ``size×size`` crop of (…, H, W); images smaller than ``size`` are returned unchanged."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        return x
    t, left = (h - size) // 2, (w - size) // 2
    return x[..., t:t + size, left:left + size]


class ImageCache:
    """Least-recently-used cache of images (1, 3, H, W) in [0, 1], read relative to ``root``.

    Parameters
    ----------
    root : Path
        Folder that relative paths are resolved against (absolute paths are read as they are).
    crop : int or None
        Centre-crop every image to ``crop×crop`` (see :func:`center_crop`).
    capacity : int
        Images kept in memory.
    """

    def __init__(self, root: Path, crop: int | None = None, capacity: int = 96):
        self.root, self.crop, self.capacity = Path(root), crop, capacity
        self._d: OrderedDict[str, torch.Tensor] = OrderedDict()

    def get(self, rel: str) -> torch.Tensor:
        """The image at ``rel`` (read once, then served from memory)."""
        if rel in self._d:
            self._d.move_to_end(rel)
            return self._d[rel]
        p = Path(rel)
        x = load_image(p if p.is_absolute() else self.root / p)
        if self.crop:
            x = center_crop(x, self.crop)
        self._d[rel] = x
        if len(self._d) > self.capacity:
            self._d.popitem(last=False)
        return x


def triplet_batches(df: pd.DataFrame, cache: ImageCache, batch_size: int
                    ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(row indices, ref, a, b)`` batches of consecutive triplets whose images share one size.

    Raises
    ------
    InputError
        The three images of a triplet differ in size (names the CSV line, header = line 1).
    """
    idx: list[int] = []
    refs, as_, bs = [], [], []
    shape = None
    for i, (r, a, b) in enumerate(zip(df["reference"], df["a"], df["b"])):
        xr, xa, xb = cache.get(r), cache.get(a), cache.get(b)
        if not (xr.shape == xa.shape == xb.shape):
            raise InputError(f"triplet line {i + 2}: image sizes differ: {r} {tuple(xr.shape[-2:])}, "
                             f"{a} {tuple(xa.shape[-2:])}, {b} {tuple(xb.shape[-2:])}")
        if idx and (xr.shape != shape or len(idx) >= batch_size):
            yield idx, torch.cat(refs), torch.cat(as_), torch.cat(bs)
            idx, refs, as_, bs = [], [], [], []
        shape = xr.shape
        idx.append(i)
        refs.append(xr)
        as_.append(xa)
        bs.append(xb)
    if idx:
        yield idx, torch.cat(refs), torch.cat(as_), torch.cat(bs)


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lossarena`` (default ``~/.cache/lossarena``): default home of learned checkpoints."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lossarena"


def default_checkpoint(env: str, filename: str) -> Path:
    """``$env`` if set, else ``cache_dir() / filename`` (what a learned metric uses when none is given)."""
    v = os.environ.get(env)
    return Path(v) if v else cache_dir() / filename
