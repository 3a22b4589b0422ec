"""The demo's checks against its known answer: pure functions on tables, tested on their own.

* :func:`cross_metric_table` — rows: the loss a model was fine-tuned with; columns: BD-metric on
  each metric against the MSE fine-tunes at matched rates (sign: positive = better than MSE).
* :func:`own_column_check` — does each metric's own model win its column?
* :func:`truth_vs_recovered` — the study's recovered JOD scale against the hidden truth (r, MAE).
* :func:`catch_table` — which careless observers the QC rules and the outlier screen caught.
* :func:`answer_table` — which loss won at each bitrate, its significance, and the true winner.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def cross_metric_table(summary: pd.DataFrame, metrics: list[str], higher_is_better: dict[str, bool],
                       anchor: str = "mse", caveats: list[tuple[str, str, str]] | None = None) -> pd.DataFrame:
    """BD-metric of every loss's models against the ``anchor`` loss's models, per metric.

    Parameters
    ----------
    summary : DataFrame
        Per-model means with columns ``loss``, ``bpp`` and one column per metric
        (:func:`lossarena.codecs.evaluate.summarize`).
    metrics : list of str
        Metric columns to use.
    higher_is_better : dict
        Direction per metric.
    anchor : str
        The reference loss (default ``mse``).
    caveats : list, optional
        Receives ``(loss, metric, message)`` for every Bjøntegaard warning (non-monotonic curve, small
        overlap) instead of the warning being logged per cell; the caller shows them once.

    Returns
    -------
    DataFrame
        Index: loss (anchor excluded); columns: metrics. Values: mean metric difference at matched
        rates over the overlapping rate range (Bjøntegaard), signed so that positive = better than the
        anchor; NaN where the curves do not overlap or have fewer than two points.
    """
    from lossarena.codecs.bdrate import bd_metric

    ref = summary[summary["loss"] == anchor].sort_values("bpp")
    rows = {}
    for loss, g in summary.groupby("loss"):
        if loss == anchor:
            continue
        g = g.sort_values("bpp")
        row = {}
        for m in metrics:
            row[m] = float("nan")
            if m not in g.columns or len(g) < 2 or len(ref) < 2:
                continue
            if g[m].isna().any() or ref[m].isna().any():
                continue
            lo, hi = max(g["bpp"].min(), ref["bpp"].min()), min(g["bpp"].max(), ref["bpp"].max())
            if not hi > lo:
                continue
            try:
                with _bd_warnings_to(caveats, loss, m):
                    d = bd_metric(ref["bpp"], ref[m], g["bpp"], g[m], method="pchip")
            except (ValueError, ArithmeticError) as e:
                log.debug("no BD-metric for %s on %s: %s", loss, m, e)
                continue
            row[m] = float(d) if higher_is_better[m] else -float(d)
        rows[loss] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=metrics)


@contextlib.contextmanager
def _bd_warnings_to(caveats: list | None, loss: str, metric: str):
    """Collect the BD module's warnings into ``caveats`` (and keep them out of the log) when given."""
    if caveats is None:
        yield
        return
    from lossarena.codecs.bdrate import BDWarning

    bd_log = logging.getLogger("lossarena.codecs.bdrate")
    level = bd_log.level
    bd_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always", BDWarning)
            yield
        caveats.extend((loss, metric, str(w.message)) for w in got if issubclass(w.category, BDWarning))
    finally:
        bd_log.setLevel(level)


def own_column_check(table: pd.DataFrame) -> pd.DataFrame:
    """For every metric column that is also a row (a loss), who wins the column.

    Returns
    -------
    DataFrame
        Columns ``metric, own_value, best_loss, best_value, own_wins`` (``own_value`` > 0 means the
        metric's own model beats the MSE fine-tune on it).
    """
    out = []
    for m in table.columns:
        if m not in table.index:
            continue
        col = table[m].dropna()
        if col.empty:
            continue
        best = col.idxmax()
        out.append({"metric": m, "own_value": float(table.loc[m, m]), "best_loss": best,
                    "best_value": float(col.max()), "own_wins": bool(best == m)})
    return pd.DataFrame(out, columns=["metric", "own_value", "best_loss", "best_value", "own_wins"])


def truth_frame(truth: dict) -> pd.DataFrame:
    """``{(content, group, condition): q}`` -> DataFrame with the truth centred per (content, group)
    (the recovered scale has mean 0 per group, so only differences within a group are comparable)."""
    df = pd.DataFrame([(c, g, k, q) for (c, g, k), q in truth.items()],
                      columns=["content", "group", "condition", "true_jod"])
    df["true_jod"] = df["true_jod"] - df.groupby(["content", "group"])["true_jod"].transform("mean")
    return df


def truth_vs_recovered(scores: pd.DataFrame, truth: dict) -> tuple[pd.DataFrame, dict]:
    """Join the recovered scale with the truth; Pearson r and mean absolute error in JOD.

    Parameters
    ----------
    scores : DataFrame
        ``scale_votes`` output grouped by content and group (columns ``content, group, condition,
        score, ci_low, ci_high``); scores are re-centred per group over the conditions in the truth.
    truth : dict
        ``(content, group, condition) -> q`` (JOD).

    Returns
    -------
    (DataFrame, dict)
        The joined table and ``{"r", "mae", "n", "ci_coverage"}`` (share of true values inside the 95 %
        bootstrap CI).
    """
    t = truth_frame(truth)
    s = scores.copy()
    for col in ("content", "group", "condition"):
        s[col] = s[col].astype(str)
    j = t.merge(s, on=["content", "group", "condition"], how="inner")
    j = j[np.isfinite(j["score"])].copy()
    shift = j.groupby(["content", "group"])["score"].transform("mean")
    for col in ("score", "ci_low", "ci_high"):
        j[col] = j[col] - shift
    if len(j) < 3:
        return j, {"r": float("nan"), "mae": float("nan"), "n": len(j), "ci_coverage": float("nan")}
    r = float(np.corrcoef(j["true_jod"], j["score"])[0, 1])
    mae = float(np.abs(j["true_jod"] - j["score"]).mean())
    cover = float(((j["true_jod"] >= j["ci_low"]) & (j["true_jod"] <= j["ci_high"])).mean())
    return j, {"r": r, "mae": mae, "n": int(len(j)), "ci_coverage": cover}


def catch_table(kinds: dict[str, str], refused: set[str], qc_flags: dict[str, list[str]],
                outliers: set[str]) -> pd.DataFrame:
    """Per observer kind: how many there were, and how many each screen caught.

    Parameters
    ----------
    kinds : dict
        participant -> true kind (``honest``, ``random``, ``always_left``, ``too_fast``).
    refused : set
        Participants ended by the training gate.
    qc_flags : dict
        participant -> QC reasons (empty list: clean).
    outliers : set
        Participants the outlier screen flagged.

    Returns
    -------
    DataFrame
        Columns ``kind, n, training_gate, qc_flags, outlier_screen, caught, missed`` (``caught``: by
        any screen; for ``honest`` these are false alarms).
    """
    rows = []
    for kind in ("random", "always_left", "too_fast", "honest"):
        ps = [p for p, k in kinds.items() if k == kind]
        if not ps:
            continue
        gate = {p for p in ps if p in refused}
        qc = {p for p in ps if qc_flags.get(p)}
        out = {p for p in ps if p in outliers}
        caught = gate | qc | out
        rows.append({"kind": kind, "n": len(ps), "training_gate": len(gate), "qc_flags": len(qc),
                     "outlier_screen": len(out), "caught": len(caught), "missed": len(ps) - len(caught)})
    return pd.DataFrame(rows, columns=["kind", "n", "training_gate", "qc_flags", "outlier_screen", "caught", "missed"])


def answer_table(scores: pd.DataFrame, votes: pd.DataFrame, truth: dict, conditions: list[str],
                 alpha: float = 0.05) -> pd.DataFrame:
    """Which condition won at each bitrate (group): recovered vs true.

    The recovered winner is the condition with the highest mean JOD over the contents of the
    group (scores centred per content); its lead over the runner-up is tested with the binomial
    test on their direct comparisons pooled over contents (two-sided, level ``alpha``).

    Parameters
    ----------
    scores : DataFrame
        ``scale_votes`` output by content and group.
    votes : DataFrame
        The canonical votes used for the scale.
    truth : dict
        ``(content, group, condition) -> q``.
    conditions : list of str
        The conditions to rank (e.g. the fine-tuned losses; anchors left out).
    alpha : float
        Test level.

    Returns
    -------
    DataFrame
        Columns ``group, winner, winner_jod, runner_up, runner_up_jod, direct_votes, p_value,
        significant, true_winner, true_runner_up, agrees``.
    """
    from scipy.stats import binomtest

    s = scores[scores["condition"].isin(conditions) & np.isfinite(scores["score"])].copy()
    s["score"] = s["score"] - s.groupby(["content", "group"])["score"].transform("mean")
    t = truth_frame(truth)
    t = t[t["condition"].isin(conditions)].copy()
    t["true_jod"] = t["true_jod"] - t.groupby(["content", "group"])["true_jod"].transform("mean")
    rows = []
    for grp, g in s.groupby("group", sort=True):
        mean = g.groupby("condition")["score"].mean().sort_values(ascending=False)
        if len(mean) < 2:
            continue
        win, run = mean.index[0], mean.index[1]
        v = votes[votes["group"].astype(str) == str(grp)]
        pair = v[((v["condition_a"] == win) & (v["condition_b"] == run))
                 | ((v["condition_a"] == run) & (v["condition_b"] == win))]
        k, n = int((pair["winner"] == win).sum()), int(pair["winner"].isin([win, run]).sum())
        p = float(binomtest(k, n, 0.5).pvalue) if n else float("nan")
        tm = t[t["group"].astype(str) == str(grp)].groupby("condition")["true_jod"].mean().sort_values(ascending=False)
        rows.append({"group": grp, "winner": win, "winner_jod": float(mean.iloc[0]), "runner_up": run,
                     "runner_up_jod": float(mean.iloc[1]), "direct_votes": n, "p_value": p,
                     "significant": bool(n and p < alpha and k * 2 > n),
                     "true_winner": tm.index[0] if len(tm) else "", "true_runner_up": tm.index[1] if len(tm) > 1 else "",
                     "agrees": bool(len(tm) and tm.index[0] == win)})
    return pd.DataFrame(rows)


def fmt_p(p: float) -> str:
    """A p-value for prose."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "no direct comparisons"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
