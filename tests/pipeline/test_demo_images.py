"""The demo's images: without Kodak it evaluates on bundled images its shipped base never saw."""

from __future__ import annotations

import hashlib

import numpy as np
from lossarena.pipeline.demo_base import training_images
from PIL import Image


def _pixel_hashes(paths) -> set[str]:
    return {hashlib.sha256(np.asarray(Image.open(p).convert("RGB")).tobytes()).hexdigest() for p in paths}


def test_fallback_evaluation_images_are_disjoint_from_the_base_training_set(tmp_path, monkeypatch):
    import lossarena.data.demo_images as di

    monkeypatch.setattr(di, "shared_data", lambda *a, **k: None)  # as on a machine without ../shared
    files, label = di.demo_images(6, cache=tmp_path / "cache")
    assert "Kodak not available" in label
    assert [p.stem for p in files] == ["motorcycle_left", "motorcycle_right", "immunohistochemistry"]
    train = training_images(tmp_path / "train")
    colour = training_images(tmp_path / "colour", colour_only=True)
    assert {p.stem for p in colour} < {p.stem for p in train} and len(colour) == 7
    assert not {p.stem for p in files} & {p.stem for p in train}
    assert not _pixel_hashes(files) & _pixel_hashes(train)
    for p in files:  # crops to multiples of 64 (the codecs' stride)
        w, h = Image.open(p).size
        assert w % 64 == 0 and h % 64 == 0
