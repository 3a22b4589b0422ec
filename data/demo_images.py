"""Images for the demo: Kodak24 from the shared data when present, else images that ship inside
scikit-image's wheel. Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lossarena.paths import shared_data

# Colour images bundled in scikit-image's wheel (no download) that the demo's shipped base was never
# trained on (its training set is pipeline.demo_base.training_images): (loader, index into a tuple
# result or None, file stem).
SKIMAGE_IMAGES = (("stereo_motorcycle", 0, "motorcycle_left"), ("stereo_motorcycle", 1, "motorcycle_right"),
                  ("immunohistochemistry", None, "immunohistochemistry"))


def _skimage_images(out: Path, n: int) -> list[Path]:
    import skimage.data
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for loader, index, name in SKIMAGE_IMAGES:
        if len(paths) >= n:
            break
        fn = getattr(skimage.data, loader, None)
        if fn is None:
            continue
        try:
            a = fn()
        except (ModuleNotFoundError, OSError, ValueError):  # an image that would need a download (pooch)
            continue
        if index is not None:
            a = a[index]
        if a.ndim != 3 or a.shape[2] < 3:
            continue
        a = np.ascontiguousarray(a[..., :3])
        h, w = (a.shape[0] // 64) * 64, (a.shape[1] // 64) * 64
        p = out / f"{name}.png"
        Image.fromarray(a[:h, :w]).save(p)
        paths.append(p)
    return paths


def demo_images(n: int = 24, cache: Path | str = "demo-output/images") -> tuple[list[Path], str]:
    """Up to ``n`` demo images and a label saying where they came from."""
    kodak = shared_data("images", "kodak24")
    if kodak is not None:
        files = sorted(kodak.glob("kodim*.png"))[:n]
        if files:
            return files, f"Kodak24 ({kodak})"
    cache = Path(cache)
    return _skimage_images(cache / "skimage", n), "scikit-image's bundled photographs (Kodak not available)"
