"""Metrics against a JND scale: the AIC-4 mapping f(x) = alpha * min(0, beta - x), correlations and errors.

JPEG AIC-4 (Final Call for Proposals on objective quality assessment, and the example dataset
``JPEG-AIC-4-datasets``) maps a metric's score ``x`` to JND units with ``f(x) = alpha * min(0, beta - x)``
and compares the mapped scores with the subjective JND scale. The hinge keeps every image better than
``beta`` at 0 JND and grows linearly beyond it. The formula is written for a score that grows with the
impairment (a distance, lower is better): with ``alpha <= 0`` it equals ``|alpha| * max(0, x - beta)``.
For a quality score (higher is better, e.g. PSNR) the same mapping is applied to ``-x``, i.e.
``f(x) = a * max(0, b - x)``; :class:`JNDMapping` reports ``a >= 0`` and ``b`` in the metric's own units
for both directions (``alpha = -a``, ``beta = b`` for a distance; ``beta = -b`` on the negated score).

Fit: least squares in JND, exact: for a fixed ``b`` the best ``a`` is closed form, and the error is
minimised over ``b`` on every interval between consecutive scores (bounded scalar search).

Reported per metric: PLCC, RMSE and MAE of the mapped scores against the JND scale; SROCC and KROCC of
the raw scores (rank statistics; the hinge would only add ties). ``folds > 1`` fits the mapping on
K - 1 random folds and predicts the held-out one (out-of-fold predictions, seeded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from lossarena.data.schemas import REFERENCE
from scipy import stats

from lossarena.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JNDMapping:
    """``f(x) = a * max(0, b - x)`` (higher-is-better score) or ``a * max(0, x - b)`` (lower-is-better)."""

    a: float
    b: float
    lower_better: bool

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return self.a * np.maximum(0.0, (x - self.b) if self.lower_better else (self.b - x))

    @property
    def alpha(self) -> float:
        """``alpha`` of the AIC-4 form ``alpha * min(0, beta - x)`` on the score oriented as a distance."""
        return -self.a

    @property
    def beta(self) -> float:
        """``beta`` of the AIC-4 form, on the score oriented as a distance (``-x`` for a quality score)."""
        return self.b if self.lower_better else -self.b


def fit_mapping(x, jnd, lower_better: bool) -> JNDMapping:
    """Least-squares fit of the AIC-4 mapping from metric scores to JND.

    Parameters
    ----------
    x : array_like, shape (n,)
        Metric scores.
    jnd : array_like, shape (n,)
        Subjective scale values in JND (>= 0).
    lower_better : bool
        The metric's direction (True for a distance such as LPIPS, False for PSNR or SSIM).

    Returns
    -------
    JNDMapping

    Raises
    ------
    ValueError
        Fewer than 2 finite pairs, or inputs of different lengths.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(jnd, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"expected x and jnd of the same length, got {x.size} and {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2:
        raise ValueError(f"expected at least 2 finite (score, JND) pairs, got {x.size}")
    d = x if lower_better else -x  # oriented: grows with the impairment
    # With the points sorted by d (descending) the hinge max(0, d - beta) is active on the top k points
    # for beta in [d_(k+1), d_(k)]; there SSE(beta) = sum y^2 - N^2 / D with N = P - beta Q and
    # D = U - 2 beta V + k beta^2 (P = sum d y, Q = sum y, U = sum d^2, V = sum d over the top k), whose
    # only interior stationary point is beta* = (Q U - P V) / (Q V - P k). Check beta* (clipped) and the
    # interval ends for every k: exact, O(n log n).
    o = np.argsort(-d, kind="stable")
    ds, ys = d[o], y[o]
    last = np.flatnonzero(np.r_[ds[1:] != ds[:-1], True])  # end of each group of equal d
    k = (last + 1).astype(float)
    P, Q = np.cumsum(ds * ys)[last], np.cumsum(ys)[last]
    U, V = np.cumsum(ds * ds)[last], np.cumsum(ds)[last]
    top = ds[last]
    below = np.r_[ds[last[1:]], top[-1] - (top[0] - top[-1] + 1.0)]  # next distinct value (or far below)
    with np.errstate(divide="ignore", invalid="ignore"):
        star = np.clip((Q * U - P * V) / (Q * V - P * k), below, top)
    star = np.where(np.isfinite(star), star, top)
    cand = np.stack([star, below, top])  # (3, groups)

    def gain(b):
        N = P - b * Q
        D = U - 2 * b * V + k * b * b
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where((N > 0) & (D > 0), N * N / D, 0.0)
        return g

    gains = np.stack([gain(c) for c in cand])
    i, j = np.unravel_index(np.argmax(gains), gains.shape)
    beta = float(cand[i, j])
    g = np.maximum(0.0, d - beta)
    a = max(float(g @ y) / float(g @ g), 0.0) if g @ g > 0 else 0.0
    return JNDMapping(float(a), float(beta if lower_better else -beta), lower_better)


def evaluate(x, jnd, lower_better: bool, folds: int = 0, seed: int = 0) -> tuple[dict, np.ndarray, JNDMapping]:
    """Fit the mapping and score it.

    Parameters
    ----------
    x, jnd : array_like, shape (n,)
        Metric scores and the JND scale.
    lower_better : bool
        The metric's direction.
    folds : int
        0 or 1: in-sample (one fit on everything); K > 1: out-of-fold predictions from K random folds.
    seed : int
        Seed of the fold assignment.

    Returns
    -------
    (dict, ndarray, JNDMapping)
        ``plcc, srocc, krocc, rmse, mae, n`` (plus ``a, b, alpha, beta`` of the all-data fit); the
        mapped scores (out-of-fold when ``folds > 1``); the all-data mapping.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(jnd, dtype=float)
    m = fit_mapping(x, y, lower_better)
    pred = m(x)
    if folds and folds > 1:
        if folds > x.size:
            raise ValueError(f"expected folds <= {x.size} images, got {folds}")
        fold = np.random.default_rng(seed).permutation(np.arange(x.size) % folds)
        for k in range(folds):
            test = fold == k
            pred[test] = fit_mapping(x[~test], y[~test], lower_better)(x[test])
    s = x if lower_better else -x
    ok = np.isfinite(pred) & np.isfinite(y)
    err = pred[ok] - y[ok]
    out = {
        "plcc": float(stats.pearsonr(pred[ok], y[ok])[0]) if np.ptp(pred[ok]) > 0 else float("nan"),
        "srocc": float(stats.spearmanr(s[ok], y[ok])[0]),
        "krocc": float(stats.kendalltau(s[ok], y[ok])[0]),
        "rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))), "n": int(ok.sum()),
        "a": m.a, "b": m.b, "alpha": m.alpha, "beta": m.beta,
    }
    return out, pred, m


# ---------------------------------------------------------------------------------------------
# images


def _resolve(images: Path, content: str, condition: str) -> Path | None:
    """Image of (content, condition): ``DIR/<content>/<condition>.<ext>`` or the AIC-4 layout
    ``DIR/**/PTC_000NN_<condition>.png`` (reference: ``..._0ref_00.png``)."""
    for ext in (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp"):
        p = images / content / f"{condition}{ext}"
        if p.is_file():
            return p
    digits = "".join(ch for ch in content if ch.isdigit())
    if digits:
        name = "0ref_00" if condition == REFERENCE else condition
        hits = sorted(images.glob(f"**/*_{int(digits):05d}_{name}.png"))
        if hits:
            return hits[0]
    return None


def locate_images(jnd_table: pd.DataFrame, images) -> pd.DataFrame:
    """Distorted and reference paths for every row of a ``jnd.csv``.

    Looks for ``images/manifest.csv`` (``content,condition,path``, the reference as condition
    ``reference``) first, then ``images/<content>/<condition>.png`` and the AIC-4 dataset layout.

    Raises
    ------
    InputError
        A missing image (named).
    """
    from lossarena.data import schemas

    images = Path(images)
    if not images.is_dir():
        raise InputError(f"{images}: not a folder")
    man = images / "manifest.csv"
    lookup = None
    if man.is_file():
        mf = schemas.read_table(man)
        for c in ("content", "condition", "path"):
            if c not in mf.columns:
                raise InputError(f"{man}: missing column {c}")
        lookup = {(r.content, r.condition): images / r.path for r in mf.itertuples()}
    rows = []
    for r in jnd_table.itertuples():
        pair = []
        for cond in (r.condition, schemas.REFERENCE):
            p = lookup.get((r.content, cond)) if lookup is not None else _resolve(images, r.content, cond)
            if p is None or not Path(p).is_file():
                raise InputError(f"{images}: no image for content '{r.content}', condition '{cond}'")
            pair.append(Path(p))
        rows.append(pair)
    out = jnd_table.copy()
    out["path"] = [str(a) for a, _ in rows]
    out["reference_path"] = [str(b) for _, b in rows]
    return out


def score_images(table: pd.DataFrame, metric: str) -> tuple[np.ndarray, bool, str]:
    """Run a registry metric (``NAME[:key=value,...]``) on every (distorted, reference) row.

    Returns
    -------
    (ndarray, bool, str)
        Scores, ``lower_better``, and the key to report the metric under.
    """
    import torch
    from lossarena.data.images import load_image

    from lossarena.metrics import get_metric

    spec = get_metric(metric)
    cache: dict[str, torch.Tensor] = {}
    vals = []
    for r in table.itertuples():
        if r.reference_path not in cache:
            cache.clear()
            cache[r.reference_path] = load_image(Path(r.reference_path))
        ref = cache[r.reference_path]
        dist = load_image(Path(r.path))
        if dist.shape != ref.shape:
            raise InputError(f"{r.path}: expected the reference's shape {tuple(ref.shape)}, got {tuple(dist.shape)}")
        with torch.no_grad():
            vals.append(float(spec.function(dist, ref).double().reshape(-1)[0]))
    key = getattr(spec, "spec_string", None) or metric
    return np.asarray(vals), bool(spec.lower_better), key


def benchmark_jnd(jnd_table: pd.DataFrame, scores: dict[str, tuple[np.ndarray, bool]], folds: int = 0,
                  seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit and score each metric against the JND scale.

    Parameters
    ----------
    jnd_table : pandas.DataFrame
        ``content, condition, jnd`` (a ``jnd.csv``).
    scores : dict
        metric key -> (scores aligned with ``jnd_table``, lower_better).
    folds, seed
        See :func:`evaluate`.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        One row per metric (``metric, plcc, srocc, krocc, rmse, mae, n, a, b, alpha, beta,
        lower_better``) and the per-image predictions (``content, condition, jnd`` + ``<metric>`` and
        ``<metric> mapped`` columns).
    """
    rows = []
    pred = jnd_table[["content", "condition", "jnd"]].copy()
    for key, (x, lower_better) in scores.items():
        res, mapped, _ = evaluate(x, jnd_table["jnd"].to_numpy(float), lower_better, folds, seed)
        rows.append({"metric": key, **res, "lower_better": lower_better})
        pred[key] = x
        pred[f"{key} mapped"] = mapped
    return pd.DataFrame(rows), pred
