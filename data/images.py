"""Image files in and out: the boundary where everything becomes float RGB NCHW in [0, 1].

``load_image`` reads PNG, BMP, JPEG, TIFF, GIF (and anything Pillow reads):

* 8-bit images are divided by 255, 16-bit PNG/TIFF by 65535 (mode ``I;16`` / ``I``);
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


def read_array(path: str | Path, *, alpha: str = "white") -> np.ndarray:
    """HxWx3 float64 array in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
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
