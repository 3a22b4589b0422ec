"""Bjøntegaard delta rate and delta metric between two rate-distortion curves.

Method (default ``"cubic"``, VCEG-M33, G. Bjøntegaard 2001, as in the widely used reference scripts):

* BD-rate: fit ``log10(rate)`` as a polynomial of degree 3 in the metric for each curve, integrate
  both over the overlapping metric interval, average difference ``Δ`` → ``(10**Δ − 1) · 100`` %.
  Negative = B needs fewer bits than A for the same quality.
* BD-metric: fit the metric as a degree-3 polynomial of ``log10(rate)``, integrate over the overlapping
  log-rate interval, average difference (B − A) in metric units (dB for PSNR).

``"pchip"`` replaces the polynomial fits by piecewise-cubic Hermite interpolation (the VCEG-AL22 /
JVET CTC variant: no overshoot, exact through the points). With fewer than 4 points the cubic method
uses degree ``n − 1``. The rate can be bpp or bits; only ratios matter.

Warnings (:class:`BDWarning`, also logged), as the ``bjontegaard`` package does and beyond it:

* a curve whose metric is not monotonic in the rate (a dip makes the cubic fit, and even pchip,
  unreliable: the BD number can be far off);
* an overlap of the two curves' integration ranges below ``MIN_OVERLAP`` (75 %) of their union
  (``bjontegaard``'s definition);
* non-finite points dropped (how many, which curve).

:func:`bd_compare` returns BD-rate and BD-metric independently: when only one of the two ranges
(metric for BD-rate, log-rate for BD-metric) does not overlap, the other value is still returned and the
missing one is NaN (with a warning).

Curves come from our ``results.csv`` (``path.csv[:col=value,...]`` selects rows; rows are averaged
per model like CompressAI averages per-image values) or CompressAI-style JSON
``{"results": {"bpp": [...], "psnr-rgb": [...]}}``.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np

from lossarena.errors import InputError

log = logging.getLogger(__name__)

MIN_OVERLAP = 0.75


class BDWarning(UserWarning):
    """A BD number that may mislead: non-monotonic curve, low overlap, dropped points."""


def _warn(msg: str) -> None:
    log.warning(msg)
    warnings.warn(msg, BDWarning, stacklevel=3)


JSON_ALIASES = {"psnr": ("psnr-rgb", "psnr"), "ms-ssim": ("ms-ssim-rgb", "ms-ssim"),
                "ms-ssim-db": ("ms-ssim-db",)}


def _prep(rate, metric, name: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=float)
    m = np.asarray(metric, dtype=float)
    if r.shape != m.shape or r.ndim != 1:
        raise InputError(f"{name}: rate and metric must be 1-D of equal length, got {r.shape} and {m.shape}")
    ok = np.isfinite(r) & np.isfinite(m)
    if not ok.all():
        _warn(f"{name}: dropped {int((~ok).sum())} of {len(ok)} points with a NaN or infinite rate or metric")
    r, m = r[ok], m[ok]
    if len(r) < 2:
        raise InputError(f"{name}: need at least 2 finite rate-distortion points, got {len(r)}")
    if np.any(r <= 0):
        raise InputError(f"{name}: rates must be positive")
    order = np.argsort(r, kind="stable")
    dm = np.diff(m[order]) * (1.0 if m[order][-1] >= m[order][0] else -1.0)  # along the overall direction
    if np.any(dm <= 0):
        k = int(np.argmax(dm <= 0))
        _warn(f"{name}: the metric is not monotonic in the rate (at rate {r[order][k + 1]:.4g}); the BD "
              f"number from a fitted curve may be far off")
    return np.log10(r), m


def _overlap(a: np.ndarray, b: np.ndarray, what: str) -> tuple[float, float]:
    """The common interval of two samples, warning when it is below MIN_OVERLAP of their union."""
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    total = max(a.max(), b.max()) - min(a.min(), b.min())
    frac = max(hi - lo, 0.0) / total if total > 0 else 0.0
    if hi > lo and frac < MIN_OVERLAP:
        _warn(f"the curves' {what} ranges overlap by only {frac * 100:.1f} % of their union (< "
              f"{MIN_OVERLAP * 100:.0f} %): the BD number extrapolates little and says little")
    return lo, hi


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    order = np.argsort(x)
    x, y = x[order], y[order]
    if method == "cubic":
        deg = min(3, len(x) - 1)
        p = np.polyfit(x, y, deg)
        P = np.polyint(p)
        return float(np.polyval(P, hi) - np.polyval(P, lo))
    if method == "pchip":
        from scipy.interpolate import PchipInterpolator

        if np.any(np.diff(x) <= 0):
            raise InputError("pchip needs strictly monotonic curves (repeated or non-monotonic values)")
        return float(PchipInterpolator(x, y).integrate(lo, hi))
    raise InputError(f"unknown BD method '{method}' (expected cubic or pchip)")


def bd_rate(rate_a, metric_a, rate_b, metric_b, *, method: str = "cubic") -> float:
    """BD-rate of B relative to A in percent (negative: B saves bits)."""
    la, ma = _prep(rate_a, metric_a, "curve A")
    lb, mb = _prep(rate_b, metric_b, "curve B")
    lo, hi = _overlap(ma, mb, "metric")
    if not hi > lo:
        raise InputError(f"the curves' metric ranges do not overlap (A {ma.min():.4g}..{ma.max():.4g}, "
                         f"B {mb.min():.4g}..{mb.max():.4g})")
    ia = _integral(ma, la, lo, hi, method)
    ib = _integral(mb, lb, lo, hi, method)
    return float((10 ** ((ib - ia) / (hi - lo)) - 1) * 100)


def bd_metric(rate_a, metric_a, rate_b, metric_b, *, method: str = "cubic") -> float:
    """BD-metric (B − A) averaged over the overlapping log-rate interval, in metric units."""
    la, ma = _prep(rate_a, metric_a, "curve A")
    lb, mb = _prep(rate_b, metric_b, "curve B")
    lo, hi = _overlap(la, lb, "log-rate")
    if not hi > lo:
        raise InputError("the curves' rate ranges do not overlap")
    ia = _integral(la, ma, lo, hi, method)
    ib = _integral(lb, mb, lo, hi, method)
    return float((ib - ia) / (hi - lo))


def load_curve(spec: str | Path, metric: str = "psnr", *, rate: str = "bpp") -> tuple[np.ndarray, np.ndarray, str]:
    """``(rate, metric, label)`` from a results CSV (``path[:col=v,...]``) or a CompressAI JSON."""
    spec = str(spec)
    path, _, filt = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if p.suffix.lower() == ".json":
        try:
            obj = json.loads(p.read_text())
            res = obj["results"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise InputError(f"{p}: not a CompressAI-style results JSON ({e})") from None
        keys = JSON_ALIASES.get(metric, (metric, f"{metric}-rgb"))
        key = next((k for k in keys if k in res), None)
        if key is None:
            raise InputError(f"{p}: no '{metric}' in results (has: {', '.join(res)})")
        if rate not in res:
            raise InputError(f"{p}: no '{rate}' in results")
        return np.asarray(res[rate], float), np.asarray(res[key], float), obj.get("name", p.stem)
    import pandas as pd

    df = pd.read_csv(p)
    for cond in filter(None, filt.split(",")):
        col, eq, val = cond.partition("=")
        if not eq or col not in df.columns:
            raise InputError(f"{p}: bad row filter '{cond}' (expected column=value; columns: {', '.join(df.columns)})")
        df = df[df[col].astype(str) == val]
    for col in (rate, metric):
        if col not in df.columns:
            raise InputError(f"{p}: no column '{col}' (columns: {', '.join(df.columns)})")
    if df.empty:
        raise InputError(f"{p}: no rows{' match ' + filt if filt else ''}")
    key = "model" if "model" in df.columns else None
    if key:
        g = df.groupby(key, sort=False)[[rate, metric]].mean()
        r, m = g[rate].to_numpy(float), g[metric].to_numpy(float)
    else:
        r, m = df[rate].to_numpy(float), df[metric].to_numpy(float)
    return r, m, p.stem + (f"[{filt}]" if filt else "")


def bd_compare(a: str | Path, b: str | Path, metric: str = "psnr", method: str = "cubic") -> dict:
    """``{"bd_rate": %, "bd_metric": value, ...}`` for two curve files (see :func:`load_curve`)."""
    ra, ma, na = load_curve(a, metric)
    rb, mb, nb = load_curve(b, metric)
    out: dict = {"metric": metric, "method": method, "a": na, "b": nb}
    errors = []
    for key, fn in (("bd_rate", bd_rate), ("bd_metric", bd_metric)):
        try:
            with warnings.catch_warnings():
                if key == "bd_metric":  # each curve's own warnings once (from bd_rate)
                    warnings.simplefilter("ignore", BDWarning)
                out[key] = fn(ra, ma, rb, mb, method=method)
        except InputError as e:
            if "do not overlap" not in str(e):
                raise
            errors.append(str(e))
            out[key] = float("nan")
            _warn(f"{key} is undefined: {e}")
    if len(errors) == 2:
        raise InputError("; ".join(errors))
    return out
