"""``lossarena benchmark``: 2AFC accuracy of metrics against human judgments; DPIS and ROI-MLP.

Commands::

    lossarena benchmark convert {bapps,clic,pieapp,votes} ... --out triplets.csv
    lossarena benchmark 2afc TRIPLETS.csv --images DIR [-m NAME ...] [--bootstrap 1000] --out acc.csv [--report DIR]
    lossarena benchmark train-dpis --bapps BAPPS/dataset/2afc --pieapp PieAPPv0.1 --out dpis.pt
    lossarena benchmark train-dpis --triplets T.csv --images DIR --out dpis.pt
    lossarena benchmark train-roi-mlp --triplets T.csv --images DIR --out roi_mlp.pt (--roi-checkpoint CKPT |
        --no-d-loss) [--lpips lpips-alex|gms] [--saliency spectral|folder:DIR|torch:FILE] [--smooth-kernel 50]
    lossarena benchmark jnd JND.csv (--images DIR | --scores CSV) -m NAME ... --out metrics.csv
    lossarena benchmark synthetic OUT_DIR [--n 40 --size 64 --kind noise]
    lossarena benchmark list
"""

from __future__ import annotations

import argparse
import sys


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="write a canonical triplets.csv (reference,a,b,p_a) from a dataset")
    s = p.add_subparsers(dest="source", required=True)
    b = s.add_parser("bapps", help="BAPPS 2AFC folder(s) ref/ p0/ p1/ judge/")
    b.add_argument("root")
    b.add_argument("--images-root", help="make paths relative to this folder (default: ROOT)")
    c = s.add_parser("clic", help="CLIC 2021/2022 perceptual oracle.csv (O,A,B,T; T=0: A preferred)")
    c.add_argument("oracle")
    c.add_argument("--prefix", default="", help="sub-folder of --images that holds the PNGs")
    pa = s.add_parser("pieapp", help="PieAPP dataset folder (labels/<split>/*_pairwise_labels.csv)")
    pa.add_argument("root")
    pa.add_argument("--split", default="test", choices=("train", "val", "test"))
    pa.add_argument("--images-root", help="make paths relative to this folder (default: ROOT)")
    v = s.add_parser("votes", help="the study's votes.csv + stimuli manifest.csv")
    v.add_argument("votes")
    v.add_argument("--manifest", required=True)
    v.add_argument("--images-root", help="make paths relative to this folder (default: the manifest's folder)")
    v.add_argument("--include-reference-pairs", action="store_true",
                   help="keep votes in which one side is the reference itself")
    for q in (b, c, pa, v):
        q.add_argument("--out", required=True, help="triplets.csv to write")


def _add_2afc(sub) -> None:
    p = sub.add_parser("2afc", help="2AFC score and accuracy of metrics on triplets, with bootstrap CIs")
    p.add_argument("triplets")
    p.add_argument("--images", help="folder the triplet paths are relative to (required unless --baselines-only)")
    p.add_argument("--baselines-only", action="store_true",
                   help="only the always-majority and human-ceiling rows, from the labels alone (no images)")
    p.add_argument("-m", "--metric", action="append", dest="metrics",
                   help="metric or 2AFC predictor (repeatable; default: all available)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CI")
    p.add_argument("--ci-on", choices=("score_2afc", "accuracy"), default="score_2afc")
    p.add_argument("--out", required=True, help="acc.csv to write")
    p.add_argument("--report", help="folder for index.html, accuracy.png, predictions.csv")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--crop", type=int, help="centre-crop every triplet to N×N first (default: as is)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dpis-checkpoint", help="trained DPIS checkpoint (else $LOSSARENA_DPIS_CHECKPOINT, "
                                              "~/.cache/lossarena/dpis.pt)")
    p.add_argument("--roi-mlp-checkpoint", help="trained ROI-MLP checkpoint (else $LOSSARENA_ROI_MLP_CHECKPOINT, "
                                                 "~/.cache/lossarena/roi_mlp.pt)")
    p.add_argument("--title")
    p.add_argument("--no-progress", action="store_true")


def _add_train(sub) -> None:
    p = sub.add_parser("train-dpis", help="train DPIS on 2AFC triplets (BCE through a judge network)")
    p.add_argument("--bapps", help="BAPPS dataset/2afc folder as downloaded (its train/ is used); with --pieapp "
                                   "this is the seed's training set")
    p.add_argument("--pieapp", help="PieAPP dataset folder as downloaded (reference_images/, distorted_images/, "
                                    "labels/; its train split is used)")
    p.add_argument("--triplets", help="or: a canonical triplets.csv (with --images)")
    p.add_argument("--images", help="folder the --triplets paths are relative to")
    p.add_argument("--out", required=True)
    p.add_argument("--no-gradient-branch", action="store_true", help="ablation: without the gradient-map terms")
    p.add_argument("--no-d2", action="store_true", help="ablation: without D2 (D = D1)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--crop", type=int, default=224, help="random crop size for training (seed: 224)")
    p.add_argument("--patch", type=int, default=224, help="test-time patch size (distance averaged over patches)")
    p.add_argument("--max-triplets", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")

    r = sub.add_parser("train-roi-mlp", help="train ROI-MLP (16 inputs) and ROI-MLP BASIC (8 inputs)")
    r.add_argument("--triplets", required=True)
    r.add_argument("--images", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--roi-checkpoint", help="ROI codec stage-2 checkpoint whose discriminator gives D-loss "
                                             "(required unless --no-d-loss)")
    r.add_argument("--no-d-loss", action="store_true",
                   help="leave the discriminator inputs out (12 inputs, BASIC 6) instead of requiring a ROI codec")
    r.add_argument("--lpips", choices=("lpips-alex", "gms"), default="lpips-alex",
                   help="LPIPS inputs: lpips-alex (the seed; needs AlexNet) or the named substitute 1 - GMS")
    r.add_argument("--saliency", default="spectral",
                   help="saliency for RM_2D: spectral, fine-grained, folder:DIR (masks), torch:FILE.pt (TorchScript)")
    r.add_argument("--smooth-kernel", type=int, default=50, help="RM_2D box size (this seed: 50)")
    r.add_argument("--epochs", type=int, default=50, help="training epochs (seed: 50 iterations)")
    r.add_argument("--lr", type=float, default=1e-3)
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-progress", action="store_true")


def _add_jnd(sub) -> None:
    p = sub.add_parser("jnd", help="metrics against a JND scale: AIC-4 mapping alpha*min(0, beta-x), PLCC/SROCC/KROCC")
    p.add_argument("jnd", help="jnd.csv (content,condition,jnd,...) from `lossarena analysis jnd`")
    p.add_argument("--images", help="DIR/manifest.csv, DIR/<content>/<condition>.png or the AIC-4 dataset layout")
    p.add_argument("--scores", help="precomputed scores instead of images: content,condition + one column per metric")
    p.add_argument("-m", "--metric", action="append", dest="metrics", required=True,
                   help="registry metric NAME[:key=value,...] (with --images) or a --scores column (repeatable)")
    p.add_argument("--higher-better", action="append", default=[], help="--scores column where higher is better")
    p.add_argument("--lower-better", action="append", default=[], help="--scores column where lower is better")
    p.add_argument("--folds", type=int, default=0, help="K > 1: out-of-fold mapped scores from K random folds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="metrics.csv (one row per metric)")
    p.add_argument("--predictions", help="also write the per-image raw and mapped scores")


def _cmd_jnd(a) -> int:
    import pandas as pd
    from lossarena.analysis.jnd import read_jnd
    from lossarena.data import schemas

    from lossarena.errors import InputError

    from .jnd import benchmark_jnd, locate_images, score_images

    table = read_jnd(a.jnd)
    if (a.images is None) == (a.scores is None):
        raise InputError("give exactly one of --images DIR and --scores CSV")
    scores = {}
    if a.images:
        located = locate_images(table, a.images)
        for m in a.metrics:
            x, lower, key = score_images(located, m)
            scores[key] = (x, lower)
    else:
        sc = schemas.read_table(a.scores)
        for c in ("content", "condition"):
            if c not in sc.columns:
                raise InputError(f"{a.scores}: missing column {c}")
        merged = table[["content", "condition"]].merge(sc, on=["content", "condition"], how="left", indicator=True)
        if (merged["_merge"] != "both").any():
            r = merged[merged["_merge"] != "both"].iloc[0]
            raise InputError(f"{a.scores}: no row for content '{r.content}', condition '{r.condition}'")
        for m in a.metrics:
            if m not in sc.columns:
                raise InputError(f"{a.scores}: no column '{m}' (columns: {', '.join(map(str, sc.columns))})")
            if (m in a.higher_better) == (m in a.lower_better):
                raise InputError(f"--scores column '{m}': say its direction with --higher-better or --lower-better")
            x = pd.to_numeric(merged[m], errors="coerce").to_numpy(float)
            scores[m] = (x, m in a.lower_better)
    res, pred = benchmark_jnd(table, scores, folds=a.folds, seed=a.seed)
    from pathlib import Path

    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    res.to_csv(a.out, index=False, float_format="%.6g")
    if a.predictions:
        pred.to_csv(a.predictions, index=False, float_format="%.6g")
    print(res[["metric", "plcc", "srocc", "krocc", "rmse", "mae", "n"]].to_string(
        index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {a.out}" + (f" and {a.predictions}" if a.predictions else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lossarena benchmark", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add_convert(sub)
    _add_2afc(sub)
    _add_train(sub)
    _add_jnd(sub)
    s = sub.add_parser("synthetic", help="write synthetic triplets with known answers (for trying things out)")
    s.add_argument("out_dir")
    s.add_argument("--n", type=int, default=40)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--kind", choices=("noise", "shift-vs-noise"), default="noise")
    s.add_argument("--judges", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    sub.add_parser("list", help="metrics and 2AFC predictors, and whether each can run here")
    return ap


def _banner() -> None:
    from lossarena.metrics import weights as W

    W.print_standin_banner()


def _cmd_convert(a) -> int:
    from lossarena.data import triplets as T

    if a.source == "bapps":
        df = T.bapps_to_triplets(a.root, a.out, images_root=a.images_root)
    elif a.source == "clic":
        df = T.clic_to_triplets(a.oracle, a.out, prefix=a.prefix)
    elif a.source == "pieapp":
        df = T.pieapp_to_triplets(a.root, a.split, a.out, images_root=a.images_root)
    else:
        df = T.votes_to_triplets(a.votes, a.manifest, a.out, images_root=a.images_root,
                                 include_reference_pairs=a.include_reference_pairs)
    print(f"wrote {len(df)} triplets to {a.out}")
    return 0


def _cmd_2afc(a) -> int:
    from lossarena.errors import InputError

    from .twoafc import run_2afc

    if not a.images and not a.baselines_only:
        raise InputError("--images DIR is required (or --baselines-only for the label-only rows)")
    res = run_2afc(a.triplets, a.images, a.metrics, a.bootstrap, a.out, a.report, batch_size=a.batch_size,
                   crop=a.crop, seed=a.seed, ci_on=a.ci_on, dpis_checkpoint=a.dpis_checkpoint,
                   roi_mlp_checkpoint=a.roi_mlp_checkpoint, title=a.title, progress=not a.no_progress,
                   baselines_only=a.baselines_only)
    print(res.acc.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {a.out}" + (f" and {res.report}" if res.report else ""))
    if res.standin:
        _banner()
    return 0


def _cmd_train_dpis(a) -> int:
    from lossarena.errors import InputError

    from .dpis import TrainConfig, train_dpis, train_dpis_seed

    cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, crop=a.crop, patch=a.patch, seed=a.seed,
                      max_triplets=a.max_triplets, gradient_branch=not a.no_gradient_branch, d2=not a.no_d2)
    seed_data, csv_data = bool(a.bapps or a.pieapp), bool(a.triplets or a.images)
    if seed_data == csv_data or (seed_data and not (a.bapps and a.pieapp)) or (csv_data and not (a.triplets and a.images)):
        raise InputError("train-dpis: give either --bapps DIR --pieapp DIR (the seed's data) or --triplets CSV --images DIR")
    if seed_data:
        train_dpis_seed(a.bapps, a.pieapp, a.out, cfg, progress=not a.no_progress)
    else:
        train_dpis(a.triplets, a.images, a.out, cfg, progress=not a.no_progress)
    print(f"wrote {a.out}; use it with `lossarena benchmark 2afc ... -m dpis --dpis-checkpoint {a.out}`")
    _banner()
    return 0


def _cmd_train_roi(a) -> int:
    from .roi_mlp import FeatureConfig, RoiMlpConfig, train_roi_mlp

    feats = FeatureConfig(lpips=a.lpips, d_loss=not a.no_d_loss, roi_checkpoint=a.roi_checkpoint,
                          saliency=saliency_spec(a.saliency), smooth_kernel=a.smooth_kernel)
    cfg = RoiMlpConfig(epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, seed=a.seed, features=feats)
    train_roi_mlp(a.triplets, a.images, a.out, cfg, progress=not a.no_progress)
    print(f"wrote {a.out}; use it with `lossarena benchmark 2afc ... -m roi-mlp -m roi-mlp-basic "
          f"--roi-mlp-checkpoint {a.out}`")
    _banner()
    return 0


def saliency_spec(text: str) -> str | dict:
    """``spectral`` | ``fine-grained`` | ``folder:DIR`` | ``torch:FILE`` → a saliency spec of the ROI codec."""
    kind, _, arg = text.partition(":")
    if kind == "folder" and arg:
        return {"name": "folder", "folder": arg}
    if kind == "torch" and arg:
        return {"name": "torch", "weights": arg}
    return text


def _cmd_list(a) -> int:
    from lossarena.metrics import list_metrics, weights_present

    from . import register_learned_metrics
    from .predictors import PREDICTORS, predictor_names

    register_learned_metrics()
    print("metrics (full-reference):")
    for s in list_metrics():
        extra = ""
        if s.name == "dpis":
            from .dpis import default_checkpoint

            ck = default_checkpoint()
            extra = f"; checkpoint {'present' if ck.is_file() else 'missing'}: {ck}"
        ok = "ok" if weights_present(s) else "missing weights: " + ", ".join(s.needs_weights)
        print(f"  {s.name:16s} {'lower' if s.lower_better else 'higher'} is better; {ok}{extra}")
    print("2AFC predictors:")
    for n in predictor_names():
        spec = PREDICTORS.get(n)
        print(f"  {n:16s} {'available' if spec.available(None) else 'needs a checkpoint'}; {spec.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if a.cmd == "convert":
        return _cmd_convert(a)
    if a.cmd == "2afc":
        return _cmd_2afc(a)
    if a.cmd == "train-dpis":
        return _cmd_train_dpis(a)
    if a.cmd == "train-roi-mlp":
        return _cmd_train_roi(a)
    if a.cmd == "jnd":
        return _cmd_jnd(a)
    if a.cmd == "synthetic":
        from .synthetic import synthetic_triplets

        df = synthetic_triplets(a.out_dir, a.n, a.size, kind=a.kind, seed=a.seed, judges=a.judges)
        print(f"wrote {len(df)} triplets to {a.out_dir}/triplets.csv (images in {a.out_dir}/img)")
        return 0
    return _cmd_list(a)


if __name__ == "__main__":
    sys.exit(main())
