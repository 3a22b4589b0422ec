"""A small synthetic stimuli folder (for tests, the demo and trying the app without codecs).

Photographs bundled in scikit-image's wheel (no download) are compressed by four "codecs" that
differ in how they spend bits: JPEG 4:2:0, JPEG 4:4:4, Gaussian pre-blur + JPEG, and WebP (when
Pillow has it; otherwise JPEG with coarse chroma). Each is rate-matched to every target bitrate
by bisection on its quality parameter, so the conditions of one content × target bitrate have
about the same real bpp. Output: ``OUT/manifest.csv`` in the format ``lossarena codecs match``
writes, plus the PNG files.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from lossarena.data.schemas import REFERENCE
from PIL import Image, ImageFilter, features

from .manifest import write_manifest

SKIMAGE_CONTENTS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")


def _encode(img: Image.Image, condition: str, q: int) -> bytes:
    buf = io.BytesIO()
    if condition == "jpeg420":
        img.save(buf, "JPEG", quality=q, subsampling=2)
    elif condition == "jpeg444":
        img.save(buf, "JPEG", quality=q, subsampling=0)
    elif condition == "blur-jpeg":
        img.filter(ImageFilter.GaussianBlur(1.2)).save(buf, "JPEG", quality=q, subsampling=2)
    elif condition == "webp":
        if features.check("webp"):
            img.save(buf, "WEBP", quality=q, method=4)
        else:  # fall back to a different JPEG flavour so the condition still exists
            img.save(buf, "JPEG", quality=q, subsampling=2, optimize=True, qtables="web_high")
    else:
        raise ValueError(f"unknown synthetic condition {condition!r}")
    return buf.getvalue()


def _rate_match(img: Image.Image, condition: str, target_bpp: float) -> tuple[bytes, float]:
    """Bisection on quality 1..95 for the largest quality whose bpp <= target (else quality 1)."""
    npx = img.width * img.height
    lo, hi = 1, 95
    best = _encode(img, condition, 1)
    while lo <= hi:
        mid = (lo + hi) // 2
        data = _encode(img, condition, mid)
        if len(data) * 8 / npx <= target_bpp:
            best, lo = data, mid + 1
        else:
            hi = mid - 1
    return best, len(best) * 8 / npx


def _load_content(name: str, max_side: int) -> np.ndarray:
    import skimage.data

    a = getattr(skimage.data, name)()
    a = np.ascontiguousarray(a[..., :3])
    if max(a.shape[:2]) > max_side:
        im = Image.fromarray(a)
        im.thumbnail((max_side, max_side), Image.LANCZOS)
        a = np.asarray(im)
    return a


def make_synthetic_stimuli(
    out_dir: str | Path,
    contents: Sequence[str] | int = 3,
    target_bpps: Sequence[float] = (0.4, 1.0),
    conditions: Sequence[str] = ("jpeg420", "jpeg444", "blur-jpeg", "webp"),
    max_side: int = 512,
) -> Path:
    """Write a stimuli folder; returns the manifest path. Deterministic (no randomness involved)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    want = contents if isinstance(contents, int) else len(contents)
    names = list(SKIMAGE_CONTENTS) if isinstance(contents, int) else list(contents)
    rows = []
    done = 0
    for name in names:
        if done >= want:
            break
        try:
            a = _load_content(name, max_side)
        except Exception:  # an image this scikit-image version would have to download: skip it
            if not isinstance(contents, int):
                raise
            continue
        done += 1
        img = Image.fromarray(a)
        ref = out / name / "reference.png"
        ref.parent.mkdir(parents=True, exist_ok=True)
        img.save(ref, compress_level=1)
        rows.append(dict(content=name, condition=REFERENCE, target_bpp="", bpp="", path=f"{name}/reference.png"))
        for tb in target_bpps:
            for cond in conditions:
                data, bpp = _rate_match(img, cond, tb)
                dec = Image.open(io.BytesIO(data)).convert("RGB")
                rel = f"{name}/{tb:g}/{cond}.png"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                dec.save(out / rel, compress_level=1)
                rows.append(dict(content=name, condition=cond, target_bpp=f"{tb:g}", bpp=f"{bpp:.4f}", path=rel))
    return write_manifest(rows, out / "manifest.csv")
