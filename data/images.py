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

Errors name the file and raise :class:`lossarena.errors.InputError` (exit code 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lossarena.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png16(path: Path) -> bool:
    """True for a PNG whose IHDR says 16 bits per sample."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return False
    return len(head) == 26 and head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and head[24] == 16


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


def read_array(path: str | Path, *, alpha: str = "white") -> np.ndarray:
    """HxWx3 float64 array in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if _png16(path):
        import imagecodecs

        try:
            a = imagecodecs.png_decode(path.read_bytes())
        except Exception as e:  # imagecodecs raises its own error types
            raise InputError(f"{path}: cannot read 16-bit PNG ({e})") from None
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
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read image ({e})") from None


def load_image(path: str | Path, *, device=None, dtype=torch.float32, alpha: str = "white") -> torch.Tensor:
    """A 1x3xHxW float tensor in [0, 1] (see the module docstring for the conversions)."""
    a = read_array(path, alpha=alpha)
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
