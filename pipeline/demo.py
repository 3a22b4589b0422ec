"""``make demo`` / ``lossarena demo``: the whole pipeline, end to end, into ``demo-output/index.html``.

The demo asks the project's question — which loss should a learned codec be trained with, judged
by people? — on a study whose right answer is known, so that every stage can be checked:

1. ``metrics``   — every available metric on the evaluation images against Pillow-JPEG copies
2. ``zoo``       — the shipped MSE base (``pipeline/assets/demo_base.pt``, SHA-256 verified; trained
                   on images disjoint from Kodak) fine-tuned with every weight-free loss; RD curves,
                   the cross-metric BD table
3. ``roi``       — the small ROI codec
4. ``stimuli``   — rate-matched stimuli at three bitrates (+ ROI, + classical anchors)
5. ``study``     — the study run by simulated observers with a hidden ground truth (a metric's value
                   in JOD; noisy, biased and careless observers) through the app's core, store and QC
6. ``analysis``  — outliers, winning frequencies, JOD with CIs, significance; recovered vs true scale
7. ``benchmark`` — 2AFC accuracy of the metrics on the study's votes (the truth metric should win)
8. ``plan``      — participants this design needs (power analysis by simulation)
9. ``index``     — one offline page that leads with the answer, then the evidence

Every scale-dependent number is in a profile (``pipeline/profiles/{small,default,paper}.yaml``).
Nothing is downloaded: evaluation images come from ``../shared/data`` (Kodak) or ``--images``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lossarena.errors import InputError

log = logging.getLogger("lossarena.demo")

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
SCALE_ALIASES = {"demo": "default"}


def profiles() -> list[str]:
    """Names of the shipped profiles."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> dict:
    """A profile by name (``small``, ``default``, ``paper``) or YAML path.

    Raises
    ------
    InputError
        Unknown name, unreadable file or not a mapping.
    """
    name = SCALE_ALIASES.get(name_or_path, name_or_path)
    p = Path(name) if name.endswith((".yaml", ".yml")) else PROFILE_DIR / f"{name}.yaml"
    if not p.is_file():
        raise InputError(f"{name_or_path}: no such demo profile (shipped: {', '.join(profiles())})")
    try:
        prof = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"{p}: not valid YAML ({e})") from None
    if not isinstance(prof, dict):
        raise InputError(f"{p}: expected a mapping at the top level")
    prof.setdefault("name", p.stem)
    return prof


@dataclass
class Ctx:
    out: Path
    profile: dict
    fresh: bool = False
    images_dir: Path | None = None
    train_dir: Path | None = None
    n_images: int = 6
    seed: int = 0
    only: set[str] | None = None
    info: dict = field(default_factory=dict)  # what stages tell the index page
    timings: dict = field(default_factory=dict)

    def p(self, *keys, default=None):
        """A profile value, e.g. ``ctx.p("study", "participants")``."""
        v = self.profile
        for k in keys:
            if not isinstance(v, dict) or k not in v:
                return default
            v = v[k]
        return v


@dataclass
class Stage:
    name: str
    title: str
    run: Callable[[Ctx, Path], dict]
    done_marker: str = "stage.json"


def _stages() -> list[Stage]:
    from . import stages as S

    return [
        Stage("images", "Images", S.stage_images),
        Stage("metrics", "Metrics on JPEG copies", S.stage_metrics),
        Stage("zoo", "Codec zoo: a shipped base, one fine-tune per loss", S.stage_zoo),
        Stage("roi", "ROI codec", S.stage_roi),
        Stage("stimuli", "Rate-matched stimuli", S.stage_stimuli),
        Stage("study", "Study with simulated participants (hidden ground truth)", S.stage_study),
        Stage("analysis", "Analysis: outliers, winning frequencies, JOD — and the truth", S.stage_analysis),
        Stage("benchmark", "Metric accuracy on the study's own votes", S.stage_benchmark),
        Stage("plan", "How many participants this design needs", S.stage_plan),
    ]


def run(ctx: Ctx) -> Path:
    """Run every stage (reusing finished ones unless ``ctx.fresh``) and write the index page."""
    from .story import write_index

    ctx.out.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter()
    stages = _stages()
    for st in stages:
        d = ctx.out / st.name
        marker = d / st.done_marker
        skip = ctx.only and st.name not in ctx.only and st.name != "images"
        if marker.exists() and (skip or not ctx.fresh):
            ctx.info[st.name] = json.loads(marker.read_text())
            ctx.timings[st.name] = ctx.info[st.name].get("_seconds")
            if not skip:
                log.info("[%s] reused %s (FRESH=1 to redo)", st.name, d)
            continue
        if skip:
            continue
        if ctx.fresh and d.exists() and st.name != "images":
            shutil.rmtree(d)
        log.info("[%s] %s ...", st.name, st.title)
        t0 = time.perf_counter()
        info = st.run(ctx, d) or {}
        dt = time.perf_counter() - t0
        info["_seconds"] = dt
        d.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(info, default=str, indent=1))
        ctx.info[st.name], ctx.timings[st.name] = info, dt
        log.info("[%s] done in %.1f s -> %s", st.name, dt, d)
    ctx.timings["total"] = time.perf_counter() - total
    index = write_index(ctx, stages)
    log.info("all done in %.1f s; open %s", ctx.timings["total"], index)
    return index


def _quiet_library_warnings() -> None:
    """Library warnings that say nothing to a demo reader (deprecations inside torch/CompressAI,
    a progress bar reading a loss value); everything else still shows. Worker processes (evaluation and
    matching run in spawned processes) inherit the torch deprecation filter through ``PYTHONWARNINGS``."""
    jit = "ignore:`torch.jit.script` is deprecated:FutureWarning"
    os.environ["PYTHONWARNINGS"] = ",".join(w for w in (os.environ.get("PYTHONWARNINGS"), jit) if w)
    for msg in (r".*torch\.jit\.script.*deprecated.*", r"Converting a tensor with requires_grad=True to a scalar.*",
                r".*TypedStorage is deprecated.*"):
        warnings.filterwarnings("ignore", message=msg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lossarena demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo-output", type=Path)
    ap.add_argument("--scale", default="default",
                    help=f"profile: {', '.join(profiles())} (or a YAML path); default: ~15 min on 2 CPU cores; "
                         "small: the reduced test run; paper: a GPU machine")
    ap.add_argument("--fresh", action="store_true", help="redo every stage (FRESH=1 in make)")
    ap.add_argument("--images", type=Path, default=None, help="evaluation images instead of Kodak")
    ap.add_argument("--train-images", type=Path, default=None,
                    help="extra training images for the fine-tunes (added to the bundled, non-Kodak set)")
    ap.add_argument("--n-images", type=int, default=None)
    ap.add_argument("--only", default=None, help="comma-separated stage names")
    ap.add_argument("--seed", type=int, default=0, help="seed of everything, the hidden ground truth included")
    a = ap.parse_args(argv)
    prof = load_profile(a.scale)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("lossarena").setLevel(min(logging.getLogger().level, logging.INFO))
    _quiet_library_warnings()
    n = a.n_images or int(prof.get("images", {}).get("n", 6))
    ctx = Ctx(out=a.out, profile=prof, fresh=a.fresh, images_dir=a.images, train_dir=a.train_images, n_images=n,
              seed=a.seed, only=set(a.only.split(",")) if a.only else None)
    run(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
