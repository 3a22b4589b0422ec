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
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lossarena.data.triplets import read_triplets, validate_triplets

from lossarena.errors import InputError, LossarenaError, MissingWeightsError

from . import register_learned_metrics, scoring
from .common import ImageCache, triplet_batches
from .predictors import get_predictor, is_predictor, predictor_names

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Scorer:
    """One column of the benchmark: a metric (scores each pair) or a 2AFC predictor."""

    name: str
    kind: str  # "metric" | "predictor"
    run: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]  # run(ref, a, b[, reference names])
    backbones: tuple[str, ...] = ()
    # full-reference metrics: values per (distorted, reference) batch and direction, so that a stimulus
    # that appears in many triplets (a study's votes) is scored once
    values: Callable[[torch.Tensor, torch.Tensor], np.ndarray] | None = None
    lower_better: bool = True


@dataclasses.dataclass
class TwoAfcConfig:
    """Settings of :func:`run_2afc` (see there); learned-metric checkpoints are explicit inputs."""

    bootstrap: int = 1000
    batch_size: int = 16
    crop: int | None = None
    seed: int = 0
    ci_on: str = "score_2afc"
    dpis_checkpoint: str | Path | None = None
    roi_mlp_checkpoint: str | Path | None = None
    title: str | None = None
    progress: bool = True
    baselines_only: bool = False


def _metric_scorer(name: str, options: dict) -> Scorer:
    from lossarena.metrics import get_metric

    spec = get_metric(name, **options)
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


def _run_memo(s: Scorer, memo: dict, idx: list[int], df: pd.DataFrame, cache: ImageCache, batch_size: int):
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


def _predictor_scorer(name: str, checkpoint: Path | None) -> Scorer:
    spec = get_predictor(name)
    predict = spec.load(checkpoint)

    def run(ref, a, b, names=None):
        with torch.no_grad():
            p = (predict(ref, a, b, names) if names is not None else predict(ref, a, b))
            p = p.detach().double().cpu().numpy().reshape(-1)
        return p, 1.0 - p, scoring.preference_from_prob(p)

    return Scorer(spec.name, "predictor", run, tuple(spec.backbones(checkpoint)))


def make_scorer(name: str, *, dpis_checkpoint=None, roi_mlp_checkpoint=None) -> Scorer:
    """The scorer for a metric spec (``NAME[:key=value]``) or a 2AFC predictor name.

    ``dpis_checkpoint`` is bound as the ``dpis`` metric's ``checkpoint`` option; ``roi_mlp_checkpoint``
    is passed to the ROI-MLP predictors. ``None``: their default locations.
    """
    register_learned_metrics()
    if is_predictor(name):
        return _predictor_scorer(name, Path(roi_mlp_checkpoint) if roi_mlp_checkpoint else None)
    from lossarena.metrics import parse_metric_spec

    opts = {}
    if dpis_checkpoint and parse_metric_spec(name).name == "dpis" and ":" not in name:
        opts["checkpoint"] = str(dpis_checkpoint)
    return _metric_scorer(name, opts)


def default_names(*, dpis_checkpoint=None, roi_mlp_checkpoint=None) -> list[str]:
    """Every registered metric whose backbones are present, plus every available 2AFC predictor."""
    from lossarena.metrics import list_metrics, weights_present

    register_learned_metrics()
    names = [s.name for s in list_metrics() if weights_present(s)]
    ck = Path(roi_mlp_checkpoint) if roi_mlp_checkpoint else None
    names += [n for n in predictor_names() if get_predictor(n).available(ck)]
    return names


@dataclasses.dataclass
class BenchmarkOutput:
    acc: pd.DataFrame
    predictions: pd.DataFrame
    skipped: dict[str, str]
    standin: list[str]  # stand-in (random) backbones used by the scored metrics: numbers not real
    out_csv: Path | None
    report: Path | None


def _build_scorers(names: list[str], explicit: bool, cfg: TwoAfcConfig, skipped: dict[str, str]) -> list[Scorer]:
    scorers = []
    for n in names:
        try:
            scorers.append(make_scorer(n, dpis_checkpoint=cfg.dpis_checkpoint,
                                       roi_mlp_checkpoint=cfg.roi_mlp_checkpoint))
        except MissingWeightsError as e:
            if explicit:
                raise
            skipped[n] = str(e)
    return scorers


def _score_all(df: pd.DataFrame, scorers: list[Scorer], images_dir: Path, cfg: TwoAfcConfig, *,
               explicit: bool, source: str, skipped: dict[str, str]) -> tuple[dict, dict]:
    """Run every scorer on every triplet batch; a scorer that fails is dropped (explicit: re-raised)."""
    from tqdm.auto import tqdm

    cache = ImageCache(images_dir, cfg.crop)
    n_rows = len(df)
    pref = {s.name: np.full(n_rows, np.nan) for s in scorers}
    vals = {s.name: (np.full(n_rows, np.nan), np.full(n_rows, np.nan)) for s in scorers}
    # progress in triplets: batches end where the image size changes, so their number is not known up front
    bar = tqdm(total=n_rows, desc="2afc", unit="triplet", disable=not cfg.progress or not scorers, file=sys.stderr)
    memos: dict[str, dict] = {s.name: {} for s in scorers}
    for idx, ref, a, b in triplet_batches(df, cache, cfg.batch_size) if scorers else []:
        for s in list(scorers):
            try:
                if s.values is not None:
                    va, vb, pr = _run_memo(s, memos[s.name], idx, df, cache, cfg.batch_size)
                else:  # predictors also get the references' file names (saliency from a mask folder)
                    va, vb, pr = s.run(ref, a, b, [Path(df["reference"].iat[i]).name for i in idx])
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
        bar.update(len(idx))
    bar.close()
    return pref, vals


def _predictions(df: pd.DataFrame, scorers: list[Scorer], pref: dict, vals: dict) -> pd.DataFrame:
    pred = df[["reference", "a", "b", "p_a"]].copy()
    for s in scorers:
        pred[f"{s.name}:a"] = vals[s.name][0]
        pred[f"{s.name}:b"] = vals[s.name][1]
        pred[f"{s.name}:pref_a"] = pref[s.name]
    return pred


def run_2afc(triplets, images_dir, metrics: Sequence[str] | None = None, bootstrap: int = 1000,
             out_csv=None, report_dir=None, *, config: TwoAfcConfig | None = None, **settings) -> BenchmarkOutput:
    """Benchmark ``metrics`` (default: every available metric and 2AFC predictor) on ``triplets``.

    Parameters
    ----------
    triplets : str, Path or DataFrame
        Canonical triplets (``reference,a,b,p_a``); image paths relative to ``images_dir``.
    images_dir : str or Path
        Folder of the images (may be None with ``baselines_only``).
    metrics : sequence of str, optional
        Metric specs or predictor names. Named explicitly, each must work (missing weights → exit 3);
        from the default list, one that cannot run is skipped with a logged reason.
    bootstrap : int
        Bootstrap resamples for the 95 % CI.
    out_csv, report_dir : path, optional
        ``acc.csv`` to write; folder for the HTML report.
    config : TwoAfcConfig, optional
        Other settings; keyword ``settings`` (e.g. ``crop=64``, ``dpis_checkpoint=...``) override its fields.

    Returns
    -------
    BenchmarkOutput
    """
    cfg = dataclasses.replace(config or TwoAfcConfig(), bootstrap=bootstrap, **settings)
    if isinstance(triplets, pd.DataFrame):
        df, source = validate_triplets(triplets), "triplets"
    else:
        df, source = read_triplets(triplets), str(triplets)
    explicit = metrics is not None and len(metrics) > 0
    names: list[str] = []
    if not cfg.baselines_only:
        if images_dir is None or not Path(images_dir).is_dir():
            raise InputError(f"{images_dir}: images folder not found")
        names = list(dict.fromkeys(metrics)) if explicit else default_names(
            dpis_checkpoint=cfg.dpis_checkpoint, roi_mlp_checkpoint=cfg.roi_mlp_checkpoint)
    skipped: dict[str, str] = {}
    scorers = _build_scorers(names, explicit, cfg, skipped)
    pref, vals = _score_all(df, scorers, Path(images_dir or "."), cfg, explicit=explicit, source=source,
                            skipped=skipped)
    for n, why in skipped.items():
        log.warning("skipped %s: %s", n, why)

    p_a = df["p_a"].to_numpy(dtype=float)
    results = [scoring.summarize(s.name, pref[s.name], p_a, n_boot=cfg.bootstrap, seed=cfg.seed, ci_on=cfg.ci_on)
               for s in scorers]
    results += scoring.reference_rows(df, n_boot=cfg.bootstrap, seed=cfg.seed, ci_on=cfg.ci_on)
    acc = scoring.results_frame(results)
    pred = _predictions(df, scorers, pref, vals)
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

        report = write_report(acc, pred, report_dir, skipped=skipped, source=source, bootstrap=cfg.bootstrap,
                              ci_on=cfg.ci_on, title=cfg.title, kinds={s.name: s.kind for s in scorers},
                              standin=standin)
    return BenchmarkOutput(acc, pred, skipped, standin, out_csv, report)
