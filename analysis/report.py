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
from pathlib import Path

import numpy as np
import pandas as pd

from lossarena.html import write_page

from .matrices import overall_winning_frequency, pairwise_tests, preference_matrices, winning_frequency
from .outliers import filter_votes, score_outliers, write_outliers
from .scaling import scale_votes
from .votes import ensure_votes


def _slug(parts) -> str:
    s = "_".join(str(p) for p in parts if str(p) != "")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "all"


def _fmt(x, digits=3):
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            return "&ndash;"
        if float(x).is_integer() and abs(x) < 1e6:
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


def build_report(
    votes,
    out_dir,
    *,
    title: str | None = None,
    block_by=None,
    method: str = "thurstone",
    bootstrap: int = 100,
    seed: int = 0,
    reference: str | None = None,
    remove_outliers: bool = True,
    outlier_kw: dict | None = None,
    correction: str = "holm",
    alpha: float = 0.05,
    normalise: str = "sum",
    progress: bool = True,
    format: str | None = None,
) -> Path:
    """Write the report into ``out_dir``; returns the path of ``index.html``.

    ``votes``: a DataFrame or a path (any format :func:`.readers.read_any` knows; ``format`` forces
    one). ``block_by``: default content[, group]. ``bootstrap``: replicates for the JOD CIs.
    """
    t0 = time.time()
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
    blocks = list(block_by) if block_by else ["content"] + (["group"] if "group" in votes.columns else [])
    group_col = "group" if "group" in blocks else None
    dup = votes.attrs.get("duplicates")
    dropped = votes.attrs.get("dropped")

    # 1. outliers
    okw = {"progress": progress, **(outlier_kw or {})}
    okw.setdefault("block_by", blocks)
    outl = score_outliers(votes, **okw)
    settings = outl.attrs["settings"]
    write_outliers(outl, out_dir / "outliers.csv")
    outl.to_csv(out_dir / "outliers_details.csv", index=False, float_format="%.6g")
    _plot_outliers(outl, fig_dir / "outliers.png", settings)
    used = filter_votes(votes, outl) if remove_outliers else votes
    n_removed = len(votes) - len(used)

    # 2. winning frequencies
    wf = winning_frequency(used, blocks, normalise=normalise)
    wf.to_csv(out_dir / "winning_frequency.csv", index=False, float_format="%.6g")
    ov = overall_winning_frequency(wf, by=group_col)
    ov.to_csv(out_dir / "winning_frequency_overall.csv", index=False, float_format="%.6g")
    groups = list(dict.fromkeys(wf[group_col])) if group_col else [None]
    wf_figs = []
    for g in groups:
        d = wf if g is None else wf[wf[group_col] == g]
        name = f"wf_{_slug([g]) if g is not None else 'all'}.png"
        _plot_wf(d, group_col, fig_dir / name, f"winning frequency per image{'' if g is None else f' — {group_col} {g}'}")
        wf_figs.append((g, name))
    _plot_overall(ov, group_col, fig_dir / "wf_overall.png")

    # 3. scaling
    sc = scale_votes(used, method, blocks, reference=reference, bootstrap=bootstrap, seed=seed, progress=progress)
    sc.to_csv(out_dir / f"scores_{method}.csv", index=False, float_format="%.6g")
    other = "bt" if method == "thurstone" else "thurstone"
    sc2 = scale_votes(used, other, blocks, reference=reference, bootstrap=min(bootstrap, 100), seed=seed,
                      progress=progress)
    sc2.to_csv(out_dir / f"scores_{other}.csv", index=False, float_format="%.6g")
    unit = "JOD (1 JOD = 75 % preference)" if method == "thurstone" else "Bradley–Terry log-strength"
    jod_figs = []
    for g in groups:
        d = sc if g is None else sc[sc[group_col] == g]
        name = f"scores_{_slug([g]) if g is not None else 'all'}.png"
        _plot_scores(d, fig_dir / name, f"{method} scores, 95 % bootstrap CI{'' if g is None else f' — {group_col} {g}'}",
                     unit)
        jod_figs.append((g, name))
    disconnected = sc[sc["component"] != 0]

    # 4. matrices and tests
    mats = preference_matrices(used, blocks)
    tests = pairwise_tests(used, blocks, correction=correction, alpha=alpha)
    tests.to_csv(out_dir / "pairwise_tests.csv", index=False, float_format="%.6g")
    long = []
    for key, (conds, m) in mats.items():
        i, j = np.nonzero(m)
        for a, b in zip(i, j):
            long.append(list(key) + [conds[a], conds[b], m[a, b]])
    pd.DataFrame(long, columns=blocks + ["preferred", "over", "votes"]).to_csv(
        out_dir / "preference_matrices.csv", index=False, float_format="%.6g"
    )
    sig_figs = []
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
        _plot_significance(conds, m, tests[sel], fig_dir / name, " / ".join(map(str, key)))
        sig_figs.append((key, name, int(tests[sel]["significant"].sum()), int(sel.sum())))

    # 5. HTML
    title = title or f"Pairwise-comparison report: {Path(source).name}"
    e = html.escape
    parts = [
        f"<p>Source <code>{e(source)}</code>. {len(votes)} votes, {votes['participant'].nunique()} participants, "
        f"{votes['content'].nunique()} contents, {len(mats)} blocks ({' × '.join(blocks)}), "
        f"{pd.concat([votes['condition_a'], votes['condition_b']]).nunique()} conditions. "
        f"Ties count ½ for each side.</p>",
    ]
    notes = []
    if dup is not None:
        notes.append(f"Duplicates: {e(str(dup))} (policy keep-all: repeated judgments all count).")
    if dropped:
        notes.append("Rows dropped by the reader: " + ", ".join(f"{k} {v}" for k, v in dropped.items()) + ".")
    notes.append(
        f"Outliers removed: {int(outl['is_outlier'].sum())} of {len(outl)} participants ({n_removed} votes)."
        if remove_outliers else "Outliers were flagged but not removed."
    )
    parts.append("<p class='note'>" + "<br>".join(notes) + "</p>")
    parts.append(
        "<p>Files: <a href='outliers.csv'>outliers.csv</a> · <a href='outliers_details.csv'>outliers_details.csv</a> · "
        "<a href='winning_frequency.csv'>winning_frequency.csv</a> · "
        "<a href='winning_frequency_overall.csv'>winning_frequency_overall.csv</a> · "
        f"<a href='scores_{method}.csv'>scores_{method}.csv</a> · <a href='scores_{other}.csv'>scores_{other}.csv</a> · "
        "<a href='pairwise_tests.csv'>pairwise_tests.csv</a> · <a href='preference_matrices.csv'>preference_matrices.csv</a></p>"
    )

    parts.append("<h2 id='outliers'>Outlier screening</h2>")
    parts.append(
        f"<p>Criterion <code>{settings['criterion']}</code>: ζ &lt; {settings['zeta_threshold']} (Kendall's coefficient "
        f"of consistence, from circular triads) or likelihood score &gt; {settings['likelihood_threshold']} "
        "(leave-one-out Thurstone log-likelihood per vote, in IQRs below the first quartile, as in pwcmp).</p>"
    )
    parts.append("<img src='figures/outliers.png' alt='outlier scores'>")
    ot = outl.sort_values(["is_outlier", "likelihood_score"], ascending=[False, False])
    parts.append(
        _table(ot[["participant", "circular_triads", "zeta", "likelihood_score", "is_outlier", "n_votes", "flagged_by"]],
               left=("participant", "flagged_by"), flag_col="is_outlier", max_rows=60)
    )

    parts.append("<h2 id='wf'>Winning frequencies</h2>")
    parts.append(
        f"<p>Votes a condition received divided by the comparisons it took part in, normalised per image "
        f"(<code>{normalise}</code>: the frequencies of one image sum to 1), then averaged over images.</p>"
    )
    parts.append("<img src='figures/wf_overall.png' alt='overall winning frequency'>")
    parts.append(_table(ov, left=("condition", group_col or ""), max_rows=80))
    for g, name in wf_figs:
        cap = "all votes" if g is None else f"{group_col} = {g}"
        parts.append(f"<figure><img src='figures/{name}' alt='winning frequency {e(cap)}'><figcaption>{e(cap)}</figcaption></figure>")

    parts.append(f"<h2 id='scores'>{'JOD scaling (Thurstone Case V)' if method == 'thurstone' else 'Bradley–Terry scaling'}</h2>")
    parts.append(
        f"<p>Maximum-likelihood scores per block in {unit}, mean 0 per block"
        f"{'' if reference is None else f' (reference {e(reference)} = 0 where present)'}; 95 % percentile "
        f"intervals from {bootstrap} bootstrap resamples of the participants.</p>"
    )
    if len(disconnected):
        parts.append(
            f"<p class='note'>{len(disconnected)} condition(s) lie outside the main component of their block's "
            "comparison graph: they are scaled within their own component (column <code>component</code>) and "
            "cannot be compared with the rest.</p>"
        )
    for g, name in jod_figs:
        cap = "all votes" if g is None else f"{group_col} = {g}"
        parts.append(f"<figure><img src='figures/{name}' alt='scores {e(cap)}'><figcaption>{e(cap)}</figcaption></figure>")
    parts.append("<details><summary>Score table</summary>")
    parts.append(_table(sc, left=tuple(blocks) + ("condition",)))
    parts.append("</details>")

    parts.append("<h2 id='significance'>Per-pair significance</h2>")
    parts.append(
        f"<p>Two-sided exact binomial test per compared pair (ties left out), {correction} correction over the pairs "
        f"of each block, α = {alpha}. Rows and columns from the best to the worst {method} score. Colour: share of "
        "votes for the row over the column (grey: never compared); dot: significant after correction.</p>"
        "<div class='grid'>"
    )
    for key, name, nsig, npairs in sig_figs:
        cap = " / ".join(map(str, key))
        parts.append(
            f"<figure><img src='figures/{name}' alt='significance {e(cap)}'>"
            f"<figcaption>{e(cap)}: {nsig} of {npairs} pairs significant</figcaption></figure>"
        )
    parts.append("</div>")
    parts.append(
        f"<p style='color:#57606a;font-size:.8em'>Generated by lossarena analysis in {time.time() - t0:.1f} s.</p>"
    )
    index = out_dir / "index.html"
    write_page(index, title, parts)
    return index


def demo_report(out_dir, votes=None, *, seed: int = 0, bootstrap: int = 50, n_contents: int = 3) -> Path:
    """For ``lossarena demo``: the report of ``votes`` (DataFrame or path), or of simulated votes
    (``n_contents`` images x 2 bitrates, 5 loss-function conditions, 20 Thurstone observers + 2 random
    responders) while no study votes exist. Small settings: finishes in seconds."""
    if votes is None:
        from .simulate import demo_truth, simulate_votes

        votes = simulate_votes(demo_truth(n_contents, seed=seed), n_observers=20, n_random=2, seed=seed)
        title = "Pairwise-comparison report (simulated votes)"
    else:
        title = None
    return build_report(votes, out_dir, title=title, bootstrap=bootstrap, seed=seed, progress=False)
