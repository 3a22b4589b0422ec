"""Deterministic random-crop patches from a folder of images, sharded like ``DistributedSampler``.

The data order is a pure function of ``(seed, step)``: sample ``n`` of the global stream (global batch
= world size × batch) belongs to epoch ``n // len(images)``; each epoch visits the images in a seeded
permutation; the crop position and flip of sample ``n`` come from ``rng([seed, epoch, n])``. Rank ``r``
takes its contiguous slice of each global batch. So ``--resume`` continues exactly from the step alone,
and K ranks see disjoint samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from lossarena.data.images import list_images, read_array

from lossarena.errors import InputError


class PatchSource:
    def __init__(self, folder: str | Path, patch: int, seed: int = 0, *, flip: bool = True,
                 cache: bool = True):
        self.paths = list_images(folder)
        self.patch = int(patch)
        self.seed = int(seed)
        self.flip = flip
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> np.ndarray:
        """HxWx3 uint8, upscaled (bicubic) when a side is shorter than the patch."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        a = (read_array(self.paths[i]) * 255.0 + 0.5).astype(np.uint8)
        h, w = a.shape[:2]
        if min(h, w) < self.patch:
            from PIL import Image

            s = self.patch / min(h, w)
            a = np.asarray(Image.fromarray(a).resize((max(self.patch, round(w * s)), max(self.patch, round(h * s))),
                                                     Image.BICUBIC))
        if self._cache is not None:
            self._cache[i] = a
        return a

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            self._perms[epoch] = np.random.default_rng([self.seed, 7919, epoch]).permutation(len(self.paths))
        return self._perms[epoch]

    def sample(self, n: int) -> torch.Tensor:
        """Sample ``n`` of the global stream: 3xPxP float in [0, 1]."""
        epoch, k = divmod(n, len(self.paths))
        idx = int(self._perm(epoch)[k])
        a = self.image(idx)
        rng = np.random.default_rng([self.seed, epoch, n])
        h, w = a.shape[:2]
        y = int(rng.integers(0, h - self.patch + 1))
        x = int(rng.integers(0, w - self.patch + 1))
        crop = a[y:y + self.patch, x:x + self.patch]
        if self.flip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))).float().div_(255.0)

    def batch(self, step: int, batch: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        """This rank's share of global batch ``step`` (``batch`` patches per rank)."""
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        start = step * batch * world + rank * batch
        return torch.stack([self.sample(start + j) for j in range(batch)])
