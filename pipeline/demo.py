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
    from lossarena.data.demo_images import demo_images
    from lossarena.data.images import list_images

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
    from lossarena.data.images import load_image
    from PIL import Image
    from tqdm import tqdm

    from lossarena.metrics import list_metrics, weights_present

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
# stage 2: the codec zoo


def _zoo_config(ctx: Ctx) -> dict:
    from lossarena.codecs.zoo import load_config

    if ctx.scale == "paper":
        return load_config("zoo-paper")
    cfg = load_config("zoo-demo")
    if ctx.scale == "small":  # the reduced end-to-end test: same code path, a few steps
        cfg["base"] = dict(cfg.get("base") or {}, steps=30)
        cfg["finetune"] = dict(cfg.get("finetune") or {}, losses=["mse", "ssim"], levels=["low", "high"], steps=4)
    return cfg


def _img(path: str, alt: str) -> str:
    return f"<p><img src='{html.escape(path)}' alt='{html.escape(alt)}'></p>"


def stage_zoo(ctx: Ctx, d: Path) -> dict:
    import pandas as pd
    from lossarena.codecs.bdrate import bd_metric, bd_rate
    from lossarena.codecs.evaluate import evaluate as evaluate_codecs
    from lossarena.codecs.evaluate import summarize
    from lossarena.codecs.rd import plot_rd
    from lossarena.codecs.zoo import train_zoo

    images = ctx.out / "images"
    res = train_zoo(_zoo_config(ctx), d, data=images)
    for loss, why in res["skipped"].items():
        _log(f"  skipped loss {loss}: {why}")
    ckpts = list(res["base"]) + list(res["models"])
    # the cheap metrics on full images; `lossarena codecs evaluate` scores every metric when asked
    metrics = ["psnr", "ssim", "ms-ssim", "gmsd"] if ctx.scale != "paper" else None
    df = evaluate_codecs(ckpts, images, d / "results.csv", metrics=metrics)
    plot_rd(df, d / "rd.png", title=f"demo zoo on {ctx.info['images']['source']}")
    # BD-rate of every fine-tuned loss against the MSE fine-tunes, on PSNR and on each loss's own metric
    summ = summarize(df[df["model"].isin([Path(m).stem for m in res["models"]])])
    rows = []
    mse = summ[summ["loss"] == "mse"]
    for loss, g in summ.groupby("loss"):
        if loss == "mse" or len(g) < 2 or len(mse) < 2:
            continue
        for metric in dict.fromkeys(["psnr", loss]):
            if metric not in g.columns or g[metric].isna().any() or mse[metric].isna().any():
                continue
            try:
                r = bd_rate(mse["bpp"], mse[metric], g["bpp"], g[metric], method="pchip" if len(g) < 4 else "cubic")
                m = bd_metric(mse["bpp"], mse[metric], g["bpp"], g[metric], method="pchip" if len(g) < 4 else "cubic")
            except Exception as e:  # non-overlapping rate ranges give no BD number
                _log(f"  no BD-rate for {loss} on {metric}: {e}")
                continue
            rows.append({"loss": loss, "metric": metric, "anchor": "mse fine-tune", "bd_rate_percent": r,
                         "bd_metric": m})
    bd = pd.DataFrame(rows, columns=["loss", "metric", "anchor", "bd_rate_percent", "bd_metric"])
    bd.to_csv(d / "bd_rate.csv", index=False)
    summ.to_csv(d / "summary.csv", index=False)
    table = summ[[c for c in ["loss", "level", "lmbda", "bpp", "bpp_est", "psnr", "ms-ssim", "ssim"]
                  if c in summ.columns]]
    body = (_img("zoo/rd.png", "RD curves") + "<h3>models (means over images)</h3>"
            + table.to_html(index=False, float_format=lambda v: f"{v:.4g}")
            + "<h3>BD-rate against the MSE-trained models (negative = fewer bits for the same quality)</h3>"
            + (bd.to_html(index=False, float_format=lambda v: f"{v:.2f}") if len(bd) else "<p>no overlapping curves</p>")
            + "".join(f"<p class='note'>skipped loss {html.escape(k)}: {html.escape(v)}</p>"
                      for k, v in res["skipped"].items()))
    return {"html": body, "csv": "zoo/results.csv", "skipped_losses": res["skipped"],
            "models": [str(m) for m in ckpts]}


# --------------------------------------------------------------------------------------------------
# stage 3: the ROI codec


def stage_roi(ctx: Ctx, d: Path) -> dict:
    from lossarena.codecs.roi.codec import evaluate_roi
    from lossarena.codecs.roi.config import load_config
    from lossarena.codecs.roi.train import train_roi

    images = ctx.out / "images"
    cfg = load_config("roi-paper" if ctx.scale == "paper" else "roi-demo")
    cfg["data"] = str(images)
    steps = {1: 20, 2: 4} if ctx.scale == "small" else None
    ckpt = train_roi(cfg, ctx.out / "zoo" / "roi", steps=steps)
    # the sequential GMM context decoding costs seconds per Kodak image on a CPU: the demo evaluates a subset
    rates = [0, 2.5, 5] if ctx.scale != "paper" else None
    max_images = {"small": 1, "demo": 2, "paper": None}[ctx.scale]
    out_csv = evaluate_roi(ckpt, images, d / "roi_results.csv", rate_indices=rates, max_images=max_images)
    import pandas as pd

    df = pd.read_csv(out_csv)
    md = Path(out_csv).with_suffix(".md")
    body = (f"<p>checkpoint: <code>{html.escape(str(ckpt))}</code></p>"
            + df.groupby("rate_index").mean(numeric_only=True).reset_index().to_html(
                index=False, float_format=lambda v: f"{v:.4g}"))
    if md.exists():
        body += f"<p><a href='roi/{md.name}'>table in the seed's format</a></p>"
    return {"html": body, "csv": "roi/roi_results.csv", "checkpoint": str(ckpt)}


# --------------------------------------------------------------------------------------------------
# stage 4: rate-matched stimuli


def _targets(ctx: Ctx) -> list[float]:
    """Three targets inside the rate range the demo models actually reach (the paper's 0.1/0.25/0.5
    bpp at paper scale)."""
    import numpy as np
    import pandas as pd

    if ctx.scale == "paper":
        return [0.1, 0.25, 0.5]
    df = pd.read_csv(ctx.out / "zoo" / "results.csv")
    bpp = df["bpp"].to_numpy(float)
    lo, hi = np.quantile(bpp, 0.2), np.quantile(bpp, 0.8)
    return [round(float(v), 3) for v in np.geomspace(lo, hi, 3)]


def stage_stimuli(ctx: Ctx, d: Path) -> dict:
    import pandas as pd
    from lossarena.codecs.match import match_rates

    targets = _targets(ctx)
    anchors = ("jpeg", "jpeg2000") if ctx.scale == "small" else ("jpeg", "jpeg2000", "jpegxl", "avif")
    codecs = ("hyperprior", "roi") if (ctx.out / "zoo" / "roi" / "roi.pt").exists() else ("hyperprior",)
    manifest = match_rates(ctx.out / "zoo", ctx.out / "images", targets, d, anchors=anchors, codecs=codecs,
                           metrics=("psnr",))
    m = pd.read_csv(manifest)
    piv = m[m["condition"] != "reference"].pivot_table(index="condition", columns="target_bpp", values="bpp",
                                                      aggfunc="mean")
    body = (f"<p>targets (bpp): {', '.join(f'{t:g}' for t in targets)}; "
            f"{m['content'].nunique()} images, {m['condition'].nunique() - 1} conditions</p>"
            "<h3>mean real bpp per condition and target</h3>"
            + piv.to_html(float_format=lambda v: f"{v:.3f}"))
    return {"html": body, "csv": "stimuli/manifest.csv", "targets": targets}


# --------------------------------------------------------------------------------------------------
# stage 5: the study, run by simulated participants through the app's core and store


def stage_study(ctx: Ctx, d: Path) -> dict:
    from lossarena.study_app import build_study, export_votes, serve_command_string, simulate

    participants = {"small": 8, "demo": 40, "paper": 120}[ctx.scale]
    build_study(ctx.out / "stimuli", d, sessions=1 if ctx.scale != "paper" else 3,
                trials_per_participant=12 if ctx.scale == "small" else 30, seed=ctx.seed, force=True)
    result = simulate(d, None, participants=participants, concurrency=4, seed=ctx.seed)
    votes = export_votes(d, None, d / "votes.csv")
    serve = serve_command_string(d)
    summary = result.summary()
    _log(f"  serve it to real people: lossarena study serve {d}\n  ({serve})")
    body = (f"<p>{participants} simulated participants (Thurstone observers, 10% random responders) "
            "through the app's session, sampler and store. The simulated observers' true condition "
            "qualities are random draws, not derived from the images: the votes exercise the pipeline and "
            "say nothing about which loss is better.</p>"
            + "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                                  for k, v in summary.items()) + "</table>"
            + f"<p>exact command to serve it to real people:</p><pre>{html.escape(serve)}</pre>"
            f"<p>or simply: <code>lossarena study serve {html.escape(str(d))}</code></p>")
    return {"html": body, "csv": "study/votes.csv", "votes": str(votes), "serve": serve}


# --------------------------------------------------------------------------------------------------
# stage 6: analysis


def stage_analysis(ctx: Ctx, d: Path) -> dict:
    from lossarena.analysis.report import build_report

    index = build_report(ctx.out / "study" / "votes.csv", d, title="demo study",
                         bootstrap=50 if ctx.scale == "small" else 200, seed=ctx.seed)
    fig = d / "figures"
    figs = ([fig / "wf_overall.png"] + sorted(fig.glob("wf_*.png")) + sorted(fig.glob("scores_*.png"))
            + [fig / "outliers.png"])
    seen: set[Path] = set()
    body = ("<p>Winning frequency per image × bitrate (the seed's slides), JOD with 95% bootstrap CIs, and "
            "the outlier screen; the full report has the significance matrices and every CSV.</p>")
    for f in figs:
        if f.exists() and f not in seen:
            seen.add(f)
            body += _img(f"analysis/figures/{f.name}", f.stem)
    return {"html": body, "report": f"analysis/{Path(index).name}"}


# --------------------------------------------------------------------------------------------------
# stage 7: metric accuracy on the study's own votes


def stage_benchmark(ctx: Ctx, d: Path) -> dict:
    from lossarena.benchmark.twoafc import run_2afc
    from lossarena.data.triplets import votes_to_triplets

    d.mkdir(parents=True, exist_ok=True)
    stim = ctx.out / "stimuli"
    trip = votes_to_triplets(ctx.out / "study" / "votes.csv", stim / "manifest.csv", d / "triplets.csv")
    out = run_2afc(d / "triplets.csv", stim, bootstrap=200 if ctx.scale == "small" else 1000,
                   out_csv=d / "acc.csv", report_dir=d, seed=ctx.seed, title="metrics on the demo study's votes")
    body = (f"<p>{len(trip)} triplets (each compared pair with its reference; p_a from the votes)</p>"
            + out.acc.to_html(index=False, float_format=lambda v: f"{v:.3f}"))
    pngs = sorted(d.glob("*.png"))
    body += "".join(_img(f"benchmark/{p.name}", p.stem) for p in pngs[:1])
    if out.standin:
        body += "<p><b>STAND-IN WEIGHTS: numbers are not real</b></p>"
    return {"html": body, "csv": "benchmark/acc.csv",
            "report": f"benchmark/{Path(out.report).name}" if out.report else None}


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
            if info.get(key):
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
    Stage("zoo", "2. Codec zoo: RD curves and BD-rate", stage_zoo),
    Stage("roi", "3. ROI codec", stage_roi),
    Stage("stimuli", "4. Rate-matched stimuli", stage_stimuli),
    Stage("study", "5. Study with simulated participants", stage_study),
    Stage("analysis", "6. Analysis: outliers, winning frequencies, JOD", stage_analysis),
    Stage("benchmark", "7. Metric accuracy on the study's own votes", stage_benchmark),
]


def run(ctx: Ctx) -> Path:
    ctx.out.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter()
    for st in STAGES:
        d = ctx.stage_dir(st.name)
        marker = d / st.done_marker
        if ctx.only and st.name not in ctx.only and st.name != "images":
            if marker.exists():  # not run now, but its earlier output still belongs on the page
                ctx.info[st.name] = json.loads(marker.read_text())
                ctx.timings[st.name] = ctx.info[st.name].get("_seconds")
            continue
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

