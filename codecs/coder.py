"""Real bitstreams for the zoo's hyperprior codecs (CompressAI's rANS coder in the ``.lar`` container).

Any image size: the image is padded (replicate) at the bottom/right to a multiple of 64, coded, and
cropped back on decode. The container records the original size and the checkpoint's hash; a
truncated, corrupted or foreign file, or one decoded with another checkpoint, raises
:class:`~lossarena.codecs.bitstream.BitstreamError` (exit code 2) before anything is entropy-decoded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .bitstream import Bitstream, BitstreamError
from .model import PAD, load_checkpoint

CODEC_ID = "hyperprior"
MAX_SIDE = 1 << 16


def pad_to(x: torch.Tensor, multiple: int = PAD) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "replicate" if min(h, w) > 1 else "constant"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class HyperpriorCodec:
    """A loaded checkpoint that encodes 1x3xHxW [0, 1] images to :class:`Bitstream` and back."""

    def __init__(self, ckpt: str | Path, device: str = "cpu"):
        self.path = Path(ckpt)
        self.model, self.config = load_checkpoint(self.path, device=device)
        self.hash = bytes.fromhex(self.config["ckpt_hash"])
        self.device = torch.device(device)

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> Bitstream:
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"expected a 1x3xHxW image, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        xp = pad_to(x.to(self.device).clamp(0, 1))
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
        if bs.meta.get("z_shape", [zh, zw]) != [zh, zw] or len(bs.strings) != 2 or any(len(s) != 1 for s in bs.strings):
            raise BitstreamError(f"{source}: stream layout does not match a {h}x{w} hyperprior bitstream")
        x_hat = self.model.decompress(bs.strings, (zh, zw))["x_hat"]
        return x_hat[..., :h, :w].clamp(0, 1).cpu()

    def encode_file(self, src: str | Path, dst: str | Path) -> int:
        from lossarena.data.images import load_image

        return self.compress(load_image(src)).write(dst)

    def decode_file(self, src: str | Path, dst: str | Path | None = None) -> torch.Tensor:
        from lossarena.data.images import save_image

        x = self.decompress(Bitstream.read(src), source=str(src))
        if dst is not None:
            save_image(x, dst)
        return x

    @torch.no_grad()
    def estimate(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Estimated bpp (−log2 likelihoods of the quantised latents, eval mode) and the forward x̂."""
        from .train import bpp_from_likelihoods

        h, w = x.shape[-2:]
        out = self.model(pad_to(x.to(self.device)))
        bpp = float(bpp_from_likelihoods(out["likelihoods"], h * w))
        return bpp, out["x_hat"][..., :h, :w].clamp(0, 1).cpu()
