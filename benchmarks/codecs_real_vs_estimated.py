"""Real bits (the .lar file) vs estimated bits (−log2 likelihoods) on Kodak, per checkpoint.

    .venv/bin/python benchmarks/codecs_real_vs_estimated.py CKPT_OR_ZOO... [--images DIR]

Default images: the shared Kodak 24. Real bits include the container header (magic, sizes, hash, CRC)
and CompressAI's per-string rANS overhead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpts", nargs="+")
    ap.add_argument("--images")
    args = ap.parse_args()
    torch.set_num_threads(2)
    from lossarena.codecs.coder import HyperpriorCodec
    from lossarena.data.images import list_images, load_image

    from lossarena.paths import shared_data

    folder = args.images or shared_data("images", "kodak24")
    if folder is None:
        raise SystemExit("no images: give --images (shared Kodak not found)")
    ckpts = []
    for c in args.ckpts:
        ckpts += sorted(Path(c).glob("*.pt")) if Path(c).is_dir() else [Path(c)]
    imgs = [load_image(p) for p in list_images(folder)]
    print(f"{len(imgs)} images from {folder}")
    print(f"{'checkpoint':28s} {'arch':>8s} {'real bpp':>9s} {'est bpp':>9s} {'real/est':>9s} {'max |img|':>10s}")
    for c in ckpts:
        codec = HyperpriorCodec(c)
        real = est = 0.0
        worst = 0.0
        pix = 0
        for x in imgs:
            n = x.shape[-2] * x.shape[-1]
            r = len(codec.compress(x).to_bytes()) * 8
            e, _ = codec.estimate(x)
            real += r
            est += e * n
            pix += n
            worst = max(worst, abs(r / (e * n) - 1))
        a = codec.config["architecture"]
        print(f"{c.name:28s} {a['N']:>3d}/{a['M']:<4d} {real / pix:9.4f} {est / pix:9.4f} {real / est:9.4f} "
              f"{worst * 100:9.2f}%")


if __name__ == "__main__":
    main()
