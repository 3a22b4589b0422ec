"""Compress + decompress time: lossarena's codec vs CompressAI's own ``bmshj2018_hyperprior`` with
identical weights, side by side (interleaved per image, same process, same threads).

    .venv/bin/python benchmarks/codecs_coding_speed.py [--ckpt CKPT] [--quality 3] [--images DIR]

Without ``--ckpt`` a quality-3 model (N=128, M=192) is trained briefly here (weights only matter for
the number of symbols). CompressAI's model is built with ``bmshj2018_hyperprior(quality,
pretrained=False)`` and loads our state dict. Ours = pad + model.compress + container to bytes + parse
+ checks + model.decompress + crop; CompressAI = model.compress + model.decompress on the same input.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt")
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--images")
    ap.add_argument("--n", type=int, default=8, help="images used")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from compressai.zoo import bmshj2018_hyperprior
    from lossarena.codecs.bitstream import Bitstream
    from lossarena.codecs.coder import HyperpriorCodec, pad_to
    from lossarena.codecs.train import train
    from lossarena.data.images import list_images, load_image

    from lossarena.paths import shared_data

    folder = args.images or shared_data("images", "kodak24")
    if folder is None:
        raise SystemExit("no images: give --images (shared Kodak not found)")
    ckpt = args.ckpt
    if ckpt is None:
        ckpt = Path(tempfile.mkdtemp()) / "q.pt"
        train(loss="mse", lmbda=300.0, data=folder, out=ckpt, steps=60, patch=128, batch=4, quality=args.quality, lr=1e-3,
              progress=False, threads=args.threads)
    ours = HyperpriorCodec(ckpt)
    theirs = bmshj2018_hyperprior(args.quality, pretrained=False)
    theirs.load_state_dict(ours.model.state_dict())
    theirs.eval()
    imgs = [load_image(p) for p in list_images(folder)[: args.n]]
    t_ours, t_theirs, same = [], [], True
    with torch.no_grad():
        for x in imgs:  # warm-up
            ours.decompress(Bitstream.from_bytes(ours.compress(x).to_bytes()))
            theirs.decompress(**{k: v for k, v in theirs.compress(pad_to(x)).items()})
        for _ in range(2):
            for x in imgs:
                t0 = time.perf_counter()
                y = ours.decompress(Bitstream.from_bytes(ours.compress(x).to_bytes()))
                t1 = time.perf_counter()
                out = theirs.compress(pad_to(x))
                y2 = theirs.decompress(out["strings"], out["shape"])["x_hat"][..., : x.shape[-2], : x.shape[-1]]
                t2 = time.perf_counter()
                t_ours.append(t1 - t0)
                t_theirs.append(t2 - t1)
                same &= bool(torch.equal(y, y2))
    a, b = statistics.median(t_ours), statistics.median(t_theirs)
    print(f"checkpoint {ckpt} (N={ours.config['architecture']['N']}, M={ours.config['architecture']['M']}), "
          f"{len(imgs)} images of {imgs[0].shape[-1]}x{imgs[0].shape[-2]}, {args.threads} threads")
    print(f"lossarena  compress+decompress: {a * 1000:7.1f} ms (median)")
    print(f"compressai compress+decompress: {b * 1000:7.1f} ms (median)")
    print(f"ratio lossarena / compressai:   {a / b:7.3f}   identical reconstructions: {same}")


if __name__ == "__main__":
    main()
