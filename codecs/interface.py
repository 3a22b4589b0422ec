"""The one ``Codec`` interface that every lossarena codec implements (the zoo's hyperprior, the ROI codec).

``codecs evaluate``, ``codecs match`` and the providers use only what is defined here, so a new codec
plugs in by subclassing :class:`Codec` and registering its checkpoint format with
:func:`register_format`.

Contract (images at every boundary are float RGB NCHW in [0, 1])::

    codec.forward(x, rate=None)   -> {"x_hat": Bx3xHxW, "likelihoods": {name: tensor}}   (eval-mode estimate)
    codec.compress(x, rate=None)  -> Bitstream        (x: 1x3xHxW; real entropy coding)
    codec.decompress(bs)          -> 1x3xHxW on the CPU, in [0, 1]
    codec.estimate_bpp(x, rate)   -> B estimated bits per pixel (−Σ log2 likelihoods / H·W)
    codec.rate_range              -> None (one rate per checkpoint: a zoo varies λ across checkpoints)
                                     or (lo, hi): a continuous rate parameter, rate increasing with it
                                     (the ROI codec's gain index, interpolated between trained gains)
    codec.device, codec.to(device), codec.config (checkpoint config), codec.path, codec.codec_id

:func:`open_codec` opens any registered checkpoint on a device (see :mod:`lossarena.codecs.device`).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from lossarena.errors import InputError

from .bitstream import Bitstream

_FORMATS: dict[str, str] = {  # checkpoint "format" -> "module:Class" (imported lazily)
    "lossarena-codec": "lossarena.codecs.coder:HyperpriorCodec",
    "lossarena-roi-codec": "lossarena.codecs.roi.codec:RoiCodec",
}


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right to a multiple of ``multiple`` (replicate; constant for 1-px sides)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "replicate" if min(h, w) > 1 else "constant"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def bpp_from_likelihoods(likelihoods: dict, num_pixels: int, *, per_image: bool = False) -> torch.Tensor:
    """Estimated bits per pixel: ``−Σ log2 likelihoods / num_pixels``.

    Parameters
    ----------
    likelihoods : dict of str to Tensor
        CompressAI's ``likelihoods`` (each ``B x C x h x w``, values in (0, 1]).
    num_pixels : int
        Pixels the bits are spread over (``B·H·W`` for a batch mean; ``H·W`` with ``per_image``).
    per_image : bool
        Return a ``B`` vector instead of one scalar.

    Returns
    -------
    Tensor
        Scalar (or ``B``), float32, on the likelihoods' device. No host sync.
    """
    if per_image:
        return sum(torch.log(v.float()).flatten(1).sum(1) for v in likelihoods.values()) / (
            -math.log(2) * num_pixels)
    return sum(torch.log(v.float()).sum() for v in likelihoods.values()) / (-math.log(2) * num_pixels)


def check_image(x: torch.Tensor, *, single: bool = False) -> None:
    """Raise ``ValueError("expected ..., got ...")`` unless ``x`` is a float Bx3xHxW (1x3xHxW if single)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or (single and x.shape[0] != 1):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a {'1' if single else 'B'}x3xHxW float image in [0, 1], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"expected a float image in [0, 1], got dtype {x.dtype}")


class Codec(abc.ABC):
    """A loaded learned codec (one checkpoint) on one device.

    Attributes
    ----------
    codec_id : str
        The ``.lar`` bitstream codec id (``"hyperprior"``, ``"roi"``).
    device : torch.device
        Where the network runs; inputs on any device are moved there, outputs of ``decompress`` are on
        the CPU.
    config : dict
        The checkpoint's self-description (loss, λ, architecture, ...).
    path : pathlib.Path or None
        The checkpoint file.
    rate_range : tuple of float or None
        ``None`` when one checkpoint codes at one rate; ``(lo, hi)`` when ``rate`` is a continuous
        parameter (bits increase with it).
    """

    codec_id: str = "?"
    device: torch.device = torch.device("cpu")
    config: dict
    path: Path | None = None
    rate_range: tuple[float, float] | None = None

    @abc.abstractmethod
    def forward(self, x: torch.Tensor, rate: float | None = None) -> dict:
        """Eval-mode forward pass: ``{"x_hat": Bx3xHxW in [0, 1] (cropped), "likelihoods": {...}}``.

        ``x`` is Bx3xHxW in [0, 1] of any size (padded internally); ``rate`` is ignored when
        ``rate_range`` is None. The likelihoods cover the padded image.
        """

    @abc.abstractmethod
    def compress(self, x: torch.Tensor, rate: float | None = None) -> Bitstream:
        """Entropy-code one 1x3xHxW image in [0, 1]; ``ValueError`` on another shape."""

    @abc.abstractmethod
    def decompress(self, bs: Bitstream, *, source: str = "<bytes>") -> torch.Tensor:
        """Decode a :class:`Bitstream` to a 1x3xHxW CPU image in [0, 1].

        Raises :class:`~lossarena.codecs.bitstream.BitstreamError` (exit 2) for a stream of another
        codec or checkpoint, or one whose layout does not match.
        """

    def check_rate(self, rate: float | None) -> float | None:
        """``rate`` validated against ``rate_range`` (``None`` for fixed-rate codecs)."""
        if self.rate_range is None:
            return None
        lo, hi = self.rate_range
        if rate is None:
            raise ValueError(f"expected a rate in [{lo:g}, {hi:g}] for codec {self.codec_id}, got None")
        r = float(rate)
        if not lo <= r <= hi:
            raise ValueError(f"expected a rate in [{lo:g}, {hi:g}] for codec {self.codec_id}, got {rate}")
        return r

    @torch.no_grad()
    def estimate_bpp(self, x: torch.Tensor, rate: float | None = None) -> torch.Tensor:
        """Estimated bpp per image (``B`` vector on ``device``) from one batched forward pass."""
        out = self.forward(x, rate)
        return bpp_from_likelihoods(out["likelihoods"], x.shape[-2] * x.shape[-1], per_image=True)

    def to(self, device: str | torch.device) -> Codec:
        """Move the network (in place) and return ``self``."""
        from .device import resolve_device

        self.device = resolve_device(device)
        self.model = self.model.to(self.device)  # type: ignore[attr-defined]
        return self

    def encode_file(self, src: str | Path, dst: str | Path, rate: float | None = None) -> int:
        """Read an image file, compress, write the ``.lar`` file; returns its size in bytes."""
        from lossarena.data.images import load_image

        return self.compress(load_image(src), rate).write(dst)

    def decode_file(self, src: str | Path, dst: str | Path | None = None) -> torch.Tensor:
        """Decode a ``.lar`` file (and save a PNG when ``dst`` is given)."""
        from lossarena.data.images import save_image

        x = self.decompress(Bitstream.read(src), source=str(src))
        if dst is not None:
            save_image(x, dst)
        return x


def register_format(fmt: str, target: str) -> None:
    """Map a checkpoint ``format`` string to ``"module:Class"`` (a :class:`Codec` subclass)."""
    _FORMATS[fmt] = target


def checkpoint_format(path: str | Path) -> str:
    """The ``format`` field of a checkpoint file (memory-mapped read; InputError for a bad file)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    fmt = obj.get("format") if isinstance(obj, dict) else None
    if not isinstance(fmt, str):
        raise InputError(f"{path}: not a lossarena codec checkpoint (no format field)")
    return fmt


def open_codec(path: str | Path, device: str | torch.device = "cpu") -> Codec:
    """Load any registered codec checkpoint on ``device`` (``auto|cpu|cuda|cuda:N``)."""
    import importlib

    from .device import resolve_device

    fmt = checkpoint_format(path)
    target = _FORMATS.get(fmt)
    if target is None:
        raise InputError(f"{path}: unknown codec checkpoint format '{fmt}' (known: {', '.join(_FORMATS)})")
    mod, _, cls = target.partition(":")
    factory: Callable[..., Codec] = getattr(importlib.import_module(mod), cls)
    return factory(path, device=resolve_device(device))
