"""The study folder's configuration: ``STUDY/study.yaml`` (written by ``build``, read by everything).

Secrets: ``secret`` signs completion codes and ``admin_secret`` opens the admin page. Both are
generated at build time; the environment variables ``LOSSARENA_STUDY_SECRET`` and
``LOSSARENA_ADMIN_SECRET`` override them (so a deployment can keep them out of the folder).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from lossarena.errors import InputError

CONFIG_NAME = "study.yaml"
DEFAULT_DB_NAME = "votes.sqlite"
ENV_STUDY_SECRET = "LOSSARENA_STUDY_SECRET"
ENV_ADMIN_SECRET = "LOSSARENA_ADMIN_SECRET"


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


@dataclass
class Requirements:
    min_width: int = 1920  # physical pixels (CSS pixels × devicePixelRatio)
    min_height: int = 1080
    min_diagonal_in: float = 13.0


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
    completion_url: str = ""  # e.g. https://app.prolific.com/submissions/complete?cc={code}
    seed: int = 0
    title: str = "Image quality study"
    requirements: Requirements = field(default_factory=Requirements)
    dir: Path = field(default=Path("."), repr=False)

    # ---- secrets (environment overrides the file)
    @property
    def study_secret(self) -> str:
        return os.environ.get(ENV_STUDY_SECRET) or self.secret

    @property
    def admin_key(self) -> str:
        return os.environ.get(ENV_ADMIN_SECRET) or self.admin_secret

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
        d["crop"] = list(self.crop)
        return d

    def save(self, study_dir: str | Path | None = None) -> Path:
        p = Path(study_dir or self.dir) / CONFIG_NAME
        p.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))
        return p


def load_config(study_dir: str | Path) -> StudyConfig:
    study_dir = Path(study_dir)
    p = study_dir / CONFIG_NAME
    if not p.is_file():
        raise InputError(f"{p}: no study config (run `lossarena study build STIMULI --out {study_dir}` first)")
    try:
        d = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"{p}: not valid YAML ({e})") from None
    if not isinstance(d, dict):
        raise InputError(f"{p}: expected a mapping at the top level")
    try:
        d["groups"] = [Group(**g) for g in d["groups"]]
        d["practice"] = [PracticePair(**q) for q in d.get("practice", [])]
        d["requirements"] = Requirements(**d.get("requirements", {}))
        d["crop"] = tuple(d.get("crop", (800, 640)))
        cfg = StudyConfig(**d, dir=study_dir.resolve())
    except (KeyError, TypeError) as e:
        raise InputError(f"{p}: missing or unexpected field ({e})") from None
    if not cfg.groups:
        raise InputError(f"{p}: field 'groups' is empty")
    if not cfg.sessions or any(not s for s in cfg.sessions):
        raise InputError(f"{p}: field 'sessions' must list at least one non-empty session")
    for s in cfg.sessions:
        for i in s:
            if not 0 <= i < len(cfg.groups):
                raise InputError(f"{p}: field 'sessions' refers to group {i}, only {len(cfg.groups)} exist")
    return cfg
