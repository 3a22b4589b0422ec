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


def test_images_stage_keeps_only_this_runs_images(tmp_path):
    """A run with fewer images than the last one must not evaluate the leftovers (found timing the demo:
    a 4-image profile evaluated 6 images left by an earlier run)."""
    from lossarena.pipeline.demo import Ctx
    from lossarena.pipeline.stages import stage_images

    src = tmp_path / "mine"
    src.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(src / f"own{k}.png")
    d = tmp_path / "out" / "images"
    info = stage_images(Ctx(out=tmp_path / "out", profile={}, images_dir=src, n_images=3), d)
    assert info["n"] == 3 and len(list((d / "eval").glob("*.png"))) == 3
    (d / "train" / "user_stale.png").write_bytes(b"x")
    stage_images(Ctx(out=tmp_path / "out", profile={}, images_dir=src, n_images=2), d)
    assert sorted(p.name for p in (d / "eval").iterdir()) == ["own0.png", "own1.png"]
    assert not (d / "train" / "user_stale.png").exists()
