"""``codecs evaluate``: per image × model, real bpp (file bits / pixels), estimated bpp, every metric.

``results.csv`` columns: ``image, model, codec, loss, lmbda, level, step, bpp, bpp_est, seconds_enc,
seconds_dec`` then one column per metric (registry names, e.g. ``psnr, mse, ssim, ms-ssim``), computed
on the image decoded from the real bitstream against the original. Metrics whose backbone weights are
missing are left out (one line says so).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from lossarena.data.schemas import RESULTS

from lossarena.errors import InputError

log = logging.getLogger(__name__)

BASE_COLUMNS = list(RESULTS.names)  # the one definition: lossarena.data.schemas.RESULTS


def available_metrics(names: list[str] | None = None, *, log=log.warning) -> list[str]:
    """Registry metrics that can run here (weights present), in registry order."""
    from lossarena.metrics import get_metric, list_metrics, weights_present

    specs = list_metrics() if names is None else [get_metric(n) for n in names]
    out = []
    for s in specs:
        if weights_present(s):
            out.append(s.name)
        else:
            log(f"skipped metric {s.name}: backbone weights {', '.join(s.needs_weights)} missing "
                f"(`lossarena weights status`)")
    return out


def score(x_hat: torch.Tensor, x: torch.Tensor, metrics: list[str], *, warned: set | None = None) -> dict:
    from lossarena.metrics import compute

    row = {}
    for m in metrics:
        try:
            with torch.no_grad():
                row[m] = float(compute(m, x_hat, x)[0])
        except (ValueError, RuntimeError) as e:
            row[m] = float("nan")
            if warned is not None and m not in warned:
                warned.add(m)
                log.warning("metric %s failed (%s); NaN in its column", m, e)
    return row


def evaluate(ckpts, images, out_csv, *, metrics: list[str] | None = None, device: str = "auto",
             progress: bool = True, resume: bool = False, jobs: int = 1):
    """Evaluate checkpoints on a folder (or list) of images; appends rows as they come, returns the DataFrame.

    Parameters
    ----------
    ckpts : list of str or Path
        Codec checkpoints of any registered format (:func:`~lossarena.codecs.interface.open_codec`).
    images : str, Path or list
        Test images (a folder or files).
    out_csv : str or Path
        ``results.csv`` (columns :data:`BASE_COLUMNS` + one per metric). Rows are appended and flushed
        after every image, so an interrupted run loses at most one row.
    device : str
        ``auto|cpu|cuda|cuda:N``: the codec and the metrics run there.
    resume : bool
        Keep the rows already in ``out_csv`` (same columns required) and evaluate only the missing
        (image, model) pairs.
    jobs : int
        Evaluate the checkpoints in this many processes at once (each writes ``<out>.partK.csv``,
        resumable on its own; the parts are then concatenated into ``out_csv``). On a multi-GPU machine
        give ``device="cuda"`` and ``jobs`` = number of GPUs: process k uses ``cuda:k``.

    Returns
    -------
    pandas.DataFrame
        Every row of ``out_csv``.
    """
    import csv

    import pandas as pd
    from lossarena.data.images import list_images, load_image
    from tqdm import tqdm

    from .bitstream import Bitstream, Limits
    from .device import resolve_device
    from .interface import open_codec

    if jobs > 1 and len(ckpts) > 1:
        return _evaluate_parallel(list(ckpts), images, out_csv, metrics=metrics, device=device, resume=resume,
                                  jobs=jobs)
    dev = resolve_device(device)
    paths = list_images(images) if isinstance(images, (str, Path)) else [Path(p) for p in images]
    metric_names = available_metrics(metrics)
    columns = BASE_COLUMNS + metric_names
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    done: set[tuple[str, str]] = set()
    if resume and out_csv.is_file() and out_csv.stat().st_size > 0:
        old = pd.read_csv(out_csv, dtype={"image": str, "model": str})
        if list(old.columns) != columns:
            raise InputError(f"{out_csv}: cannot resume: its columns ({', '.join(old.columns)}) are not "
                             f"{', '.join(columns)}")
        done = set(zip(old["image"], old["model"]))
    else:
        with open(out_csv, "w", newline="") as f:
            csv.writer(f).writerow(columns)
    warned: set = set()
    todo = [(c, p) for c in map(Path, ckpts) for p in paths if (p.stem, c.stem) not in done]
    bar = tqdm(total=len(todo), desc="evaluate", disable=not progress, dynamic_ncols=True)
    with open(out_csv, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        for ck in dict.fromkeys(c for c, _ in todo):  # one codec in memory at a time
            codec = open_codec(ck, dev)
            cfg = codec.config
            for p in [p for c, p in todo if c == ck]:
                x = load_image(p)
                pixels = x.shape[-2] * x.shape[-1]
                xd = x.to(dev)
                sync(dev)
                t0 = time.perf_counter()
                data = codec.compress(xd).to_bytes()
                t1 = time.perf_counter()
                # our own stream: the hostile-file size limits (docs/security.md) must not refuse a big image
                own = Limits(max_width=x.shape[-1], max_height=x.shape[-2], max_pixels=pixels)
                x_hat = codec.decompress(Bitstream.from_bytes(data, limits=own))
                t2 = time.perf_counter()
                est = float(codec.estimate_bpp(xd)[0])
                row = {"image": p.stem, "model": ck.stem, "codec": cfg.get("codec", codec.codec_id),
                       "loss": cfg.get("loss"), "lmbda": cfg.get("lmbda"), "level": cfg.get("level"),
                       "step": cfg.get("step"), "bpp": len(data) * 8 / pixels, "bpp_est": est,
                       "seconds_enc": t1 - t0, "seconds_dec": t2 - t1}
                row.update(score(x_hat.to(dev), xd, metric_names, warned=warned))
                w.writerow(row)
                f.flush()
                bar.update(1)
            del codec
    bar.close()
    return pd.read_csv(out_csv, dtype={"image": str, "model": str})


def _evaluate_parallel(ckpts, images, out_csv, *, metrics, device, resume, jobs):
    import concurrent.futures as cf
    import multiprocessing as mp

    import pandas as pd
    import torch

    out_csv = Path(out_csv)
    n = min(jobs, len(ckpts))
    groups = [ckpts[k::n] for k in range(n)]
    gpus = torch.cuda.device_count() if str(device).startswith("cuda") or str(device) == "auto" else 0
    parts = [out_csv.with_name(f"{out_csv.stem}.part{k}{out_csv.suffix}") for k in range(n)]
    with cf.ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
        threads = None if gpus else worker_threads(n)
        futs = [pool.submit(_evaluate_worker, threads, [str(c) for c in g], images, parts[k],
                            metrics=metrics,
                            device=f"cuda:{k % gpus}" if gpus else ("cpu" if device == "auto" else device),
                            progress=False, resume=resume)
                for k, g in enumerate(groups)]
        for f in futs:
            f.result()
    frames = [pd.read_csv(p, dtype={"image": str, "model": str}) for p in parts]
    df = pd.concat(frames, ignore_index=True)
    df.to_csv(out_csv, index=False)
    log.info("evaluate: %d checkpoints in %d processes -> %s", len(ckpts), n, out_csv)
    return df


def worker_threads(n: int) -> int:
    """torch threads for each of ``n`` CPU worker processes: an equal share of this process's threads.

    Without the cap every worker starts torch's default (all cores), and ``n`` workers oversubscribe the
    machine (measured: evaluation of the demo zoo on 2 cores took over 8 minutes instead of ~100 s).
    Float reductions may differ in the last bit between thread counts, so results equal a one-job run
    made with the same per-process thread count (``torch.set_num_threads(worker_threads(n))``).
    """
    import torch

    return max(1, torch.get_num_threads() // max(1, n))


def _evaluate_worker(threads: int | None, *args, **kw):
    """:func:`evaluate` in a worker process; ``threads`` sets torch's thread count there (CPU workers:
    :func:`worker_threads`)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return evaluate(*args, **kw)


def sync(dev) -> None:
    """Wait for queued GPU work (so a timing measures the call itself); no-op on the CPU."""
    import torch

    if getattr(dev, "type", str(dev)) == "cuda":
        torch.cuda.synchronize(dev)


def summarize(df):
    """Per model means (what RD curves and BD-rates use)."""
    num = [c for c in df.columns if c not in ("image", "model", "codec", "loss", "level")]
    g = df.groupby(["model", "loss", "level"], dropna=False, sort=False)[num].mean().reset_index()
    return g.sort_values(["loss", "bpp"])
