"""2AFC benchmark speed: triplets per second per metric / 2AFC predictor, on CPU.

Two input sizes: 64×64 (BAPPS patches; batches of 16 triplets) and 768×768 (CLIC 2021 crops; one
triplet per call). For each metric the scorer of ``lossarena benchmark 2afc`` (both distorted images
against the reference in one batched call, or a predictor's whole-triplet call) is timed on in-memory
tensors: one warm-up, then ``--repeats`` timed calls, median reported as triplets/second. A last row
times ``run_2afc`` end to end on PNG files (decode + MSE + PSNR + bootstrap + report).

Deep metrics need ImageNet backbones; with ``--standin`` a temporary TORCH_HOME gets seeded random
stand-ins (timing only: the values mean nothing), DPIS gets an untrained head (the cost does not
depend on the learned weights) and ROI-MLP an untrained MLP on the same 16 inputs.

    .venv/bin/python benchmarks/benchmark_speed.py [--standin] [--repeats 3] [--threads 2]
        [--sizes 64 768] [--metrics mse dpis] [--out benchmarks/RESULTS_benchmark_speed.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _setup_standin(tmp: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from standin import write_standins

    write_standins(tmp)
    os.environ["TORCH_HOME"] = str(tmp)
    os.environ["LOSSARENA_STANDIN_BACKBONES"] = "1"
    import torch.hub

    torch.hub._hub_dir = None


def _untrained_checkpoints(tmp: Path) -> tuple[Path, Path]:
    from lossarena.benchmark import dpis as D
    from lossarena.benchmark import roi_mlp as R

    dp = D.save_checkpoint(D.DPISHead(), D.Judge(), tmp / "dpis.pt", config={"patch": D.PATCH}, history={})
    # untrained ROI-MLP on LPIPS-Alex (stand-in) inputs, without D-loss (no ROI codec here): timing only
    ext = R.FeatureExtractor(R.FeatureConfig(d_loss=False))
    n = len(ext.names)
    rp = tmp / "roi_mlp.pt"
    torch.save({"format": R.FORMAT, "version": R.VERSION, "features": ext.names, "extractor": ext.describe(),
                "config": {}, "roi": R.RoiMLP(n).state_dict(), "basic": R.RoiMLP(n // 2).state_dict(),
                "history": {}}, rp)
    return dp, rp


def time_scorer(scorer, size: int, batch: int, repeats: int) -> float:
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(batch, 3, size, size, generator=g) * 0.6 + 0.2
    a = (ref + 0.02 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    b = (ref + 0.05 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    t = time.perf_counter()
    scorer.run(ref, a, b)  # warm-up (builds and caches networks)
    inner = max(1, int(0.2 / max(time.perf_counter() - t, 1e-6)))  # each sample lasts >= ~0.2 s
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            scorer.run(ref, a, b)
        ts.append((time.perf_counter() - t) / inner)
    return batch / statistics.median(ts)


def time_end_to_end(tmp: Path) -> tuple[float, int]:
    from lossarena.benchmark import synthetic
    from lossarena.benchmark.twoafc import run_2afc

    d = tmp / "e2e"
    synthetic.synthetic_triplets(d, n=200, size=64, kind="noise", seed=0, judges=5)
    t = time.perf_counter()
    run_2afc(d / "triplets.csv", d, ["mse", "psnr"], 1000, d / "acc.csv", d / "report", progress=False)
    return 200 / (time.perf_counter() - t), 200


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--standin", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 768])
    ap.add_argument("--metrics", nargs="+")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS_benchmark_speed.md"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="lossarena_bench_"))
    if a.standin:
        _setup_standin(tmp / "torch_home")
    from lossarena.benchmark.twoafc import default_names, make_scorer

    from lossarena.errors import LossarenaError
    from lossarena.metrics import METRICS
    from lossarena.metrics import weights as W

    dp = rp = None
    if a.standin:
        dp, rp = _untrained_checkpoints(tmp)
    names = a.metrics or default_names(dpis_checkpoint=dp, roi_mlp_checkpoint=rp)
    rows = []
    for n in names:
        try:
            sc = make_scorer(n, dpis_checkpoint=dp, roi_mlp_checkpoint=rp)
        except LossarenaError as e:
            rows.append((n, {}, f"skipped: {e}"))
            continue
        res, note = {}, ""
        for size in a.sizes:
            batch = 16 if size <= 128 else 1
            try:
                res[size] = time_scorer(sc, size, batch, a.repeats if size <= 128 else max(1, a.repeats - 2))
            except (LossarenaError, ValueError, RuntimeError) as e:
                res[size] = None
                note = f"{size}px: {type(e).__name__}: {str(e)[:90]}"
            print(f"{n:16s} {size:4d}px: " + (f"{res[size]:9.3g} triplets/s" if res[size] else note), flush=True)
        needs = METRICS.get(n).needs_weights if n in METRICS else ()
        if a.standin and (needs or n.startswith("roi-mlp")):
            note = (note + "; " if note else "") + "stand-in weights: timing only"
        rows.append((n, res, note))
    e2e, n_e2e = time_end_to_end(tmp)
    print(f"end to end (run_2afc, mse+psnr, 64px PNGs, 1000 bootstrap, report): {e2e:.1f} triplets/s")

    lines = [
        "# 2AFC benchmark speed (triplets per second, CPU)",
        "",
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()} "
        f"({os.cpu_count()} CPUs, torch {torch.__version__}, {a.threads} threads), "
        f"`{' '.join(['benchmarks/benchmark_speed.py'] + (argv if argv is not None else sys.argv[1:]))}`. "
        "The machine was shared with other jobs, so absolute numbers are noisy.",
        "",
        "| metric | " + " | ".join(f"{s}×{s} (triplets/s)" for s in a.sizes) + " | note |",
        "|---|" + "---:|" * len(a.sizes) + "---|",
    ]
    for n, res, note in rows:
        cells = [f"{res[s]:.3g}" if res.get(s) else "–" for s in a.sizes]
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {note} |")
    lines += ["", f"End to end, `run_2afc` with mse + psnr on {n_e2e} 64×64 PNG triplets (decode, score, "
              f"1000 bootstrap resamples, HTML report): **{e2e:.1f} triplets/s**.", ""]
    if W.standin_in_use():
        lines.append("Deep-metric rows ran on random stand-in backbones: timings are real, values are not.")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
