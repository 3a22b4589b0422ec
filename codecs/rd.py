"""``codecs rd``: rate-distortion curves per metric, CompressAI's published Kodak anchors overlaid.

Anchors are read from ``lossarena.paths.shared_data("rd_anchors", "compressai")`` (CompressAI's
``results/image/kodak/*.json``: PSNR-RGB and MS-SSIM-RGB vs bpp, averaged over the 24 Kodak images);
they are drawn only for metrics those files carry (psnr, ms-ssim) and labelled "published, Kodak".
"""

from __future__ import annotations

import json
from pathlib import Path

from lossarena.errors import InputError

DEFAULT_ANCHORS = ("jpeg", "jpeg2000", "bpg_444_x265_ycbcr", "vtm", "compressai-bmshj2018-hyperprior_mse_cuda")
ANCHOR_KEYS = {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-rgb"}
NON_METRIC = {"image", "model", "codec", "loss", "lmbda", "level", "step", "bpp", "bpp_est", "seconds_enc",
              "seconds_dec"}


def load_anchors(names=DEFAULT_ANCHORS, dataset: str = "kodak") -> dict[str, dict]:
    from lossarena.paths import shared_data

    root = shared_data("rd_anchors", "compressai", "image", dataset)
    out = {}
    if root is None:
        return out
    for n in names:
        p = root / f"{n}.json"
        if p.is_file():
            obj = json.loads(p.read_text())
            out[obj.get("name", n)] = obj["results"]
    return out


def _direction(m: str) -> str:
    try:
        from lossarena.metrics import get_metric

        return "lower is better" if get_metric(m).lower_better else "higher is better"
    except Exception:  # noqa: BLE001 - a column that is not a registry metric
        return "?"


def plot_rd(results_csv, out_png, *, metrics: list[str] | None = None, anchors=DEFAULT_ANCHORS,
            dataset: str = "kodak", title: str | None = None) -> Path:
    """One panel per metric; one curve per training loss (mean over images per model, by real bpp)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from .evaluate import summarize

    df = pd.read_csv(results_csv) if not isinstance(results_csv, pd.DataFrame) else results_csv
    if "bpp" not in df.columns or "loss" not in df.columns:
        raise InputError(f"{results_csv}: not a codecs results.csv (needs bpp and loss columns)")
    cols = metrics or [c for c in df.columns if c not in NON_METRIC and df[c].notna().any()]
    if not cols:
        raise InputError(f"{results_csv}: no metric columns to plot")
    s = summarize(df)
    anc = load_anchors(anchors, dataset) if anchors else {}
    n = len(cols)
    ncol = min(3, n)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 4 * nrow), squeeze=False)
    for ax, m in zip(axes.flat, cols):
        for loss, g in s.groupby("loss", sort=True):
            g = g.sort_values("bpp")
            ax.plot(g["bpp"], g[m], "o-", label=f"{loss} (ours)")
        key = ANCHOR_KEYS.get(m)
        if key:
            for name, res in anc.items():
                if key in res:
                    ax.plot(res["bpp"], res[key], "--", lw=1, alpha=0.8, label=f"{name} (published, {dataset})")
        ax.set_xlabel("bits per pixel (real)")
        ax.set_ylabel(f"{m} ({_direction(m)})")
        ax.set_title(m)
        ax.grid(alpha=0.3)
        if key and anc:
            hi = s["bpp"].max()
            ax.set_xlim(0, max(1.0, hi * 1.3) if hi == hi else 1.0)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    h, lab = axes.flat[0].get_legend_handles_labels()
    for ax in list(axes.flat)[1:n]:
        for hh, ll in zip(*ax.get_legend_handles_labels()):
            if ll not in lab:
                h.append(hh)
                lab.append(ll)
    fig.legend(h, lab, loc="lower center", ncol=min(4, len(lab)), fontsize=8, frameon=False)
    fig.suptitle(title or f"rate-distortion: {Path(str(results_csv)).name}")
    fig.tight_layout(rect=(0, 0.04 + 0.025 * (-(-len(lab) // 4)), 1, 0.96))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
