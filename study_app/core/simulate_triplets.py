"""Synthetic observers for the triplet design, answering from a hidden JND scale.

The hidden truth (:func:`hidden_scale`): every test image has an impairment ``x >= 0`` in JND units
(the reference 0); within a codec it grows linearly with the level, ``x = s_codec * s_content *
level``, with seeded factors ``s_codec ~ U(0.6, 1.4)`` and ``s_content ~ U(0.8, 1.2)``, so the order
is known. An honest observer answers a triplet the way :mod:`lossarena.analysis.jnd` models it
(Thurstone Case V with the reference as pivot, docs/analysis.md):

    P(left named more distorted | plain)   = Phi(z * (x_L - x_R))
    P(left named more distorted | boosted) = Phi(z * (h(x_L) - h(x_R))),   h(x) = g1 * x + g2 * x**2
    z = Phi^-1(0.75)

with a hidden boosting polynomial (default ``g1 = 2, g2 = 0.3``); "not sure" with probability
``p_notsure`` (default 0.1) whatever the images; traps right with probability 0.97; bias triplets
"not sure" half of the time, else a random side. Participants go through
:class:`~.session.StudyRuntime` (join, consent, display, practice, triplets) -- the pages' code path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from lossarena.data.schemas import REFERENCE
from scipy.special import ndtr, ndtri

from .session import StudyRuntime, derived_rng
from .simulate import GOOD_DISPLAY

Z = float(ndtri(0.75))


@dataclass
class TripletSimResult:
    participants: int
    answers: int = 0
    duplicates: int = 0
    wall_s: float = 0.0
    truth: dict = field(default_factory=dict)  # (content, condition) -> hidden impairment (JND)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {"participants": self.participants, "answers_new": self.answers,
                "answers_duplicate": self.duplicates, "wall_s": round(self.wall_s, 2),
                "errors": len(self.errors)}


def hidden_scale(rt: StudyRuntime, seed: int) -> dict[tuple[str, str], float]:
    """(content, condition) -> hidden impairment in JND (reference 0); see the module docstring."""
    t = rt.cfg.triplet
    codecs = sorted({k for info in t.contents.values() for k in info.codecs.values() if k != REFERENCE})
    s_codec = {k: float(derived_rng(seed, "codec", k).uniform(0.6, 1.4)) for k in codecs}
    out = {}
    for content, info in sorted(t.contents.items()):
        s_content = float(derived_rng(seed, "content", content).uniform(0.8, 1.2))
        for cond, lv in info.levels.items():
            out[(content, cond)] = 0.0 if cond == REFERENCE else s_codec[info.codecs[cond]] * s_content * lv
    return out


def answer(x_left: float, x_right: float, boosted: bool, kind: str, rng: np.random.Generator,
           gamma: tuple[float, float] = (2.0, 0.3), p_notsure: float = 0.1) -> str:
    """One honest observer's answer to a triplet: the side judged more distorted, or ``tie``."""
    if kind == "bias":
        return "tie" if rng.random() < 0.5 else ("left" if rng.random() < 0.5 else "right")
    if kind == "trap":
        right_answer = "left" if x_left > x_right else "right"
        return right_answer if rng.random() < 0.97 else ("right" if right_answer == "left" else "left")
    if rng.random() < p_notsure:
        return "tie"
    h = (lambda x: gamma[0] * x + gamma[1] * x * x) if boosted else (lambda x: x)
    return "left" if rng.random() < float(ndtr(Z * (h(x_left) - h(x_right)))) else "right"


def simulate_triplets(study_dir: str | Path, db_url: str | None = None, participants: int = 20, seed: int = 0,
                      gamma: tuple[float, float] = (2.0, 0.3), p_notsure: float = 0.1) -> TripletSimResult:
    """Run ``participants`` honest synthetic observers (``SIM-<seed>-<n>``) through a triplet study.

    Returns
    -------
    TripletSimResult
        Counts and the hidden truth (``truth``: (content, condition) -> JND).
    """
    rt = StudyRuntime.open(study_dir, db_url)
    res = TripletSimResult(participants=participants)
    t0 = time.perf_counter()
    try:
        if rt.cfg.design != "triplet":
            raise ValueError(f"expected a triplet study, got design {rt.cfg.design!r}")
        truth = hidden_scale(rt, seed)
        res.truth = truth
        for i in range(participants):
            pid = f"SIM-{seed}-{i:04d}"
            try:
                rt.join(pid, platform="direct")
                rt.consent(pid)
                if rt.stage(pid) == "display":
                    rt.submit_display(pid, GOOD_DISPLAY)
                while (item := rt.practice_item(pid)) is not None:
                    rt.answer_practice(pid, item.index, item.correct_side)
                rt.finish_training_if_empty(pid)
                while (tr := rt.current_pair(pid)) is not None:
                    r = derived_rng(seed, pid, "answer", tr.seq)
                    side = answer(truth[(tr.content, tr.left)], truth[(tr.content, tr.right)], tr.boost != "plain",
                                  tr.kind, r, gamma, p_notsure)
                    client = {**{k: GOOD_DISPLAY[k] for k in ("screen_w", "screen_h", "dpr")},
                              "window_w": GOOD_DISPLAY["inner_w"], "window_h": GOOD_DISPLAY["inner_h"],
                              "reloads": 0, "toggles": 0}
                    v = rt.vote(pid, tr.seq, side, response_time_ms=int(1500 + r.exponential(2000)), client=client)
                    res.answers += v.status == "new"
                    res.duplicates += v.status != "new"
            except Exception as e:  # noqa: BLE001 - recorded and reported; the run goes on
                res.errors.append(f"{pid}: {type(e).__name__}: {e}")
    finally:
        rt.store.dispose()
        res.wall_s = time.perf_counter() - t0
    return res
