"""Training-input throughput: 256² patches/s from PNG and JPEG folders and from a ``prepare-data`` cache,
per DataLoader worker and per core, with the previous in-thread loader (``PatchSource``) measured side by
side in the same run.

    .venv/bin/python benchmarks/codecs_loader.py [--images ../shared/data/images/kodak24] [--batches 12]
        [--workers 0,1,2] [--big 4]

``--big K`` adds a folder of K Kodak images upscaled 4× (3072×2048, about a 6-MP camera photo) where
decoding dominates. Each case builds a fresh loader (a new run: nothing decoded yet) and times
``--batches`` batches of 8 patches, including worker start-up. "per core" divides by the processes
that decode (the workers, or the main process with 0 workers). Note the machine's load when reading
the numbers: the per-core column is what to compare.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _folder_variants(src: Path, tmp: Path, big: int) -> dict[str, Path]:
    from lossarena.data.images import list_images
    from PIL import Image

    paths = list_images(src)
    jpg = tmp / "jpeg"
    jpg.mkdir()
    for p in paths:
        Image.open(p).convert("RGB").save(jpg / (p.stem + ".jpg"), quality=95)
    out = {"png": src, "jpeg": jpg}
    if big:
        b = tmp / "big"
        b.mkdir()
        for p in paths[:big]:
            im = Image.open(p).convert("RGB")
            im.resize((im.width * 4, im.height * 4), Image.BICUBIC).save(b / (p.stem + ".png"))
        out["png-6MP"] = b
    return out


def _time_new(source, workers: int, batches: int, batch: int = 8, patch: int = 256) -> float:
    from lossarena.codecs.dataset import make_loader

    t0 = time.perf_counter()
    n = 0
    for xb in make_loader(source, patch, 0, start=0, steps=batches, batch=batch, workers=workers, prefetch=2):
        n += xb.shape[0]
    return n / (time.perf_counter() - t0)


def _time_old(source, batches: int, batch: int = 8, patch: int = 256) -> tuple[float, int]:
    from lossarena.codecs.patches import PatchSource

    t0 = time.perf_counter()
    src = PatchSource(source, patch, 0)
    n = 0
    for step in range(batches):
        n += src.batch(step, batch).shape[0]
    held = sum(a.nbytes for a in (src._cache or {}).values())
    return n / (time.perf_counter() - t0), held


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default=str(REPO.parent / "shared" / "data" / "images" / "kodak24"))
    ap.add_argument("--batches", type=int, default=12, help="batches of 8 per case (24 images: 3 per epoch)")
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--big", type=int, default=4)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from lossarena.codecs.dataset import prepare_cache

    src = Path(args.images)
    if not src.is_dir():
        print(f"no images at {src} (needs ../shared)", file=sys.stderr)
        return 2
    workers = [int(w) for w in args.workers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="lossarena-loader-bench-"))
    try:
        folders = _folder_variants(src, tmp, args.big)
        caches = {}
        for name, f in folders.items():
            t0 = time.perf_counter()
            caches[name] = prepare_cache(f, tmp / f"cache-{name}", progress=False)
            caches[name + ":prep_s"] = time.perf_counter() - t0
        print(f"# loader throughput, {args.batches} batches x 8 patches of 256x256, load avg "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'data':8s} {'loader':22s} {'workers':>7s} {'patches/s':>10s} {'per core':>9s} {'x previous':>10s}")
        for name, f in folders.items():
            old, held = _time_old(f, args.batches)
            print(f"{name:8s} {'previous (in-thread)':22s} {0:7d} {old:10.1f} {old:9.1f} {1.0:10.2f}"
                  f"   (holds {held / 2**20:.0f} MiB decoded per process)")
            for w in workers:
                for kind, s in (("folder", f), ("cache", caches[name])):
                    r = _time_new(s, w, args.batches)
                    print(f"{name:8s} {'DataLoader ' + kind:22s} {w:7d} {r:10.1f} {r / max(1, w):9.1f} "
                          f"{r / old:10.2f}")
            print(f"{name:8s} prepare-data once: {caches[name + ':prep_s']:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
