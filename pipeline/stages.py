"""The demo's stages: each ``stage_X(ctx, folder) -> info`` writes its files into ``folder`` and returns
what the index page needs (JSON-serialisable; HTML fragments under ``html``). Settings come from the
profile (``ctx.p(...)``); nothing here branches on the scale.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path

from lossarena.html import escape, figure, note

log = logging.getLogger("lossarena.demo")


def _table(df, digits: int = 4, index: bool = False) -> str:
    return df.to_html(index=index, float_format=lambda v: f"{v:.{digits}g}", na_rep="–", border=0)


# --------------------------------------------------------------------------------------------------
# images: evaluation (Kodak or --images) and training (bundled, non-Kodak, + --train-images)


def stage_images(ctx, d: Path) -> dict:
    from lossarena.data.demo_images import demo_images
    from lossarena.data.images import list_images

    from .demo_base import training_images

    if ctx.images_dir is not None:
        files, label = list_images(ctx.images_dir)[: ctx.n_images], f"user folder {ctx.images_dir}"
    else:
        files, label = demo_images(ctx.n_images, cache=d / "cache")
    ev = d / "eval"
    ev.mkdir(parents=True, exist_ok=True)
    for f in files:
        if not (ev / f.name).exists():
            shutil.copyfile(f, ev / f.name)
    _keep_only(ev, {f.name for f in files})  # a folder left by a run with more images must not leak in
    train = d / "train"
    tfiles = training_images(train)
    if ctx.train_dir is not None:
        for f in list_images(ctx.train_dir):
            dst = train / f"user_{f.name}"
            if not dst.exists():
                shutil.copyfile(f, dst)
            tfiles.append(dst)
    _keep_only(train, {f.name for f in tfiles})
    clash = {f.stem for f in files} & {f.stem for f in tfiles}
    if clash:
        raise ValueError(f"expected training images disjoint from the evaluation images, got both: {sorted(clash)}")
    return {"source": label, "n": len(files), "dir": str(ev), "train_dir": str(train), "n_train": len(tfiles),
            "train_source": "scikit-image and matplotlib bundled photographs"
                            + (f" + {ctx.train_dir}" if ctx.train_dir else "")}


def _keep_only(folder: Path, names: set[str]) -> None:
    """Delete the files in ``folder`` whose names are not in ``names`` (sub-folders are left alone)."""
    for f in folder.iterdir():
        if f.is_file() and f.name not in names:
            f.unlink()


def _eval_dir(ctx) -> Path:
    return ctx.out / "images" / "eval"


def _train_dir(ctx) -> Path:
    return ctx.out / "images" / "train"


# --------------------------------------------------------------------------------------------------
# metrics on JPEG copies


def stage_metrics(ctx, d: Path) -> dict:
    import pandas as pd
    import torch
    from lossarena.data.images import load_image
    from PIL import Image
    from tqdm import tqdm

    from lossarena.metrics import list_metrics, weights_present

    images = sorted(_eval_dir(ctx).glob("*.png"))
    specs = [s for s in list_metrics() if weights_present(s)]
    skipped = [s.name for s in list_metrics() if not weights_present(s)]
    for s in skipped:
        log.info("  skipped %s: ImageNet backbone missing (`lossarena weights status`)", s)
    rows = []
    with torch.no_grad():
        for path in tqdm(images, desc="metrics vs JPEG", unit="img"):
            ref = load_image(path)
            for q in ctx.p("metrics", "jpeg_qualities", default=[10, 30, 60]):
                buf = io.BytesIO()
                Image.open(path).convert("RGB").save(buf, format="JPEG", quality=int(q))
                dist_path = d / "jpeg" / f"{path.stem}_q{q}.jpg"
                dist_path.parent.mkdir(parents=True, exist_ok=True)
                dist_path.write_bytes(buf.getvalue())
                dist = load_image(dist_path)
                row = {"image": path.name, "quality": q, "bpp": buf.tell() * 8 / (ref.shape[-1] * ref.shape[-2])}
                for s in specs:
                    row[s.name] = float(s.function(dist, ref)[0])
                rows.append(row)
    df = pd.DataFrame(rows)
    d.mkdir(parents=True, exist_ok=True)
    df.to_csv(d / "jpeg_scores.csv", index=False)
    summary = df.drop(columns=["image"]).groupby("quality").mean().reset_index()
    summary.to_csv(d / "jpeg_scores_mean.csv", index=False)
    body = ("<p>Every metric that can run here, on the evaluation images against Pillow JPEG copies at three "
            "qualities (means over images). Read across a row: the metrics agree that quality 10 is worst; "
            "their scales differ, which is why the study maps everything to JOD.</p>" + _table(summary))
    return {"html": body, "csv": "metrics/jpeg_scores.csv", "metrics": [s.name for s in specs], "skipped": skipped}


# --------------------------------------------------------------------------------------------------
# the codec zoo


def _zoo_config(ctx) -> dict:
    from lossarena.codecs.zoo import load_config

    cfg = load_config(ctx.p("zoo", "config"))
    for k, v in (ctx.p("zoo", "overrides", default={}) or {}).items():
        cfg[k] = dict(cfg.get(k) or {}, **v) if isinstance(v, dict) else v
    return cfg


def _base_checkpoint(ctx, d: Path, cfg: dict) -> dict:
    """Put the MSE base where ``train_zoo`` looks for it: the shipped one (verified), or train it."""
    from lossarena.codecs.model import read_config

    from .demo_base import BASE_FILE, expected_sha256, unpack

    if ctx.p("zoo", "base") != "shipped":
        return {"route": "trained here", "sha256": None}
    level = (cfg.get("base") or {}).get("levels", ["medium"])[0]
    dst = d / "base" / f"mse-{level}.pt"
    if not dst.exists():
        unpack(dst)
    c = read_config(dst)
    cfg["base"] = dict(cfg.get("base") or {}, steps=1)  # complete as shipped: never retrained
    return {"route": "shipped", "sha256": expected_sha256(BASE_FILE), "steps": c.get("step"),
            "arch": c.get("architecture"), "lmbda": c.get("lmbda"), "data": c.get("data")}


def _workers() -> int:
    """Processes the demo's parallel stages use: one torch thread each, at most two (the demo's
    budget is two CPU cores)."""
    return max(1, min(2, os.cpu_count() or 1))


def stage_zoo(ctx, d: Path) -> dict:
    from lossarena.codecs.evaluate import evaluate as evaluate_codecs
    from lossarena.codecs.evaluate import summarize
    from lossarena.codecs.rd import plot_rd

    from lossarena.metrics import get_metric

    from .evidence import cross_metric_table, own_column_check

    cfg = _zoo_config(ctx)
    base = _base_checkpoint(ctx, d, cfg)
    from lossarena.codecs.zoo import train_zoo

    workers = _workers()
    cfg["require_split"] = True  # the fine-tunes never see an evaluation image
    res = train_zoo(cfg, d, data=_train_dir(ctx), eval_data=_eval_dir(ctx), progress=False, device="cpu",
                    log=lambda m: log.info("  %s", m), executor="local", jobs=workers)
    if res.get("failed"):
        raise RuntimeError(f"zoo fine-tunes failed: {', '.join(res['failed'])} (see {d / '.jobs'})")
    for loss, why in res["skipped"].items():
        log.info("  skipped loss %s: %s", loss, why)
    ckpts = list(res["base"]) + list(res["models"])
    df = evaluate_codecs(ckpts, _eval_dir(ctx), d / "results.csv", metrics=ctx.p("zoo", "eval_metrics"),
                         progress=False, device="cpu", jobs=workers)
    plot_rd(df, d / "rd.png", title=f"demo zoo on {ctx.info['images']['source']}")
    ft = df[df["model"].isin([Path(m).stem for m in res["models"]])]
    summ = summarize(ft)
    summ.to_csv(d / "summary.csv", index=False)
    base_rows = df[df["model"].isin([Path(m).stem for m in res["base"]])]
    base_psnr, base_bpp = float(base_rows["psnr"].mean()), float(base_rows["bpp"].mean())
    metric_cols = [c for c in (ctx.p("zoo", "eval_metrics") or []) if c in summ.columns] or \
        [c for c in summ.columns if c not in ("model", "loss", "level", "lmbda", "step", "bpp", "bpp_est",
                                                "seconds_enc", "seconds_dec")]
    hib = {m: not get_metric(m).lower_better for m in metric_cols}
    caveats: list[tuple[str, str, str]] = []
    cross = cross_metric_table(summ, metric_cols, hib, caveats=caveats)
    cross.to_csv(d / "cross_metric.csv")
    own = own_column_check(cross)
    own.to_csv(d / "own_column.csv", index=False)
    goal = base_psnr >= 27.0 and base_bpp <= 0.4
    table = summ[[c for c in ["loss", "level", "lmbda", "bpp", "bpp_est", "psnr", "ms-ssim", "ssim"] if c in summ.columns]]
    steps = (cfg.get("finetune") or {}).get("steps")
    body = [
        f"<p>The MSE base ({escape(base['route'])}"
        + (f", SHA-256 <code>{escape(base['sha256'][:16])}…</code> verified, {base.get('steps')} training steps, "
           f"N={base['arch']['N']}, M={base['arch']['M']}" if base.get("sha256") else "")
        + f") reaches <b>{base_psnr:.2f} dB PSNR at {base_bpp:.3f} bpp</b> on the held-out evaluation images "
        f"(goal: ≥ 27 dB at ≤ 0.4 bpp — {'met' if goal else 'not met'}). It was trained on "
        f"{escape(ctx.info['images']['train_source'])}, never on the evaluation images. Each loss then "
        f"fine-tunes it for {steps} steps at three λ on the same training images.</p>",
        figure("zoo/rd.png", "Rate–distortion curves of every fine-tuned model on the evaluation images, with "
               "CompressAI's published anchors. Look at where each loss's curve sits on its own metric's panel."),
        "<h3>Cross-metric table: does each loss shape its model?</h3>",
        "<p>Rows: the loss a model was fine-tuned with. Columns: Bjøntegaard delta of each metric against the MSE "
        "fine-tunes at matched rates, signed so that <b>positive = better than MSE</b> (dB for PSNR, metric units "
        "otherwise). A loss that shapes its model wins its own column.</p>",
        _table(cross, 3, index=True),
        _own_column_prose(own),
        _bd_caveats(caveats, int(cross.notna().to_numpy().sum())),
        "<h3>Models (means over the evaluation images)</h3>", _table(table),
    ]
    body += [note(f"skipped loss {escape(k)}: {escape(v)}") for k, v in res["skipped"].items()]
    return {"html": "".join(body), "csv": "zoo/results.csv", "skipped_losses": res["skipped"],
            "models": [str(m) for m in ckpts], "base_psnr": base_psnr, "base_bpp": base_bpp, "base": base,
            "goal_met": goal, "own_column": own.to_dict(orient="records")}


def _bd_caveats(caveats: list[tuple[str, str, str]], n_cells: int) -> str:
    """One note with the Bjøntegaard warnings of the cross-metric table: each kind once, with an example
    message and the cells it concerns ("all" when every computed cell)."""
    if not caveats:
        return ""
    kinds: dict[str, tuple[str, set[str]]] = {}
    for loss, metric, msg in caveats:
        kind = msg.split(" (")[0].split(":")[0] if "not monotonic" in msg else \
            "overlap" if "overlap" in msg else msg
        example, cells = kinds.setdefault(kind, (msg, set()))
        cells.add(f"{loss}/{metric}")
    parts = []
    for example, cells in kinds.values():
        where = f"all {n_cells} cells" if len(cells) >= n_cells else ", ".join(sorted(cells))
        example = example.replace("curve A", "the MSE curve").replace("curve B", "the loss's curve")
        parts.append(f"{escape(example)} — {escape(where)}")
    return note("Bjøntegaard caveats (the cells are computed anyway; read them with care): " + "; ".join(parts) + ".")


def _own_column_prose(own) -> str:
    if own.empty:
        return note("No metric column has its own loss among the rows.")
    wins = own[own["own_wins"]]["metric"].tolist()
    lost = own[~own["own_wins"]]
    txt = f"Own column won by: {escape(', '.join(wins) or 'none')}. "
    for _, r in lost.iterrows():
        txt += (f"<b>{escape(r['metric'])}</b>: its own model scores {r['own_value']:+.3g} against MSE but "
                f"{escape(r['best_loss'])} scores {r['best_value']:+.3g} — ")
        txt += ("the own model does not even beat the MSE fine-tune: the fine-tune is too short to move a model "
                "this far from its MSE start on this metric. " if r["own_value"] <= 0 else
                "a loss correlated with this metric (and trained for as few steps) lands as far; differences "
                "this small are within the spread between fine-tunes. ")
    return note(txt)


# --------------------------------------------------------------------------------------------------
# ROI codec


def stage_roi(ctx, d: Path) -> dict:
    import pandas as pd
    from lossarena.codecs.roi.codec import evaluate_roi
    from lossarena.codecs.roi.config import load_config
    from lossarena.codecs.roi.train import train_roi

    cfg = load_config(ctx.p("roi", "config"))
    cfg["data"] = str(_train_dir(ctx))
    cfg["eval_data"] = str(_eval_dir(ctx))
    sub = ctx.p("roi", "perceptual_substitute")
    if sub:  # used only when LPIPS's ImageNet backbone is missing (logged, stored in the checkpoint)
        cfg["distortion"]["perceptual_substitute"] = sub
    steps = ctx.p("roi", "steps")
    ckpt = train_roi(cfg, ctx.out / "zoo" / "roi", steps={int(k): int(v) for k, v in steps.items()} if steps else None,
                     progress=False)
    out_csv = evaluate_roi(ckpt, _eval_dir(ctx), d / "roi_results.csv", rate_indices=ctx.p("roi", "rate_indices"),
                           max_images=ctx.p("roi", "max_images"), progress=False)
    df = pd.read_csv(out_csv)
    body = (f"<p>The saliency-guided variable-rate codec at demo size (trained on the same non-Kodak images; "
            f"checkpoint <code>{escape(Path(ckpt).name)}</code>"
            + (f"; LPIPS's backbone is missing here, so its perceptual term is <b>{escape(sub)}</b> instead — a "
               "deviation from the seed" if sub else "")
            + "). Means per rate index: ROI-PSNR should exceed background PSNR — the codec spends its bits where "
            "people look.</p>"
            + _table(df.groupby("rate_index").mean(numeric_only=True).reset_index()))
    return {"html": body, "csv": "roi/roi_results.csv", "checkpoint": str(ckpt)}


# --------------------------------------------------------------------------------------------------
# rate-matched stimuli


def _targets(ctx) -> list[float]:
    import numpy as np
    import pandas as pd

    t = ctx.p("stimuli", "targets", default="auto")
    if t != "auto":
        return [float(v) for v in t]
    bpp = pd.read_csv(ctx.out / "zoo" / "results.csv")["bpp"].to_numpy(float)
    lo, hi = np.quantile(bpp, 0.2), np.quantile(bpp, 0.8)
    return [round(float(v), 3) for v in np.geomspace(lo, hi, 3)]


def stage_stimuli(ctx, d: Path) -> dict:
    import pandas as pd
    from lossarena.codecs.match import match_rates

    targets = _targets(ctx)
    codecs = ("hyperprior", "roi") if (ctx.out / "zoo" / "roi" / "roi.pt").exists() else ("hyperprior",)
    manifest = match_rates(ctx.out / "zoo", _eval_dir(ctx), targets, d, anchors=tuple(ctx.p("stimuli", "anchors")),
                           codecs=codecs, metrics=("psnr",), progress=False,
                           jobs=_workers(), max_rate_error=ctx.p("stimuli", "max_rate_error"))
    m = pd.read_csv(manifest)
    det = pd.read_csv(d / "match_details.csv")
    left = det[det["details"].str.contains('"left_out"', regex=False)]
    piv = m[m["condition"] != "reference"].pivot_table(index="condition", columns="target_bpp", values="bpp",
                                                      aggfunc="mean")
    body = (f"<p>Targets (bpp): {', '.join(f'{t:g}' for t in targets)}; {m['content'].nunique()} images, "
            f"{m['condition'].nunique() - 1} conditions. Each cell is the mean real bitrate of the encodings "
            "chosen for a target: close to the target across a column means the comparison is rate-fair.</p>"
            + piv.to_html(float_format=lambda v: f"{v:.3f}", border=0))
    if len(left):
        lim = float(ctx.p("stimuli", "max_rate_error"))
        where = "; ".join(f"<b>{escape(str(c))}</b> at {', '.join(f'{t:g}' for t in sorted(g['target_bpp'].unique()))} bpp "
                          f"({len(g)} image×target, real {g['bpp'].min():.3f}–{g['bpp'].max():.3f} bpp)"
                          for c, g in left.groupby("condition"))
        body += (f"<p class='note'>Left out of the study where the codec cannot reach the target within ±{lim:.0%} "
                 f"(comparing it there would compare bitrates, not losses): {where}.</p>")
    return {"html": body, "csv": "stimuli/manifest.csv", "targets": targets,
            "left_out": sorted({f"{c}@{t:g}" for c, t in zip(left["condition"], left["target_bpp"])})}


# --------------------------------------------------------------------------------------------------
# the study with a hidden ground truth


def _observer_model(ctx):
    from lossarena.analysis.observers import ObserverModel

    o = dict(ctx.p("observers", default={}) or {})
    o.pop("truth_metric", None)
    o.pop("jod_spread", None)
    return ObserverModel.from_dict(o)


def stage_study(ctx, d: Path) -> dict:
    from lossarena.study_app import build_study, export_votes, serve_command_string, simulate
    from lossarena.study_app.core.session import StudyRuntime

    truth_metric = ctx.p("observers", "truth_metric", default="ms-ssim")
    spread = float(ctx.p("observers", "jod_spread", default=3.0))
    model = _observer_model(ctx)
    participants = int(ctx.p("study", "participants"))
    build_study(ctx.out / "stimuli", d, sessions=int(ctx.p("study", "sessions")),
                trials_per_participant=int(ctx.p("study", "trials")), seed=ctx.seed, force=True)
    res = simulate(d, None, participants=participants, concurrency=2, seed=ctx.seed, observers=model,
                   truth_metrics={truth_metric: 1.0}, jod_spread=spread, progress=False)
    export_votes(d, None, d / "votes.csv")
    export_votes(d, None, d / "votes_all.csv", include_flagged=True)
    rt = StudyRuntime.open(d, None)
    try:
        refused = sorted(p for p in res.observers if rt.participant(p).get("stage") == "refused")
        flags = {p: rt.flags(p) for p in res.observers}
    finally:
        rt.store.dispose()
    truth = [{"content": c, "group": g, "condition": k, "true_jod": q} for (c, g, k), q in res.truth.items()]
    import pandas as pd

    pd.DataFrame(truth).to_csv(d / "truth.csv", index=False)
    pd.DataFrame([{"participant": p, "kind": o.kind, "noise": o.noise, "bias": o.bias,
                   "refused_at_training": p in refused, "qc_flags": "; ".join(flags.get(p, []))}
                  for p, o in res.observers.items()]).to_csv(d / "observers.csv", index=False)
    serve = serve_command_string(d)
    summ = res.summary()
    kinds = pd.Series([o.kind for o in res.observers.values()]).value_counts().to_dict()
    body = (f"<p>{participants} simulated participants went through the app's own session, sampler, store and "
            f"quality control. <b>Hidden ground truth</b>: the latent quality of every crop is its "
            f"<b>{escape(truth_metric)}</b> against the reference, mapped linearly to JOD (SD {spread:g} JOD over "
            f"the stimuli; seed {ctx.seed}). Honest observers are Thurstonian with personal noise "
            f"({model.noise_sd[0]:g}–{model.noise_sd[1]:g}× Case V) and side bias (SD {model.bias_sd:g} JOD); "
            f"careless ones: {escape(', '.join(f'{v} {k}' for k, v in kinds.items() if k != 'honest'))}. "
            f"{len(refused)} were ended by the training gate; {sum(bool(v) for v in flags.values())} flagged "
            "by QC (left out of <code>votes.csv</code>; <code>votes_all.csv</code> keeps them).</p>"
            + "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in summ.items())
            + "</table>"
            + f"<p>Serve the same study to real people: <code>lossarena study serve {escape(str(d))}</code></p>")
    return {"html": body, "csv": "study/votes.csv", "serve": serve, "truth_metric": truth_metric,
            "refused": refused, "n_flagged": sum(bool(v) for v in flags.values()), "kinds": kinds}


# --------------------------------------------------------------------------------------------------
# analysis: the report, the recovered scale against the truth, the catch rate


def _plot_truth(j, stats: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    # a percentile bootstrap interval need not contain the point estimate: clip the bars at it
    err = [(j["score"] - j["ci_low"]).clip(lower=0), (j["ci_high"] - j["score"]).clip(lower=0)]
    ax.errorbar(j["true_jod"], j["score"], yerr=err, fmt="o", ms=3, alpha=0.6, elinewidth=0.7)
    lo, hi = float(min(j["true_jod"].min(), j["ci_low"].min())), float(max(j["true_jod"].max(), j["ci_high"].max()))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="recovered = true")
    ax.set(xlabel="true JOD (centred per image × bitrate)", ylabel="recovered JOD (95% bootstrap CI)",
           title=f"r = {stats['r']:.3f}, MAE = {stats['mae']:.2f} JOD")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def stage_analysis(ctx, d: Path) -> dict:
    import pandas as pd
    from lossarena.analysis.outliers import score_outliers
    from lossarena.analysis.report import build_report
    from lossarena.analysis.scaling import scale_votes
    from lossarena.analysis.votes import read_votes

    from .evidence import answer_table, catch_table, truth_vs_recovered

    study = ctx.out / "study"
    boot = int(ctx.p("analysis", "bootstrap", default=200))
    index = build_report(study / "votes.csv", d, title="demo study", bootstrap=boot, seed=ctx.seed, progress=False)
    votes = read_votes(study / "votes.csv")
    outl = score_outliers(votes, progress=False)
    used = votes[~votes["participant"].isin(set(outl.loc[outl["is_outlier"], "participant"]))]
    scores = scale_votes(used, "thurstone", ["content", "group"], bootstrap=boot, seed=ctx.seed, progress=False)
    scores.to_csv(d / "scores_by_image.csv", index=False)
    t = pd.read_csv(study / "truth.csv", dtype={"content": str, "group": str, "condition": str})
    truth = {(r.content, r.group, r.condition): float(r.true_jod) for r in t.itertuples()}
    j, stats = truth_vs_recovered(scores, truth)
    j.to_csv(d / "truth_vs_recovered.csv", index=False)
    fig = d / "figures"
    fig.mkdir(parents=True, exist_ok=True)
    if len(j) >= 3:
        _plot_truth(j, stats, fig / "truth_vs_recovered.png")
    # who was caught: training gate + QC (study) + the outlier screen on every vote (flagged included)
    obs = pd.read_csv(study / "observers.csv")
    all_votes = read_votes(study / "votes_all.csv")
    outl_all = score_outliers(all_votes, progress=False)
    caught = catch_table(dict(zip(obs["participant"], obs["kind"])), set(obs.loc[obs["refused_at_training"], "participant"]),
                         {p: ([f] if isinstance(f, str) and f else []) for p, f in zip(obs["participant"], obs["qc_flags"])},
                         set(outl_all.loc[outl_all["is_outlier"], "participant"]))
    caught.to_csv(d / "careless_caught.csv", index=False)
    losses = sorted({Path(m).stem.rsplit("-", 1)[0] for m in ctx.info.get("zoo", {}).get("models", [])
                     if "/base/" not in m})
    conds = [c for c in scores["condition"].unique() if c in losses] or list(scores["condition"].unique())
    answer = answer_table(scores, used, truth, conds)
    answer.to_csv(d / "answer.csv", index=False)
    careless = caught[caught["kind"] != "honest"]
    n_careless = int(careless["n"].sum())
    rate = float(careless["caught"].sum() / n_careless) if n_careless else float("nan")
    honest = caught[caught["kind"] == "honest"]
    false_alarms = int(honest["caught"].sum()) if len(honest) else 0
    figs = [("wf_overall.png", "Winning frequency of each condition pooled per bitrate: the share of its comparisons "
             "it won. Higher bars = preferred more often."),
            ("outliers.png", "Outlier screen per participant: points beyond the dashed thresholds are removed.")]
    body = ["<h3>Recovered scale against the hidden truth</h3>",
            f"<p>Thurstone JOD per image × bitrate from the QC-filtered votes, outliers removed, against the truth "
            f"(both centred per image × bitrate): <b>r = {stats['r']:.3f}, MAE = {stats['mae']:.2f} JOD</b> over "
            f"{stats['n']} stimuli; {stats['ci_coverage']:.0%} of the true values lie inside their 95% bootstrap "
            "CI.</p>"]
    if (fig / "truth_vs_recovered.png").exists():
        body.append(figure("analysis/figures/truth_vs_recovered.png",
                           "Each point is one stimulus: true JOD (x) against the JOD the analysis recovered (y) with "
                           "its 95% CI. Points on the dashed line are recovered exactly; a slope below 1 means the "
                           "scale is compressed (noise the observer model adds, careless votes left in)."))
    body += ["<h3>Careless observers: caught and missed</h3>",
             f"<p>{int(careless['caught'].sum())} of {n_careless} careless observers caught ({rate:.0%}); "
             f"{false_alarms} of {int(honest['n'].sum()) if len(honest) else 0} honest observers flagged (false "
             "alarms). A participant counts as caught by any screen; the columns say which.</p>",
             _table(caught)]
    body += [figure(f"analysis/figures/{f}", cap) for f, cap in figs if (fig / f).exists()]
    body.append("<p>The full report (winning frequencies per image, significance matrices, every CSV): "
                f"<a href='analysis/{Path(index).name}'>analysis/{Path(index).name}</a></p>")
    return {"html": "".join(body), "report": f"analysis/{Path(index).name}", "truth_r": stats["r"],
            "truth_mae": stats["mae"], "ci_coverage": stats["ci_coverage"], "catch_rate": rate,
            "false_alarms": false_alarms, "n_careless": n_careless, "answer": answer.to_dict(orient="records"),
            "careless": caught.to_dict(orient="records")}


# --------------------------------------------------------------------------------------------------
# 2AFC benchmark on the study's own votes


def stage_benchmark(ctx, d: Path) -> dict:
    from lossarena.benchmark.twoafc import run_2afc
    from lossarena.data.triplets import votes_to_triplets

    d.mkdir(parents=True, exist_ok=True)
    stim = ctx.out / "stimuli"
    trip = votes_to_triplets(ctx.out / "study" / "votes.csv", stim / "manifest.csv", d / "triplets.csv")
    out = run_2afc(d / "triplets.csv", stim, bootstrap=int(ctx.p("benchmark", "bootstrap", default=1000)),
                   out_csv=d / "acc.csv", report_dir=d, seed=ctx.seed, title="metrics on the demo study's votes")
    acc = out.acc.sort_values("score_2afc", ascending=False).reset_index(drop=True)
    truth_metric = ctx.info.get("study", {}).get("truth_metric", "")
    metrics = [m for m in acc["metric"] if not str(m).startswith(("always", "random", "majority", "oracle", "human"))]
    rank = metrics.index(truth_metric) + 1 if truth_metric in metrics else None
    top = metrics[0] if metrics else ""
    if rank == 1:
        verdict = f"The ground-truth metric <b>{escape(truth_metric)}</b> ranks first, as it should."
    elif rank:
        verdict = (f"The ground-truth metric <b>{escape(truth_metric)}</b> ranks <b>{rank}</b>, not first "
                   f"(<b>{escape(top)}</b> leads): with {len(trip)} triplets the CIs overlap, and metrics "
                   "correlated with it predict the same pairs.")
    else:
        verdict = f"The ground-truth metric {escape(truth_metric)} was not benchmarked."
    body = (f"<p>{len(trip)} triplets (each compared pair with its reference; p_a from the votes). {verdict}</p>"
            + _table(acc, 3))
    pngs = sorted(d.glob("*.png"))
    if pngs:
        body += figure(f"benchmark/{pngs[0].name}", "2AFC score of each metric with its 95% bootstrap CI: how "
                       "often the metric agrees with the people's majority. The truth metric should lead.")
    if out.standin:
        body += "<p class='standin'>STAND-IN WEIGHTS: numbers are not real</p>"
    return {"html": body, "csv": "benchmark/acc.csv", "truth_rank": rank, "top_metric": top,
            "report": f"benchmark/{Path(out.report).name}" if out.report else None}


# --------------------------------------------------------------------------------------------------
# power analysis for this design


def stage_plan(ctx, d: Path) -> dict:
    from lossarena.analysis.power import Design, plan_study, plot_plan, truth_from_pilot
    from lossarena.study_app.core.config import load_config

    cfg = load_config(ctx.out / "study")
    truth, names = truth_from_pilot(ctx.out / "study" / "votes.csv")
    design = Design(truth, trials_per_participant=cfg.trials_per_participant or 40,
                    sampling="full" if cfg.sampler == "full" else "adjacent", group_names=names)
    target = float(ctx.p("plan", "target_ci", default=0.6))
    res = plan_study(design, model=_observer_model(ctx), participants=ctx.p("plan", "participants"),
                     replications=int(ctx.p("plan", "replications", default=30)), target_ci=target, seed=ctx.seed)
    d.mkdir(parents=True, exist_ok=True)
    res.table.to_csv(d / "plan.csv", index=False)
    plot_plan(res, d / "plan.png")
    n = res.required
    ran = int(ctx.p("study", "participants"))
    body = (f"<p>Taking this study's fitted scale as a pilot, and the same observer model, the design "
            f"({len(truth)} image × bitrate groups, {cfg.sampler} sampling, {design.trials_per_participant} trials "
            f"per participant) needs <b>{n['adjacent'] or 'more than ' + str(res.settings['max_participants'])}"
            f"</b> participants to separate adjacent conditions with 80% power (α = 0.05, Holm within each group), "
            f"and <b>{n['ci'] or 'more than ' + str(res.settings['max_participants'])}</b> for 95% CIs narrower "
            f"than {target:g} JOD. The demo ran {ran}.</p>"
            + figure("plan/plan.png", "Precision against participants (simulated studies). Left: share of adjacent "
                     "condition pairs the report's test separates; right: width of each condition's 95% CI. The "
                     "vertical line marks the count needed.")
            + f"<pre>{escape(res.summary())}</pre>")
    return {"html": body, "csv": "plan/plan.csv", "required": n, "ran": ran,
            "max_participants": res.settings["max_participants"], "target_ci": target}
