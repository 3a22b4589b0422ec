"""Preference (PC) matrices, winning frequencies and per-pair significance tests.

Blocks: the analysis unit is one (content, group) -- an image at one bitrate in the seed's study.

* :func:`preference_matrices` -- the group PC matrix of every block (``M[i, j]`` = votes for i over j,
  ties 1/2 each) and, with ``per_subject=True``, every participant's own matrix; the group matrix is
  the sum of the subject matrices.
* :func:`winning_frequency` -- per block and condition: ``wins / comparisons`` (ties 1/2), and the
  seed's per-image normalisation ("scores were normalized for each test image"): by default
  ``normalise="sum"`` divides by the block's sum, so the normalised frequencies of one image add up to
  1 and every image weighs the same in the overall result; ``"max"`` divides by the block's best,
  ``"minmax"`` maps the block to [0, 1], ``"none"`` keeps the raw frequency.
  :func:`overall_winning_frequency` averages the normalised values over contents per group (e.g. per
  bitrate) and overall, and also gives the pooled raw frequency.
* :func:`pairwise_tests` -- for every compared pair in a block an exact two-sided binomial test of
  "both equally often preferred" on the decisive votes (ties are left out of the test), with a
  multiple-comparison correction over the pairs of the block: ``holm`` (default; Holm-Bonferroni,
  controls the family-wise error rate), ``bh`` (Benjamini-Hochberg, controls the false discovery
  rate), ``bonferroni`` or ``none``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from lossarena.errors import InputError

from .votes import encode_votes, ensure_votes, vote_weights

CORRECTIONS = ("holm", "bh", "bonferroni", "none")
NORMALISATIONS = ("sum", "max", "minmax", "none")


def default_blocks(votes: pd.DataFrame) -> list[str]:
    return ["content"] + (["group"] if "group" in votes.columns else [])


def _blocks(votes, keys):
    for key, sub in votes.groupby(keys, sort=True):
        yield (key if isinstance(key, tuple) else (key,)), sub


def preference_matrices(votes, block_by=None, per_subject: bool = False) -> dict:
    """{block key: (conditions, M)}; with ``per_subject``: {(block key, participant): (conditions, M)}
    as well, under the key ``"subjects"``."""
    votes = ensure_votes(votes)
    group, subj = {}, {}
    keys = list(block_by) if block_by else default_blocks(votes)
    for key, sub in _blocks(votes, keys):
        enc = encode_votes(sub)
        group[key] = (enc.conditions, enc.counts())
        if per_subject:
            n = enc.n
            for k, p in enumerate(enc.participants):
                sel = enc.obs == k
                m = np.bincount(enc.win[sel] * n + enc.lose[sel], weights=enc.weight[sel], minlength=n * n)
                subj[(key, p)] = (enc.conditions, m.reshape(n, n))
    if per_subject:
        return {"group": group, "subjects": subj}
    return group


def _normalise(wf: np.ndarray, how: str) -> np.ndarray:
    if how == "sum":
        s = np.nansum(wf)
        return wf / s if s > 0 else wf * np.nan
    if how == "max":
        m = np.nanmax(wf)
        return wf / m if m > 0 else wf * np.nan
    if how == "minmax":
        lo, hi = np.nanmin(wf), np.nanmax(wf)
        return (wf - lo) / (hi - lo) if hi > lo else np.full_like(wf, 0.5)
    if how == "none":
        return wf
    raise InputError(f"unknown normalisation '{how}'; choose one of {', '.join(NORMALISATIONS)}")


def winning_frequency(votes, block_by=None, normalise: str = "sum") -> pd.DataFrame:
    """Per block and condition: wins, comparisons, winning_frequency, wf_normalised."""
    votes = ensure_votes(votes)
    rows = []
    keys = list(block_by) if block_by else default_blocks(votes)
    for key, sub in _blocks(votes, keys):
        enc = encode_votes(sub)
        c = enc.counts()
        wins = c.sum(1)
        comps = (c + c.T).sum(1)
        wf = np.where(comps > 0, wins / np.where(comps > 0, comps, 1), np.nan)
        nw = _normalise(wf, normalise)
        for i, cond in enumerate(enc.conditions):
            rows.append(list(key) + [cond, wins[i], comps[i], wf[i], nw[i]])
    cols = keys + ["condition", "wins", "comparisons", "winning_frequency", "wf_normalised"]
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["normalise"] = normalise
    return out


def overall_winning_frequency(wf: pd.DataFrame, by: str | None = "group") -> pd.DataFrame:
    """Average the per-image normalised frequencies over contents (per ``by`` value if that column
    exists, e.g. per bitrate); also the pooled raw frequency and the number of contents."""
    keys = [by] if by and by in wf.columns else []
    g = wf.groupby(keys + ["condition"], sort=True)
    out = g.agg(
        wf_normalised_mean=("wf_normalised", "mean"),
        wf_normalised_sd=("wf_normalised", "std"),
        wins=("wins", "sum"),
        comparisons=("comparisons", "sum"),
        n_contents=("wf_normalised", "count"),
    ).reset_index()
    out["winning_frequency"] = out["wins"] / out["comparisons"]
    return out


def adjust_pvalues(p, method: str = "holm") -> np.ndarray:
    """Multiple-comparison adjusted p-values (NaNs are kept and not counted)."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    m = len(q)
    if m == 0:
        return out
    if method == "none":
        adj = q
    elif method == "bonferroni":
        adj = np.minimum(q * m, 1.0)
    elif method == "holm":
        order = np.argsort(q)
        s = q[order] * (m - np.arange(m))
        s = np.minimum(np.maximum.accumulate(s), 1.0)
        adj = np.empty(m)
        adj[order] = s
    elif method == "bh":
        order = np.argsort(q)
        s = q[order] * m / (np.arange(m) + 1)
        s = np.minimum(np.minimum.accumulate(s[::-1])[::-1], 1.0)
        adj = np.empty(m)
        adj[order] = s
    else:
        raise InputError(f"unknown correction '{method}'; choose one of {', '.join(CORRECTIONS)}")
    out[ok] = adj
    return out


def pairwise_tests(votes, block_by=None, correction: str = "holm", alpha: float = 0.05) -> pd.DataFrame:
    """Binomial test for every compared pair of every block (see the module docstring).

    Columns: block keys, condition_a, condition_b, wins_a, wins_b, ties, n, p_value, p_adjusted,
    significant, preferred (the more often chosen condition when significant, else "").
    """
    if correction not in CORRECTIONS:
        raise InputError(f"unknown correction '{correction}'; choose one of {', '.join(CORRECTIONS)}")
    votes = ensure_votes(votes)
    parts = []
    keys = list(block_by) if block_by else default_blocks(votes)
    for key, sub in _blocks(votes, keys):
        a = sub["condition_a"].to_numpy(dtype=object)
        b = sub["condition_b"].to_numpy(dtype=object)
        w = sub["winner"].to_numpy(dtype=object)
        swap = a > b
        lo = np.where(swap, b, a)
        hi = np.where(swap, a, b)
        wt = vote_weights(sub).astype(np.int64)  # a row stands for `count` identical judgments
        t = pd.DataFrame({"a": lo, "b": hi, "wa": (w == lo) * wt, "wb": (w == hi) * wt})
        t["tie"] = wt - t["wa"] - t["wb"]
        agg = t.groupby(["a", "b"], sort=True).sum().reset_index()
        dec = (agg["wa"] + agg["wb"]).to_numpy()
        pv = np.array(
            [stats.binomtest(int(x), int(n), 0.5).pvalue if n > 0 else np.nan for x, n in zip(agg["wa"], dec)]
        )
        adj = adjust_pvalues(pv, correction)
        sig = np.nan_to_num(adj, nan=1.0) < alpha
        pref = np.where(sig, np.where(agg["wa"] > agg["wb"], agg["a"], agg["b"]), "")
        block = pd.DataFrame({k: [v] * len(agg) for k, v in zip(keys, key)})
        block = pd.concat(
            [
                block,
                pd.DataFrame(
                    {
                        "condition_a": agg["a"], "condition_b": agg["b"], "wins_a": agg["wa"], "wins_b": agg["wb"],
                        "ties": agg["tie"], "n": agg["wa"] + agg["wb"] + agg["tie"], "p_value": pv,
                        "p_adjusted": adj, "significant": sig, "preferred": pref,
                    }
                ),
            ],
            axis=1,
        )
        parts.append(block)
    cols = keys + [
        "condition_a", "condition_b", "wins_a", "wins_b", "ties", "n", "p_value", "p_adjusted", "significant", "preferred"
    ]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)[cols]
    out.attrs["correction"] = correction
    out.attrs["alpha"] = alpha
    return out
