"""Scoring a predictor against 2AFC human judgments: pure NumPy, no images.

For triplet ``i`` a predictor gives ``pref_a[i]`` in {1, 0, ½}: 1 when it judges ``a`` closer to
the reference, 0 for ``b``, ½ on a tie. With ``p_a[i]`` the fraction of humans who chose ``a``:

* **2AFC score** (BAPPS, Zhang et al. 2018): ``pref·p_a + (1 − pref)·(1 − p_a)`` — the expected
  agreement with a random human; ½ for a tie;
* **accuracy** (CLIC): agreement with the majority label ``1[p_a > ½]``; 1 if equal, 0 if not and ½
  when either the prediction or the label is a tie (``p_a = ½``). On single-vote data
  (``p_a ∈ {0, 1}``) the two coincide.

Reference rows:

* ``always-majority``: always pick the side (a or b) that the majority label favours most often
  (CLIC 2021 validation: 2,692 of 5,220 rows say A → 51.6 %);
* ``human-ceiling``: the best any deterministic predictor can do given the humans' own
  disagreement — pool every judgment of the same (reference, {a, b}) in either order, pick its
  majority. Reported only when the data holds repeated judgments (a fractional ``p_a`` or a triplet
  that occurs more than once).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from lossarena.data.schemas import ACC

ACC_COLUMNS = ACC.names  # the one definition: lossarena.data.schemas.ACC


def preference_from_values(v_a, v_b, lower_better: bool) -> np.ndarray:
    """``pref_a`` from a metric's values for ``a`` and ``b`` (NaN on either side counts as a tie)."""
    v_a = np.asarray(v_a, dtype=float)
    v_b = np.asarray(v_b, dtype=float)
    d = (v_b - v_a) if lower_better else (v_a - v_b)
    pref = np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5))
    return np.where(np.isnan(d), 0.5, pref)


def preference_from_prob(prob_a) -> np.ndarray:
    """``pref_a`` from a predicted probability that ``a`` is the better one."""
    p = np.asarray(prob_a, dtype=float)
    return np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))


def majority_label(p_a) -> np.ndarray:
    p = np.asarray(p_a, dtype=float)
    return np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))


def per_triplet_scores(pref_a, p_a) -> tuple[np.ndarray, np.ndarray]:
    """(2AFC score, exact accuracy) per triplet."""
    pref = np.asarray(pref_a, dtype=float)
    p = np.asarray(p_a, dtype=float)
    score = pref * p + (1.0 - pref) * (1.0 - p)
    lab = majority_label(p)
    acc = pref * lab + (1.0 - pref) * (1.0 - lab)
    # a tie on either side is worth ½ (pref·lab + (1-pref)(1-lab) already gives ½ when one is ½)
    return score, acc


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, *, seed: int = 0, level: float = 0.95,
                 chunk: int = 200) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (resampling triplets with replacement)."""
    v = np.asarray(values, dtype=float)
    n = v.size
    if n == 0:
        return float("nan"), float("nan")
    if n_boot <= 0 or n == 1:
        m = float(v.mean())
        return m, m
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for s in range(0, n_boot, chunk):
        k = min(chunk, n_boot - s)
        idx = rng.integers(0, n, size=(k, n))
        means[s:s + k] = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


@dataclasses.dataclass
class Result:
    metric: str
    score_2afc: float
    accuracy: float
    ci_low: float
    ci_high: float
    n: int

    def as_row(self) -> dict:
        return dataclasses.asdict(self)


def summarize(name: str, pref_a, p_a, *, n_boot: int = 1000, seed: int = 0, ci_on: str = "score_2afc") -> Result:
    """One ``acc.csv`` row; the CI is on ``ci_on`` (``score_2afc`` by default, or ``accuracy``)."""
    score, acc = per_triplet_scores(pref_a, p_a)
    lo, hi = bootstrap_ci(score if ci_on == "score_2afc" else acc, n_boot, seed=seed)
    return Result(name, float(score.mean()), float(acc.mean()), lo, hi, int(score.size))


def majority_side(p_a) -> float:
    """1.0 if the majority label favours ``a`` at least as often as ``b``, else 0.0."""
    lab = majority_label(p_a)
    return 1.0 if (lab == 1.0).sum() >= (lab == 0.0).sum() else 0.0


def always_majority_pref(p_a) -> np.ndarray:
    return np.full(np.asarray(p_a).shape, majority_side(p_a))


def triplet_keys(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Group id per row for (reference, {a, b}) regardless of order, and whether the row is in the
    group's canonical orientation (``a`` sorts first)."""
    a = df["a"].astype(str).to_numpy()
    b = df["b"].astype(str).to_numpy()
    first = np.where(a <= b, a, b)
    second = np.where(a <= b, b, a)
    keys = pd.Series(list(zip(df["reference"].astype(str), first, second)))
    gid = pd.factorize(keys)[0]
    return gid, a <= b


def has_repeated_judgments(df: pd.DataFrame) -> bool:
    p = df["p_a"].to_numpy(dtype=float)
    if np.any((p > 0) & (p < 1)):
        return True
    gid, _ = triplet_keys(df)
    return bool(np.bincount(gid).max() > 1)


def human_ceiling_pref(df: pd.DataFrame) -> np.ndarray:
    """The pooled-majority oracle's ``pref_a`` per row (½ where the pooled judgments tie)."""
    gid, canon = triplet_keys(df)
    p = df["p_a"].to_numpy(dtype=float)
    p_first = np.where(canon, p, 1.0 - p)  # fraction for the canonically-first image
    sums = np.bincount(gid, weights=p_first)
    counts = np.bincount(gid)
    pooled_first = sums[gid] / counts[gid]
    pooled_a = np.where(canon, pooled_first, 1.0 - pooled_first)
    # exact ½ (e.g. one vote each way) must stay a tie despite float rounding
    pooled_a = np.round(pooled_a, 12)
    return preference_from_prob(pooled_a)


def reference_rows(df: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, ci_on: str = "score_2afc"
                   ) -> list[Result]:
    p = df["p_a"].to_numpy(dtype=float)
    rows = [summarize("always-majority", always_majority_pref(p), p, n_boot=n_boot, seed=seed, ci_on=ci_on)]
    if has_repeated_judgments(df):
        rows.append(summarize("human-ceiling", human_ceiling_pref(df), p, n_boot=n_boot, seed=seed, ci_on=ci_on))
    return rows


def results_frame(results: list[Result]) -> pd.DataFrame:
    return pd.DataFrame([r.as_row() for r in results], columns=list(ACC_COLUMNS))
