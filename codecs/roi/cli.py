"""``lossarena roi``: train, compress, decompress and evaluate the saliency-guided variable-rate ROI codec.

    lossarena roi train CONFIG.yaml --out DIR [--stage 1|2] [--resume] [--data DIR] [--steps N]
                        [--device auto|cpu|cuda|cuda:N] [--perceptual-substitute METRIC]
    lossarena roi compress CKPT IN.png OUT.lar --rate-index R [--mask M.png] [--alpha A]
    lossarena roi decompress CKPT IN.lar OUT.png
    lossarena roi evaluate CKPT --data DIR --out results.csv [--rate-index R ...] [--alpha A]
    lossarena roi saliency IN.png OUT.png [--model spectral|fine-grained] [--rm]

``train`` runs under ``torchrun --nproc_per_node K -m lossarena roi train ...`` as well. Exit codes: 0 ok,
2 bad input (one line), 3 missing model weights (e.g. the LPIPS backbone of the seed's background loss
when no ``--perceptual-substitute`` is named). See docs/roi.md.
"""

from __future__ import annotations

import argparse
import sys

from lossarena.errors import LossarenaError

from ..device import DEVICE_HELP


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lossarena roi", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train stage 1 (rate-distortion) and/or stage 2 (+GAN)")
    t.add_argument("config", help="YAML config (or a packaged name: roi-demo, roi-paper)")
    t.add_argument("--out", default="roi-out", help="output folder (roi_stage1.pt, roi_stage2.pt, roi.pt)")
    t.add_argument("--stage", type=int, choices=(1, 2), default=None, help="one stage only (default: both)")
    t.add_argument("--resume", action="store_true", help="continue from the stage's checkpoint in --out")
    t.add_argument("--data", default=None, help="training images folder (overrides the config)")
    t.add_argument("--steps", type=int, default=None, help="steps (overrides the config; with --stage)")
    t.add_argument("--device", default="auto", help=DEVICE_HELP)
    t.add_argument("--perceptual-substitute", default=None, metavar="METRIC",
                   help="metric used for the background's perceptual term when its backbone (LPIPS) is "
                        "missing, e.g. ms-ssim (default: refuse with exit 3); stored in the checkpoint")
    t.add_argument("--quiet", action="store_true")

    c = sub.add_parser("compress", help="image -> .lar")
    c.add_argument("ckpt")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--rate-index", required=True, help="any real number in [0, n-1] (0 = lowest rate)")
    c.add_argument("--mask", default=None, help="user ROI mask image (read as Mask_2D, values in [0, 1])")
    c.add_argument("--alpha", default=None, help="ROI strength α (smaller = more bits to the ROI; 'inf' = off)")

    d = sub.add_parser("decompress", help=".lar -> PNG")
    d.add_argument("ckpt")
    d.add_argument("input")
    d.add_argument("output")
    d.add_argument("--max-pixels", help="largest image (width x height) a bitstream may claim "
                   "(default 16777216, or LOSSARENA_MAX_BITSTREAM_PIXELS; see docs/security.md)")

    e = sub.add_parser("evaluate", help="bpp, PSNR, MS-SSIM, LPIPS, ROI-PSNR per image and rate index")
    e.add_argument("ckpt")
    e.add_argument("--data", required=True, help="folder of images")
    e.add_argument("--out", required=True, help="results.csv (a .md summary is written beside it)")
    e.add_argument("--rate-index", action="append", default=None, help="repeatable (default: every trained rate)")
    e.add_argument("--alpha", default=None)
    e.add_argument("--max-images", type=int, default=None)

    s = sub.add_parser("saliency", help="write Mask_2D (or RM_2D with --rm) of an image as a grey PNG")
    s.add_argument("input")
    s.add_argument("output")
    s.add_argument("--model", default="spectral", help="saliency provider: spectral, fine-grained")
    s.add_argument("--rm", action="store_true", help="write the smoothed RM_2D instead of Mask_2D")
    return p


def main(argv: list[str] | None = None) -> int:
    """``lossarena roi``: 0 ok, 2 bad input, 3 missing model weights (one line on stderr, no traceback)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except LossarenaError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


def _train(args) -> int:
    import os

    from .config import load_config
    from .train import train_roi, train_stage

    cfg = load_config(args.config)
    if args.perceptual_substitute:
        cfg["distortion"]["perceptual_substitute"] = args.perceptual_substitute
    if args.stage is None:
        path = train_roi(cfg, args.out, data=args.data, resume=args.resume, progress=not args.quiet,
                         steps={1: args.steps, 2: args.steps} if args.steps else None, device=args.device)
    else:
        path = train_stage(cfg, args.out, args.stage, resume=args.resume, data=args.data,
                           steps=args.steps, progress=not args.quiet, device=args.device)
    if os.environ.get("RANK", "0") == "0":
        print(f"checkpoint: {path}")
    return 0


def _run(args) -> int:
    import torch

    if args.cmd == "train":
        return _train(args)
    if args.cmd == "compress":
        from .codec import compress

        torch.set_num_threads(1)
        r = compress(args.ckpt, args.input, args.output, args.rate_index, mask=args.mask, alpha=args.alpha)
        print(f"{args.output}: {r['bytes']} bytes, {r['bpp']:.4f} bpp, rate index {r['rate_index']:g}, "
              f"{r['seconds']:.2f} s")
        return 0
    if args.cmd == "decompress":
        from ..bitstream import Limits
        from .codec import decompress

        torch.set_num_threads(1)
        r = decompress(args.ckpt, args.input, args.output, limits=Limits.from_env(args.max_pixels))
        print(f"{args.output}: {r['width']}x{r['height']}, {r['seconds']:.2f} s")
        return 0
    if args.cmd == "evaluate":
        from pathlib import Path

        from .codec import evaluate_roi

        torch.set_num_threads(1)
        out = evaluate_roi(args.ckpt, args.data, args.out, rate_indices=args.rate_index, alpha=args.alpha,
                           max_images=args.max_images)
        print(Path(out).with_suffix(".md").read_text(), end="")
        print(f"wrote {out}")
        return 0
    if args.cmd == "saliency":
        from lossarena.data.images import load_image, save_image

        from .saliency import roi_masks

        x = load_image(args.input)
        m = roi_masks(x, args.model, names=[args.input])
        save_image((m["rm2d"] if args.rm else m["mask2d"]).repeat(1, 3, 1, 1), args.output)
        print(f"{args.output}: {'RM_2D' if args.rm else 'Mask_2D'} mean {float(m['rm2d'].mean()):.3f}")
        return 0
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
