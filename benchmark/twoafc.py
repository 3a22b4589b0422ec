"""The 2AFC benchmark: score metrics and 2AFC predictors against human triplet judgments.

:func:`run_2afc` is the whole stage (CLI ``lossarena benchmark 2afc``): it loads each triplet's
images once, runs every metric on them in batches, and writes ``acc.csv``
(``metric,score_2afc,accuracy,ci_low,ci_high,n``; see :mod:`lossarena.benchmark.scoring` for the
definitions) plus, with ``report_dir``, an HTML report.

Protocol: images are scored as they are (BAPPS' 64×64 patches as is, CLIC's 768×768 crops whole);
``crop=N`` centre-crops all three images of a triplet to N×N first. The three images of a triplet
must have the same size. DPIS averages over 224×224 patches internally (its own protocol).
"""

from __future__ import annotations

import dataclasses
import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lossarena.data.images import load_image
from lossarena.data.triplets import read_triplets, validate_triplets

from lossarena.errors import InputError, LossarenaError, MissingWeightsError

from . import scoring


def _ensure_registered() -> None:
    from . import dpis  # noqa: F401  (registers the `dpis` metric)


@dataclasses.dataclass
class Scorer:
    """One column of the benchmark: a metric (scores each pair) or a 2AFC predictor."""

    name: str
    kind: str  # "metric" | "predictor"
    run: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[np.ndarray, np.ndarray, np.ndarray]]
    backbones: tuple[str, ...] = ()
    # full-reference metrics: values per (distorted, reference) batch and direction, so that a stimulus
    # that appears in many triplets (a study's votes) is scored once
    values: Callable[[torch.Tensor, torch.Tensor], np.ndarray] | None = None
    lower_better: bool = True


def _metric_scorer(name: str) -> Scorer:
    from lossarena.metrics import get_metric

    spec = get_metric(name)
    fn = spec.function

    def values(dist, ref):
        with torch.no_grad():
            return fn(dist, ref).detach().double().cpu().numpy().reshape(-1)

    def run(ref, a, b):
        v = values(torch.cat([a, b]), torch.cat([ref, ref]))
        n = a.shape[0]
        v_a, v_b = v[:n], v[n:]
        return v_a, v_b, scoring.preference_from_values(v_a, v_b, spec.lower_better)

    return Scorer(spec.name, "metric", run, tuple(spec.needs_weights), values, spec.lower_better)


def _run_memo(s: Scorer, memo: dict, idx: list[int], df: pd.DataFrame, cache: _ImageCache, batch_size: int):
    """``s.run`` for a batch, scoring each (distorted, reference) pair once across the whole run."""
    keys_a = [(df["a"].iat[i], df["reference"].iat[i]) for i in idx]
    keys_b = [(df["b"].iat[i], df["reference"].iat[i]) for i in idx]
    todo = [k for k in dict.fromkeys(keys_a + keys_b) if k not in memo]
    for j in range(0, len(todo), 2 * batch_size):
        chunk = todo[j:j + 2 * batch_size]
        v = s.values(torch.cat([cache.get(d) for d, _ in chunk]), torch.cat([cache.get(r) for _, r in chunk]))
        memo.update(zip(chunk, v.tolist()))
    v_a = np.array([memo[k] for k in keys_a], dtype=float)
    v_b = np.array([memo[k] for k in keys_b], dtype=float)
    return v_a, v_b, scoring.preference_from_values(v_a, v_b, s.lower_better)


def _predictor_scorer(name: str) -> Scorer:
    from .predictors import get_predictor

    spec = get_predictor(name)
    predict = spec.load()

    def run(ref, a, b):
        with torch.no_grad():
            p = predict(ref, a, b).detach().double().cpu().numpy().reshape(-1)
        return p, 1.0 - p, scoring.preference_from_prob(p)

    return Scorer(spec.name, "predictor", run, tuple(getattr(spec, "backbones", lambda: ())()))


def make_scorer(name: str) -> Scorer:
    from .predictors import is_predictor

    _ensure_registered()
    if is_predictor(name):
        return _predictor_scorer(name)
    return _metric_scorer(name)


def default_names() -> list[str]:
    """Every registered metric whose backbones are present, plus every available 2AFC predictor."""
    from lossarena.metrics import list_metrics, weights_present

    from .predictors import PREDICTORS, predictor_names

    _ensure_registered()
    names = [s.name for s in list_metrics() if weights_present(s)]
    names += [n for n in predictor_names() if PREDICTORS.get(n).available()]
    return names


def _center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if h < size or w < size:
        return x
    t, left = (h - size) // 2, (w - size) // 2
    return x[..., t:t + size, left:left + size]


class _ImageCache:
    def __init__(self, root: Path, crop: int | None, capacity: int = 96):
        self.root, self.crop, self.capacity = root, crop, capacity
        self._d: OrderedDict[str, torch.Tensor] = OrderedDict()

    def get(self, rel: str) -> torch.Tensor:
        if rel in self._d:
            self._d.move_to_end(rel)
            return self._d[rel]
        p = Path(rel)
        x = load_image(p if p.is_absolute() else self.root / p)
        if self.crop:
            x = _center_crop(x, self.crop)
        self._d[rel] = x
        if len(self._d) > self.capacity:
            self._d.popitem(last=False)
        return x


def _batches(df: pd.DataFrame, cache: _ImageCache, batch_size: int):
    """Yield (row indices, ref, a, b) with same-size images stacked."""
    idx, refs, as_, bs = [], [], [], []
    shape = None
    for i, (r, a, b) in enumerate(zip(df["reference"], df["a"], df["b"])):
        xr, xa, xb = cache.get(r), cache.get(a), cache.get(b)
        if not (xr.shape == xa.shape == xb.shape):
            raise InputError(f"triplet line {i + 2}: image sizes differ: {r} {tuple(xr.shape[-2:])}, "
                             f"{a} {tuple(xa.shape[-2:])}, {b} {tuple(xb.shape[-2:])}")
        if idx and (xr.shape != shape or len(idx) >= batch_size):
            yield idx, torch.cat(refs), torch.cat(as_), torch.cat(bs)
            idx, refs, as_, bs = [], [], [], []
        shape = xr.shape
        idx.append(i)
        refs.append(xr)
        as_.append(xa)
        bs.append(xb)
    if idx:
        yield idx, torch.cat(refs), torch.cat(as_), torch.cat(bs)


@dataclasses.dataclass
class BenchmarkOutput:
    acc: pd.DataFrame
    predictions: pd.DataFrame
    skipped: dict[str, str]
    standin: list[str]  # stand-in (random) backbones used by the scored metrics: numbers not real
    out_csv: Path | None
    report: Path | None


def run_2afc(triplets, images_dir, metrics: Sequence[str] | None = None, bootstrap: int = 1000,
             out_csv=None, report_dir=None, *, batch_size: int = 16, crop: int | None = None, seed: int = 0,
             ci_on: str = "score_2afc", dpis_checkpoint=None, roi_mlp_checkpoint=None,
             title: str | None = None, progress: bool = True, baselines_only: bool = False) -> BenchmarkOutput:
    """Benchmark ``metrics`` (default: every available metric and 2AFC predictor) on ``triplets``.

    ``triplets`` is a canonical CSV path or a DataFrame with ``reference,a,b,p_a``; image paths are
    relative to ``images_dir``. Writes ``out_csv`` (``acc.csv``) and, with ``report_dir``, an HTML
    report with a bar chart. Metrics named explicitly must work (missing weights -> exit 3); from
    the default list, a metric that cannot run is skipped with a printed reason. ``baselines_only``
    scores only the always-majority and human-ceiling rows from the labels (no images needed).
    """
    from tqdm.auto import tqdm

    from . import dpis, roi_mlp

    if dpis_checkpoint is not None:
        dpis.set_checkpoint(dpis_checkpoint)
    if roi_mlp_checkpoint is not None:
        roi_mlp.set_checkpoint(roi_mlp_checkpoint)
    if isinstance(triplets, pd.DataFrame):
        df, source = validate_triplets(triplets), "triplets"
    else:
        df, source = read_triplets(triplets), str(triplets)
    explicit = metrics is not None and len(metrics) > 0
    if baselines_only:
        names = []
    else:
        if images_dir is None or not Path(images_dir).is_dir():
            raise InputError(f"{images_dir}: images folder not found")
        names = list(dict.fromkeys(metrics)) if explicit else default_names()
    images_dir = Path(images_dir or ".")

    skipped: dict[str, str] = {}
    scorers: list[Scorer] = []
    for n in names:
        try:
            scorers.append(make_scorer(n))
        except MissingWeightsError as e:
            if explicit:
                raise
            skipped[n] = str(e)
    cache = _ImageCache(images_dir, crop)
    n_rows = len(df)
    pref = {s.name: np.full(n_rows, np.nan) for s in scorers}
    vals = {s.name: (np.full(n_rows, np.nan), np.full(n_rows, np.nan)) for s in scorers}
    n_batches = -(-n_rows // batch_size)
    bar = tqdm(_batches(df, cache, batch_size) if scorers else [], total=n_batches, desc="2afc", unit="batch",
               disable=not progress or not scorers, file=sys.stderr)
    memos: dict[str, dict] = {s.name: {} for s in scorers}
    for idx, ref, a, b in bar:
        for s in list(scorers):
            try:
                if s.values is not None:
                    va, vb, pr = _run_memo(s, memos[s.name], idx, df, cache, batch_size)
                else:
                    va, vb, pr = s.run(ref, a, b)
            except MissingWeightsError as e:
                if explicit:
                    raise
                skipped[s.name] = str(e)
            except (LossarenaError, ValueError, RuntimeError) as e:
                msg = f"{type(e).__name__}: {e}"
                if explicit:
                    raise InputError(f"metric '{s.name}' failed on triplet line {idx[0] + 2} of {source}: {msg}"
                                     ) from None
                skipped[s.name] = msg
            else:
                pref[s.name][idx] = pr
                vals[s.name][0][idx] = va
                vals[s.name][1][idx] = vb
                continue
            scorers.remove(s)
            pref.pop(s.name), vals.pop(s.name)
    for n, why in skipped.items():
        print(f"skipped {n}: {why}", file=sys.stderr)

    p_a = df["p_a"].to_numpy(dtype=float)
    results = [scoring.summarize(s.name, pref[s.name], p_a, n_boot=bootstrap, seed=seed, ci_on=ci_on)
               for s in scorers]
    results += scoring.reference_rows(df, n_boot=bootstrap, seed=seed, ci_on=ci_on)
    acc = scoring.results_frame(results)
    pred = df[list(("reference", "a", "b", "p_a"))].copy()
    for s in scorers:
        pred[f"{s.name}:a"] = vals[s.name][0]
        pred[f"{s.name}:b"] = vals[s.name][1]
        pred[f"{s.name}:pref_a"] = pref[s.name]
    if out_csv is not None:
        out_csv = Path(out_csv)
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        acc.to_csv(out_csv, index=False, float_format="%.6f")
    from lossarena.metrics import weights as W

    needed = sorted({b for s in scorers for b in s.backbones})
    standin = W.standin_in_use(needed) if needed else []
    report = None
    if report_dir is not None:
        from .report import write_report

        report = write_report(acc, pred, report_dir, skipped=skipped, source=source, bootstrap=bootstrap,
                              ci_on=ci_on, title=title, kinds={s.name: s.kind for s in scorers},
                              standin=standin)
    return BenchmarkOutput(acc, pred, skipped, standin, out_csv, report)
