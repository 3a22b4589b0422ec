"""The 2AFC benchmark's HTML report: the accuracy table and a bar chart with bootstrap CIs (offline)."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from lossarena.html import figure, standin_banner, write_page

REFERENCE_ROWS = ("always-majority", "human-ceiling")

# The seeds' comparison tables (CLIC 2021 / 2022 validation; NOT computed here: real data needed).
SEED_TABLE = [
    ("PSNR", "0.572", "DPIS seed, CLIC 2021 validation"),
    ("MS-SSIM", "0.612", "DPIS seed, CLIC 2021 validation"),
    ("LPIPS", "0.753", "DPIS seed, CLIC 2021 validation"),
    ("DISTS", "0.749", "DPIS seed, CLIC 2021 validation"),
    ("DPIS", "0.792", "DPIS seed, CLIC 2021 validation"),
    ("ROI-MLP BASIC", "0.7672", "ROI Perceptual Metric seed, CLIC 2022"),
    ("ROI-MLP ROI", "0.784", "ROI Perceptual Metric seed, CLIC 2022"),
    ("always-majority", "0.516", "CLIC 2021 validation labels (reproduced by this tool)"),
]


def plot_accuracy(acc: pd.DataFrame, path: Path, *, ci_on: str = "score_2afc", title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = acc.sort_values(ci_on, ascending=True).reset_index(drop=True)
    colors = ["#999999" if m in REFERENCE_ROWS else "#3b6ea8" for m in d["metric"]]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(d) + 1.4))
    y = range(len(d))
    err = [(d[ci_on] - d["ci_low"]).clip(lower=0), (d["ci_high"] - d[ci_on]).clip(lower=0)]
    ax.barh(list(y), d[ci_on], xerr=err, color=colors, capsize=3, ecolor="#333333")
    ax.set_yticks(list(y))
    ax.set_yticklabels(d["metric"])
    ax.axvline(0.5, color="#cc3333", lw=0.8, ls="--")
    lo = max(0.0, min(0.45, float(d["ci_low"].min()) - 0.05))
    ax.set_xlim(lo, 1.0)
    ax.set_xlabel(("2AFC score" if ci_on == "score_2afc" else "accuracy") + " (95% bootstrap CI)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(acc: pd.DataFrame, predictions: pd.DataFrame, report_dir, *, skipped: dict[str, str],
                 source: str, bootstrap: int, ci_on: str = "score_2afc", title: str | None = None,
                 kinds: dict[str, str] | None = None, standin: list[str] | None = None) -> Path:
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    title = title or "2AFC metric benchmark"
    acc.to_csv(report_dir / "acc.csv", index=False, float_format="%.6f")
    predictions.to_csv(report_dir / "predictions.csv", index=False, float_format="%.6g")
    png = plot_accuracy(acc, report_dir / "accuracy.png", ci_on=ci_on, title=title)
    kinds = kinds or {}
    d = acc.sort_values("score_2afc", ascending=False)
    rows = []
    for r in d.itertuples(index=False):
        kind = "reference" if r.metric in REFERENCE_ROWS else kinds.get(r.metric, "metric")
        rows.append(
            f"<tr><td>{html.escape(r.metric)}</td><td>{kind}</td><td>{r.score_2afc:.4f}</td>"
            f"<td>{r.accuracy:.4f}</td><td>[{r.ci_low:.4f}, {r.ci_high:.4f}]</td><td>{r.n}</td></tr>")
    skipped_html = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in skipped.items())
    seed_rows = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{html.escape(c)}</td></tr>" for a, b, c in SEED_TABLE)
    body = f"""{standin_banner(standin or [])}<p>Triplets: <code>{html.escape(source)}</code> ({int(acc['n'].max()) if len(acc) else 0} triplets).
<b>2AFC score</b>: p<sub>a</sub> when the metric prefers A, 1&minus;p<sub>a</sub> otherwise, &frac12; on ties
(BAPPS). <b>Accuracy</b>: agreement with the majority human label (CLIC). 95% percentile bootstrap CI of the
{'2AFC score' if ci_on == 'score_2afc' else 'accuracy'} over {bootstrap} resamples of the triplets.
<i>always-majority</i> always picks the side the majority label favours most often; <i>human-ceiling</i>
is the best a deterministic predictor can do given the humans' own disagreement (only with repeated judgments).</p>
<table><tr><th>metric</th><th>kind</th><th>2AFC score</th><th>accuracy</th><th>95% CI</th><th>n</th></tr>
{''.join(rows)}</table>
{figure(png.name, "2AFC score of each metric with its 95 % bootstrap CI: higher agrees better with the humans; overlapping intervals do not separate two metrics.")}
{'<h2>Skipped</h2><ul>' + skipped_html + '</ul>' if skipped else ''}
<h2>For comparison: the seeds' published numbers</h2>
<p class="note">Reported by the seed papers on the CLIC validation sets with ImageNet backbones; not computed
here and not comparable to the table above unless the same data was used.</p>
<table><tr><th>metric</th><th>accuracy</th><th>source</th></tr>{seed_rows}</table>
<p class="note">Files: <a href="acc.csv">acc.csv</a>, <a href="predictions.csv">predictions.csv</a>
(per-triplet metric values and preferences).</p>
"""
    out = report_dir / "index.html"
    write_page(out, title, [body])
    return out
