"""Synthetic observers driving the study through :class:`StudyRuntime` (the pages' code path).

Observer model: every condition of every group has a true quality ``q`` (JOD-like units; drawn once
from the study seed, N(0, 1.5²) per condition shared across contents plus N(0, 0.3²) per content ×
group). A *Thurstone* observer prefers A over B with probability ``Phi(q_A - q_B)`` and passes
traps with probability 0.97; a *random responder* (``random_fraction`` of the participants) answers
every pair with probability 1/2 and fails half of the traps. Everything is seeded: the same seed
gives the same participants, answers and (for one worker at a time) the same votes.

With an :class:`~lossarena.analysis.observers.ObserverModel` (``observers=``) the panel instead has a
hidden ground truth: the latent quality of every crop is a chosen metric's value (or a mixture) on
what the participant sees, mapped to JOD (:func:`metric_truth`), answered by Thurstonian observers with
personal noise and side bias plus careless ones (random, always-left, too fast) in configured shares;
:attr:`SimResult.observers` records who was what, so the QC rules' catch rate can be checked.

Each simulated participant: join (id ``SIM-<seed>-<n>``) -> consent -> display (a 1920×1080,
24-inch measurement) -> practice (answers right with probability 0.9) -> trials until done. An
acknowledged vote (``vote`` returned, i.e. committed) is appended to ``ack_log`` if given — the
crash test compares that log with the database.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from lossarena.analysis.observers import Observer, ObserverModel, draw_observers, truth_from_mixture
from scipy.special import ndtr
from tqdm import tqdm

from .config import StudyConfig
from .session import TRAP_A, StudyRuntime, derived_rng

GOOD_DISPLAY = {"screen_w": 1920, "screen_h": 1080, "dpr": 1.0, "card_px": 323.0, "inner_w": 1900, "inner_h": 960}


def true_scores(rt: StudyRuntime, seed: int) -> dict[tuple[str, str, str], float]:
    """(content, group, condition) -> true quality."""
    conds = sorted({c for g in rt.cfg.groups for c in g.conditions})
    rng = derived_rng(seed, "truth")
    base = {c: float(rng.normal(0, 1.5)) for c in conds}
    out = {}
    for g in rt.cfg.groups:
        for c in sorted(g.conditions):
            out[(g.content, g.group, c)] = base[c] + float(derived_rng(seed, "truth", g.content, g.group, c).normal(0, 0.3))
    return out


def metric_truth(cfg: StudyConfig, weights: dict[str, float], jod_spread: float = 3.0,
                 progress: bool = False) -> dict[tuple[str, str, str], float]:
    """The hidden ground truth from metrics: (content, group, condition) -> latent quality in JOD.

    Every crop a participant would see is scored against its reference crop with each metric in
    ``weights`` (registry names, e.g. ``{"ms-ssim": 1.0}``); the values are standardised (better =
    higher), mixed with the weights and scaled to ``jod_spread`` JOD (one SD over the study's
    stimuli); see :func:`lossarena.analysis.observers.truth_from_mixture`.
    """
    import pandas as pd
    import torch
    from lossarena.data.images import load_image

    from lossarena.metrics import compute, get_metric

    rows = []
    groups = tqdm(cfg.groups, desc="ground truth", disable=not progress, leave=False)
    with torch.no_grad():
        for g in groups:
            ref = load_image(cfg.dir / cfg.references[g.content])
            for cond, rel in sorted(g.conditions.items()):
                x = load_image(cfg.dir / rel)
                rows.append({"content": g.content, "group": g.group, "condition": cond,
                             **{m: float(compute(m, x, ref)[0]) for m in weights}})
    df = pd.DataFrame(rows)
    parts = {m: df[["content", "group", "condition", m]].rename(columns={m: "value"}) for m in weights}
    directions = {m: not get_metric(m).lower_better for m in weights}
    return truth_from_mixture(parts, weights, directions, jod_spread)


@dataclass
class SimResult:
    participants: int = 0
    votes_new: int = 0
    votes_duplicate: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    random_responders: list[str] = field(default_factory=list)
    truth: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    observers: dict[str, Observer] = field(default_factory=dict)  # with an ObserverModel: who was what

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return {
            "participants": self.participants,
            "votes_new": self.votes_new,
            "votes_duplicate": self.votes_duplicate,
            "commit_p50_ms": round(float(np.percentile(lat, 50)), 2),
            "commit_p99_ms": round(float(np.percentile(lat, 99)), 2),
            "commit_max_ms": round(float(lat.max()), 2),
            "throughput_votes_per_s": round(self.votes_new / self.wall_s, 1) if self.wall_s else 0.0,
            "wall_s": round(self.wall_s, 2),
            "errors": len(self.errors),
        }


def run_participant(rt: StudyRuntime, pid: str, seed: int, truth: dict, is_random: bool,
                    think_s: float = 0.0, on_vote: Callable | None = None, observer: Observer | None = None,
                    model: ObserverModel | None = None) -> tuple[int, int, list[float]]:
    """Take one synthetic participant through the whole flow; returns (new, duplicate, latencies).

    With ``observer`` (and its ``model``) the answers come from that observer; else from the built-in
    Thurstone observer / random responder (``is_random``)."""
    rt.join(pid, platform="simulated")
    rt.consent(pid)
    if rt.stage(pid) == "display":
        rt.submit_display(pid, GOOD_DISPLAY)
    while True:
        item = rt.practice_item(pid)
        if item is None:
            break
        rp = derived_rng(seed, pid, "practice", item.index)
        if observer is not None:
            side = observer.answer_practice(item.correct_side, rp, model)
        else:
            side = item.correct_side if rp.random() < 0.9 else ("left" if item.correct_side == "right" else "right")
        rt.answer_practice(pid, item.index, side)
    rt.finish_training_if_empty(pid)
    new = dup = 0
    lat: list[float] = []
    while True:
        t = rt.current_pair(pid)
        if t is None:
            break
        r = derived_rng(seed, pid, "answer", t.seq)
        if observer is not None:
            if t.kind == "trap":
                side, rt_ms = observer.answer_trap("left" if t.left == TRAP_A else "right", r, model)
            else:
                side, rt_ms = observer.answer(truth[(t.content, t.group, t.left)],
                                              truth[(t.content, t.group, t.right)], r, model)
        elif t.kind == "trap":
            p_left = 0.5 if is_random else (0.97 if t.left == TRAP_A else 0.03)
        elif is_random:
            p_left = 0.5
        else:
            d = truth[(t.content, t.group, t.left)] - truth[(t.content, t.group, t.right)]
            p_left = float(ndtr(d))
        if observer is None:
            side = "left" if r.random() < p_left else "right"
            rt_ms = int(800 + r.exponential(1500))
        if think_s > 0:
            time.sleep(float(r.exponential(think_s)))
        res = rt.vote(pid, t.seq, side, response_time_ms=rt_ms)
        if res.status == "new":
            new += 1
            lat.append(res.latency_ms)
        else:
            dup += 1
        if on_vote is not None:
            on_vote(pid, t.seq, res)
    return new, dup, lat


def simulate_runtime(rt: StudyRuntime, participants: int, concurrency: int = 1, seed: int = 0,
                     random_fraction: float = 0.1, think_s: float = 0.0, ack_log: str | Path | None = None,
                     first: int = 0, progress: bool = True, observers: ObserverModel | None = None,
                     truth: dict | None = None) -> SimResult:
    truth = truth if truth is not None else true_scores(rt, seed)
    ids = [f"SIM-{seed}-{i:04d}" for i in range(first, first + participants)]
    panel = draw_observers(ids, observers, seed) if observers is not None else {}
    if observers is not None:
        randoms = {pid for pid, o in panel.items() if o.careless}
    else:
        n_random = int(round(random_fraction * participants))
        randoms = set(derived_rng(seed, "random-responders").choice(ids, size=n_random, replace=False).tolist()) if n_random else set()
    res = SimResult(participants=participants, truth=truth, random_responders=sorted(randoms), observers=panel)
    lock = threading.Lock()
    fd = os.open(str(ack_log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if ack_log else None

    def on_vote(pid, seq, vr):
        if fd is not None:  # one write(2) per acknowledged vote: survives a kill -9 of this process
            os.write(fd, f"{pid},{seq},{vr.status},{vr.winner}\n".encode())

    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as ex:
            futs = {ex.submit(run_participant, rt, pid, seed, truth, pid in randoms, think_s, on_vote,
                              panel.get(pid), observers): pid for pid in ids}
            for f in tqdm(as_completed(futs), total=len(futs), desc="participants", disable=not progress):
                try:
                    new, dup, lat = f.result()
                except Exception as e:  # recorded, reported; the run goes on
                    with lock:
                        res.errors.append(f"{futs[f]}: {type(e).__name__}: {e}")
                    continue
                with lock:
                    res.votes_new += new
                    res.votes_duplicate += dup
                    res.latencies_ms.extend(lat)
    finally:
        if fd is not None:
            os.close(fd)
    res.wall_s = time.perf_counter() - t0
    return res


def simulate(study_dir: str | Path, db_url: str | None = None, participants: int = 20, concurrency: int = 4,
             seed: int = 0, random_fraction: float = 0.1, think_s: float = 0.0,
             ack_log: str | Path | None = None, progress: bool = True, first: int = 0,
             observers: ObserverModel | None = None, truth_metrics: dict[str, float] | None = None,
             jod_spread: float = 3.0) -> SimResult:
    """Simulate ``participants`` observers (``concurrency`` at a time) on a built study.

    Participant ids are ``SIM-<seed>-<n>`` for n in ``first .. first+participants-1``: the same seed
    resumes the same participants (after a crash), and ``first`` splits a population over processes.
    ``observers``: an :class:`ObserverModel` panel (else the built-in observers with
    ``random_fraction`` random responders); ``truth_metrics``: metric -> weight for a ground truth
    from the crops (:func:`metric_truth`, ``jod_spread`` JOD), else the seeded random truth.
    """
    rt = StudyRuntime.open(study_dir, db_url, pool_size=max(5, min(concurrency, 50)), max_overflow=max(10, concurrency))
    try:
        truth = metric_truth(rt.cfg, truth_metrics, jod_spread, progress) if truth_metrics else None
        return simulate_runtime(rt, participants, concurrency, seed, random_fraction, think_s, ack_log,
                                first=first, progress=progress, observers=observers, truth=truth)
    finally:
        rt.store.dispose()
