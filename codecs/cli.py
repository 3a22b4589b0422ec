"""``lossarena codecs``: train, prepare-data, zoo, zoo-status, compress, decompress, evaluate, rd, bd-rate, match,
calibrate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lossarena.errors import InputError, LossarenaError

from .device import add_device_argument


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lossarena codecs", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train or fine-tune one hyperprior codec (L = λ·D + R)")
    t.add_argument("--loss", default="mse", help="metric name from `lossarena metrics list` (default mse)")
    t.add_argument("--lmbda", type=float, default=None,
                   help="λ; default: the loss's grid value for --level (configs/lambdas.yaml)")
    t.add_argument("--level", default="medium", help="λ level low|medium|high when --lmbda is not given")
    t.add_argument("--data", required=True, help="training images: a folder or a cache from `codecs prepare-data`")
    t.add_argument("--out", required=True, help="checkpoint to write (<stem>.log.csv beside it)")
    t.add_argument("--init", help="checkpoint to fine-tune from")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--patch", type=int, default=256)
    t.add_argument("--batch", type=int, default=8, help="patches per process")
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--aux-lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true", help="continue --out exactly where it stopped")
    t.add_argument("--quality", type=int, help="CompressAI zoo quality 1-8 for N, M (default 3: N=128, M=192)")
    t.add_argument("--N", type=int)
    t.add_argument("--M", type=int)
    t.add_argument("--ckpt-every", type=int, default=500)
    t.add_argument("--threads", type=int, help="torch threads per process")
    add_device_argument(t)
    _train_options(t)

    pd_ = sub.add_parser("prepare-data", help="decode a training set once into uint8 shards (memory-mapped)")
    pd_.add_argument("images", help="folder of training images")
    pd_.add_argument("--out", required=True, help="cache folder (give it to --data)")
    pd_.add_argument("--shard-mb", type=int, default=1024, help="maximum shard size in MiB (default 1024)")

    z = sub.add_parser("zoo", help="MSE base model(s), then every loss × λ fine-tuned, as jobs (skips what exists)")
    z.add_argument("config", help="zoo YAML (shipped: zoo-demo, zoo-paper)")
    z.add_argument("--out", default="zoo", help="output folder (default ./zoo)")
    z.add_argument("--data", help="training images, folder or cache (overrides data: in the config)")
    z.add_argument("--eval-data", help="evaluation images (configs with require_split: must not overlap --data)")
    z.add_argument("--losses", help="comma-separated subset of the config's losses")
    add_device_argument(z)
    z.add_argument("--executor", default="local", help="local (default) or slurm")
    z.add_argument("--gpus", help="local: comma-separated GPU indices to spread jobs over (e.g. 0,1,2,3)")
    z.add_argument("--jobs-per-gpu", type=int, default=1, help="local: jobs sharing one GPU (default 1)")
    z.add_argument("--jobs", type=int, default=1, help="local without --gpus: parallel CPU jobs (default 1)")
    z.add_argument("--partition", help="slurm: partition")
    z.add_argument("--account", help="slurm: account")
    z.add_argument("--time", type=int, default=24 * 60, help="slurm: time limit per job in minutes")
    z.add_argument("--gpus-per-job", type=int, default=1, help="slurm: GPUs per job (default 1; 0 for CPU)")
    z.add_argument("--cpus-per-job", type=int, help="slurm: CPUs per job (DataLoader workers + 1)")
    z.add_argument("--mem-gb", type=float, help="slurm: memory per job")
    z.add_argument("--wait", action="store_true", help="slurm: wait for the jobs and report failures")

    zs = sub.add_parser("zoo-status", help="done/running/failed models of a zoo folder")
    zs.add_argument("out", help="zoo output folder")

    c = sub.add_parser("compress", help="encode an image into a .lar bitstream")
    c.add_argument("ckpt")
    c.add_argument("input")
    c.add_argument("output")
    add_device_argument(c)
    d = sub.add_parser("decompress", help="decode a .lar bitstream into a PNG")
    d.add_argument("ckpt")
    d.add_argument("input")
    d.add_argument("output")
    d.add_argument("--max-pixels", help="largest image (width x height) a bitstream may claim "
                   "(default 16777216, or LOSSARENA_MAX_BITSTREAM_PIXELS; see docs/security.md)")
    add_device_argument(d)

    e = sub.add_parser("evaluate", help="real/estimated bpp and every metric, per image × model")
    e.add_argument("ckpts", nargs="+", help="checkpoints (or zoo folders: their top-level *.pt)")
    e.add_argument("--data", required=True, help="folder of test images")
    e.add_argument("--out", default="results.csv")
    e.add_argument("--metrics", help="comma-separated (default: every metric that can run here)")
    add_device_argument(e)
    e.add_argument("--resume", action="store_true", help="keep rows already in --out, append the missing ones")
    e.add_argument("--jobs", type=int, default=1, help="checkpoints evaluated in N processes (one per GPU)")

    r = sub.add_parser("rd", help="RD curves per metric with CompressAI's published anchors")
    r.add_argument("results")
    r.add_argument("--out", default="rd.png")
    r.add_argument("--metrics", help="comma-separated metric columns (default: all)")
    r.add_argument("--no-anchors", action="store_true")

    b = sub.add_parser("bd-rate", help="Bjøntegaard delta rate (%%) and delta metric of B against A")
    b.add_argument("a", help="results.csv[:col=value,...] or CompressAI-style JSON")
    b.add_argument("b")
    b.add_argument("--metric", default="psnr")
    b.add_argument("--method", default="cubic", choices=["cubic", "pchip"])
    b.add_argument("--json", action="store_true")

    m = sub.add_parser("match", help="rate-matched stimuli + manifest.csv for the study")
    m.add_argument("--zoo", help="zoo folder (its top-level *.pt)")
    m.add_argument("--images", required=True)
    m.add_argument("--targets", default="0.1,0.25,0.5")
    m.add_argument("--out", required=True)
    m.add_argument("--anchors", default="", help="comma-separated: jpeg,jpeg2000,jpegxl,avif")
    m.add_argument("--codecs", default=None, help="providers (default: hyperprior when --zoo is given)")
    m.add_argument("--losses", help="only these zoo losses")
    m.add_argument("--metrics", default="psnr", help="metric columns in the manifest ('' for none, 'all')")
    m.add_argument("--jobs", type=int, default=1, help="images matched in N processes (one per GPU on GPUs)")
    m.add_argument("--max-rate-error", type=float, default=None, metavar="F",
                   help="leave a condition out of a target's rows when its real bpp misses the target by more "
                        "than F (relative, e.g. 0.15); default: keep every nearest encoding")
    add_device_argument(m)

    k = sub.add_parser("calibrate", help="per-metric λ grid from RD slopes (see docs/codecs.md)")
    k.add_argument("--images", required=True)
    k.add_argument("--metrics", help="comma-separated (default: every differentiable metric that can run)")
    k.add_argument("--zoo", help="use these zoo checkpoints' RD curve instead of JPEG 2000")
    k.add_argument("--crop", type=int, default=256)
    k.add_argument("--out", help="write the grid as YAML here")
    return ap


def _train_options(t) -> None:
    t.add_argument("--workers", type=int, help="DataLoader workers per process (default: 0 on CPU, up to 8 on GPU)")
    t.add_argument("--prefetch", type=int, default=4, help="batches prefetched per worker")
    t.add_argument("--log-every", type=int, default=50, help="steps between <stem>.log.csv rows (host syncs)")
    t.add_argument("--bf16", action="store_true", help="bf16 autocast for the transforms (entropy models fp32)")
    t.add_argument("--channels-last", action="store_true")
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.add_argument("--no-cudnn-benchmark", action="store_true")
    t.add_argument("--schedule", default="none", choices=["none", "plateau", "step", "cosine"])
    t.add_argument("--lr-factor", type=float, default=0.5, help="plateau/step: LR multiplier")
    t.add_argument("--lr-patience", type=int, default=5, help="plateau: evaluations without improvement")
    t.add_argument("--lr-step", type=int, default=0, help="step: steps between LR drops (default steps/3)")
    t.add_argument("--min-lr", type=float, default=0.0)
    t.add_argument("--val", help="held-out images (folder or cache): validation, best checkpoint <stem>.best.pt")
    t.add_argument("--val-every", type=int, default=1000)
    t.add_argument("--early-stop", type=int, default=0, help="stop after N validations without improvement")


def _train_fields(a) -> dict:
    return dict(workers=a.workers, prefetch=a.prefetch, log_every=a.log_every, bf16=a.bf16,
                channels_last=a.channels_last, compile=a.compile, cudnn_benchmark=not a.no_cudnn_benchmark,
                schedule=a.schedule, lr_factor=a.lr_factor, lr_patience=a.lr_patience, lr_step=a.lr_step,
                min_lr=a.min_lr, val=a.val, val_every=a.val_every, early_stop=a.early_stop)


def _ckpt_list(items) -> list[Path]:
    out = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            found = sorted(p.glob("*.pt"))
            if not found:
                raise InputError(f"{p}: no checkpoints (*.pt)")
            out += found
        else:
            out.append(p)
    return out


def _csv(s):
    return [v.strip() for v in s.split(",") if v.strip()] if s else None


def main(argv=None) -> int:
    """``lossarena codecs ...``; returns 0, 2 for bad input (one line on stderr), 3 for missing weights."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except LossarenaError as e:
        print(f"lossarena codecs {args.cmd}: {e}", file=sys.stderr)
        return e.exit_code


def _run(args) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cmd == "train":
        from .train import train
        from .zoo import default_lambda

        lam = args.lmbda if args.lmbda is not None else default_lambda(args.loss, args.level)
        train(loss=args.loss, lmbda=lam, data=args.data, out=args.out, init=args.init, steps=args.steps,
              patch=args.patch, batch=args.batch, lr=args.lr, aux_lr=args.aux_lr, seed=args.seed,
              resume=args.resume, quality=args.quality, N=args.N, M=args.M,
              level=args.level if args.lmbda is None else None, ckpt_every=args.ckpt_every,
              threads=args.threads, device=args.device, **_train_fields(args))
        return 0
    if args.cmd == "prepare-data":
        from .dataset import prepare_cache, read_index

        out = prepare_cache(args.images, args.out, shard_bytes=args.shard_mb << 20)
        idx = read_index(out)
        print(f"{out}: {len(idx['images'])} images in {idx['shards']} shard(s)")
        return 0
    if args.cmd == "zoo":
        from .zoo import train_zoo

        opts: dict = {}
        if args.executor == "local":
            gpus = [int(g) for g in _csv(args.gpus) or []] if args.gpus else None
            opts = dict(gpus=gpus, jobs_per_gpu=args.jobs_per_gpu, jobs=args.jobs)
        elif args.executor == "slurm":
            opts = dict(partition=args.partition, account=args.account, time_min=args.time,
                        gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job, mem_gb=args.mem_gb,
                        wait=args.wait)
        res = train_zoo(args.config, args.out, args.data, losses=_csv(args.losses), device=args.device,
                        executor=args.executor, eval_data=args.eval_data, **opts)
        print(f"zoo: {len(res['models'])} models in {args.out}"
              + (f"; skipped {', '.join(res['skipped'])}" if res["skipped"] else "")
              + (f"; FAILED {', '.join(res['failed'])}" if res["failed"] else ""))
        return 1 if res["failed"] else 0
    if args.cmd == "zoo-status":
        from .zoo import zoo_status

        rows = zoo_status(args.out)
        print(f"{'job':24s} {'state':22s} {'step':>8s} {'steps':>8s} {'host':10s} slurm")
        for r in rows:
            print(f"{r['job']:24s} {r['state']:22s} {str(r['step']):>8s} {str(r['steps']):>8s} {r['host']:10s} "
                  f"{r['slurm']}" + (f"  {r['error']}" if r["error"] else ""))
        counts = {}
        for r in rows:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        return 0
    if args.cmd == "compress":
        from lossarena.data.images import load_image

        from .interface import open_codec

        codec = open_codec(args.ckpt, args.device)
        x = load_image(args.input)
        n = codec.compress(x).write(args.output)
        print(f"{args.output}: {n} bytes, {n * 8 / (x.shape[-2] * x.shape[-1]):.4f} bpp")
        return 0
    if args.cmd == "decompress":
        from lossarena.data.images import save_image

        from .bitstream import Bitstream, Limits
        from .interface import open_codec

        bs = Bitstream.read(args.input, limits=Limits.from_env(args.max_pixels))  # validated before the model loads
        x = open_codec(args.ckpt, args.device).decompress(bs, source=args.input)
        save_image(x, args.output)
        print(f"{args.output}: {x.shape[-1]}x{x.shape[-2]}")
        return 0
    if args.cmd == "evaluate":
        from .evaluate import evaluate, summarize

        df = evaluate(_ckpt_list(args.ckpts), args.data, args.out, metrics=_csv(args.metrics), device=args.device,
                      resume=args.resume, jobs=args.jobs)
        with_cols = [c for c in ("bpp", "bpp_est", "psnr", "ms-ssim") if c in df.columns]
        print(summarize(df)[["model", *with_cols]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"wrote {args.out} ({len(df)} rows)")
        return 0
    if args.cmd == "rd":
        from .rd import DEFAULT_ANCHORS, plot_rd

        p = plot_rd(args.results, args.out, metrics=_csv(args.metrics), anchors=() if args.no_anchors else DEFAULT_ANCHORS)
        print(f"wrote {p}")
        return 0
    if args.cmd == "bd-rate":
        from .bdrate import bd_compare

        r = bd_compare(args.a, args.b, args.metric, args.method)
        if args.json:
            print(json.dumps({"bd_rate": r["bd_rate"], "bd_metric": r["bd_metric"]}))
        else:
            print(f"BD-rate of {r['b']} vs {r['a']} ({args.metric}, {args.method}): {r['bd_rate']:+.2f} %\n"
                  f"BD-{args.metric}: {r['bd_metric']:+.4f}")
        return 0
    if args.cmd == "match":
        from .match import match_rates

        codecs = _csv(args.codecs) if args.codecs is not None else (["hyperprior"] if args.zoo else [])
        metrics = None if args.metrics == "all" else (_csv(args.metrics) or [])
        if metrics is None:
            from lossarena.metrics import metric_names

            metrics = metric_names()
        p = match_rates(args.zoo, args.images, args.targets, args.out, anchors=_csv(args.anchors) or [],
                        codecs=codecs, losses=_csv(args.losses), metrics=metrics, device=args.device,
                        jobs=args.jobs, max_rate_error=args.max_rate_error)
        print(f"wrote {p}")
        return 0
    if args.cmd == "calibrate":
        import yaml
        from lossarena.data.images import list_images

        from lossarena.metrics import list_metrics, weights_present

        from .calibrate import calibrate_lambdas, rd_points_classical, rd_points_zoo

        metrics = _csv(args.metrics) or [s.name for s in list_metrics() if s.differentiable and weights_present(s)]
        if "mse" not in metrics:
            metrics = ["mse", *metrics]
        imgs = list_images(args.images)
        pts = rd_points_zoo(_ckpt_list([args.zoo]), imgs, metrics) if args.zoo else \
            rd_points_classical(imgs, metrics, crop=args.crop)
        grid = calibrate_lambdas(pts, metrics)
        text = yaml.safe_dump({"lambdas": grid}, sort_keys=False)
        if args.out:
            Path(args.out).write_text(text)
        sys.stdout.write(text)
        return 0
    return 2
