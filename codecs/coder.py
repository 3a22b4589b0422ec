"""Real bitstreams for the zoo's hyperprior codecs (CompressAI's rANS coder in the ``.lar`` container).

Any image size: the image is padded (replicate) at the bottom/right to a multiple of 64, coded, and
cropped back on decode. The container records the original size and the checkpoint's hash; a
truncated, corrupted or foreign file, or one decoded with another checkpoint, raises
:class:`~lossarena.codecs.bitstream.BitstreamError` (exit code 2) before anything is entropy-decoded.

This is the codec runtime: it never imports a trainer (``train``, ``zoo``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .bitstream import INT_PAIR, Bitstream, BitstreamError, check_meta
from .entropy import checked_hyperprior_decompress
from .interface import Codec, bpp_from_likelihoods, check_image, pad_to
from .model import PAD, load_checkpoint

CODEC_ID = "hyperprior"
MAX_SIDE = 1 << 16

__all__ = ["CODEC_ID", "HyperpriorCodec", "pad_to"]


class HyperpriorCodec(Codec):
    """A loaded zoo checkpoint (one λ, so ``rate_range`` is None) implementing :class:`Codec`.

    Parameters
    ----------
    ckpt : str or Path
        A ``lossarena-codec`` checkpoint (``codecs train`` / ``codecs zoo``).
    device : str or torch.device
        ``auto|cpu|cuda|cuda:N`` (:func:`~lossarena.codecs.device.resolve_device`).
    """

    codec_id = CODEC_ID
    rate_range = None

    def __init__(self, ckpt: str | Path, device: str | torch.device = "cpu"):
        from .device import resolve_device

        self.path = Path(ckpt)
        self.device = resolve_device(device)
        self.model, self.config = load_checkpoint(self.path, device=self.device)
        self.hash = bytes.fromhex(self.config["ckpt_hash"])

    @torch.no_grad()
    def forward(self, x: torch.Tensor, rate: float | None = None) -> dict:
        check_image(x)
        h, w = x.shape[-2:]
        out = self.model(pad_to(x.to(self.device, non_blocking=True), PAD))
        return {"x_hat": out["x_hat"][..., :h, :w].clamp(0, 1), "likelihoods": out["likelihoods"]}

    @torch.no_grad()
    def compress(self, x: torch.Tensor, rate: float | None = None) -> Bitstream:
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"expected a 1x3xHxW image, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        xp = pad_to(x.to(self.device).clamp(0, 1), PAD)
        out = self.model.compress(xp)
        # z's shape follows from the image size; nothing else goes into the header's metadata
        return Bitstream(CODEC_ID, h, w, self.hash, [list(s) for s in out["strings"]], {})

    @torch.no_grad()
    def decompress(self, bs: Bitstream, *, source: str = "<bytes>") -> torch.Tensor:
        if bs.codec != CODEC_ID:
            raise BitstreamError(f"{source}: a '{bs.codec}' bitstream, not '{CODEC_ID}'")
        bs.check_checkpoint(self.hash, source=source, ckpt=str(self.path))
        h, w = bs.height, bs.width
        if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
            raise BitstreamError(f"{source}: implausible image size {h}x{w}")
        zh, zw = -(-h // PAD), -(-w // PAD)
        check_meta(bs.meta, {}, {"z_shape": INT_PAIR}, source=source)
        if bs.meta.get("z_shape", [zh, zw]) != [zh, zw] or len(bs.strings) != 2 or any(len(s) != 1 for s in bs.strings):
            raise BitstreamError(f"{source}: stream layout does not match a {h}x{w} hyperprior bitstream")
        # bounds-checked rANS (CompressAI's C++ decoder trusts the strings); identical on valid streams
        x_hat = checked_hyperprior_decompress(self.model, bs.strings, (zh, zw), source=source)
        return x_hat[..., :h, :w].clamp(0, 1).cpu()

    @torch.no_grad()
    def estimate(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Estimated bpp of one image (−log2 likelihoods of the quantised latents, eval mode) and x̂ (CPU)."""
        h, w = x.shape[-2:]
        out = self.forward(x)
        bpp = float(bpp_from_likelihoods(out["likelihoods"], x.shape[0] * h * w))
        return bpp, out["x_hat"].cpu()
