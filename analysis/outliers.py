"""Outlier screening of participants in a pairwise-comparison study.

Two independent criteria per participant, computed per (content, group) block and pooled:

Circular triads and Kendall & Babington Smith's coefficient of consistence
    For each block, the participant's preference on a pair is the majority of their votes on it
    (an even split is no preference). ``d`` = number of circular triads (i > j > k > i), counted
    exactly as trace(A^3)/3 on the preference digraph A.
    *Complete design* (the participant compared every pair of the conditions they saw): the maximum
    is Kendall's d_max = (n^3 - n)/24 for odd n, (n^3 - 4n)/24 for even n, and d equals Kendall's
    d = n(n^2-1)/24 - 1/2 sum(a_i - (n-1)/2)^2 (a_i = wins).
    *Incomplete design*: only triads whose three pairs were all compared can be circular; d counts
    circular triads among those and d_max is the number of such triads ("possible ones").
    Over blocks: ``circular_triads = sum d``, ``zeta = 1 - sum d / sum d_max`` (NaN when the
    participant compared no complete triad, e.g. an adjacent-pairs design; NaN never flags).
    A random responder has E[d] = (number of triads)/4: zeta around 0 for large complete designs,
    0.375 for 7 conditions, 0.75 for incomplete designs.

Likelihood score (pwcmp's ``pw_outlier_analysis``)
    For each participant and block the Thurstone model is fitted to everybody else's votes
    (leave-one-out, warm-started) and the participant's votes are scored under it: log P(vote), a tie
    counting half for each side. The per-participant log-likelihood is averaged per vote (so
    participants with different numbers of votes are comparable; pwcmp sums over a common design),
    and ``likelihood_score = (Q1 - l) / IQR`` for l below the first quartile Q1 of all participants,
    else 0 -- the distance below the box of a box plot, in IQRs.

``is_outlier`` (default criterion ``either``): zeta < ``zeta_threshold`` or likelihood_score >
``likelihood_threshold``. ``criterion`` may also be ``both``, ``zeta`` or ``likelihood``. A study
with a single participant (e.g. a pooled count matrix) flags nobody.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lossarena.data.schemas import LINE, OUTLIERS, read_table
from scipy import special

from lossarena.errors import InputError

from ._threads import single_thread
from .thurstone import SIGMA, fit_thurstone
from .votes import encode_votes, ensure_votes, vote_weights

CRITERIA = ("either", "both", "zeta", "likelihood")
OUTLIER_COLUMNS = list(OUTLIERS.names)  # the one definition: lossarena.data.schemas.OUTLIERS
DEFAULT_ZETA_THRESHOLD = 0.25
DEFAULT_LIKELIHOOD_THRESHOLD = 1.5
LOO_MAX_PARTICIPANTS = 100


def kendall_dmax(n: int) -> int:
    """Kendall's maximum number of circular triads in a complete tournament of n items."""
    return (n**3 - n) // 24 if n % 2 else (n**3 - 4 * n) // 24


def kendall_d(wins) -> float:
    """Kendall's d from the win counts of a complete tournament without ties."""
    a = np.asarray(wins, dtype=float)
    n = len(a)
    return n * (n * n - 1) / 24 - 0.5 * float(((a - (n - 1) / 2) ** 2).sum())


def circular_triads(counts: np.ndarray) -> tuple[float, float, bool]:
    """(d, d_max, complete) for one participant's count matrix of one block.

    Only conditions the participant compared take part. See the module docstring.
    """
    c = np.asarray(counts, dtype=float)
    g = (c + c.T) > 0
    seen = g.any(axis=1)
    c = c[np.ix_(seen, seen)]
    g = g[np.ix_(seen, seen)]
    n = c.shape[0]
    if n < 3:
        return 0.0, 0.0, True
    a = (c > c.T).astype(float)
    d = float(np.trace(a @ a @ a)) / 3.0
    complete = bool(g.sum() == n * (n - 1))
    if complete:
        dmax = float(kendall_dmax(n))
    else:
        gf = g.astype(float)
        dmax = float(np.trace(gf @ gf @ gf)) / 6.0
    return round(d), dmax, complete


def _loglik(counts_k: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Sum of log P(votes) of one participant under ``scores``; (loglik, votes counted)."""
    i, j = np.nonzero(counts_k)
    w = counts_k[i, j]
    ok = (labels[i] >= 0) & (labels[i] == labels[j])
    if not ok.any():
        return 0.0, 0.0
    x = (scores[i[ok]] - scores[j[ok]]) / SIGMA
    return float((w[ok] * special.log_ndtr(x)).sum()), float(w[ok].sum())


def _default_blocks(votes: pd.DataFrame) -> list[str]:
    return ["content"] + (["group"] if "group" in votes.columns else [])


@single_thread
def score_outliers(
    votes,
    *,
    block_by=None,
    zeta_threshold: float = DEFAULT_ZETA_THRESHOLD,
    likelihood_threshold: float = DEFAULT_LIKELIHOOD_THRESHOLD,
    criterion: str = "either",
    loo: bool | str = "auto",
    prior: str = "auto",
    progress: bool = True,
) -> pd.DataFrame:
    """Per-participant outlier scores; one row per participant.

    Columns: participant, circular_triads, zeta, likelihood_score, is_outlier, then details:
    dmax, complete_design, loglik_per_vote, n_votes, flagged_by.
    ``block_by``: columns that define a block (default content[, group]). ``loo=False`` scores
    against the fit to all votes (faster, slightly less sensitive); ``"auto"`` (default) refits
    leave-one-out in blocks of at most :data:`LOO_MAX_PARTICIPANTS` participants, where one
    participant can move the fit, and uses the full fit in larger blocks (on JPEG AIC-3, 459
    participants: the same 57 flagged either way, 1 s instead of 107 s). ``prior``: the Thurstone prior of
    the (leave-one-out) fits.
    """
    if criterion not in CRITERIA:
        raise InputError(f"unknown outlier criterion '{criterion}'; choose one of {', '.join(CRITERIA)}")
    votes = ensure_votes(votes)
    blocks = list(block_by) if block_by else _default_blocks(votes)
    participants = sorted(votes["participant"].unique())
    pidx = {p: i for i, p in enumerate(participants)}
    P = len(participants)
    d_sum = np.zeros(P)
    dmax_sum = np.zeros(P)
    complete_all = np.ones(P, dtype=bool)
    ll_sum = np.zeros(P)
    ll_n = np.zeros(P)
    n_votes = pd.Series(vote_weights(votes)).groupby(votes["participant"].to_numpy()).sum().reindex(
        participants).to_numpy().round().astype(np.int64)  # rows weighted by `count`

    groups = list(votes.groupby(blocks, sort=True))
    it = groups
    if progress:
        from tqdm import tqdm

        it = tqdm(groups, desc="outliers", leave=False)
    for _, sub in it:
        enc = encode_votes(sub)
        n = enc.n
        full_counts = enc.counts()
        full = fit_thurstone(full_counts, enc.conditions, prior=prior) if n > 1 else None
        init = np.where(np.isfinite(full.scores), full.scores, 0.0) if full is not None else None
        order = np.argsort(enc.obs, kind="stable")
        bounds = np.searchsorted(enc.obs[order], np.arange(len(enc.participants) + 1))
        for k, name in enumerate(enc.participants):
            sel = order[bounds[k] : bounds[k + 1]]
            ck = np.bincount(enc.win[sel] * n + enc.lose[sel], weights=enc.weight[sel], minlength=n * n).reshape(n, n)
            gi = pidx[name]
            d, dmax, complete = circular_triads(ck)
            d_sum[gi] += d
            dmax_sum[gi] += dmax
            complete_all[gi] &= complete
            if full is None:
                continue
            do_loo = loo if loo != "auto" else len(enc.participants) <= LOO_MAX_PARTICIPANTS
            if do_loo and len(enc.participants) > 1:
                rest = full_counts - ck
                rest[rest < 1e-9] = 0.0
                fit = fit_thurstone(rest, enc.conditions, prior=prior, init=init)
                scores, labels = fit.scores, fit.component
            else:
                scores, labels = full.scores, full.component
            ll, cnt = _loglik(ck, scores, labels)
            ll_sum[gi] += ll
            ll_n[gi] += cnt

    with np.errstate(invalid="ignore", divide="ignore"):
        zeta = np.where(dmax_sum > 0, 1.0 - d_sum / np.where(dmax_sum > 0, dmax_sum, 1), np.nan)
        llpv = np.where(ll_n > 0, ll_sum / np.where(ll_n > 0, ll_n, 1), np.nan)
    fin = llpv[np.isfinite(llpv)]
    if len(fin) >= 4:
        q1, q3 = np.percentile(fin, [25, 75])
        iqr = max(q3 - q1, 1e-12)
        lscore = np.where(np.isfinite(llpv) & (llpv < q1), (q1 - llpv) / iqr, 0.0)
    else:
        lscore = np.zeros(P)
    by_zeta = np.isfinite(zeta) & (zeta < zeta_threshold)
    by_lik = lscore > likelihood_threshold
    if P < 2:  # a single (e.g. pooled count-matrix) "participant" has nobody to be compared with
        by_zeta[:] = False
        by_lik[:] = False
    flag = {
        "either": by_zeta | by_lik,
        "both": by_zeta & by_lik,
        "zeta": by_zeta,
        "likelihood": by_lik,
    }[criterion]
    flagged_by = np.where(by_zeta & by_lik, "zeta+likelihood", np.where(by_zeta, "zeta", np.where(by_lik, "likelihood", "")))
    out = pd.DataFrame(
        {
            "participant": participants,
            "circular_triads": d_sum.astype(int),
            "zeta": zeta,
            "likelihood_score": lscore,
            "is_outlier": flag,
            "dmax": dmax_sum,
            "complete_design": complete_all,
            "loglik_per_vote": llpv,
            "n_votes": n_votes,
            "flagged_by": np.where(flag, flagged_by, ""),
        }
    )
    out.attrs["settings"] = {
        "zeta_threshold": zeta_threshold, "likelihood_threshold": likelihood_threshold,
        "criterion": criterion, "loo": loo, "prior": prior, "blocks": blocks,
    }
    return out


def write_outliers(df: pd.DataFrame, path, details: bool = False) -> None:
    """Write ``outliers.csv`` (the five contract columns; ``details`` appends the rest)."""
    cols = OUTLIER_COLUMNS + ([c for c in df.columns if c not in OUTLIER_COLUMNS] if details else [])
    out = df[cols].copy()
    out["is_outlier"] = np.where(out["is_outlier"].astype(bool), "true", "false")
    out.to_csv(path, index=False, float_format="%.6g")


def read_outliers(path) -> pd.DataFrame:
    """Read ``outliers.csv`` through its schema (errors name the file, line and field)."""
    df = read_table(path, OUTLIERS)
    return df.drop(columns=[LINE])


def filter_votes(votes, outliers: pd.DataFrame) -> pd.DataFrame:
    """The votes without the participants flagged in ``outliers``."""
    votes = ensure_votes(votes)
    bad = set(outliers.loc[outliers["is_outlier"].astype(bool), "participant"].astype(str))
    out = votes[~votes["participant"].isin(bad)].reset_index(drop=True)
    out.attrs.update(votes.attrs)
    out.attrs["removed_participants"] = sorted(bad)
    return out
