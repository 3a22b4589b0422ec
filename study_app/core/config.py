"""The study folder's configuration: ``STUDY/study.yaml`` (written by ``build``, read by everything).

Secrets: ``secret`` signs completion codes and ``admin_secret`` opens the admin page. Both are
generated at build time into ``STUDY/secrets.yaml`` (mode 0600, owner only; ``study.yaml`` holds no
secret). Overrides, read identically by ``serve``, ``verify-code``, ``export`` and the app: the
environment variables ``LOSSARENA_STUDY_SECRET`` / ``LOSSARENA_ADMIN_SECRET`` (the value), or
``LOSSARENA_STUDY_SECRET_FILE`` / ``LOSSARENA_ADMIN_SECRET_FILE`` (a file holding it), so a
deployment can keep them out of the folder. Folders built before secrets.yaml existed still work
(secrets read from study.yaml).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from lossarena.data.schemas import read_bytes, show

from lossarena.errors import InputError

MAX_CONFIG_BYTES = 1 << 20  # study.yaml / secrets.yaml: 1 MiB

CONFIG_NAME = "study.yaml"
DEFAULT_DB_NAME = "votes.sqlite"
ENV_STUDY_SECRET = "LOSSARENA_STUDY_SECRET"
ENV_ADMIN_SECRET = "LOSSARENA_ADMIN_SECRET"
SECRETS_NAME = "secrets.yaml"


@dataclass
class Group:
    """One content × target bitrate: the conditions compared against each other."""

    content: str
    group: str  # the target bitrate as written in the manifest
    conditions: dict[str, str]  # condition -> crop path relative to the study folder

    @property
    def key(self) -> tuple[str, str]:
        return (self.content, self.group)


@dataclass
class PracticePair:
    better: str  # crop paths relative to the study folder
    worse: str
    content: str
    hint: str = "The other image shows clearly visible blur and blocky compression artefacts."
    degradation: str = "blur and blocky JPEG artefacts"  # named in the training feedback


@dataclass
class QualityControl:
    """Screening rules that act (see docs/study.md, "Quality control"). A participant who breaks one
    is flagged with the reason; flagged participants are left out of the default export and their
    completion code verifies with exit status 4."""

    training_min_correct: int = 2  # practice pairs right per attempt (capped at the number of pairs)
    training_retries: int = 1  # extra attempts after a failed training; then a polite end
    max_trap_failures: int = 0  # more trap pairs answered wrong than this -> flagged
    min_view_ms: int = 500  # client-measured time from both images painted to the answer
    max_fast_fraction: float = 0.2  # more answers faster than min_view_ms than this share -> flagged
    side_bias_fraction: float = 0.9  # one side chosen in >= this share ...
    side_bias_min_answers: int = 20  # ... of at least this many left/right answers -> flagged
    max_display_attempts: int = 3  # display checks a participant may make (another device after a refusal)


@dataclass
class Requirements:
    min_width: int = 1920  # physical pixels (CSS pixels × devicePixelRatio)
    min_height: int = 1080
    min_diagonal_in: float = 13.0
    plausible_diagonal_in: tuple[float, float] = (10.0, 40.0)  # outside: the calibration is asked again
    allow_touch: bool = False  # touch/mobile devices are refused unless True


@dataclass
class TripletSettings:
    """The triplet design's parameters (``triplet`` in study.yaml; docs/study.md, "Triplet design")."""

    boosts: list[str] = field(default_factory=lambda: ["zoom", "flicker", "amplify"])  # of boosted triplets
    plain_fraction: float = 0.5  # share of plain (unboosted) triplets per participant
    trap_rate: float = 0.07  # share of trap triplets (AIC-3 JPEG AI BTC: 10 of 142 per batch)
    bias_rate: float = 0.05  # share of bias triplets (AIC-3 JPEG AI PTC: 5 of 105 per batch)
    cross_fraction: float = 0.17  # share of cross-codec among the normal triplets (BTC: 13,200 of 79,200)
    same_max_step: int = 0  # same-codec pairs at most this many levels apart (0 = all pairs, as BTC)
    cross_max_step: int = 1  # cross-codec pairs at most this many levels apart
    zoom: int = 2  # integer zoom factor of the zoom boost (nearest neighbour)
    flicker_period_ms: int = 100  # each image of a flickering pair is shown this long (AIC-3: 100 ms, 10 Hz)
    amplify_gain: float = 2.0  # artefact amplification: ref + gain * (test - ref)
    amplify_clamp: str = "reduce"  # reduce: gain lowered per pixel to avoid clamping (Men 2021 / AIC-3); clip
    zoom_resample: str = "nearest"  # nearest: browser x zoom, pixel-exact; lanczos: AIC-3's x2 Lanczos files
    timing: str = "free"  # free | aic3 (BTC shown btc_show_ms then blanked; PTC toggle rules)
    btc_show_ms: int = 8000  # aic3 timing: a boosted triplet is shown this long (AIC-3: 8 s) ...
    btc_blank_ms: int = 3000  # ... then blanked this long (AIC-3: 3 s); answers accepted throughout
    ptc_window_ms: int = 30000  # aic3 timing: a plain triplet's answer window (AIC-3 PTC: 30 s)
    ptc_min_toggles: int = 1  # aic3 timing: toggles required before a plain triplet is answered (AIC-3: 1)
    ptc_toggle_min_ms: int = 500  # aic3 timing: shortest time between toggles (AIC-3 PTC: at most 2 Hz)
    contents: dict = field(default_factory=dict)  # content -> TripletContent (levels, boosted files, traps)

    @property
    def label(self) -> str:
        return ",".join(self.boosts) if self.boosts else "plain"


@dataclass
class StudyConfig:
    study_id: str
    secret: str
    admin_secret: str
    groups: list[Group]
    references: dict[str, str]
    traps: dict[str, str]
    practice: list[PracticePair]
    sessions: list[list[int]]  # session number (0-based) -> indices into ``groups``
    crop: tuple[int, int] = (800, 640)
    sampler: str = "adjacent"
    estimate_refresh_fraction: float = 0.1  # adjacent: refit a group after max(5, 10 %) more comparisons
    trials_per_participant: int = 40  # 0 = until the sampler has nothing left
    traps_per_participant: int = 2
    allow_tie: bool = False
    toggle: bool = True  # offer the toggle (flicker) view beside side-by-side
    allow_anonymous: bool = False  # True: a participant id is generated when the URL has none
    completion_url: str = ""  # e.g. https://app.prolific.com/submissions/complete?cc=C1A2B3C4
    completion_code: str = ""  # the platform's study-level completion code (Prolific); {code} in the URL
    scale: int = 1  # k: every image pixel covers k x k device pixels
    prefetch: int = 3  # pairs the browser holds: the current one and prefetch - 1 decoded ahead
    stated_minutes: tuple[int, int] = (10, 15)  # the duration the consent page states
    mturk_submit_hosts: tuple[str, ...] = ("https://www.mturk.com", "https://workersandbox.mturk.com")
    qc: QualityControl = field(default_factory=QualityControl)
    seed: int = 0
    title: str = "Image quality study"
    requirements: Requirements = field(default_factory=Requirements)
    design: str = "pairwise"  # pairwise | triplet (JPEG AIC-3 triplets, :mod:`.triplets`)
    triplet: TripletSettings | None = None
    dir: Path = field(default=Path("."), repr=False)

    # ---- secrets (environment overrides the file)
    @property
    def study_secret(self) -> str:
        return _secret_override(ENV_STUDY_SECRET) or self.secret

    @property
    def admin_key(self) -> str:
        return _secret_override(ENV_ADMIN_SECRET) or self.admin_secret

    def completion_url_for(self, code: str) -> str:
        """The completion URL with ``{code}`` replaced (the study-level code if configured, else ``code``)."""
        return self.completion_url.replace("{code}", self.completion_code or code)

    def estimated_minutes(self, planned_pairs: int) -> float:
        """Expected duration: consent + display check 2 min, 10 s per practice pair, 6 s per pair
        (median response of crowd pairwise studies 2-4 s plus reading/loading; Testolina et al. 2025
        report 3-6 s per triplet)."""
        return 2.0 + len(self.practice) * 10 / 60 + planned_pairs * 6 / 60

    def group_index(self) -> dict[tuple[str, str], Group]:
        return {g.key: g for g in self.groups}

    def session_groups(self, session_no: int) -> list[Group]:
        return [self.groups[i] for i in self.sessions[session_no % len(self.sessions)]]

    def default_db_url(self) -> str:
        return f"sqlite:///{(self.dir / DEFAULT_DB_NAME).resolve()}"

    # ---- files
    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("dir")
        d.pop("secret")
        d.pop("admin_secret")
        for k in ("crop", "stated_minutes", "mturk_submit_hosts"):
            d[k] = list(d[k])
        d["requirements"]["plausible_diagonal_in"] = list(d["requirements"]["plausible_diagonal_in"])
        return d

    def save(self, study_dir: str | Path | None = None) -> Path:
        """Write ``study.yaml`` (no secrets) and ``secrets.yaml`` (mode 0600)."""
        folder = Path(study_dir or self.dir)
        p = folder / CONFIG_NAME
        p.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))
        write_private(folder / SECRETS_NAME, yaml.safe_dump(
            {"secret": self.secret, "admin_secret": self.admin_secret}, sort_keys=False))
        return p


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file readable and writable only by its owner (0600), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _secret_override(env: str) -> str | None:
    """The secret from ``$ENV`` or from the file named by ``$ENV_FILE`` (first line), else None."""
    v = os.environ.get(env)
    if v:
        return v
    f = os.environ.get(env + "_FILE")
    if f:
        try:
            v = Path(f).read_text().strip().splitlines()[0].strip() if Path(f).read_text().strip() else ""
        except OSError as e:
            raise InputError(f"{f}: cannot read the secret named by ${env}_FILE ({e.strerror})") from None
        if not v:
            raise InputError(f"{f}: the secret file named by ${env}_FILE is empty")
        return v
    return None


def load_config(study_dir: str | Path) -> StudyConfig:
    study_dir = Path(study_dir)
    p = study_dir / CONFIG_NAME
    if not p.is_file():
        raise InputError(f"{p}: no study config (run `lossarena study build STIMULI --out {study_dir}` first)")
    d = _read_yaml(p)
    if not isinstance(d, dict):
        raise InputError(f"{p}: expected a mapping at the top level")
    sp = study_dir / SECRETS_NAME
    if sp.is_file():
        sec = _read_yaml(sp)
        if not isinstance(sec, dict):
            raise InputError(f"{sp}: expected a mapping with fields secret, admin_secret")
        for k in ("secret", "admin_secret"):
            if not isinstance(sec.get(k), str) or not sec[k]:
                raise InputError(f"{sp}: field {k!r} is missing or empty")
            d.setdefault(k, sec[k])
    try:
        d["groups"] = [Group(**g) for g in d["groups"]]
        d["practice"] = [PracticePair(**q) for q in d.get("practice", [])]
        req = dict(d.get("requirements") or {})
        if "plausible_diagonal_in" in req:
            req["plausible_diagonal_in"] = tuple(float(x) for x in req["plausible_diagonal_in"])
        d["requirements"] = Requirements(**req)
        d["qc"] = QualityControl(**(d.get("qc") or {}))
        d["crop"] = tuple(d.get("crop", (800, 640)))
        if d.get("triplet") is not None:
            from .triplets import TripletContent

            t = dict(d["triplet"])
            t.setdefault("amplify_clamp", "clip")  # studies built before the option clipped
            t["contents"] = {str(k): TripletContent(**v) for k, v in (t.get("contents") or {}).items()}
            d["triplet"] = TripletSettings(**t)
        for k in ("stated_minutes", "mturk_submit_hosts"):
            if k in d:
                d[k] = tuple(d[k])
        d.setdefault("secret", "")
        d.setdefault("admin_secret", "")
        cfg = StudyConfig(**d, dir=study_dir.resolve())
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputError(f"{p}: missing or unexpected field ({show(e, 200)})") from None
    try:
        _check(cfg, p)
    except (TypeError, ValueError, AttributeError) as e:
        raise InputError(f"{p}: field of the wrong type ({show(e, 200)})") from None
    return cfg


def _read_yaml(p: Path):
    """A YAML file as Python data; any malformed file is one :class:`InputError` line (file, line)."""
    data = read_bytes(p, max_bytes=MAX_CONFIG_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{p}: line {line}: not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        what = getattr(e, "problem", None) or type(e).__name__
        raise InputError(f"{p}: {where}not valid YAML ({show(what, 120)})") from None
    except RecursionError:
        raise InputError(f"{p}: YAML nested too deeply") from None


def _check(cfg: StudyConfig, p: Path) -> None:
    if not isinstance(cfg.scale, int) or isinstance(cfg.scale, bool) or not 1 <= cfg.scale <= 8:
        raise InputError(f"{p}: field 'scale': expected an integer 1-8, got {cfg.scale!r}")
    if not cfg.groups:
        raise InputError(f"{p}: field 'groups' is empty")
    if cfg.design not in ("pairwise", "triplet"):
        raise InputError(f"{p}: field 'design': expected pairwise or triplet, got {show(cfg.design, 40)!r}")
    if cfg.design == "triplet":
        t = cfg.triplet
        if t is None:
            raise InputError(f"{p}: field 'triplet' is missing for design triplet")
        for k in ("zoom", "flicker_period_ms"):
            v = getattr(t, k)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= (8 if k == "zoom" else 5000):
                raise InputError(f"{p}: field 'triplet.{k}': got {show(v, 40)!r}")
        from .triplets import check_options

        try:
            check_options(t)
        except InputError as e:
            raise InputError(f"{p}: field 'triplet': {e}") from None
        if t.timing == "aic3" and t.ptc_min_toggles > 0 and not cfg.toggle:
            raise InputError(f"{p}: field 'triplet.timing': aic3 requires toggles (field 'toggle' is false)")
        for g in cfg.groups:
            if g.content not in t.contents:
                raise InputError(f"{p}: field 'triplet.contents' has no entry for content {show(g.content, 60)!r}")
            c = t.contents[g.content]
            where = f"{p}: field 'triplet.contents.{show(g.content, 60)}"
            for k, typ in (("codecs", str), ("levels", int), ("boosted", str)):
                d = getattr(c, k)
                if not isinstance(d, dict) or not all(isinstance(x, str) and isinstance(y, typ) and not
                                                      isinstance(y, bool) for x, y in d.items()):
                    raise InputError(f"{where}.{k}': expected a mapping of names to {typ.__name__}")
            if set(c.levels) != set(g.conditions) or set(c.codecs) != set(g.conditions):
                raise InputError(f"{where}': levels/codecs do not name the group's images")
            if not isinstance(c.traps, list) or not all(x in g.conditions for x in c.traps):
                raise InputError(f"{where}.traps': expected a list of the group's images")
            if t.boosts and set(c.boosted) != set(g.conditions):
                raise InputError(f"{where}.boosted': expected a boosted file for every image")
    if not cfg.sessions or any(not s for s in cfg.sessions):
        raise InputError(f"{p}: field 'sessions' must list at least one non-empty session")
    for s in cfg.sessions:
        for i in s:
            if not 0 <= i < len(cfg.groups):
                raise InputError(f"{p}: field 'sessions' refers to group {i}, only {len(cfg.groups)} exist")
