"""Forward+backward speed of every registered metric against piq's implementation, side by side.

For each metric in ``lossarena.metrics.list_metrics()`` (4x3x256x256 by default, CPU, 2 torch
threads): warm-up, then ``--repeats`` timed runs of ``metric(x_hat, x).sum().backward()`` with the
gradient taken w.r.t. the distorted image, ours and piq's interleaved (ABAB...) so that both see the
same machine load; the median of each is reported with the ratio ours/piq and the largest
per-image |value difference|.

piq counterparts (called in the configuration that matches ours where the defaults differ):
mse: torch ``F.mse_loss``; psnr: ``piq.psnr``; ssim / ms-ssim: ``piq.ssim`` /
``piq.multi_scale_ssim`` on the luma Y = .299R + .587G + .114B (ours works on luma as ssim.m does;
piq's default is RGB); fsim: ``piq.fsim`` (FSIMc); gmsd: ``piq.gmsd``; vsi: ``piq.vsi``;
lpips-vgg: ``piq.LPIPS``; dists: ``piq.DISTS``. nlpd, lpips-alex, lpips-squeeze have none.

Deep metrics need ImageNet backbones. Without them they are skipped with the reason. With
``--standin`` a temporary TORCH_HOME gets seeded random backbones (and piq's LPIPS/DISTS heads, taken
from the installed ``lpips`` / ``DISTS_pytorch`` wheels): those rows are labelled
"stand-in weights: timing only" and their values mean nothing.

    .venv/bin/python benchmarks/metrics_speed.py [--standin] [--repeats 5] [--metrics fsim vsi]
        [--out benchmarks/RESULTS_metrics.md]

``--before REV`` compares the metric package of git revision REV with the working tree instead of
piq, side by side in one process: ``lossarena/{errors,registry,paths}.py`` and
``lossarena/metrics/`` of REV are extracted into a temporary package ``lossarena_before``, both
versions' ``module()`` are timed interleaved on the same inputs (weight-free metrics), and a section
is appended to ``--out``.
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
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
STANDIN_NOTE = "stand-in weights: timing only"
_Y = (0.299, 0.587, 0.114)


def luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_Y, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def piq_counterparts() -> dict[str, tuple]:
    """metric name -> (factory() -> callable(x, y) -> (N,), note)."""
    import piq

    def fn(f, **kw):
        return lambda: (lambda x, y: f(x, y, reduction="none", **kw))

    def module(cls):
        def make():
            m = cls(reduction="none")
            return lambda x, y: m(x, y)
        return make

    return {
        "mse": (lambda: (lambda x, y: F.mse_loss(x, y, reduction="none").flatten(1).mean(1)), "torch F.mse_loss"),
        "psnr": (fn(piq.psnr, data_range=1.0), "piq.psnr (RGB MSE, as ours)"),
        "ssim": (lambda: (lambda x, y: piq.ssim(luma(x), luma(y), data_range=1.0, reduction="none")),
                 "piq.ssim on luma (piq's default is RGB; ours is luma as ssim.m)"),
        "ms-ssim": (lambda: (lambda x, y: piq.multi_scale_ssim(luma(x), luma(y), data_range=1.0,
                                                                reduction="none")),
                    "piq.multi_scale_ssim on luma (piq's default is RGB)"),
        "fsim": (fn(piq.fsim, chromatic=True), "piq.fsim (FSIMc; piq uses abs(S_I S_Q)^0.03 where MATLAB takes real(.))"),
        "gmsd": (fn(piq.gmsd), "piq.gmsd"),
        "vsi": (fn(piq.vsi), "piq.vsi (ours: MATLAB imresize in SDSP; a no-op at 256x256)"),
        "lpips-vgg": (module(piq.LPIPS), "piq.LPIPS (VGG)"),
        "dists": (module(piq.DISTS), "piq.DISTS"),
    }


# ---------------------------------------------------------------------------------------------
# stand-in backbones (timing only)


def _standin_state_dict(name: str, seed: int) -> dict:
    import torchvision

    with torch.device("meta"):
        model = getattr(torchvision.models, name)(weights=None)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, v in model.state_dict().items():
        if key.startswith("features.") and key.endswith(".weight"):
            state[key] = torch.randn(v.shape, generator=g) * (2.0 / (v.shape[0] * v[0, 0].numel())) ** 0.5
        elif key.startswith("features.") and key.endswith(".bias"):
            state[key] = 0.01 * torch.randn(v.shape, generator=g)
        else:  # classifier: unused by every metric; a stride-0 constant keeps the file small
            state[key] = torch.full((1,), 0.01).expand(v.shape)
    return state


def setup_standin(seed: int = 1234) -> Path:
    """A temporary TORCH_HOME with seeded stand-in backbones and piq's LPIPS/DISTS heads."""
    import torch.hub

    from lossarena.metrics import weights as W

    home = Path(tempfile.mkdtemp(prefix="lossarena-standin-"))
    ck = home / "hub" / "checkpoints"
    ck.mkdir(parents=True)
    for name, b in W.BACKBONES.items():
        path = ck / b.filename
        torch.save(_standin_state_dict(name, seed), path)
        W.mark_standin(path)
    try:  # piq downloads its heads by URL; give it the same numbers from the installed wheels
        import DISTS_pytorch
        import lpips

        heads = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth",
                           map_location="cpu", weights_only=True)
        torch.save([heads[f"lin{k}.model.1.weight"] for k in range(5)], ck / "lpips_weights.pt")
        ab = torch.load(Path(DISTS_pytorch.__file__).parent / "weights.pt", map_location="cpu", weights_only=True)
        torch.save({"alpha": ab["alpha"], "beta": ab["beta"]}, ck / "dists_weights.pt")
    except Exception as e:  # noqa: BLE001 - piq's deep metrics are then skipped with this reason
        print(f"note: piq LPIPS/DISTS heads not prepared ({e})", file=sys.stderr)
    os.environ["TORCH_HOME"] = str(home)
    os.environ[W.STANDIN_ENV] = "1"
    torch.hub._hub_dir = None  # follow $TORCH_HOME
    return home


# ---------------------------------------------------------------------------------------------


def make_inputs(batch: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Reference crops (Kodak when the shared data is there, else smooth random images) + noise."""
    from lossarena.paths import shared_data

    g = torch.Generator().manual_seed(seed)
    folder = shared_data("images", "kodak24")
    if folder is not None:
        from lossarena.data.images import list_images, load_image

        refs = []
        for p in list_images(folder)[:batch]:
            im = load_image(p)
            h, w = im.shape[-2:]
            top, left = (h - size) // 2, (w - size) // 2
            refs.append(im[..., top:top + size, left:left + size])
        y = torch.cat(refs)
        what = f"{batch} central {size}x{size} crops of Kodak"
    else:
        y = F.interpolate(torch.rand(batch, 3, size // 8, size // 8, generator=g), size=(size, size),
                          mode="bicubic", align_corners=False).clamp(0, 1)
        what = f"{batch} smooth random {size}x{size} images"
    x = (y + 0.05 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    return x, y, what + " vs + Gaussian noise (sigma 0.05)"


def _run(f, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, torch.Tensor, bool]:
    """(wall s, process CPU s, values, finite) for one forward+backward."""
    xx = x.clone().requires_grad_(True)
    t, c = time.perf_counter(), time.process_time()
    v = f(xx, y)
    v.sum().backward()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return wall, cpu, v.detach().flatten(), bool(torch.isfinite(xx.grad).all() and torch.isfinite(v).all())


def bench_pair(ours, theirs, x, y, repeats: int, warmup: int) -> dict:
    """Medians (ms) of wall and CPU time of ours and theirs, run interleaved, plus last values."""
    for _ in range(warmup):
        _run(ours, x, y)
        if theirs is not None:
            _run(theirs, x, y)
    res = {"wall_o": [], "cpu_o": [], "wall_p": [], "cpu_p": [], "ok_o": True, "ok_p": True,
           "v_o": None, "v_p": None}
    for _ in range(repeats):
        w, c, res["v_o"], ok = _run(ours, x, y)
        res["wall_o"].append(w)
        res["cpu_o"].append(c)
        res["ok_o"] &= ok
        if theirs is not None:
            w, c, res["v_p"], ok = _run(theirs, x, y)
            res["wall_p"].append(w)
            res["cpu_p"].append(c)
            res["ok_p"] &= ok
    for k in ("wall_o", "cpu_o", "wall_p", "cpu_p"):
        res[k] = statistics.median(res[k]) * 1e3 if res[k] else None
    return res


def load_before(rev: str) -> object:
    """The ``lossarena.metrics`` package of git revision ``rev``, importable as ``lossarena_before.metrics``."""
    import importlib
    import subprocess

    tmp = Path(tempfile.mkdtemp(prefix="lossarena-before-"))
    pkg = tmp / "lossarena_before"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", rev, "lossarena/"],
                           check=True, capture_output=True, text=True).stdout.split()
    for f in files:
        if not f.endswith(".py") or not (f.startswith("lossarena/metrics/") or f.count("/") == 1):
            continue
        dest = pkg / f[len("lossarena/"):]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{f}"], check=True,
                                        capture_output=True).stdout)
    (pkg / "__init__.py").write_text("")  # the old top-level __init__ may import the CLI
    sys.path.insert(0, str(tmp))
    return importlib.import_module("lossarena_before.metrics")


def compare_before(args, x, y, what: str) -> int:
    """Old (``--before REV``) vs current metric code, interleaved; appends a section to ``--out``."""
    import subprocess

    from lossarena.metrics import get_metric

    old = load_before(args.before)
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.before], check=True,
                         capture_output=True, text=True).stdout.strip()
    names = args.metrics or ["mse", "psnr", "ssim", "ms-ssim", "gmsd", "nlpd", "fsim", "vsi"]
    rows = []
    for name in names:
        before = old.get_metric(name).module()
        after = get_metric(name).module()
        print(f"{name} ...", end=" ", flush=True)
        r = bench_pair(after.forward, before.forward, x, y, args.repeats, args.warmup)
        diff = float((r["v_o"] - r["v_p"]).abs().max())
        rows.append((name, r["wall_p"], r["wall_o"], r["wall_o"] / r["wall_p"], r["cpu_p"], r["cpu_o"],
                     r["cpu_o"] / r["cpu_p"], diff))
        print(f"before {r['wall_p']:.1f} ms, after {r['wall_o']:.1f} ms")
    lines = ["| metric | before ms | after ms | after/before | before CPU ms | after CPU ms | after/before (CPU) "
             "| max abs value diff |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, wb, wa, ratio, cb, ca, ratio_c, diff in rows:
        lines.append(f"| {name} | {wb:.1f} | {wa:.1f} | {ratio:.2f} | {cb:.1f} | {ca:.1f} | {ratio_c:.2f} "
                     f"| {diff:.2e} |")
    table = "\n".join(lines)
    print("\n" + table)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    section = [
        "",
        f"## Before/after: metric code of {rev} vs the working tree, "
        f"{dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"- input: {what}; batch {args.batch}x3x{args.size}x{args.size}, float32, CPU, {args.threads} threads, "
        f"load average at the end " + (f"{load[0]:.1f}" if load else "n/a"),
        f"- timing: forward + backward, {args.warmup} warm-up, median of {args.repeats}, before and after "
        "interleaved in one process",
        f"- command: `nice .venv/bin/python benchmarks/metrics_speed.py --before {args.before}`",
        "",
        table,
        "",
    ]
    out = Path(args.out)
    out.write_text((out.read_text() if out.exists() else "") + "\n".join(section))
    print(f"\nappended to {args.out}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--metrics", nargs="*", help="subset of metric names (default: all registered)")
    ap.add_argument("--standin", action="store_true", help=f"seeded stand-in backbones ({STANDIN_NOTE})")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS_metrics.md"))
    ap.add_argument("--before", metavar="REV", help="compare with the metric code of git revision REV instead of piq")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    if args.standin:
        home = setup_standin()
        print(f"{STANDIN_NOTE}: TORCH_HOME={home}")

    from lossarena.metrics import list_metrics, weights_present

    x, y, what = make_inputs(args.batch, args.size, args.seed)
    if args.before:
        return compare_before(args, x, y, what)
    piq_map = piq_counterparts()
    rows, skipped = [], []
    specs = [s for s in list_metrics() if not args.metrics or s.name in args.metrics]
    # the light metrics first: the deep ones leave large networks and allocations behind
    specs.sort(key=lambda s: bool(s.needs_weights))
    for spec in specs:
        if not spec.differentiable:
            skipped.append((spec.name, "not differentiable"))
            continue
        standin = bool(spec.needs_weights)
        if spec.needs_weights and not weights_present(spec):
            skipped.append((spec.name, f"backbone weights missing ({', '.join(spec.needs_weights)}); "
                                       "`lossarena weights download`, or --standin for timing only"))
            print(f"skip {spec.name}: {skipped[-1][1]}")
            continue
        try:
            m = spec.module()
        except Exception as e:  # noqa: BLE001
            skipped.append((spec.name, f"cannot build: {e}"))
            continue
        ours = m.forward
        theirs, note = None, "no piq counterpart"
        if spec.name in piq_map:
            factory, note = piq_map[spec.name]
            try:
                theirs = factory()
            except Exception as e:  # noqa: BLE001
                theirs, note = None, f"piq unavailable: {type(e).__name__}: {str(e)[:80]}"
        print(f"{spec.name} ...", end=" ", flush=True)
        r = bench_pair(ours, theirs, x, y, args.repeats, args.warmup)
        diff = float((r["v_o"] - r["v_p"]).abs().max()) if r["v_p"] is not None else None
        ratio = r["wall_o"] / r["wall_p"] if r["wall_p"] else None
        ratio_cpu = r["cpu_o"] / r["cpu_p"] if r["cpu_p"] else None
        if not r["ok_o"]:
            note = f"OURS: NaN/inf value or gradient; {note}"
        if theirs is not None and not r["ok_p"]:
            note = f"{note}; piq: NaN/inf value or gradient on this input"
        if standin:
            note = f"{STANDIN_NOTE}; {note}"
        rows.append((spec.name, r["wall_o"], r["wall_p"], ratio, r["cpu_o"], r["cpu_p"], ratio_cpu, diff, note))
        print(f"ours {r['wall_o']:.1f} ms" + (f", piq {r['wall_p']:.1f} ms, ratio {ratio:.2f} (CPU {ratio_cpu:.2f})"
                                              if r["wall_p"] else ""))

    def f(v, fmt):
        return "–" if v is None or v != v else format(v, fmt)

    lines = [
        "| metric | ours ms | piq ms | ours/piq | ours CPU ms | piq CPU ms | ours/piq (CPU) "
        "| max abs value diff | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, t_o, t_p, ratio, c_o, c_p, ratio_c, diff, note in rows:
        lines.append(f"| {name} | {t_o:.1f} | {f(t_p, '.1f')} | {f(ratio, '.2f')} | {c_o:.1f} | {f(c_p, '.1f')} "
                     f"| {f(ratio_c, '.2f')} | {f(diff, '.2e')} | {note} |")
    table = "\n".join(lines)
    print()
    print(table)
    for name, why in skipped:
        print(f"skipped {name}: {why}")

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    import piq

    header = [
        "# Metric speed: lossarena vs piq",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu}, {os.cpu_count()} logical CPUs, load average at the end "
        + (f"{load[0]:.1f}" if load else "n/a"),
        f"- torch {torch.__version__} (CPU, {args.threads} threads), piq {piq.__version__}, Python "
        f"{platform.python_version()}",
        f"- input: {what}; batch {args.batch}x3x{args.size}x{args.size}, float32",
        f"- timing: forward + backward (gradient w.r.t. the distorted image), {args.warmup} warm-up, "
        f"median of {args.repeats}, ours and piq interleaved; wall-clock and process CPU time (the CPU "
        "time is the fairer ratio when the machine is shared)",
        "- command: `.venv/bin/python benchmarks/metrics_speed.py"
        + (" --standin" if args.standin else "") + "`",
        "",
        table,
        "",
    ]
    for name, why in skipped:
        header.append(f"- skipped {name}: {why}")
    Path(args.out).write_text("\n".join(header) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
