"""``lossarena study build``: from a stimuli folder to a study folder.

Layout written::

    STUDY/study.yaml               config (groups, sessions, sampler, secrets, requirements)
    STUDY/crops.csv                the crop window chosen for each content
    STUDY/stimuli/cNN/reference.png, STUDY/stimuli/cNN/gMM/<condition>.png
    STUDY/traps/cNN.png            heavy degradation of the reference crop (screening)
    STUDY/practice/pNN_{better,worse}.png   training pairs with obvious differences

Crops: one window per content, the same for every condition of that content, of size
``min(crop, image)``; placed where the reference has the most detail (largest summed gradient
magnitude on a grid of candidate windows). Two crops plus a gap must fit side by side on a
1920×1080 screen (:func:`fits_side_by_side`).
"""

from __future__ import annotations

import csv
import logging
import os
import re
import secrets
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

from lossarena.errors import InputError

from .config import (
    CONFIG_NAME,
    Group,
    PracticePair,
    QualityControl,
    Requirements,
    StudyConfig,
    TripletSettings,
    load_config,
)
from .manifest import REFERENCE, read_manifest
from .triplets import choose_region

log = logging.getLogger(__name__)

# what each practice degradation is called in the training feedback
DEGRADATIONS = {"trap": "strong blur and blocky JPEG compression artefacts", "blur": "strong blur",
                "noise": "strong grainy noise"}

# horizontal: page margins + gap between the images; vertical: browser chrome, title, buttons
LAYOUT_MARGIN_X = 160
LAYOUT_GAP_X = 32
LAYOUT_CHROME_Y = 380


def fits_side_by_side(crop: tuple[int, int], screen: tuple[int, int] = (1920, 1080), n: int = 2) -> bool:
    """Whether ``n`` crops (2 for pairs, 3 for triplets) plus gaps and margins fit the screen."""
    w, h = crop
    return n * w + (n - 1) * LAYOUT_GAP_X + LAYOUT_MARGIN_X <= screen[0] and h + LAYOUT_CHROME_Y <= screen[1]


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("._") or "x"


def choose_window(img: np.ndarray, size: tuple[int, int], steps: int = 8) -> tuple[int, int]:
    """Top-left (x, y) of the ``size`` = (w, h) window with the largest gradient energy."""
    gy, gx = np.gradient(img.astype(np.float64).mean(axis=2))
    return choose_region(np.hypot(gx, gy), size, steps)


def _open_rgb(p: Path) -> np.ndarray:
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as e:
        raise InputError(f"{p}: cannot read image ({e})") from None


def heavy_degradation(img: Image.Image, kind: str = "trap") -> Image.Image:
    """An unmistakably worse version: blur + very low-quality JPEG (trap), or one of the practice kinds."""
    import io

    if kind == "noise":
        a = np.asarray(img).astype(np.float64)
        rng = np.random.default_rng(0)
        return Image.fromarray(np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8))
    if kind == "blur":
        return img.filter(ImageFilter.GaussianBlur(4))
    buf = io.BytesIO()
    img.filter(ImageFilter.GaussianBlur(1.5)).save(buf, "JPEG", quality=4, subsampling=2)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def build_study(
    stimuli_dir: str | Path,
    out_dir: str | Path,
    crop: tuple[int, int] | None = None,
    sessions: int = 3,
    sampler: str = "adjacent",
    trials_per_participant: int = 40,
    traps_per_participant: int = 2,
    n_practice: int = 3,
    include_reference: bool = False,
    study_id: str | None = None,
    seed: int = 0,
    force: bool = False,
    allow_anonymous: bool = False,
    progress: bool = True,
    allow_tie: bool = False,
    completion_url: str = "",
    completion_code: str = "",
    scale: int = 1,
    stated_minutes: tuple[int, int] = (10, 15),
    allow_touch: bool = False,
    design: str = "pairwise",
    triplet: TripletSettings | None = None,
) -> StudyConfig:
    """Build a study folder from ``stimuli_dir/manifest.csv``; returns the saved config.

    ``design="triplet"`` builds the JPEG AIC-3 triplet design (:mod:`.triplets`; ``triplet`` holds
    its parameters, default :class:`~.config.TripletSettings`): one group per content with every
    codec × target bitrate as a test image named ``<codec>_<target bpp>`` and the reference, the
    boosted versions of all of them, and trap candidates. Default crop: 800×640 for pairs, 512×512
    for triplets (three must fit side by side).

    Atomic: everything is written to a hidden sibling folder first and renamed into place at the
    end, so an error leaves no half-written study (and, with ``force``, the old study untouched)."""
    from .samplers import SAMPLERS
    from .triplets import DESIGNS, TRIPLET_SAMPLERS, check_options, check_rates, parse_boosts

    if design not in DESIGNS:
        from lossarena.errors import did_you_mean

        raise InputError(f"unknown design {design!r}{did_you_mean(design, list(DESIGNS))}; known: {', '.join(DESIGNS)}")
    n_side = 3 if design == "triplet" else 2
    if crop is None:
        crop = (512, 512) if design == "triplet" else (800, 640)
    if design == "triplet":
        triplet = triplet or TripletSettings()
        triplet.boosts = list(parse_boosts(triplet.boosts))
        check_rates(triplet.trap_rate, triplet.bias_rate, triplet.plain_fraction, triplet.cross_fraction)
        check_options(triplet)
        if int(triplet.zoom) != triplet.zoom or not 1 <= int(triplet.zoom) <= 8:
            raise InputError(f"--zoom {triplet.zoom}: expected an integer 1-8")
        if int(triplet.flicker_period_ms) != triplet.flicker_period_ms or not 10 <= triplet.flicker_period_ms <= 5000:
            raise InputError(f"--flicker-period-ms {triplet.flicker_period_ms}: expected an integer 10-5000")
        if not 1.0 <= float(triplet.amplify_gain) <= 16.0:
            raise InputError(f"--amplify-gain {triplet.amplify_gain}: expected a number in [1, 16]")
        if int(trials_per_participant) < 1:
            raise InputError(f"--trials {trials_per_participant}: the triplet design needs a positive number")
        triplet.zoom, triplet.flicker_period_ms = int(triplet.zoom), int(triplet.flicker_period_ms)
        if sampler == "adjacent":
            sampler = "aic3"
        sampler = TRIPLET_SAMPLERS.canonical(sampler)
        allow_tie = True  # AIC-3's relaxed forced choice: "not sure" is always offered

    if int(scale) != scale or not 1 <= int(scale) <= 8:
        raise InputError(f"--scale {scale}: expected an integer 1-8")
    for name, v in (("--trials", trials_per_participant), ("--traps", traps_per_participant),
                    ("--practice", n_practice), ("--sessions", sessions)):
        if int(v) < 0 or (name == "--sessions" and int(v) < 1):
            raise InputError(f"{name} {v}: expected a {'positive' if name == '--sessions' else 'non-negative'} integer")
    if completion_url and not completion_url.startswith(("https://", "http://")):
        raise InputError(f"--completion-url {completion_url[:60]!r}: expected an http(s) URL")
    if design == "pairwise":
        SAMPLERS.canonical(sampler)  # unknown names fail early with a did-you-mean
    crop = (int(crop[0]), int(crop[1]))
    if crop[0] < 16 or crop[1] < 16:
        raise InputError(f"--crop {crop[0]}x{crop[1]}: too small (at least 16x16)")
    if not fits_side_by_side(crop, n=n_side):
        word = "three" if n_side == 3 else "two"
        raise InputError(
            f"--crop {crop[0]}x{crop[1]}: {word} crops do not fit side by side at 1920x1080 "
            f"(need {n_side}*W+{(n_side - 1) * LAYOUT_GAP_X + LAYOUT_MARGIN_X} <= 1920 and H+{LAYOUT_CHROME_Y} <= 1080)"
        )
    final = Path(out_dir)
    if (final / CONFIG_NAME).exists() and not force:
        raise InputError(f"{final / CONFIG_NAME}: a study already exists here (use --force to rebuild; "
                         "this issues new secrets and invalidates earlier completion codes)")
    if final.exists() and (not final.is_dir() or (any(final.iterdir()) and not (final / CONFIG_NAME).exists())):
        raise InputError(f"{final}: exists and is not an empty folder or a study folder")
    rows = read_manifest(stimuli_dir)
    by_content: dict[str, list] = defaultdict(list)
    for r in rows:
        by_content[r.content].append(r)

    final.parent.mkdir(parents=True, exist_ok=True)
    out = final.parent / f".{final.name}.building-{secrets.token_hex(4)}"
    out.mkdir(mode=0o700)
    try:
        _build_into(out, final, by_content, crop, sessions, sampler, trials_per_participant, traps_per_participant,
                    n_practice, include_reference, study_id, seed, allow_anonymous, progress, allow_tie,
                    completion_url, completion_code, int(scale), stated_minutes, allow_touch,
                    design, triplet if design == "triplet" else None)
        old = None
        if final.exists():
            for f in final.glob("votes.sqlite*"):  # a rebuild never deletes collected votes
                os.replace(f, out / f.name)
            old = final.parent / f".{final.name}.old-{secrets.token_hex(4)}"
            os.replace(final, old)
        os.replace(out, final)
        os.chmod(final, 0o755)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return load_config(final)


def _build_into(out, final, by_content, crop, sessions, sampler, trials_per_participant, traps_per_participant,
                n_practice, include_reference, study_id, seed, allow_anonymous, progress, allow_tie,
                completion_url, completion_code, scale, stated_minutes, allow_touch, design="pairwise",
                triplet=None) -> StudyConfig:
    groups: list[Group] = []
    references: dict[str, str] = {}
    traps: dict[str, str] = {}
    practice: list[PracticePair] = []
    windows = []
    kinds = ["trap", "blur", "noise"]
    for ci, (content, crows) in enumerate(tqdm(sorted(by_content.items()), desc="crops", disable=not progress)):
        refs = [r for r in crows if r.condition == REFERENCE]
        others = [r for r in crows if r.condition != REFERENCE]
        if not others:
            raise InputError(f"manifest line {crows[0].line}: content {content!r} has no compressed conditions")
        anchor = refs[0] if refs else max(others, key=lambda r: r.bpp or 0.0)
        ref_img = _open_rgb(anchor.path)
        h, w = ref_img.shape[:2]
        size = (min(crop[0], w), min(crop[1], h))
        x, y = choose_window(ref_img, size)
        windows.append((content, x, y, size[0], size[1]))
        cdir = out / "stimuli" / f"c{ci:02d}"
        cdir.mkdir(parents=True, exist_ok=True)

        def crop_of(arr: np.ndarray, r, _x=x, _y=y, _size=size, _shape=(h, w)) -> Image.Image:
            if arr.shape[:2] != _shape:
                raise InputError(f"manifest line {r.line}: {r.path} is {arr.shape[1]}x{arr.shape[0]}, "
                                 f"the reference of {r.content!r} is {_shape[1]}x{_shape[0]}")
            return Image.fromarray(arr[_y : _y + _size[1], _x : _x + _size[0]])

        ref_crop = crop_of(ref_img, anchor)
        ref_rel = f"stimuli/c{ci:02d}/reference.png"
        ref_crop.save(out / ref_rel, compress_level=1)
        references[content] = ref_rel
        trap_rel = f"traps/c{ci:02d}.png"
        (out / "traps").mkdir(exist_ok=True)
        heavy_degradation(ref_crop, "trap").save(out / trap_rel, compress_level=1)
        traps[content] = trap_rel
        if design == "triplet":
            groups.append(_triplet_content(out, ci, content, others, ref_crop, crop_of, triplet, ref_rel))
        by_group: dict[str, list] = defaultdict(list)
        for r in (others if design == "pairwise" else []):
            by_group[r.target_bpp].append(r)
        for gi, (tb, grows) in enumerate(sorted(by_group.items(), key=lambda kv: float(kv[0]))):
            conds: dict[str, str] = {}
            gdir = cdir / f"g{gi:02d}"
            gdir.mkdir(exist_ok=True)
            used: set[str] = set()
            for r in sorted(grows, key=lambda r: r.condition):
                fn = _slug(r.condition)
                while fn in used:
                    fn += "_"
                used.add(fn)
                rel = f"stimuli/c{ci:02d}/g{gi:02d}/{fn}.png"
                crop_of(_open_rgb(r.path), r).save(out / rel, compress_level=1)
                conds[r.condition] = rel
            if include_reference:
                conds[REFERENCE] = ref_rel
            if len(conds) < 2:
                raise InputError(f"manifest line {grows[0].line}: content {content!r} at target_bpp {tb} "
                                 "has fewer than two conditions to compare")
            groups.append(Group(content=content, group=tb, conditions=conds))
        if len(practice) < n_practice:
            i = len(practice)
            (out / "practice").mkdir(exist_ok=True)
            b, wr = f"practice/p{i:02d}_better.png", f"practice/p{i:02d}_worse.png"
            ref_crop.save(out / b, compress_level=1)
            heavy_degradation(ref_crop, kinds[i % len(kinds)]).save(out / wr, compress_level=1)
            practice.append(PracticePair(better=b, worse=wr, content=content,
                                         degradation=DEGRADATIONS[kinds[i % len(kinds)]]))
    # practice pairs from the first contents again when there are fewer contents than pairs
    while len(practice) < n_practice and practice:
        i = len(practice)
        src = practice[i % len(by_content)]
        b, wr = f"practice/p{i:02d}_better.png", f"practice/p{i:02d}_worse.png"
        img = Image.open(out / src.better).convert("RGB")
        img.save(out / b, compress_level=1)
        heavy_degradation(img, kinds[i % len(kinds)]).save(out / wr, compress_level=1)
        practice.append(PracticePair(better=b, worse=wr, content=src.content,
                                     degradation=DEGRADATIONS[kinds[i % len(kinds)]]))

    order = sorted(range(len(groups)), key=lambda i: (float(groups[i].group) if design == "pairwise" else 0.0,
                                                      groups[i].content))
    n_sessions = max(1, min(int(sessions), len(groups)))
    session_lists = [list(map(int, s)) for s in np.array_split(np.array(order), n_sessions)]
    with open(out / "crops.csv", "w", newline="") as f:
        wcsv = csv.writer(f)
        wcsv.writerow(["content", "x", "y", "width", "height"])
        wcsv.writerows(windows)
    sid = _slug(study_id or final.resolve().name)[:64]
    cfg = StudyConfig(
        study_id=sid,
        secret=secrets.token_urlsafe(32),
        admin_secret=secrets.token_urlsafe(16),
        groups=groups,
        references=references,
        traps=traps,
        practice=practice,
        sessions=session_lists,
        crop=crop,
        sampler=sampler,
        trials_per_participant=int(trials_per_participant),
        traps_per_participant=int(traps_per_participant),
        seed=int(seed),
        allow_anonymous=bool(allow_anonymous),
        allow_tie=bool(allow_tie),
        completion_url=completion_url,
        completion_code=completion_code,
        scale=scale,
        stated_minutes=(int(stated_minutes[0]), int(stated_minutes[1])),
        requirements=Requirements(allow_touch=bool(allow_touch)),
        qc=QualityControl(),
        design=design,
        triplet=triplet,
        dir=out.resolve(),
    )
    cfg.save(out)
    return cfg


def _triplet_content(out: Path, ci: int, content: str, rows, ref_crop: Image.Image, crop_of, settings,
                     ref_rel: str) -> Group:
    """One content of the triplet design: every codec x target bitrate as a test image, the
    reference, the boosted versions of all of them, and the trap candidates (:mod:`.triplets`)."""
    from .triplets import build_content, condition_name

    tests, codecs, bpps, conds = {}, {}, {}, {REFERENCE: ref_rel}
    used: set[str] = set()
    for r in sorted(rows, key=lambda r: (r.condition, float(r.target_bpp))):
        name = condition_name(r.condition, r.target_bpp)
        if name in tests:
            raise InputError(f"manifest line {r.line}: content {content!r} has two rows named {name!r}")
        arr = np.asarray(crop_of(_open_rgb(r.path), r))
        fn = _slug(name)
        while fn in used:
            fn += "_"
        used.add(fn)
        rel = f"stimuli/c{ci:02d}/{fn}.png"
        Image.fromarray(arr).save(out / rel, compress_level=1)
        tests[name], codecs[name], bpps[name], conds[name] = arr, r.condition, float(r.target_bpp), rel
    if len(tests) < 2:
        raise InputError(f"manifest line {rows[0].line}: content {content!r} has fewer than two test images")
    info, boosted = build_content(np.asarray(ref_crop), tests, codecs, bpps, settings.boosts, settings.zoom,
                                  settings.amplify_gain, settings.amplify_clamp, settings.zoom_resample)
    if boosted:
        bdir = out / "boosted" / f"c{ci:02d}"
        bdir.mkdir(parents=True, exist_ok=True)
        for name, arr in boosted.items():
            rel = f"boosted/c{ci:02d}/{Path(conds[name]).name}"
            Image.fromarray(arr).save(out / rel, compress_level=1)
            info.boosted[name] = rel
    settings.contents[content] = info
    return Group(content=content, group="triplet", conditions=conds)


def duration_warning(cfg: StudyConfig) -> str | None:
    """A warning when the planned pairs per participant do not fit the duration the consent page
    states (``stated_minutes``); None when they do. Uses :meth:`StudyConfig.estimated_minutes`."""
    from .session import StudyRuntime

    planned = max(StudyRuntime.planned_pairs(_PlanOnly(cfg), s) for s in range(len(cfg.sessions)))
    est = cfg.estimated_minutes(planned)
    lo, hi = cfg.stated_minutes
    if lo <= est <= hi:
        return None
    want = max(0, int(((lo + hi) / 2 - cfg.estimated_minutes(0)) / 0.1))  # 6 s per pair
    what = "triplets" if cfg.design == "triplet" else "pairs"
    return (f"the consent page states {lo}-{hi} minutes, but {planned} {what} per participant take about "
            f"{est:.0f} minutes (about {want} {what} would fit; change --trials/--sessions, or --stated-minutes)")


class _PlanOnly:
    """Enough of a runtime for :meth:`StudyRuntime.planned_pairs` without opening a store."""

    def __init__(self, cfg: StudyConfig):
        from .samplers import get_sampler

        self.cfg = cfg
        self.sampler = None if cfg.design == "triplet" else get_sampler(cfg.sampler)
