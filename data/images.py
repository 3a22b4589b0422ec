"""Image files in and out: the boundary where everything becomes float RGB NCHW in [0, 1].

``load_image`` reads PNG, BMP, JPEG, TIFF, GIF (and anything Pillow reads):

* 8-bit images are divided by 255, 16-bit images by 65535: 16-bit PNGs (grey, grey+alpha, RGB,
  RGBA) are decoded with ``imagecodecs`` at full precision (Pillow would reduce 16-bit RGB to 8 bits),
  16-bit grey TIFFs through Pillow (mode ``I;16`` / ``I``);
* grey (``L``, ``I;16``) is replicated to three equal channels (so a grey pair scores like the luma
  of an RGB pair);
* palette (``P``) images are converted to RGB; ``LA``/``RGBA`` are composited over **white**
  (alpha is not a colour; say ``alpha="error"`` to refuse such files instead);
* CMYK/YCbCr are converted to RGB by Pillow.

Hostile files: the pixel count is checked from the header **before** anything is decoded
(:func:`check_image`); the limit is :func:`pixel_limit` (``LOSSARENA_MAX_IMAGE_PIXELS``, default
50,000,000 pixels, or the ``max_pixels=`` argument), and Pillow's own ``Image.MAX_IMAGE_PIXELS`` is set
to the same value so no Pillow path decodes more. 16-bit PNGs (decoded with ``imagecodecs``, which has
no such guard) have their IHDR size checked first. Animated or multi-frame files (GIF, APNG, WebP,
multi-page TIFF) are refused: a metric or a codec needs one defined image.

Errors name the file and raise :class:`lossarena.errors.InputError` (exit code 2).
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np
import torch

from lossarena.errors import InputError

#: default pixel limit (width x height) of an image file; ``LOSSARENA_MAX_IMAGE_PIXELS`` overrides it.
DEFAULT_MAX_PIXELS = 50_000_000
MAX_PIXELS_ENV = "LOSSARENA_MAX_IMAGE_PIXELS"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pixel_limit() -> int:
    """The pixel limit for image files: ``$LOSSARENA_MAX_IMAGE_PIXELS`` if set, else :data:`DEFAULT_MAX_PIXELS`.

    Raises
    ------
    InputError
        If the environment variable is not a positive integer.
    """
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        v = int(float(raw))
    except ValueError:
        v = 0
    if v <= 0:
        raise InputError(f"environment variable {MAX_PIXELS_ENV}: expected a positive integer, got {raw[:40]!r}")
    return v


def _png16(path: Path) -> tuple[int, int] | None:
    """(width, height) from the IHDR of a PNG with 16 bits per sample, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    if len(head) == 26 and head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and head[24] == 16:
        return struct.unpack(">II", head[16:24])
    return None


def _check_size(path: Path, w: int, h: int, limit: int) -> None:
    if w <= 0 or h <= 0:
        raise InputError(f"{path}: expected a positive image size, got {w}x{h}")
    if w * h > limit:
        raise InputError(f"{path}: image is {w}x{h} = {w * h} pixels, more than the limit of {limit} pixels "
                         f"(raise it with {MAX_PIXELS_ENV}=N)")


# What Pillow raises for malformed files besides OSError (truncated data, bad chunks, bad headers).
_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError,
               ZeroDivisionError, OverflowError)


def check_image(path: str | Path, *, max_pixels: int | None = None) -> tuple[int, int]:
    """Check an image file's header without decoding it: size within the pixel limit, one frame.

    Parameters
    ----------
    path : str or Path
    max_pixels : int, optional
        The limit (default :func:`pixel_limit`).

    Returns
    -------
    (int, int)
        Width and height.

    Raises
    ------
    InputError
        Missing or unreadable file, more pixels than the limit, or an animated / multi-frame image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    limit = max_pixels or pixel_limit()
    size16 = _png16(path)
    if size16 is not None:
        _check_size(path, *size16, limit)
    Image.MAX_IMAGE_PIXELS = limit  # Pillow's own guard, explicitly at our limit (it raises above twice that)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own check says it better
            im = Image.open(path)
        with im:
            w, h = im.size
            _check_size(path, w, h, limit)
            frames = getattr(im, "n_frames", 1)
            if frames != 1:
                raise InputError(f"{path}: animated or multi-frame image ({frames} frames); expected one image")
            return w, h
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image file") from None
    except Image.DecompressionBombError:
        raise InputError(f"{path}: image is larger than the limit of {limit} pixels (refused before decoding; "
                         f"raise it with {MAX_PIXELS_ENV}=N)") from None
    except _PIL_ERRORS as e:
        raise InputError(f"{path}: cannot read image ({type(e).__name__}: {str(e)[:120]})") from None


def _from_channels(a: np.ndarray, path: Path, alpha: str, mode: str) -> np.ndarray:
    """HxW, HxWx2, HxWx3 or HxWx4 float in [0, 1] -> HxWx3 (grey replicated, alpha over white)."""
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] in (2, 4):
        if alpha == "error":
            raise InputError(f"{path}: expected an image without alpha, got mode {mode}")
        rgb, al = a[..., :-1], a[..., -1:]
        a = rgb * al + (1.0 - al)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return a


def read_array(path: str | Path, *, alpha: str = "white", max_pixels: int | None = None) -> np.ndarray:
    """HxWx3 float64 array in [0, 1]; the header is checked (:func:`check_image`) before decoding."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    check_image(path, max_pixels=max_pixels)
    if _png16(path) is not None:
        import imagecodecs

        from .schemas import read_bytes

        data = read_bytes(path)  # bounded by LOSSARENA_MAX_FILE_BYTES; the IHDR size is already checked
        try:
            a = imagecodecs.png_decode(data)
        except Exception as e:  # noqa: BLE001 -- imagecodecs raises its own error types (third-party decoder)
            raise InputError(f"{path}: cannot read 16-bit PNG ({type(e).__name__}: {str(e)[:120]})") from None
        channels = 1 if a.ndim == 2 else a.shape[2]
        mode = {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}.get(channels, f"{channels}-channel 16-bit")
        if channels not in (1, 2, 3, 4):
            raise InputError(f"{path}: expected a grey, grey+alpha, RGB or RGBA PNG, got {mode}")
        return _from_channels(a.astype(np.float64) / 65535.0, path, alpha, mode)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float64)
                maxv = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
                a = a / maxv
                return np.repeat(a[..., None], 3, axis=2).clip(0, 1)
            if mode == "F":
                raise InputError(f"{path}: 32-bit float images are not supported (expected 8- or 16-bit)")
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                mode = im.mode
            if mode in ("LA", "RGBA", "PA"):
                if alpha == "error":
                    raise InputError(f"{path}: expected an image without alpha, got mode {mode}")
                rgba = np.asarray(im.convert("RGBA"), dtype=np.float64) / 255.0
                rgb, a = rgba[..., :3], rgba[..., 3:4]
                return rgb * a + (1.0 - a)
            if mode == "L" or mode == "1":
                a = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
                return np.repeat(a[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image file") from None
    except Image.DecompressionBombError:
        raise InputError(f"{path}: image is larger than the pixel limit (raise it with {MAX_PIXELS_ENV}=N)") from None
    except _PIL_ERRORS as e:
        raise InputError(f"{path}: cannot read image ({type(e).__name__}: {str(e)[:120]})") from None


def load_image(path: str | Path, *, device=None, dtype=torch.float32, alpha: str = "white",
               max_pixels: int | None = None) -> torch.Tensor:
    """A 1x3xHxW float tensor in [0, 1] (see the module docstring for the conversions and limits).

    Parameters
    ----------
    path : str or Path
        PNG, JPEG, BMP, TIFF, GIF, WebP, PPM/PGM (one frame).
    device : torch.device or str, optional
        Where to put the tensor (default CPU).
    dtype : torch.dtype
        Floating dtype (default float32).
    alpha : {"white", "error"}
        Composite transparent images over white, or refuse them.
    max_pixels : int, optional
        Pixel limit (default :func:`pixel_limit`, i.e. ``$LOSSARENA_MAX_IMAGE_PIXELS`` or 50,000,000).

    Returns
    -------
    torch.Tensor
        Shape (1, 3, H, W), values in [0, 1].

    Raises
    ------
    InputError
        Missing/unreadable/animated file or more pixels than the limit (checked before decoding).
    """
    a = read_array(path, alpha=alpha, max_pixels=max_pixels)
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).unsqueeze(0).to(dtype=dtype)
    return t.to(device) if device is not None else t


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """1x3xHxW (or 3xHxW) tensor in [0, 1] -> HxWx3 uint8 (rounded)."""
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected a single image (batch 1), got batch {x.shape[0]}")
        x = x[0]
    a = x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return a.transpose(1, 2, 0)


def save_image(x: torch.Tensor, path: str | Path) -> Path:
    """Write an 8-bit RGB PNG (or whatever the suffix says) from a [0, 1] tensor."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(x)).save(path)
    return path


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files directly in ``folder``; InputError if the folder is missing or has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files
