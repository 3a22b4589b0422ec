"""``codecs evaluate``: per image × model, real bpp (file bits / pixels), estimated bpp, every metric.

``results.csv`` columns: ``image, model, codec, loss, lmbda, level, step, bpp, bpp_est, seconds_enc,
seconds_dec`` then one column per metric (registry names, e.g. ``psnr, mse, ssim, ms-ssim``), computed
on the image decoded from the real bitstream against the original. Metrics whose backbone weights are
missing are left out (one line says so).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

BASE_COLUMNS = ["image", "model", "codec", "loss", "lmbda", "level", "step", "bpp", "bpp_est",
                "seconds_enc", "seconds_dec"]


def available_metrics(names: list[str] | None = None, *, log=print) -> list[str]:
    """Registry metrics that can run here (weights present), in registry order."""
    from lossarena.metrics import get_metric, list_metrics, weights_present

    specs = list_metrics() if names is None else [get_metric(n) for n in names]
    out = []
    for s in specs:
        if weights_present(s):
            out.append(s.name)
        else:
            log(f"skipped metric {s.name}: backbone weights {', '.join(s.needs_weights)} missing "
                f"(`lossarena weights status`)")
    return out


def score(x_hat: torch.Tensor, x: torch.Tensor, metrics: list[str], *, warned: set | None = None) -> dict:
    from lossarena.metrics import compute

    row = {}
    for m in metrics:
        try:
            with torch.no_grad():
                row[m] = float(compute(m, x_hat, x)[0])
        except (ValueError, RuntimeError) as e:
            row[m] = float("nan")
            if warned is not None and m not in warned:
                warned.add(m)
                print(f"warning: metric {m} failed ({e}); NaN in its column", file=sys.stderr)
    return row


def evaluate(ckpts, images, out_csv, *, metrics: list[str] | None = None, device: str = "cpu",
             progress: bool = True):
    """Evaluate checkpoints on a folder (or list) of images; writes and returns the results DataFrame."""
    import pandas as pd
    from lossarena.data.images import list_images, load_image
    from tqdm import tqdm

    from .bitstream import Bitstream
    from .coder import HyperpriorCodec

    paths = list_images(images) if isinstance(images, (str, Path)) else [Path(p) for p in images]
    metric_names = available_metrics(metrics)
    codecs = [HyperpriorCodec(c, device) for c in ckpts]
    rows, warned = [], set()
    bar = tqdm(total=len(paths) * len(codecs), desc="evaluate", disable=not progress, dynamic_ncols=True)
    for p in paths:
        x = load_image(p)
        pixels = x.shape[-2] * x.shape[-1]
        for c in codecs:
            t0 = time.perf_counter()
            data = c.compress(x).to_bytes()
            t1 = time.perf_counter()
            x_hat = c.decompress(Bitstream.from_bytes(data))
            t2 = time.perf_counter()
            est, _ = c.estimate(x)
            cfg = c.config
            row = {"image": p.stem, "model": c.path.stem, "codec": cfg.get("codec", "hyperprior"),
                   "loss": cfg.get("loss"), "lmbda": cfg.get("lmbda"), "level": cfg.get("level"),
                   "step": cfg.get("step"), "bpp": len(data) * 8 / pixels, "bpp_est": est,
                   "seconds_enc": t1 - t0, "seconds_dec": t2 - t1}
            row.update(score(x_hat, x, metric_names, warned=warned))
            rows.append(row)
            bar.update(1)
    bar.close()
    df = pd.DataFrame(rows, columns=BASE_COLUMNS + metric_names)
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    return df


def summarize(df):
    """Per model means (what RD curves and BD-rates use)."""
    num = [c for c in df.columns if c not in ("image", "model", "codec", "loss", "level")]
    g = df.groupby(["model", "loss", "level"], dropna=False, sort=False)[num].mean().reset_index()
    return g.sort_values(["loss", "bpp"])
