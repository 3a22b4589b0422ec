"""``codecs match``: rate-matched stimuli for the study.

For every image, every condition (a training loss of the zoo, a classical anchor, any registered
provider) and every target bpp: the encoding whose real bpp is nearest the target (zoo: the nearest λ;
anchors: the bisected quality; a codec with a continuous rate such as the ROI codec: the bisected rate
parameter). Zoo checkpoints are ranked by their estimated bpp (one forward pass each) and only the
nearest two are really encoded; every stimulus's cost (forward passes, encodes, seconds) is in
``match_details.csv``. Writes ``OUT/<content>/<condition>_<target>.png``, the original as
``OUT/<content>/reference.png`` and ``OUT/manifest.csv`` with columns
``content,condition,target_bpp,bpp,path`` (+ one column per requested metric; the reference row has
condition ``reference`` and empty target_bpp, bpp and metric cells). ``OUT/match_details.csv`` records which checkpoint
or quality produced each stimulus.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from lossarena.data.schemas import REFERENCE

from lossarena.errors import InputError

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["content", "condition", "target_bpp", "bpp", "path"]


def parse_targets(s) -> list[float]:
    if isinstance(s, (list, tuple)):
        vals = [float(v) for v in s]
    else:
        try:
            vals = [float(v) for v in str(s).split(",") if v.strip()]
        except ValueError:
            raise InputError(f"--targets: expected comma-separated bpp values, got '{s}'") from None
    if not vals or any(v <= 0 for v in vals):
        raise InputError(f"--targets: expected positive bpp values, got '{s}'")
    return vals


def _conditions(zoo, anchors, codecs, losses, device):
    from .providers import get_provider

    conditions = []
    for name in list(codecs or ()) + list(anchors or ()):
        conditions += get_provider(name).conditions(zoo, losses=losses, device=device)
    return conditions


def _match_images(paths, zoo, targets, out, anchors, codecs, losses, metric_names, device,
                  threads: int | None = None, bar=None, conditions=None) -> list[tuple[list, list, dict]]:
    """Match every image in ``paths``; per image ``(manifest rows, detail rows, cost)``.

    Builds its own conditions, so it runs unchanged in a worker process (``threads``, if given, sets
    torch's thread count there)."""
    import torch
    from lossarena.data.images import load_image, save_image

    from .evaluate import score

    if threads:
        torch.set_num_threads(threads)
    if conditions is None:
        conditions = _conditions(zoo, anchors, codecs, losses, device)
    results, warned = [], set()
    for p in map(Path, paths):
        content = p.stem
        rows, details, cost = [], [], {}
        x = load_image(p)
        ref_rel = f"{content}/reference.png"
        save_image(x, out / ref_rel)
        # the reference row leaves bpp and the metric columns empty (a metric of an image with itself)
        rows.append({"content": content, "condition": REFERENCE, "target_bpp": "", "bpp": "", "path": ref_rel})
        for c in conditions:
            for t in targets:
                enc = c.encode(x, t)
                rel = f"{content}/{c.name}_{t:g}.png"
                save_image(enc.x_hat, out / rel)
                row = {"content": content, "condition": c.name, "target_bpp": t, "bpp": round(enc.bpp, 6),
                       "path": rel}
                row.update(score(enc.x_hat.clamp(0, 1), x, metric_names, warned=warned))
                rows.append(row)
                for k, v in (enc.meta.get("cost") or {}).items():
                    cost[k] = cost.get(k, 0) + v
                details.append({"content": content, "condition": c.name, "target_bpp": t,
                                "bpp": round(enc.bpp, 6), "details": json.dumps(enc.meta, sort_keys=True)})
                if bar is not None:
                    bar.update(1)
        results.append((rows, details, cost))
    return results


def rate_error(bpp: float, target: float) -> float:
    """Relative miss of a target bitrate: ``(bpp - target) / target``."""
    return (float(bpp) - float(target)) / float(target)


def _leave_out_misses(rows: list[dict], details: list[dict], limit: float) -> tuple[list[dict], list[dict]]:
    """Drop the manifest rows whose real bpp misses its target by more than ``limit``; mark them in the
    details and name them in the log (grouped by condition)."""
    kept, out = [], {}
    for r in rows:
        if r["condition"] != REFERENCE and abs(rate_error(r["bpp"], r["target_bpp"])) > limit:
            out[(r["content"], r["condition"], r["target_bpp"])] = rate_error(r["bpp"], r["target_bpp"])
        else:
            kept.append(r)
    for d in details:
        e = out.get((d["content"], d["condition"], d["target_bpp"]))
        if e is not None:
            meta = json.loads(d["details"])
            meta["left_out"] = f"rate error {e:+.1%} > ±{limit:.0%}"
            d["details"] = json.dumps(meta, sort_keys=True)
    by_cond: dict[str, list[str]] = {}
    for (content, cond, t), e in out.items():
        by_cond.setdefault(cond, []).append(f"{content}@{t:g} ({e:+.0%})")
    for cond, where in by_cond.items():
        log.warning("match: %s left out at %d image×target(s) — its nearest encoding misses by more than ±%.0f%%: %s",
                    cond, len(where), 100 * limit, ", ".join(where))
    return kept, details


def match_rates(zoo, images, targets, out, *, anchors=(), codecs=("hyperprior",), losses=None,
                metrics=("psnr",), device: str = "auto", progress: bool = True, jobs: int = 1,
                max_rate_error: float | None = None) -> Path:
    """Write rate-matched stimuli and ``manifest.csv`` into ``out``; returns the manifest path.

    ``max_rate_error`` (relative, e.g. 0.15): a condition whose nearest encoding misses a target by more
    than that is left out of that target's manifest rows (a codec that cannot reach a rate must not be
    compared there at another rate); ``match_details.csv`` keeps it with ``"left_out"`` in its details
    and the log names every one. ``None`` keeps every nearest encoding.

    ``jobs`` > 1 matches the images in that many worker processes (on a multi-GPU machine worker k uses
    ``cuda:k``; CPU workers share the cores, :func:`~lossarena.codecs.evaluate.worker_threads`); the files
    written are the same as one job run with the same per-process thread count, in the same order
    (float reductions may differ in the last bit between thread counts).
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    import torch
    from lossarena.data.images import list_images
    from tqdm import tqdm

    from .evaluate import available_metrics, worker_threads

    targets = parse_targets(targets)
    if max_rate_error is not None and not (0 < float(max_rate_error) < 10):
        raise InputError(f"--max-rate-error: expected a relative error in (0, 10), got {max_rate_error}")
    paths = list_images(images) if isinstance(images, (str, Path)) else [Path(p) for p in images]
    conditions = _conditions(zoo, anchors, codecs, losses, device)
    if not conditions:
        raise InputError("no conditions to match (give --zoo and/or --anchors)")
    seen = set()
    for c in conditions:
        if c.name in seen or c.name == REFERENCE:
            raise InputError(f"two providers give condition '{c.name}'")
        seen.add(c.name)
    contents = set()
    for p in paths:
        if p.stem in contents:
            raise InputError(f"{p}: two images named '{p.stem}'")
        contents.add(p.stem)
    metric_names = available_metrics(list(metrics)) if metrics else []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = max(1, min(int(jobs), len(paths)))
    args = (zoo, targets, out, anchors, codecs, losses, metric_names)
    if n == 1:
        bar = tqdm(total=len(paths) * len(conditions) * len(targets), desc="match", disable=not progress,
                   dynamic_ncols=True)
        results = _match_images(paths, *args, device, bar=bar, conditions=conditions)
        bar.close()
    else:
        gpus = torch.cuda.device_count() if str(device).startswith("cuda") or str(device) == "auto" else 0
        results = [None] * len(paths)
        with cf.ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
            futs = {pool.submit(_match_images, [paths[i]], *args,
                                f"cuda:{k % gpus}" if gpus else ("cpu" if device == "auto" else device),
                                threads=None if gpus else worker_threads(n)): i
                    for k, i in enumerate(range(len(paths)))}
            for f in tqdm(cf.as_completed(futs), total=len(futs), desc="match", disable=not progress,
                          dynamic_ncols=True):
                results[futs[f]] = f.result()[0]
        del conditions
    rows, details, cost = [], [], {}
    for r, d, c in results:
        rows += r
        details += d
        for k, v in c.items():
            cost[k] = cost.get(k, 0) + v
    if cost:
        log.info("rate matching cost: %s", ", ".join(f"{k} {v:g}" for k, v in cost.items()))
    if max_rate_error is not None:
        rows, details = _leave_out_misses(rows, details, float(max_rate_error))
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS + metric_names)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    with open(out / "match_details.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["content", "condition", "target_bpp", "bpp", "details"])
        w.writeheader()
        w.writerows(details)
    return manifest
