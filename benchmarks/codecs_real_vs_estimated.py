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
    torch.set_num_threads(1)
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
    print("real = the whole .lar file; payload = the rANS strings only (no container header)")
    print(f"{'checkpoint':24s} {'arch':>7s} {'real bpp':>9s} {'est bpp':>9s} {'real/est':>9s} {'worst img':>9s} "
          f"{'payload/est':>11s} {'worst img':>9s}")
    for c in ckpts:
        codec = HyperpriorCodec(c)
        real = est = pay = 0.0
        worst = worst_pay = 0.0
        pix = 0
        for x in imgs:
            n = x.shape[-2] * x.shape[-1]
            bs = codec.compress(x)
            r = len(bs.to_bytes()) * 8
            p = sum(len(s) for st in bs.strings for s in st) * 8
            e, _ = codec.estimate(x)
            real += r
            pay += p
            est += e * n
            pix += n
            worst = max(worst, abs(r / (e * n) - 1))
            worst_pay = max(worst_pay, abs(p / (e * n) - 1))
        a = codec.config["architecture"]
        print(f"{c.name:24s} {a['N']:>3d}/{a['M']:<3d} {real / pix:9.4f} {est / pix:9.4f} {real / est:9.4f} "
              f"{worst * 100:8.2f}% {pay / est:11.4f} {worst_pay * 100:8.2f}%")


if __name__ == "__main__":
    main()
