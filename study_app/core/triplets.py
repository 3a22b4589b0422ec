"""The triplet design (JPEG AIC-3): the reference in the middle, two test images beside it, and the
question "which image differs more from the reference?" (left / right / not sure).

Sources: ISO/IEC 29170-3:2026 (JPEG AIC-3); Testolina et al., "Fine-grained subjective visual
quality assessment for high-fidelity compressed images", DCC 2025 (arXiv:2410.09501); Jenadeleh et
al., arXiv:2504.06301; Men et al., "Subjective image quality assessment with boosted triplet
comparisons", IEEE Access 2021. What each parameter below rests on is in docs/study.md ("Triplet
design"): the sampling shares were measured on the AIC-3 JPEG AI responses shipped in
``../shared/data/pairwise/jpeg_aic3``; the boosting and timing parameters (zoom x2 by Lanczos,
flicker 100 ms per phase, amplification x2 with the factor reduced per pixel to avoid clamping, BTC
shown 8 s then blanked 3 s, PTC toggle rules) are AIC-3's as quoted, second-hand, by the
``imazen/zensim`` literature review; the defaults differ where the issue asks otherwise (nearest-
neighbour zoom, pixel-exact) or where a rule should be chosen knowingly (timing ``free``).

This module holds what is specific to the design and independent of Streamlit:

* :data:`BOOSTS` -- the boosting techniques (``zoom``, ``flicker``, ``amplify``), one registry;
* :func:`amplify` -- artefact amplification, a stimulus transform computed at build time;
* :func:`build_triplet_stimuli` -- the test images, their boosted versions and the trap images;
* :data:`TRIPLET_SAMPLERS` -- which pair of test images a participant sees next (``aic3``);
* :func:`participant_plan` -- per participant, which trial is a trap / bias / normal triplet and
  which is plain / boosted, in exact proportions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from lossarena.data.schemas import REFERENCE
from PIL import Image

from lossarena.errors import InputError
from lossarena.registry import Registry

DESIGNS = ("pairwise", "triplet")
PLAIN = "plain"

# kinds of triplet rows in the store (``kind`` column): a normal triplet, a trap (the reference
# against a heavily distorted test image: the answer is known) and a bias triplet (the same image on
# both sides: no right answer; "not sure" is the honest one)
KIND_TRIAL, KIND_TRAP, KIND_BIAS = "trial", "trap", "bias"

# ---------------------------------------------------------------------------------------------
# boosting techniques


@dataclass(frozen=True)
class Boost:
    name: str
    doc: str


BOOSTS: Registry[Boost] = Registry("boost")
BOOSTS.add("zoom", Boost("zoom", "a region of every image enlarged by an integer factor (nearest or Lanczos)"),
           aliases=("zooming",))
BOOSTS.add("flicker", Boost("flicker", "each test image alternates in place with the reference"),
           aliases=("flickering",))
BOOSTS.add("amplify", Boost("amplify", "artefact amplification: ref + alpha * (test - ref), at build time"),
           aliases=("amplification", "artefact-amplification", "artifact-amplification"))
BOOST_ORDER = ("zoom", "flicker", "amplify")


def parse_boosts(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"zoom,flicker,amplify"`` -> canonical names in a fixed order; ``""``/``"none"`` -> ().

    Raises
    ------
    InputError
        An unknown name (with a did-you-mean).
    """
    if spec is None:
        return ()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = {BOOSTS.canonical(s.strip()) for s in items if s.strip() and s.strip().lower() not in ("none", PLAIN)}
    return tuple(n for n in BOOST_ORDER if n in names)


def boost_label(boosts: Sequence[str]) -> str:
    """The ``boost`` column value: ``plain`` or the comma-joined boost names."""
    return ",".join(boosts) if boosts else PLAIN


# ---------------------------------------------------------------------------------------------
# stimulus transforms


AMPLIFY_CLAMPS = ("reduce", "clip")
ZOOM_RESAMPLES = ("nearest", "lanczos")
TIMINGS = ("free", "aic3")


def amplify_alpha(ref: np.ndarray, test: np.ndarray, gain: float) -> np.ndarray:
    """The amplification factor of every pixel: ``min(gain, alpha_max)``, where ``alpha_max`` is the
    largest factor for which ``ref + alpha * (test - ref)`` stays in [0, 255] in **all three
    channels** of the pixel (one factor per pixel, so the direction of the colour difference, i.e.
    its hue, is kept). ``alpha_max`` >= 1 always (``test`` itself is in range).

    Parameters
    ----------
    ref, test : numpy.ndarray
        uint8 (H, W, 3), sRGB code values.
    gain : float
        The wanted factor (>= 1).

    Returns
    -------
    numpy.ndarray
        float64 (H, W): the factor used per pixel, in [1, gain].
    """
    r = ref.astype(np.float64)
    d = test.astype(np.float64) - r
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(d > 0, (255.0 - r) / d, np.where(d < 0, r / -d, np.inf))
    return np.minimum(float(gain), room.min(axis=2))


def amplify(ref: np.ndarray, test: np.ndarray, gain: float, clamp: str = "reduce") -> np.ndarray:
    """Artefact amplification ``v' = v + alpha (v_hat - v)`` relative to the reference ``v``.

    ``clamp="reduce"`` (default; Men et al. 2021, Algorithm 1, as used by JPEG AIC-3's BTC): the
    factor is reduced per pixel to the largest value that avoids clamping,
    ``alpha = min(gain, alpha_max(pixel))`` with ``alpha_max`` taken over the pixel's three channels
    (:func:`amplify_alpha`), so no channel is clipped and the pixel's difference keeps its direction;
    then rounded to the nearest code value. ``clamp="clip"``: ``clip(round(ref + gain * (test - ref)),
    0, 255)`` per channel (clipping changes the hue of a pixel whose channels clip differently).

    Parameters
    ----------
    ref, test : numpy.ndarray
        uint8 images of the same shape (H, W, 3), sRGB code values.
    gain : float
        Amplification factor (>= 1); 1 returns ``test`` unchanged.
    clamp : {"reduce", "clip"}
        How values beyond [0, 255] are avoided.

    Returns
    -------
    numpy.ndarray
        uint8 (H, W, 3): the test image with its difference from the reference multiplied by the
        factor.

    Raises
    ------
    ValueError
        Shapes or dtypes differ, ``gain`` < 1, or an unknown ``clamp``.
    """
    if ref.shape != test.shape or ref.dtype != np.uint8 or test.dtype != np.uint8 or ref.ndim != 3 \
            or ref.shape[2] != 3:
        raise ValueError(f"expected two uint8 images of one shape (H, W, 3), got {ref.dtype}{ref.shape} and "
                         f"{test.dtype}{test.shape}")
    if not gain >= 1:
        raise ValueError(f"expected gain >= 1, got {gain}")
    if clamp not in AMPLIFY_CLAMPS:
        raise ValueError(f"expected clamp in {AMPLIFY_CLAMPS}, got {clamp!r}")
    r = ref.astype(np.float64)
    d = test.astype(np.float64) - r
    alpha = amplify_alpha(ref, test, gain)[..., None] if clamp == "reduce" else float(gain)
    out = np.rint(r + alpha * d)
    return np.clip(out, 0, 255).astype(np.uint8)  # a no-op for "reduce" (kept for float round-off)


def zoom_lanczos(img: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge a uint8 (h, w, 3) crop ``factor`` times with PIL's Lanczos filter (``Image.LANCZOS``;
    JPEG AIC-3's BTC zoom: a half-size crop upscaled x2 by Lanczos) -> uint8 (h*factor, w*factor, 3)."""
    h, w = img.shape[:2]
    out = Image.fromarray(np.ascontiguousarray(img)).resize((w * factor, h * factor), Image.LANCZOS)
    return np.asarray(out.convert("RGB"))


def choose_region(energy: np.ndarray, size: tuple[int, int], steps: int = 8) -> tuple[int, int]:
    """Top-left (x, y) of the ``size`` = (w, h) window with the largest summed ``energy`` (H, W)
    over a grid of ``steps`` × ``steps`` candidate positions (the zoom region: where the test images
    differ most from the reference)."""
    h, w = energy.shape
    cw, ch = size
    if cw >= w and ch >= h:
        return 0, 0
    ii = np.pad(energy.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    xs = np.unique(np.linspace(0, w - cw, steps).round().astype(int))
    ys = np.unique(np.linspace(0, h - ch, steps).round().astype(int))
    best, best_xy = -1.0, (int(xs[len(xs) // 2]), int(ys[len(ys) // 2]))
    for y in ys:
        for x in xs:
            s = ii[y + ch, x + cw] - ii[y, x + cw] - ii[y + ch, x] + ii[y, x]
            if s > best + 1e-9:
                best, best_xy = s, (int(x), int(y))
    return best_xy


# ---------------------------------------------------------------------------------------------
# the stimuli of one content


def condition_name(codec: str, target_bpp: str) -> str:
    """A test image's name: ``<codec>_<target bpp>`` (the codec is what precedes the last ``_``,
    as :mod:`lossarena.analysis.jnd` reads AIC-3 names like ``AVIF_01``)."""
    return f"{codec}_{target_bpp}"


@dataclass
class TripletContent:
    """One content's test images (condition -> path relative to the study folder) and what the
    triplet design needs besides: codec and level of every condition, boosted versions, traps."""

    codecs: dict[str, str]  # condition -> codec ("reference" for the original)
    levels: dict[str, int]  # condition -> level: 0 = reference, 1 = highest bitrate of its codec, ...
    boosted: dict[str, str] = field(default_factory=dict)  # condition (and "reference") -> boosted file
    traps: list[str] = field(default_factory=list)  # trap test images, most distorted (MSE) first
    zoom_region: list[int] = field(default_factory=list)  # x, y, w, h in the crop (empty: no zoom)


def build_content(ref: np.ndarray, tests: dict[str, np.ndarray], codecs: dict[str, str],
                  bpps: dict[str, float], boosts: Sequence[str], zoom: int, gain: float,
                  clamp: str = "reduce", resample: str = "nearest") -> tuple[TripletContent, dict[str, np.ndarray]]:
    """Levels, traps, zoom region and boosted pixels of one content.

    Parameters
    ----------
    ref : numpy.ndarray
        The reference crop, uint8 (H, W, 3).
    tests : dict
        condition -> test crop, uint8 (H, W, 3).
    codecs, bpps : dict
        condition -> codec name / target bitrate (the level order within a codec: highest bitrate =
        level 1).
    boosts : sequence of str
        Canonical boost names of the study's boosted triplets.
    zoom : int
        Integer zoom factor (used when ``"zoom"`` in ``boosts``): the region is ``crop / zoom``.
    gain : float
        Amplification gain (used when ``"amplify"`` in ``boosts``).
    clamp : {"reduce", "clip"}
        How amplification avoids values beyond [0, 255] (:func:`amplify`).
    resample : {"nearest", "lanczos"}
        ``nearest``: the boosted files are the zoom region itself (the browser enlarges it by
        ``zoom``, nearest neighbour); ``lanczos``: the region enlarged ``zoom`` times by Lanczos at
        build time (:func:`zoom_lanczos`), drawn 1:1.

    Returns
    -------
    (TripletContent, dict)
        The description (paths left empty) and condition -> boosted uint8 pixels (incl. the reference).
    """
    levels: dict[str, int] = {REFERENCE: 0}
    for codec in sorted(set(codecs.values())):
        conds = sorted((c for c in tests if codecs[c] == codec), key=lambda c: -bpps[c])
        for i, c in enumerate(conds):
            levels[c] = i + 1
    r = ref.astype(np.float64)
    mse = {c: float(np.mean((t.astype(np.float64) - r) ** 2)) for c, t in tests.items()}
    # trap candidates: the lowest-bitrate image of each codec, most distorted (MSE) first
    lowest = {}
    for c in tests:
        k = codecs[c]
        if k not in lowest or levels[c] > levels[lowest[k]]:
            lowest[k] = c
    traps = sorted(lowest.values(), key=lambda c: (-mse[c], c))
    tc = TripletContent(codecs={REFERENCE: REFERENCE, **codecs}, levels=levels, traps=traps)
    boosted: dict[str, np.ndarray] = {}
    if boosts:
        imgs = {REFERENCE: ref, **tests}
        if "amplify" in boosts:
            imgs = {c: (a if c == REFERENCE else amplify(ref, a, gain, clamp)) for c, a in imgs.items()}
        if "zoom" in boosts and zoom > 1:
            h, w = ref.shape[:2]
            rw, rh = max(1, w // zoom), max(1, h // zoom)
            energy = sum(np.abs(t.astype(np.float64) - r).sum(axis=2) for t in tests.values())
            x, y = choose_region(np.asarray(energy), (rw, rh))
            tc.zoom_region = [x, y, rw, rh]
            imgs = {c: np.ascontiguousarray(a[y:y + rh, x:x + rw]) for c, a in imgs.items()}
            if resample == "lanczos":
                imgs = {c: zoom_lanczos(a, zoom) for c, a in imgs.items()}
        boosted = imgs
    return tc, boosted


# ---------------------------------------------------------------------------------------------
# what a participant sees: the plan and the sampler


@dataclass(frozen=True)
class Slot:
    """One trial of a participant's plan."""

    kind: str  # trial | trap | bias
    boosted: bool
    cross: bool  # for kind == trial: a cross-codec triplet is wanted


def _quota(n: int, share: float) -> int:
    return int(min(n, max(0, round(n * share))))


def participant_plan(rng: np.random.Generator, total: int, trap_rate: float, bias_rate: float,
                     plain_fraction: float, cross_fraction: float, boosted_available: bool) -> list[Slot]:
    """The kinds of a participant's ``total`` trials in exact proportions, in random order.

    ``round(total * trap_rate)`` traps and ``round(total * bias_rate)`` bias triplets (never among the
    first two trials), ``round(total * plain_fraction)`` plain triplets (all plain when the study has
    no boost), and ``round(n_normal * cross_fraction)`` of the normal triplets cross-codec.
    """
    n_trap = _quota(total, trap_rate)
    n_bias = _quota(total - n_trap, bias_rate)
    n_norm = total - n_trap - n_bias
    head = min(2, n_norm)
    rest = [KIND_TRAP] * n_trap + [KIND_BIAS] * n_bias + [KIND_TRIAL] * (n_norm - head)
    order = rng.permutation(len(rest))
    out_kinds = [KIND_TRIAL] * head + [rest[i] for i in order]
    n_plain = total if not boosted_available else _quota(total, plain_fraction)
    plain = np.zeros(total, dtype=bool)
    plain[rng.permutation(total)[:n_plain]] = True
    n_cross = _quota(n_norm, cross_fraction)
    cross_flags = np.zeros(n_norm, dtype=bool)
    cross_flags[rng.permutation(n_norm)[:n_cross]] = True
    slots, j = [], 0
    for i, k in enumerate(out_kinds):
        c = bool(cross_flags[j]) if k == KIND_TRIAL else False
        j += k == KIND_TRIAL
        slots.append(Slot(k, not bool(plain[i]), c))
    return slots


@dataclass
class ContentState:
    """One content of the participant's session, for the sampler."""

    content: str
    info: TripletContent
    counts: dict[tuple[str, str], float]  # (boost label, pair key) -> global comparisons so far
    seen: set[tuple[str, str]]  # (boost label, pair key) this participant has been shown
    participant_trials: int = 0


@dataclass(frozen=True)
class TripletChoice:
    content: str
    a: str
    b: str


class TripletSampler:
    """Candidates: same-codec pairs (levels of one codec, the reference as level 0, at most
    ``same_max_step`` levels apart; 0 = any) and cross-codec pairs (test images of two codecs at
    most ``cross_max_step`` levels apart). Choice: the wanted type (cross or same; the other if
    none is left), then the smallest (participant's trials in that content, global comparisons of
    the pair in this presentation, random) -- spread over contents, even out the counts."""

    name = "base"

    def __init__(self, same_max_step: int = 0, cross_max_step: int = 1):
        self.same_max_step = int(same_max_step)
        self.cross_max_step = int(cross_max_step)

    def candidates(self, info: TripletContent, cross: bool) -> list[tuple[str, str]]:
        conds = sorted(info.levels, key=lambda c: (info.codecs[c], info.levels[c]))
        out = []
        for i, a in enumerate(conds):
            for b in conds[i + 1:]:
                ka, kb = info.codecs[a], info.codecs[b]
                # same codec: two levels of one codec, or the reference (level 0 of every codec) and a test image
                same = ka == kb or REFERENCE in (ka, kb)
                step = abs(info.levels[a] - info.levels[b])
                if cross and not same and step <= self.cross_max_step:
                    out.append((a, b))
                elif not cross and same and (self.same_max_step <= 0 or step <= self.same_max_step):
                    out.append((a, b))
        return out

    def choose(self, states: Sequence[ContentState], label: str, cross: bool,
               rng: np.random.Generator) -> TripletChoice | None:
        from .samplers import pair_key

        for want in (cross, not cross):
            best = None
            for st in states:
                for a, b in self.candidates(st.info, want):
                    k = (label, pair_key(a, b))
                    if k in st.seen:
                        continue
                    key = (st.participant_trials, st.counts.get(k, 0.0), float(rng.random()))
                    if best is None or key < best[0]:
                        best = (key, st.content, a, b)
            if best is not None:
                return TripletChoice(best[1], best[2], best[3])
        return None


TRIPLET_SAMPLERS: Registry[type[TripletSampler]] = Registry("triplet sampler")


@TRIPLET_SAMPLERS.register("aic3", aliases=("balanced",))
class AIC3Sampler(TripletSampler):
    """Same-codec and cross-codec triplets in the study's shares, balanced counts (AIC-3's design)."""

    name = "aic3"


def get_triplet_sampler(name: str, **kw) -> TripletSampler:
    return TRIPLET_SAMPLERS.get(name)(**kw)


def presentation(settings, label: str) -> dict:
    """How the browser presents a triplet of presentation ``label`` (``plain`` or the boosts).

    ``zoom``: the integer factor the browser enlarges the files by (nearest neighbour; the boosted
    files already are the zoom region; 1 when ``zoom_resample`` is ``lanczos``: the files were
    enlarged at build time and are drawn 1:1), ``zoom_resample``, ``flicker_ms`` (0: no flicker;
    else each test image alternates in place with the reference, each shown this long). With
    ``timing: aic3`` (docs/study.md, "Triplet design"), a boosted triplet also gets ``show_ms`` and
    ``blank_ms`` (shown, then blanked; answers accepted throughout), a plain one ``window_ms``,
    ``min_toggles`` (answers before that many toggles are refused) and ``toggle_min_ms`` (the
    shortest time between two toggles)."""
    boosted = label != PLAIN
    zoomed = boosted and "zoom" in settings.boosts
    resample = getattr(settings, "zoom_resample", "nearest")
    out = {"boost": label,
           "zoom": int(settings.zoom) if zoomed and resample == "nearest" else 1,
           "zoom_resample": resample if zoomed else "",
           "flicker_ms": int(settings.flicker_period_ms) if boosted and "flicker" in settings.boosts else 0}
    if getattr(settings, "timing", "free") == "aic3":
        if boosted:
            out.update(show_ms=int(settings.btc_show_ms), blank_ms=int(settings.btc_blank_ms))
        else:
            out.update(window_ms=int(settings.ptc_window_ms), min_toggles=int(settings.ptc_min_toggles),
                       toggle_min_ms=int(settings.ptc_toggle_min_ms))
    return out


def check_options(settings) -> None:
    """The presentation options of a :class:`~lossarena.study_app.core.config.TripletSettings`
    (:class:`InputError` naming the option): ``amplify_clamp``, ``zoom_resample``, ``timing`` and
    the AIC-3 timing values (integers, milliseconds)."""
    for flag, v, allowed in (("--amplify-clamp", settings.amplify_clamp, AMPLIFY_CLAMPS),
                             ("--zoom-resample", settings.zoom_resample, ZOOM_RESAMPLES),
                             ("--timing", settings.timing, TIMINGS)):
        if v not in allowed:
            raise InputError(f"{flag} {str(v)[:40]!r}: expected one of {', '.join(allowed)}")
    for name, lo, hi in TIMING_LIMITS:
        v = getattr(settings, name)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise InputError(f"triplet.{name} {str(v)[:40]!r}: expected an integer {lo}-{hi}")


# the AIC-3 timing values and their allowed ranges (ms; toggles)
TIMING_LIMITS = (("btc_show_ms", 100, 600_000), ("btc_blank_ms", 0, 600_000), ("ptc_window_ms", 100, 3_600_000),
                 ("ptc_min_toggles", 0, 100), ("ptc_toggle_min_ms", 0, 10_000))


def check_rates(trap_rate: float, bias_rate: float, plain_fraction: float, cross_fraction: float) -> None:
    """Every share in [0, 1] and traps + bias < 1 (:class:`InputError` naming the option)."""
    for flag, v in (("--trap-rate", trap_rate), ("--bias-rate", bias_rate), ("--plain-fraction", plain_fraction),
                    ("--cross-fraction", cross_fraction)):
        if not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
            raise InputError(f"{flag} {v}: expected a number in [0, 1]")
    if trap_rate + bias_rate >= 1.0:
        raise InputError(f"--trap-rate {trap_rate} + --bias-rate {bias_rate}: expected a sum below 1")
