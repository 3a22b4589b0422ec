"""The ROI codec as a ``codecs match`` condition (registered as ``roi`` in the ``CODECS`` registry).

Checkpoint lookup, first found: the ``roi_checkpoint`` option, ``$LOSSARENA_ROI_CKPT``, ``<zoo>/roi/roi.pt``,
the newest ``<zoo>/roi/*.pt``. Per image and target the continuous rate index is bisected on the
estimated bpp (fast forward passes), the image is really coded at that index, the bisection is re-aimed
once with the measured overhead (header + coding, real − estimated) and the nearer of the two codings is
kept; the real bpp of the ``.lar`` bytes is reported.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lossarena.errors import InputError

from ..providers import CODECS, Condition, Encoded, image_key


def find_checkpoint(zoo=None, roi_checkpoint=None) -> Path:
    cands = [roi_checkpoint, os.environ.get("LOSSARENA_ROI_CKPT")]
    for c in cands:
        if c:
            p = Path(c)
            if not p.is_file():
                raise InputError(f"{p}: no such ROI checkpoint")
            return p
    if zoo is not None:
        d = Path(zoo) / "roi"
        if (d / "roi.pt").is_file():
            return d / "roi.pt"
        pts = sorted(d.glob("*.pt"), key=lambda q: q.stat().st_mtime) if d.is_dir() else []
        if pts:
            return pts[-1]
    raise InputError("the roi provider needs a checkpoint: train one into <zoo>/roi/ "
                     "(`lossarena roi train CONFIG --out <zoo>/roi`) or set LOSSARENA_ROI_CKPT")


class RoiCondition(Condition):
    def __init__(self, ckpt, device: str = "cpu", alpha=None, iterations: int = 12, name: str = "roi"):
        from .codec import get_codec

        self.name = name
        self.codec = get_codec(ckpt, device)
        self.alpha = alpha
        self.iterations = iterations
        self._est_key: str | None = None
        self._est: dict[float, float] = {}

    def rate_for(self, x, target_bpp: float, rm2d, offset: float = 0.0, estimates: dict | None = None) -> float:
        """Rate index whose estimated bpp + ``offset`` is nearest ``target_bpp`` (bisection).

        ``estimates`` (rate index -> estimated bpp of this image) is read and filled, so the re-aimed
        bisection and the other targets of the same image reuse the forward passes already made.
        """
        target_bpp = target_bpp - offset
        lo, hi = 0.0, float(self.codec.n_rates - 1)
        f = {} if estimates is None else estimates

        def at(r):
            if r not in f:
                f[r] = self.codec.estimate(x, r, rm2d=rm2d, alpha=self.alpha)["bpp"]
            return f[r]

        if at(lo) >= target_bpp:
            return lo
        if at(hi) <= target_bpp:
            return hi
        for _ in range(self.iterations):
            mid = (lo + hi) / 2
            if at(mid) < target_bpp:
                lo = mid
            else:
                hi = mid
        return min((lo, hi), key=lambda r: abs(at(r) - target_bpp))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, target_bpp: float) -> Encoded:
        rm = self.codec.rm2d(x)
        hw = x.shape[-2] * x.shape[-1]
        key = image_key(x)
        if key != self._est_key:  # estimates of the previous image are no longer needed
            self._est_key, self._est = key, {}
        r = round(self.rate_for(x, target_bpp, rm, estimates=self._est), 4)
        bs = self.codec.compress(x, r, rm2d=rm, alpha=self.alpha)
        nbytes = len(bs.to_bytes())
        # calibrate once for the container header and coding overhead (real − estimated), re-aim
        offset = nbytes * 8 / hw - self.codec.estimate(x, r, rm2d=rm, alpha=self.alpha)["bpp"]
        r2 = round(self.rate_for(x, target_bpp, rm, offset, estimates=self._est), 4)
        if r2 != r:
            bs2 = self.codec.compress(x, r2, rm2d=rm, alpha=self.alpha)
            n2 = len(bs2.to_bytes())
            if abs(n2 * 8 / hw - target_bpp) < abs(nbytes * 8 / hw - target_bpp):
                bs, nbytes, r = bs2, n2, r2
        x_hat = self.codec.decompress(bs)
        return Encoded(nbytes * 8 / (x.shape[-2] * x.shape[-1]), x_hat,
                       {"checkpoint": str(self.codec.path), "rate_index": r, "alpha": bs.meta.get("alpha")})


class RoiProvider:
    name = "roi"

    def conditions(self, zoo=None, *, roi_checkpoint=None, device: str = "cpu", alpha=None, **_) -> list[Condition]:
        return [RoiCondition(find_checkpoint(zoo, roi_checkpoint), device=device, alpha=alpha)]


def roi_provider() -> RoiProvider:
    """The provider object (also registered as ``CODECS.get("roi")``)."""
    return CODECS.get("roi")


if "roi" not in CODECS:
    CODECS.add("roi", RoiProvider())
