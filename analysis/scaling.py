"""Scaling votes: Thurstone (JOD) and Bradley-Terry fits per group, bootstrap confidence intervals.

:func:`scale_votes` produces the ``scores.csv`` table::

    <group-by keys>, condition, score, ci_low, ci_high, wins, comparisons, winning_frequency, component

``wins`` counts ties as 1/2; ``winning_frequency = wins / comparisons``. ``component`` is 0 for a
connected comparison graph; conditions in other components (1, 2, ...) are on their own scale (see
:mod:`.thurstone`). Confidence intervals are percentile intervals from a bootstrap over participants
(resampled with replacement within the group); each replicate is refitted and aligned to the point
estimate the same way (mean 0 per component, or the reference fixed), conditions that fall out of the
replicate's comparison graph count as missing for that replicate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lossarena.data.schemas import SCORES
from scipy.sparse import csr_matrix

from lossarena.errors import InputError

from ._threads import single_thread
from .thurstone import ScaleFit, _normalise, check_counts, components, fit_thurstone
from .votes import EncodedVotes, encode_votes, ensure_votes

METHODS = ("thurstone", "bt")
SCORE_COLUMNS = list(SCORES.names)  # the one definition: lossarena.data.schemas.SCORES


@single_thread
def fit_bt(
    counts,
    conditions: list[str] | None = None,
    *,
    alpha: float = 0.01,
    reference: str | None = None,
    init: np.ndarray | None = None,
    max_iter: int = 1000,
    tol: float = 1e-8,
) -> ScaleFit:
    """Bradley-Terry log-strengths by choix's iterative Luce spectral ranking (``ilsr_pairwise_dense``,
    the count-matrix form of ``choix.ilsr_pairwise``; identical estimates, votes aggregated first).

    Scores are natural-log strengths: P(i beats j) = 1 / (1 + exp(-(s_i - s_j))). ``alpha`` is choix's
    regularisation (needed when a condition never loses or never wins). Each connected component is
    fitted on its own; mean 0 per component, or ``reference`` fixed at 0.
    """
    import choix


    c = check_counts(counts)
    n = c.shape[0]
    conditions = list(conditions) if conditions is not None else [f"c{i}" for i in range(n)]
    ncomp, labels = components(c)
    scores = np.full(n, np.nan)
    for k in range(ncomp):
        idx = np.flatnonzero(labels == k)
        if len(idx) == 1:
            scores[idx] = 0.0
            continue
        sub = c[np.ix_(idx, idx)]
        x0 = None if init is None else np.asarray(init, dtype=float)[idx]
        if x0 is not None and not np.all(np.isfinite(x0)):
            x0 = None
        try:
            s = choix.ilsr_pairwise_dense(sub, alpha=alpha, initial_params=x0, max_iter=max_iter, tol=tol)
        except RuntimeError as e:  # no convergence: typically alpha=0 with a never-losing condition
            raise InputError(
                f"Bradley-Terry fit did not converge ({e}); a condition that never loses or never wins "
                f"needs regularisation (alpha > 0, now {alpha})"
            ) from e
        scores[idx] = s - s.mean()
    scores = _normalise(scores, labels, conditions, reference, 0.0)
    return ScaleFit(conditions, scores, labels, ncomp, "bt", info={"alpha": alpha})


def fit_counts(counts, conditions=None, method: str = "thurstone", reference=None, init=None, **kw) -> ScaleFit:
    if method == "thurstone":
        return fit_thurstone(counts, conditions, reference=reference, init=init, **kw)
    if method == "bt":
        return fit_bt(counts, conditions, reference=reference, init=init, **kw)
    raise InputError(f"unknown scaling method '{method}'; choose thurstone or bt")


def _align(rep: np.ndarray, full: ScaleFit, rep_labels: np.ndarray, reference: str | None) -> np.ndarray:
    """Align a bootstrap replicate to the point estimate (see module docstring)."""
    out = np.full_like(rep, np.nan)
    ref_idx = full.conditions.index(reference) if reference is not None else None
    for k in range(full.n_components):
        idx = np.flatnonzero(full.component == k)
        rl = rep_labels[idx]
        if ref_idx is not None and full.component[ref_idx] == k:
            keep_label = rep_labels[ref_idx]
        else:
            vals, cnt = np.unique(rl[rl >= 0], return_counts=True)
            if len(vals) == 0:
                continue
            keep_label = vals[np.argmax(cnt)]
        if keep_label < 0:
            continue
        kept = idx[rl == keep_label]
        if ref_idx is not None and full.component[ref_idx] == k:
            shift = rep[ref_idx] - full.scores[ref_idx]
        else:
            shift = np.mean(rep[kept] - full.scores[kept])
        out[kept] = rep[kept] - shift
    return out


@single_thread
def bootstrap_fit(
    enc: EncodedVotes,
    full: ScaleFit,
    *,
    method: str = "thurstone",
    n_boot: int = 500,
    seed: int = 0,
    reference: str | None = None,
    alpha_ci: float = 0.05,
    progress: bool = False,
    desc: str = "bootstrap",
    **fit_kw,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap over participants; returns (ci_low, ci_high, replicates[n_boot, N])."""
    n = enc.n
    k = len(enc.participants)
    s = csr_matrix((enc.weight, (enc.obs, enc.win * n + enc.lose)), shape=(k, n * n))
    rng = np.random.default_rng(seed)
    reps = np.full((n_boot, n), np.nan)
    it = range(n_boot)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=desc, leave=False)
    init = np.where(np.isfinite(full.scores), full.scores, 0.0)
    for b in it:
        w = rng.multinomial(k, np.full(k, 1.0 / k)).astype(float)
        counts = np.asarray(s.T @ w).reshape(n, n)
        fit = fit_counts(counts, full.conditions, method, None, init=init, **fit_kw)
        reps[b] = _align(fit.scores, full, fit.component, reference)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.nanpercentile(reps, 100 * alpha_ci / 2, axis=0)
            hi = np.nanpercentile(reps, 100 * (1 - alpha_ci / 2), axis=0)
    return lo, hi, reps


def win_stats(enc: EncodedVotes) -> tuple[np.ndarray, np.ndarray]:
    """(wins with ties as 1/2, comparisons) per condition."""
    c = enc.counts()
    wins = c.sum(axis=1)
    comps = (c + c.T).sum(axis=1)
    return wins, comps


def _group_iter(votes: pd.DataFrame, group_by: list[str]):
    if not group_by:
        yield (), votes
        return
    for key, sub in votes.groupby(group_by, sort=True):
        yield (key if isinstance(key, tuple) else (key,)), sub


def parse_group_by(group_by, votes: pd.DataFrame | None = None) -> list[str]:
    if group_by is None or group_by == "" or group_by == []:
        return []
    keys = [g.strip() for g in group_by.split(",")] if isinstance(group_by, str) else list(group_by)
    keys = [k for k in keys if k]
    if votes is not None:
        missing = [k for k in keys if k not in votes.columns]
        if missing:
            raise InputError(
                f"--group-by: column(s) {', '.join(missing)} not in the votes (columns: "
                f"{', '.join(c for c in votes.columns if not c.startswith('_'))})"
            )
    return keys


@single_thread
def scale_votes(
    votes,
    method: str = "thurstone",
    group_by=("content",),
    *,
    reference: str | None = None,
    bootstrap: int = 500,
    seed: int = 0,
    alpha_ci: float = 0.05,
    progress: bool = True,
    **fit_kw,
) -> pd.DataFrame:
    """Scale canonical votes per group; returns the ``scores.csv`` table (see module docstring).

    ``votes``: a path or a DataFrame. ``group_by``: column names (or "content,group"); empty = pool
    everything. ``reference``: condition fixed at 0 (in groups that contain it; mean 0 elsewhere).
    ``bootstrap``: number of replicates (0 = no CIs, ci columns equal the score). ``fit_kw`` go to
    :func:`fit_thurstone` (``prior``, ``ridge_sd``) or :func:`fit_bt` (``alpha``).
    """
    if method not in METHODS:
        raise InputError(f"unknown scaling method '{method}'; choose one of {', '.join(METHODS)}")
    votes = ensure_votes(votes)
    keys = parse_group_by(group_by, votes)
    rows = []
    for gi, (key, sub) in enumerate(_group_iter(votes, keys)):
        enc = encode_votes(sub)
        ref = reference if (reference is not None and reference in enc.conditions) else None
        full = fit_counts(enc.counts(), enc.conditions, method, ref, **fit_kw)
        if bootstrap and bootstrap > 1 and len(enc.participants) > 1:
            lo, hi, _ = bootstrap_fit(
                enc, full, method=method, n_boot=bootstrap, seed=seed + gi, reference=ref,
                alpha_ci=alpha_ci, progress=progress, desc=f"bootstrap {'/'.join(map(str, key)) or 'all'}",
                **fit_kw,
            )
        else:
            lo, hi = full.scores.copy(), full.scores.copy()
        wins, comps = win_stats(enc)
        for i, cond in enumerate(enc.conditions):
            rows.append(
                list(key)
                + [cond, full.scores[i], lo[i], hi[i], wins[i], comps[i],
                   wins[i] / comps[i] if comps[i] else np.nan, int(full.component[i])]
            )
    return pd.DataFrame(rows, columns=keys + SCORE_COLUMNS)


def counts_from_votes(votes, conditions: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Pool (already filtered) votes into one count matrix; returns (counts, conditions)."""
    votes = ensure_votes(votes)
    enc = encode_votes(votes, conditions)
    return enc.counts(), enc.conditions
