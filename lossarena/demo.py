"""``make demo`` / ``lossarena demo``: the whole pipeline, end to end, into ``demo-output/index.html``.

Stages (each reuses its outputs when they exist, unless ``--fresh``):

1. ``metrics``   — every available metric on the demo images against Pillow-JPEG copies
2. ``zoo``       — the demo codec zoo (MSE base + fine-tunes per weight-free loss), evaluation,
                   RD curves against CompressAI's published anchors, BD-rate table
3. ``roi``       — the small ROI codec (stage 1 + a short stage 2)
4. ``stimuli``   — rate-matched stimuli at three bitrates (+ ROI, + classical anchors)
5. ``study``     — a study built from them, run by simulated participants through the app's core and store
6. ``analysis``  — outliers, winning frequencies, JOD with CIs, significance
7. ``benchmark`` — 2AFC accuracy of the metrics on the study's own votes
8. ``index``     — one offline page linking everything

Nothing is downloaded: images come from ``../shared/data`` or scikit-image's wheel.
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SCALES = ("demo", "small", "paper")


@dataclass
class Ctx:
    out: Path
    scale: str
    fresh: bool
    images_dir: Path | None
    n_images: int
    seed: int = 0
    only: set[str] | None = None
    info: dict = field(default_factory=dict)  # what stages tell the index page
    timings: dict = field(default_factory=dict)

    def stage_dir(self, name: str) -> Path:
        return self.out / name


@dataclass
class Stage:
    name: str
    title: str
    run: Callable[[Ctx, Path], dict]
    done_marker: str = "stage.json"


def _log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------------
# stage 0: images


def stage_images(ctx: Ctx, d: Path) -> dict:
    from .data.demo_images import demo_images
    from .data.images import list_images

    if ctx.images_dir is not None:
        files, label = list_images(ctx.images_dir)[: ctx.n_images], f"user folder {ctx.images_dir}"
    else:
        files, label = demo_images(ctx.n_images, cache=d / "cache")
    d.mkdir(parents=True, exist_ok=True)
    for f in files:
        dst = d / f.name
        if not dst.exists():
            shutil.copyfile(f, dst)
    return {"source": label, "n": len(files), "dir": str(d)}


# --------------------------------------------------------------------------------------------------
# stage 1: metrics on JPEG copies (the foundation's demo)

JPEG_QUALITIES = (10, 30, 60)


def stage_metrics(ctx: Ctx, d: Path) -> dict:
    import io

    import pandas as pd
    import torch
    from PIL import Image
    from tqdm import tqdm

    from .data.images import load_image
    from .metrics import list_metrics, weights_present

    images = sorted((ctx.out / "images").glob("*.png"))
    specs = [s for s in list_metrics() if weights_present(s)]
    skipped = [s.name for s in list_metrics() if not weights_present(s)]
    for s in skipped:
        _log(f"  skipped {s}: ImageNet backbone missing (`lossarena weights status`)")
    rows = []
    with torch.no_grad():
        for path in tqdm(images, desc="metrics vs JPEG", unit="img"):
            ref = load_image(path)
            for q in JPEG_QUALITIES:
                buf = io.BytesIO()
                Image.open(path).convert("RGB").save(buf, format="JPEG", quality=q)
                nbytes = buf.tell()
                buf.seek(0)
                dist_path = d / "jpeg" / f"{path.stem}_q{q}.jpg"
                dist_path.parent.mkdir(parents=True, exist_ok=True)
                dist_path.write_bytes(buf.getvalue())
                dist = load_image(dist_path)
                row = {"image": path.name, "quality": q,
                       "bpp": nbytes * 8 / (ref.shape[-1] * ref.shape[-2])}
                for s in specs:
                    row[s.name] = float(s.function(dist, ref)[0])
                rows.append(row)
    df = pd.DataFrame(rows)
    d.mkdir(parents=True, exist_ok=True)
    df.to_csv(d / "jpeg_scores.csv", index=False)
    summary = df.drop(columns=["image"]).groupby("quality").mean().reset_index()
    summary.to_csv(d / "jpeg_scores_mean.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 4):
        _log("\n  mean over images per JPEG quality:\n" + summary.to_string(index=False))
    return {"csv": "metrics/jpeg_scores.csv", "mean_csv": "metrics/jpeg_scores_mean.csv",
            "metrics": [s.name for s in specs], "skipped": skipped,
            "table_html": summary.to_html(index=False, float_format=lambda v: f"{v:.4f}")}


# --------------------------------------------------------------------------------------------------
# index page


def write_index(ctx: Ctx, stages: list[Stage]) -> Path:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>lossarena demo</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "img{max-width:100%}h2{border-bottom:2px solid #446;padding-bottom:4px}.note{color:#555}"
        "code{background:#f3f3f3;padding:1px 4px}</style></head><body>",
        "<h1>lossarena demo</h1>",
        f"<p class='note'>scale: {html.escape(ctx.scale)}; images: "
        f"{html.escape(str(ctx.info.get('images', {}).get('source', '?')))}; "
        f"generated {time.strftime('%Y-%m-%d %H:%M:%S')}</p>",
    ]
    for st in stages:
        if st.name == "images":
            continue
        info = ctx.info.get(st.name)
        parts.append(f"<h2>{html.escape(st.title)}</h2>")
        if info is None:
            parts.append("<p class='note'>not run</p>")
            continue
        t = ctx.timings.get(st.name)
        if t is not None:
            parts.append(f"<p class='note'>{t:.1f} s</p>")
        parts.append(info.get("html", ""))
        if "table_html" in info:
            parts.append(info["table_html"])
        for key in ("csv", "mean_csv", "report"):
            if key in info:
                parts.append(f"<p><a href='{html.escape(info[key])}'>{html.escape(info[key])}</a></p>")
        for s in info.get("skipped", []):
            parts.append(f"<p class='note'>skipped {html.escape(s)}: weights missing</p>")
    parts.append("</body></html>")
    p = ctx.out / "index.html"
    p.write_text("\n".join(parts), encoding="utf-8")
    return p


STAGES: list[Stage] = [
    Stage("images", "Images", stage_images),
    Stage("metrics", "1. Metrics on JPEG copies", stage_metrics),
]


def run(ctx: Ctx) -> Path:
    ctx.out.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter()
    for st in STAGES:
        if ctx.only and st.name not in ctx.only and st.name != "images":
            continue
        d = ctx.stage_dir(st.name)
        marker = d / st.done_marker
        if marker.exists() and not ctx.fresh:
            ctx.info[st.name] = json.loads(marker.read_text())
            ctx.timings[st.name] = ctx.info[st.name].get("_seconds")
            _log(f"[{st.name}] reused {d} (FRESH=1 to redo)")
            continue
        if ctx.fresh and d.exists() and st.name != "images":
            shutil.rmtree(d)
        _log(f"[{st.name}] {st.title} ...")
        t0 = time.perf_counter()
        info = st.run(ctx, d) or {}
        dt = time.perf_counter() - t0
        info["_seconds"] = dt
        d.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(info, default=str, indent=1))
        ctx.info[st.name], ctx.timings[st.name] = info, dt
        _log(f"[{st.name}] done in {dt:.1f} s -> {d}")
    index = write_index(ctx, STAGES)
    _log(f"\nall done in {time.perf_counter() - total:.1f} s; open {index}")
    return index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lossarena demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo-output", type=Path)
    ap.add_argument("--scale", choices=SCALES, default="demo",
                    help="demo: ~20 min on 2 CPU cores; small: the reduced test run; paper: GPU machine")
    ap.add_argument("--fresh", action="store_true", help="redo every stage (FRESH=1 in make)")
    ap.add_argument("--images", type=Path, default=None, help="use this image folder instead of Kodak")
    ap.add_argument("--n-images", type=int, default=None)
    ap.add_argument("--only", default=None, help="comma-separated stage names")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    n = a.n_images or {"demo": 6, "small": 2, "paper": 24}[a.scale]
    ctx = Ctx(out=a.out, scale=a.scale, fresh=a.fresh, images_dir=a.images, n_images=n, seed=a.seed,
              only=set(a.only.split(",")) if a.only else None)
    run(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())

