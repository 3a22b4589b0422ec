"""A static HTML report of a pairwise-comparison study: ``DIR/index.html`` plus every CSV and PNG beside it.

Readable offline: plain HTML with inline CSS, relative links, PNG figures in ``DIR/figures/``; no
scripts, no server, nothing fetched. Steps:

1. read/validate the votes (any supported format, see :mod:`.readers`), report duplicates;
2. outlier screening (:mod:`.outliers`); flagged participants are removed from everything below
   unless ``remove_outliers=False``;
3. winning frequencies per block (content x group, e.g. image x bitrate) with the per-image
   normalisation, and their average per group;
4. Thurstone scaling in JOD with bootstrap CIs per block (and Bradley-Terry scores as CSV);
5. group preference matrices and per-pair binomial tests with multiple-comparison correction.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lossarena.html import figure, write_page

from .matrices import overall_winning_frequency, pairwise_tests, preference_matrices, winning_frequency
from .outliers import filter_votes, score_outliers, write_outliers
from .scaling import scale_votes
from .votes import ensure_votes, n_judgments


def _slug(parts) -> str:
    s = "_".join(str(p) for p in parts if str(p) != "")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "all"


def _fmt(x, digits=3):
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            return "&ndash;"
        if float(x).is_integer() and abs(float(x)) < 1e6:
            return f"{int(x)}"
        return f"{x:.{digits}f}"
    return html.escape(str(x))


def _table(df: pd.DataFrame, left=(), flag_col=None, digits=3, max_rows=None) -> str:
    rows = df if max_rows is None else df.head(max_rows)
    head = "".join(f"<th class='{'l' if c in left else ''}'>{html.escape(str(c))}</th>" for c in rows.columns)
    body = []
    for _, r in rows.iterrows():
        cls = " class='flag'" if flag_col and bool(r[flag_col]) else ""
        cells = "".join(
            f"<td class='{'l' if c in left else ''}'>{_fmt(r[c], digits)}</td>" for c in rows.columns
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    more = ""
    if max_rows is not None and len(df) > max_rows:
        more = f"<p class='note'>{len(df) - max_rows} more rows in the CSV.</p>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n, n_cond=1):
    """Subplot grid: fewer, wider panels when each panel has many conditions."""
    cols = min(4 if n_cond <= 10 else 2 if n_cond <= 24 else 1, max(1, n))
    rows = int(np.ceil(n / cols))
    return rows, cols


def _short(s: str, n: int = 18) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _plot_wf(wf: pd.DataFrame, group_col, path: Path, title: str) -> None:
    plt = _plt()
    contents = list(dict.fromkeys(wf["content"]))
    nc = wf.groupby("content")["condition"].nunique().max()
    rows, cols = _grid(len(contents), nc)
    fig, axes = plt.subplots(rows, cols, figsize=(max(3.2, 0.32 * nc + 1.5) * cols, 3.0 * rows), squeeze=False)
    conds = sorted(wf["condition"].unique())
    cmap = plt.get_cmap("tab10" if len(conds) <= 10 else "tab20")
    color = {c: cmap(i % cmap.N) for i, c in enumerate(conds)}
    for ax, content in zip(axes.flat, contents):
        d = wf[wf["content"] == content]
        ax.bar(range(len(d)), d["wf_normalised"], color=[color[c] for c in d["condition"]])
        ax.set_xticks(range(len(d)))
        ax.set_xticklabels([_short(c) for c in d["condition"]], rotation=60, ha="right", fontsize=7)
        ax.set_title(str(content), fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(contents):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.supylabel("winning frequency (normalised per image)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_overall(ov: pd.DataFrame, group_col, path: Path) -> None:
    plt = _plt()
    groups = list(dict.fromkeys(ov[group_col])) if group_col else [None]
    conds = sorted(ov["condition"].unique())
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(conds) * max(1, len(groups)) ** 0.5 + 2), 3.4))
    width = 0.8 / len(groups)
    for gi, g in enumerate(groups):
        d = ov if g is None else ov[ov[group_col] == g]
        d = d.set_index("condition").reindex(conds)
        x = np.arange(len(conds)) + gi * width - 0.4 + width / 2
        ax.bar(x, d["wf_normalised_mean"], width, yerr=d["wf_normalised_sd"].fillna(0), capsize=2,
               label=str(g) if g is not None else None)
    ax.set_xticks(range(len(conds)))
    ax.set_xticklabels([_short(c) for c in conds], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("mean normalised winning frequency", fontsize=8)
    if group_col:
        ax.legend(title=group_col, fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_scores(sc: pd.DataFrame, path: Path, title: str, ylabel: str) -> None:
    plt = _plt()
    contents = list(dict.fromkeys(sc["content"])) if "content" in sc.columns else [None]
    nc = sc.groupby("content")["condition"].nunique().max() if "content" in sc.columns else sc["condition"].nunique()
    rows, cols = _grid(len(contents), nc)
    fig, axes = plt.subplots(rows, cols, figsize=(max(3.2, 0.32 * nc + 1.5) * cols, 3.1 * rows), squeeze=False)
    for ax, content in zip(axes.flat, contents):
        d = sc if content is None else sc[sc["content"] == content]
        d = d.sort_values("score")
        x = np.arange(len(d))
        lo = (d["score"] - d["ci_low"]).clip(lower=0).fillna(0)
        hi = (d["ci_high"] - d["score"]).clip(lower=0).fillna(0)
        comp = d["component"].to_numpy()
        for k in sorted(set(comp)):
            m = comp == k
            ax.errorbar(x[m], d["score"].to_numpy()[m], yerr=[lo.to_numpy()[m], hi.to_numpy()[m]], fmt="o",
                        ms=3.5, capsize=2, label=f"component {k}" if len(set(comp)) > 1 else None)
        ax.set_xticks(x)
        ax.set_xticklabels([_short(c) for c in d["condition"]], rotation=60, ha="right", fontsize=7)
        ax.set_title(str(content) if content is not None else "all", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
        if len(set(comp)) > 1:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(contents):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.supylabel(ylabel, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_significance(conds, counts, tests: pd.DataFrame, path: Path, title: str) -> None:
    """Cell (i, j): share of votes for i over j; dot = significant after correction."""
    plt = _plt()
    n = len(conds)
    tot = counts + counts.T
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(tot > 0, counts / tot, np.nan)
    idx = {c: i for i, c in enumerate(conds)}
    sig = np.zeros((n, n), dtype=bool)
    for a, b, s in zip(tests["condition_a"], tests["condition_b"], tests["significant"]):
        if s:
            sig[idx[a], idx[b]] = sig[idx[b], idx[a]] = True
    size = max(3.5, 0.34 * n + 1.8)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#eeeeee")
    im = ax.imshow(np.ma.masked_invalid(share), cmap=cmap, vmin=0, vmax=1)
    yy, xx = np.nonzero(sig)
    ax.scatter(xx, yy, s=8 if n > 20 else 18, c="k", marker="o")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    fs = 6 if n > 20 else 8
    ax.set_xticklabels([_short(c, 14) for c in conds], rotation=70, ha="right", fontsize=fs)
    ax.set_yticklabels([_short(c, 14) for c in conds], fontsize=fs)
    ax.set_title(title, fontsize=9)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label("share of votes: row preferred over column", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_outliers(out: pd.DataFrame, path: Path, settings: dict) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    z = out["zeta"].fillna(1.0)
    flag = out["is_outlier"].astype(bool)
    ax.scatter(z[~flag], out["likelihood_score"][~flag], s=14, c="#3a78b5", label="kept")
    ax.scatter(z[flag], out["likelihood_score"][flag], s=22, c="#d1372f", marker="x", label="outlier")
    ax.axvline(settings["zeta_threshold"], color="#888", ls="--", lw=1)
    ax.axhline(settings["likelihood_threshold"], color="#888", ls="--", lw=1)
    ax.set_xlabel("coefficient of consistence ζ (1 = no circular triads)", fontsize=8)
    ax.set_ylabel("likelihood score (IQRs below Q1)", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


@dataclass
class ReportOptions:
    """Settings of :func:`build_report` (see there)."""

    block_by: list[str] | None = None
    method: str = "thurstone"
    bootstrap: int = 100
    seed: int = 0
    reference: str | None = None
    remove_outliers: bool = True
    outlier_kw: dict | None = None
    correction: str = "holm"
    alpha: float = 0.05
    normalise: str = "sum"
    progress: bool = True
    jnd: str | Path | None = None  # a jnd.csv (`analysis jnd`): adds the JND section


@dataclass
class _Run:
    """What the report's sections share: the votes, the blocks and where files go."""

    votes: pd.DataFrame
    used: pd.DataFrame
    blocks: list[str]
    group_col: str | None
    out_dir: Path
    fig_dir: Path
    opts: ReportOptions


def _caption(group_col: str | None, g) -> str:
    return "all votes" if g is None else f"{group_col} = {g}"


def _outlier_section(run: _Run, outl: pd.DataFrame) -> list[str]:
    settings = outl.attrs["settings"]
    write_outliers(outl, run.out_dir / "outliers.csv")
    outl.to_csv(run.out_dir / "outliers_details.csv", index=False, float_format="%.6g")
    _plot_outliers(outl, run.fig_dir / "outliers.png", settings)
    ot = outl.sort_values(["is_outlier", "likelihood_score"], ascending=[False, False])
    return [
        "<h2 id='outliers'>Outlier screening</h2>",
        f"<p>Criterion <code>{settings['criterion']}</code>: ζ &lt; {settings['zeta_threshold']} (Kendall's coefficient "
        f"of consistence, from circular triads) or likelihood score &gt; {settings['likelihood_threshold']} "
        "(leave-one-out Thurstone log-likelihood per vote, in IQRs below the first quartile, as in pwcmp).</p>",
        figure("figures/outliers.png", "Each participant's consistency (ζ, x) against the likelihood score (y); "
               "crosses beyond the dashed thresholds are the flagged outliers."),
        _table(ot[["participant", "circular_triads", "zeta", "likelihood_score", "is_outlier", "n_votes", "flagged_by"]],
               left=("participant", "flagged_by"), flag_col="is_outlier", max_rows=60),
    ]


def _wf_section(run: _Run, groups: list) -> list[str]:
    gc = run.group_col
    wf = winning_frequency(run.used, run.blocks, normalise=run.opts.normalise)
    wf.to_csv(run.out_dir / "winning_frequency.csv", index=False, float_format="%.6g")
    ov = overall_winning_frequency(wf, by=gc)
    ov.to_csv(run.out_dir / "winning_frequency_overall.csv", index=False, float_format="%.6g")
    _plot_overall(ov, gc, run.fig_dir / "wf_overall.png")
    parts = [
        "<h2 id='wf'>Winning frequencies</h2>",
        f"<p>Votes a condition received divided by the comparisons it took part in, normalised per image "
        f"(<code>{run.opts.normalise}</code>: the frequencies of one image sum to 1), then averaged over images.</p>",
        figure("figures/wf_overall.png", "Winning frequency of each condition averaged over images: "
               "higher means preferred more often."),
        _table(ov, left=("condition", gc or ""), max_rows=80),
    ]
    for g in groups:
        d = wf if g is None else wf[wf[gc] == g]
        name = f"wf_{_slug([g]) if g is not None else 'all'}.png"
        _plot_wf(d, gc, run.fig_dir / name, f"winning frequency per image{'' if g is None else f' — {gc} {g}'}")
        parts.append(figure(f"figures/{name}", f"{_caption(gc, g)}: winning frequency per image and condition."))
    return parts


def _scores_section(run: _Run, groups: list) -> tuple[list[str], pd.DataFrame, str]:
    o, gc = run.opts, run.group_col
    e = html.escape
    sc = scale_votes(run.used, o.method, run.blocks, reference=o.reference, bootstrap=o.bootstrap, seed=o.seed,
                     progress=o.progress)
    sc.to_csv(run.out_dir / f"scores_{o.method}.csv", index=False, float_format="%.6g")
    other = "bt" if o.method == "thurstone" else "thurstone"
    sc2 = scale_votes(run.used, other, run.blocks, reference=o.reference, bootstrap=min(o.bootstrap, 100),
                      seed=o.seed, progress=o.progress)
    sc2.to_csv(run.out_dir / f"scores_{other}.csv", index=False, float_format="%.6g")
    unit = "JOD (1 JOD = 75 % preference)" if o.method == "thurstone" else "Bradley–Terry log-strength"
    heading = "JOD scaling (Thurstone Case V)" if o.method == "thurstone" else "Bradley–Terry scaling"
    parts = [
        f"<h2 id='scores'>{heading}</h2>",
        f"<p>Maximum-likelihood scores per block in {unit}, mean 0 per block"
        f"{'' if o.reference is None else f' (reference {e(o.reference)} = 0 where present)'}; 95 % percentile "
        f"intervals from {o.bootstrap} bootstrap resamples of the participants.</p>",
    ]
    disconnected = sc[sc["component"] != 0]
    if len(disconnected):
        parts.append(
            f"<p class='note'>{len(disconnected)} condition(s) lie outside the main component of their block's "
            "comparison graph: they are scaled within their own component (column <code>component</code>) and "
            "cannot be compared with the rest.</p>"
        )
    for g in groups:
        d = sc if g is None else sc[sc[gc] == g]
        name = f"scores_{_slug([g]) if g is not None else 'all'}.png"
        _plot_scores(d, run.fig_dir / name,
                     f"{o.method} scores, 95 % bootstrap CI{'' if g is None else f' — {gc} {g}'}", unit)
        parts.append(figure(f"figures/{name}", f"{_caption(gc, g)}: scores with 95 % CIs; conditions whose "
                            "intervals do not overlap differ reliably."))
    parts += ["<details><summary>Score table</summary>", _table(sc, left=tuple(run.blocks) + ("condition",)),
              "</details>"]
    return parts, sc, other


def _significance_section(run: _Run, sc: pd.DataFrame) -> tuple[list[str], int]:
    o, blocks = run.opts, run.blocks
    mats = preference_matrices(run.used, blocks)
    tests = pairwise_tests(run.used, blocks, correction=o.correction, alpha=o.alpha)
    tests.to_csv(run.out_dir / "pairwise_tests.csv", index=False, float_format="%.6g")
    long = []
    for key, (conds, m) in mats.items():
        i, j = np.nonzero(m)
        for a, b in zip(i, j):
            long.append(list(key) + [conds[a], conds[b], m[a, b]])
    pd.DataFrame(long, columns=blocks + ["preferred", "over", "votes"]).to_csv(
        run.out_dir / "preference_matrices.csv", index=False, float_format="%.6g"
    )
    parts = [
        "<h2 id='significance'>Per-pair significance</h2>",
        f"<p>Two-sided exact binomial test per compared pair (ties left out), {o.correction} correction over the "
        f"pairs of each block, α = {o.alpha}. Rows and columns from the best to the worst {o.method} score. Colour: "
        "share of votes for the row over the column (grey: never compared); dot: significant after correction.</p>"
        "<div class='grid'>",
    ]
    for key, (conds, m) in mats.items():
        sel = np.ones(len(tests), dtype=bool)
        ssel = np.ones(len(sc), dtype=bool)
        for k, v in zip(blocks, key):
            sel &= (tests[k] == v).to_numpy()
            ssel &= (sc[k] == v).to_numpy()
        # best condition first (by score, then winning frequency), so the matrix shows the ranking
        rank = sc[ssel].set_index("condition")[["score", "winning_frequency"]].reindex(conds)
        order = np.lexsort((-rank["winning_frequency"].fillna(-1).to_numpy(), -rank["score"].fillna(-1e9).to_numpy()))
        conds = [conds[i] for i in order]
        m = m[np.ix_(order, order)]
        name = f"significance_{_slug(key)}.png"
        _plot_significance(conds, m, tests[sel], run.fig_dir / name, " / ".join(map(str, key)))
        cap = " / ".join(map(str, key))
        parts.append(figure(f"figures/{name}", f"{cap}: {int(tests[sel]['significant'].sum())} of "
                            f"{int(sel.sum())} pairs significant"))
    parts.append("</div>")
    return parts, len(mats)


def build_report(
    votes,
    out_dir,
    *,
    title: str | None = None,
    format: str | None = None,
    options: ReportOptions | None = None,
    **settings,
) -> Path:
    """Write the pairwise-comparison report into ``out_dir``.

    Parameters
    ----------
    votes : DataFrame or path
        Votes (any format :func:`.readers.read_any` knows; ``format`` forces one).
    out_dir : path
        Folder for ``index.html``, the CSV files and ``figures/``.
    title : str, optional
        Page title.
    options : ReportOptions, optional
        All settings; or give them as keywords (``block_by`` — default content[, group] —,
        ``method`` ``"thurstone"`` | ``"bt"``, ``bootstrap`` replicates for the CIs, ``seed``,
        ``reference``, ``remove_outliers``, ``outlier_kw``, ``correction``, ``alpha``, ``normalise``,
        ``progress``).

    Returns
    -------
    Path
        The path of ``index.html``.
    """
    t0 = time.time()
    opts = options or ReportOptions(**settings)
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(votes, (str, Path)):
        from .readers import read_any

        source = str(votes)
        votes = read_any(votes, format=format)
    else:
        source = votes.attrs.get("source", "in-memory votes")
        votes = ensure_votes(votes)
    blocks = list(opts.block_by) if opts.block_by else ["content"] + (["group"] if "group" in votes.columns else [])
    group_col = "group" if "group" in blocks else None

    okw = {"progress": opts.progress, **(opts.outlier_kw or {})}
    okw.setdefault("block_by", blocks)
    outl = score_outliers(votes, **okw)
    used = filter_votes(votes, outl) if opts.remove_outliers else votes
    run = _Run(votes, used, blocks, group_col, out_dir, fig_dir, opts)
    groups = [None] if group_col is None else list(dict.fromkeys(used[group_col]))

    outlier_parts = _outlier_section(run, outl)
    wf_parts = _wf_section(run, groups)
    score_parts, sc, other = _scores_section(run, groups)
    sig_parts, n_blocks = _significance_section(run, sc)

    title = title or f"Pairwise-comparison report: {Path(source).name}"
    parts = _summary(run, source, outl, n_blocks, other) + outlier_parts + wf_parts + score_parts + sig_parts
    if opts.jnd is not None:
        from .jnd import read_jnd, report_section

        parts.append(report_section(read_jnd(opts.jnd), out_dir))
    parts.append(
        f"<p style='color:#57606a;font-size:.8em'>Generated by lossarena analysis in {time.time() - t0:.1f} s.</p>"
    )
    index = out_dir / "index.html"
    write_page(index, title, parts)
    return index


def _summary(run: _Run, source: str, outl: pd.DataFrame, n_blocks: int, other: str) -> list[str]:
    votes, o, e = run.votes, run.opts, html.escape
    n_cond = pd.concat([votes["condition_a"], votes["condition_b"]]).nunique()
    notes = []
    dup, dropped = votes.attrs.get("duplicates"), votes.attrs.get("dropped")
    if dup is not None:
        notes.append(f"Duplicates: {e(str(dup))} (policy keep-all: repeated judgments all count).")
    if dropped:
        notes.append("Rows dropped by the reader: " + ", ".join(f"{k} {v}" for k, v in dropped.items()) + ".")
    notes.append(
        f"Outliers removed: {int(outl['is_outlier'].sum())} of {len(outl)} participants "
        f"({n_judgments(votes) - n_judgments(run.used)} votes)." if o.remove_outliers
        else "Outliers were flagged but not removed."
    )
    files = ["outliers.csv", "outliers_details.csv", "winning_frequency.csv", "winning_frequency_overall.csv",
             f"scores_{o.method}.csv", f"scores_{other}.csv", "pairwise_tests.csv", "preference_matrices.csv"]
    return [
        f"<p>Source <code>{e(source)}</code>. {n_judgments(votes)} votes, {votes['participant'].nunique()} participants, "
        f"{votes['content'].nunique()} contents, {n_blocks} blocks ({' × '.join(run.blocks)}), "
        f"{n_cond} conditions. Ties count ½ for each side.</p>",
        "<p class='note'>" + "<br>".join(notes) + "</p>",
        "<p>Files: " + " · ".join(f"<a href='{f}'>{f}</a>" for f in files) + "</p>",
    ]


