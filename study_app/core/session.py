"""The participant flow, independent of Streamlit: consent -> display -> training -> trials -> done.

:class:`StudyRuntime` is what every page and the simulator call. All progress lives in the store
(stage, training index, issued pairs, votes), so a reload, a reconnect, a second tab or a second app
replica resumes at the same place: the open (unanswered) pair is shown again, never a new one.

Trials: up to ``trials_per_participant`` sampler pairs plus ``traps_per_participant`` trap pairs
(reference vs a heavy degradation) at positions drawn per participant. Left/right is randomised per
pair from a seed derived from (study seed, participant, pair number), so replicas agree.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lossarena.data.schemas import REFERENCE

from lossarena.errors import InputError

from .config import StudyConfig, load_config
from .display import DisplayCheck, DisplayMeasurement, evaluate_display
from .qc import flag_reasons
from .samplers import GroupState, get_sampler, pair_key
from .security import completion_code, safe_stimulus_path, validate_worker_id
from .store import SqlStore, VoteResult, open_store

TRAP_A, TRAP_B = REFERENCE, "trap"


def derived_rng(*parts) -> np.random.Generator:
    h = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


@dataclass
class Trial:
    seq: int
    kind: str  # trial | trap
    content: str
    group: str
    left: str  # condition names
    right: str
    left_path: str  # relative to the study folder
    right_path: str
    issued_at: float
    pivot_path: str = ""  # triplet design: the reference shown between the two (boosted if boosted)
    boost: str = ""  # triplet design: "plain" or the boosts of this triplet, e.g. "zoom,flicker,amplify"


@dataclass
class PracticeItem:
    index: int
    total: int
    left_path: str
    right_path: str
    correct_side: str  # left | right
    hint: str
    degradation: str = ""
    pivot_path: str = ""  # triplet design: the reference in the middle; the answer names the worse side


@dataclass
class PracticeFeedback:
    """What the participant is told about the practice pair they just answered (shown on that pair)."""

    index: int
    correct: bool
    text: str
    outcome: str = "continue"  # continue | retry (training starts again) | trials | ended (gate failed)


class StudyRuntime:
    def __init__(self, cfg: StudyConfig, store: SqlStore):
        self.cfg = cfg
        self.store = store
        if cfg.design == "triplet":
            from .triplets import get_triplet_sampler

            t = cfg.triplet
            self.sampler = get_triplet_sampler(cfg.sampler, same_max_step=t.same_max_step,
                                               cross_max_step=t.cross_max_step)
        else:
            self.sampler = get_sampler(cfg.sampler, refresh_fraction=cfg.estimate_refresh_fraction)
        self.study_id = cfg.study_id
        self._groups = cfg.group_index()

    @classmethod
    def open(cls, study_dir: str | Path, db_url: str | None = None, **store_kw) -> StudyRuntime:
        cfg = load_config(study_dir)
        return cls(cfg, open_store(db_url or cfg.default_db_url(), **store_kw))

    # ---- participants
    def join(self, worker_id: str, platform: str | None = None, meta: dict | None = None) -> dict:
        """The participant's row, created on first visit (least-filled session)."""
        pid = validate_worker_id(worker_id)
        p = self.store.get_participant(self.study_id, pid)
        if p is not None:
            return p
        counts = self.store.session_counts(self.study_id)
        n = len(self.cfg.sessions)
        session_no = min(range(n), key=lambda s: (counts.get(s, 0), s))
        return self.store.create_participant(self.study_id, pid, session_no, platform, meta)

    def participant(self, pid: str) -> dict:
        p = self.store.get_participant(self.study_id, validate_worker_id(pid))
        if p is None:
            raise InputError(f"participant {pid}: unknown in study {self.study_id}")
        return p

    def stage(self, pid: str) -> str:
        return self.participant(pid)["stage"]

    def consent(self, pid: str) -> None:
        self.store.advance_stage(self.study_id, pid, "consent", "display")

    def decline(self, pid: str) -> None:
        self.store.advance_stage(self.study_id, pid, "consent", "refused", refusal="declined the consent form")

    def submit_display(self, pid: str, measurement: dict) -> DisplayCheck:
        """Evaluate a display measurement. Pass: on to training. ``retry`` (calibration not moved or
        implausible, window too small): stay and ask again. Otherwise refused with the reasons; the
        participant may come back on another device (:meth:`retry_display`) up to
        ``qc.max_display_attempts`` checks in all. Every attempt is logged (event ``display_attempt``)."""
        try:
            m = DisplayMeasurement.from_dict(measurement)
        except InputError as e:
            self.store.log_event(self.study_id, pid, "display_attempt", {"unreadable": str(e)[:300]})
            raise
        check = evaluate_display(m, self.cfg.requirements, self.cfg.crop, self.cfg.scale,
                                 3 if self.cfg.design == "triplet" else 2)
        record = {**m.as_dict(), **check.as_dict()}
        p = self.participant(pid)
        if p["stage"] != "display":
            return check
        attempt = int(p.get("display_attempts") or 0) + (0 if check.retry else 1)
        self.store.log_event(self.study_id, pid, "display_attempt", {**record, "attempt": attempt})
        if check.retry:
            return check
        if check.ok:
            self.store.advance_stage(self.study_id, pid, "display", "training", display=record,
                                     display_attempts=attempt)
        else:
            self.store.advance_stage(self.study_id, pid, "display", "refused", display=record,
                                     display_attempts=attempt, refusal="display: " + "; ".join(check.reasons))
        return check

    def display_retries_left(self, pid: str) -> int:
        p = self.participant(pid)
        if p["stage"] != "refused" or not (p.get("refusal") or "").startswith("display:"):
            return 0
        return max(0, self.cfg.qc.max_display_attempts - int(p.get("display_attempts") or 0))

    def retry_display(self, pid: str) -> bool:
        """Back to the display check after a display refusal (e.g. on another device), if attempts are left."""
        if self.display_retries_left(pid) <= 0:
            return False
        self.store.log_event(self.study_id, pid, "display_retry", {})
        return self.store.advance_stage(self.study_id, pid, "refused", "display", refusal=None)

    def check_live_display(self, pid: str, client: dict) -> str | None:
        """Re-check the display with the measurements sent with an answer: None when it still meets
        the requirements, else the reason (the trials pause until it does)."""
        disp = self.participant(pid).get("display") or {}
        try:
            m = DisplayMeasurement.from_dict({**client, "card_px": disp.get("card_px", 300.0), "moved": True,
                                              "touch": bool(client.get("touch", False))})
        except InputError as e:
            return str(e)
        check = evaluate_display(m, self.cfg.requirements, self.cfg.crop, self.cfg.scale,
                                 3 if self.cfg.design == "triplet" else 2)
        if check.ok:
            return None
        return "; ".join(check.reasons)

    # ---- training
    def practice_item(self, pid: str) -> PracticeItem | None:
        """The practice pair to answer now (None outside training or after the last pair)."""
        p = self.participant(pid)
        if p["stage"] != "training":
            return None
        return self.practice_item_at(pid, int(p.get("training_attempt") or 0), int(p["training_index"]))

    def practice_item_at(self, pid: str, attempt: int, i: int) -> PracticeItem | None:
        """Practice pair ``i`` of training attempt ``attempt`` (left/right drawn per participant,
        attempt and pair), or None past the last pair."""
        items = self.cfg.practice
        if not 0 <= i < len(items):
            return None
        q = items[i]
        better_left = bool(derived_rng(self.cfg.seed, pid, "practice", attempt, i).random() < 0.5)
        left, right = (q.better, q.worse) if better_left else (q.worse, q.better)
        if self.cfg.design == "triplet":  # the reference in the middle; the right answer is the worse side
            return PracticeItem(i, len(items), left, right, "right" if better_left else "left", q.hint,
                                q.degradation, pivot_path=q.better)
        return PracticeItem(i, len(items), left, right, "left" if better_left else "right", q.hint,
                            q.degradation)

    def answer_practice(self, pid: str, index: int, side: str) -> bool:
        """Record the answer to practice pair ``index``; returns whether it was right (see
        :meth:`answer_practice_feedback` for the whole outcome)."""
        return self.answer_practice_feedback(pid, index, side).correct

    def answer_practice_feedback(self, pid: str, index: int, side: str) -> PracticeFeedback:
        """Record the answer to practice pair ``index`` and say what happens next. After the last pair
        of an attempt the training gate applies: at least ``qc.training_min_correct`` right (capped at
        the number of pairs) -> trials; otherwise a retry while ``qc.training_retries`` allow, else a
        polite end (stage ``refused``, reason ``training``). Answering an already answered pair again
        (reload, double click) changes nothing."""
        if side not in ("left", "right"):
            raise InputError(f"practice answer {side!r}: expected left or right")
        item = self.practice_item(pid)
        if item is None or item.index != index:  # already answered (reload / double click)
            return PracticeFeedback(index, False, "", "stale")
        correct = side == item.correct_side
        other = "right" if item.correct_side == "left" else "left"
        if item.pivot_path:  # triplet: the right answer is the side that differs more from the reference
            text = (f"Correct: the {item.correct_side} image differs more from the reference. " if correct else
                    f"Not quite: the {item.correct_side} image differs more from the reference. ")
            text += (f"The {item.correct_side} image has {item.degradation}; the {other} one is the reference "
                     "itself." if item.degradation else item.hint)
        else:
            text = (f"Correct: the {item.correct_side} image was better. " if correct else
                    f"Not quite: the {item.correct_side} image was better. ")
            text += f"The {other} image has {item.degradation}." if item.degradation else item.hint
        if not self.store.record_training(self.study_id, pid, index, correct):
            return PracticeFeedback(index, correct, text, "stale")
        if index + 1 < item.total:
            return PracticeFeedback(index, correct, text, "continue")
        p = self.participant(pid)
        need = min(self.cfg.qc.training_min_correct, item.total)
        n_right = int(p["training_correct"])
        attempt = int(p.get("training_attempt") or 0)
        self.store.log_event(self.study_id, pid, "training_attempt",
                             {"attempt": attempt, "correct": n_right, "of": item.total, "needed": need})
        if n_right >= need:
            self.store.advance_stage(self.study_id, pid, "training", "trials")
            return PracticeFeedback(index, correct, text, "trials")
        if attempt < self.cfg.qc.training_retries:
            self.store.restart_training(self.study_id, pid, attempt)
            return PracticeFeedback(index, correct, text + f" You had {n_right} of {item.total} right; "
                                    "let us do the practice once more.", "retry")
        self.store.advance_stage(self.study_id, pid, "training", "refused",
                                 refusal=f"training: {n_right} of {item.total} practice pairs right "
                                         f"(needed {need}) in {attempt + 1} attempts")
        return PracticeFeedback(index, correct, text, "ended")

    def finish_training_if_empty(self, pid: str) -> None:
        if not self.cfg.practice:
            self.store.advance_stage(self.study_id, pid, "training", "trials")

    # ---- trials
    def trap_positions(self, pid: str) -> set[int]:
        t, k = self.cfg.trials_per_participant, self.cfg.traps_per_participant
        if k <= 0:
            return set()
        total = t + k if t > 0 else 10 * (k + 1)
        rng = derived_rng(self.cfg.seed, pid, "traps")
        lo = min(2, total - k)
        return set(map(int, rng.choice(np.arange(lo, total), size=min(k, total - lo), replace=False)))

    def _trial_from_row(self, a: dict) -> Trial:
        if self.cfg.design == "triplet":
            info = self.cfg.triplet.contents[a["content"]]
            boosted = a["grp"] != "plain"
            paths = info.boosted if boosted else self._groups[(a["content"], "triplet")].conditions
            return Trial(a["seq"], a["kind"], a["content"], a["grp"], a["cond_left"], a["cond_right"],
                         paths[a["cond_left"]], paths[a["cond_right"]], a["issued_at"],
                         pivot_path=paths[REFERENCE], boost=a["grp"])
        if a["kind"] == "trap":
            paths = {TRAP_A: self.cfg.references[a["content"]], TRAP_B: self.cfg.traps[a["content"]]}
        else:
            paths = self._groups[(a["content"], a["grp"])].conditions
        return Trial(a["seq"], a["kind"], a["content"], a["grp"], a["cond_left"], a["cond_right"],
                     paths[a["cond_left"]], paths[a["cond_right"]], a["issued_at"])

    def group_states(self, pid: str, history: list[dict], p: dict | None = None) -> list[GroupState]:
        p = p or self.participant(pid)
        groups = self.cfg.session_groups(p["session_no"])
        tallies = self.store.group_tallies(self.study_id, sorted({g.content for g in groups}))
        index = {}
        states = []
        for g in groups:
            conds = list(g.conditions)
            st = GroupState(g.content, g.group, conds, np.zeros((len(conds), len(conds))))
            index[g.key] = (st, {c: i for i, c in enumerate(conds)})
            states.append(st)
        for content, grp, ca, cb, winner, n in tallies:
            if (content, grp) not in index:
                continue
            st, pos = index[(content, grp)]
            if ca not in pos or cb not in pos:
                continue
            i, j = pos[ca], pos[cb]
            if winner == ca:
                st.wins[i, j] += n
            elif winner == cb:
                st.wins[j, i] += n
            else:
                st.wins[i, j] += n / 2
                st.wins[j, i] += n / 2
        for a in history:
            if a["kind"] == "trial" and (a["content"], a["grp"]) in index:
                st = index[(a["content"], a["grp"])][0]
                st.seen.add(a["pair_key"])
                st.participant_trials += 1
        return states

    def current_pair(self, pid: str) -> Trial | None:
        """The pair to show now: the open one if any, else a newly issued one; None when the
        participant has finished (then the stage becomes ``done``)."""
        pid = validate_worker_id(pid)
        for _ in range(20):
            p = self.participant(pid)
            if p["stage"] != "trials":
                return None
            a = self.store.open_assignment(self.study_id, pid)
            if a is not None:
                return self._trial_from_row(a)
            history = self.store.participant_assignments(self.study_id, pid)
            seq = (max(h["seq"] for h in history) + 1) if history else 0
            row = self._next_row(pid, seq, history, p)
            if row is None:
                self.store.advance_stage(self.study_id, pid, "trials", "done", completed_at=time.time())
                return None
            if self.store.create_assignment(row):
                return self._trial_from_row(row)
            # lost a race with another tab/replica: re-read
        raise RuntimeError(f"participant {pid}: could not issue a pair (contention)")

    def upcoming_pairs(self, pid: str, n: int = 2) -> list[Trial]:
        """The pair to show now and up to ``n - 1`` prefetched ones after it (issued now, so a
        reload shows the same pairs). Empty when the participant has finished (stage becomes done)."""
        pid = validate_worker_id(pid)
        for _ in range(20):
            p = self.participant(pid)
            if p["stage"] != "trials":
                return []
            open_rows = self.store.open_assignments(self.study_id, pid, n)
            if len(open_rows) >= n:
                return [self._trial_from_row(a) for a in open_rows]
            history = self.store.participant_assignments(self.study_id, pid)
            seq = (max(h["seq"] for h in history) + 1) if history else 0
            row = self._next_row(pid, seq, history, p)
            if row is None:
                if not open_rows:
                    self.store.advance_stage(self.study_id, pid, "trials", "done", completed_at=time.time())
                return [self._trial_from_row(a) for a in open_rows]
            self.store.create_assignment(row)  # False: lost a race with another tab/replica; re-read
        raise RuntimeError(f"participant {pid}: could not issue a pair (contention)")

    def triplet_plan(self, pid: str):
        """The participant's plan of trial kinds (:func:`.triplets.participant_plan`), seeded per
        participant so every replica agrees."""
        from .triplets import participant_plan

        t = self.cfg.triplet
        return participant_plan(derived_rng(self.cfg.seed, pid, "triplet-plan"), self.cfg.trials_per_participant,
                                t.trap_rate, t.bias_rate, t.plain_fraction, t.cross_fraction, bool(t.boosts))

    def _next_triplet_row(self, pid: str, seq: int, history: list[dict], p: dict) -> dict | None:
        from .triplets import KIND_BIAS, KIND_TRAP, ContentState

        cfg, t = self.cfg, self.cfg.triplet
        plan = self.triplet_plan(pid)
        if seq >= len(plan):
            return None
        slot = plan[seq]
        label = t.label if slot.boosted else "plain"
        contents = sorted({g.content for g in cfg.session_groups(p["session_no"])})
        rng = derived_rng(cfg.seed, pid, seq)
        seen = {(h["grp"], h["pair_key"], h["kind"], h["content"]) for h in history}
        kind, content, a, b = slot.kind, None, None, None
        if kind == KIND_TRAP:
            opts = [(c, x) for c in contents for x in t.contents[c].traps
                    if (label, pair_key(REFERENCE, x), KIND_TRAP, c) not in seen]
            if opts:
                content, x = opts[int(rng.integers(len(opts)))]
                a, b = REFERENCE, x
        elif kind == KIND_BIAS:
            opts = [(c, x) for c in contents for x in t.contents[c].levels
                    if x != REFERENCE and (label, pair_key(x, x), KIND_BIAS, c) not in seen]
            if opts:
                content, x = opts[int(rng.integers(len(opts)))]
                a = b = x
        if content is None:  # a normal triplet (or no trap / bias left to show)
            kind = "trial"
            counts: dict[str, dict] = {c: {} for c in contents}
            for c, grp, ca, cb, _w, n in self.store.group_tallies(self.study_id, contents):
                if c in counts:
                    k = (grp, pair_key(ca, cb))
                    counts[c][k] = counts[c].get(k, 0.0) + n
            states = []
            for c in contents:
                mine = [h for h in history if h["content"] == c and h["kind"] == "trial"]
                states.append(ContentState(c, t.contents[c], counts[c], {(h["grp"], h["pair_key"]) for h in mine},
                                           len(mine)))
            choice = self.sampler.choose(states, label, slot.cross, rng)
            if choice is None:
                return None
            content, a, b = choice.content, choice.a, choice.b
        if rng.random() < 0.5:
            a, b = b, a
        return dict(study_id=self.study_id, participant=pid, seq=seq, kind=kind, content=content, grp=label,
                    cond_left=a, cond_right=b, pair_key=pair_key(a, b), issued_at=time.time())

    def _next_row(self, pid: str, seq: int, history: list[dict], p: dict) -> dict | None:
        if self.cfg.design == "triplet":
            return self._next_triplet_row(pid, seq, history, p)
        cfg = self.cfg
        n_trials = sum(h["kind"] == "trial" for h in history)
        traps_done = {h["content"] for h in history if h["kind"] == "trap"}
        contents = sorted({g.content for g in cfg.session_groups(p["session_no"])})
        trap_left = [c for c in contents if c not in traps_done and c in cfg.traps]
        n_traps_left = min(cfg.traps_per_participant - len(traps_done), len(trap_left))
        rng = derived_rng(cfg.seed, pid, seq)
        want_trap = n_traps_left > 0 and seq in self.trap_positions(pid)
        choice = None
        if not want_trap:
            if cfg.trials_per_participant <= 0 or n_trials < cfg.trials_per_participant:
                choice = self.sampler.choose(self.group_states(pid, history, p), rng)
            if choice is None:
                want_trap = n_traps_left > 0
                if not want_trap:
                    return None
        if want_trap:
            content = trap_left[int(rng.integers(len(trap_left)))]
            kind, grp, a, b = "trap", "", TRAP_A, TRAP_B
        else:
            kind, content, grp, a, b = "trial", choice.content, choice.group, choice.a, choice.b
        if rng.random() < 0.5:
            a, b = b, a
        return dict(study_id=self.study_id, participant=pid, seq=seq, kind=kind, content=content, grp=grp,
                    cond_left=a, cond_right=b, pair_key=pair_key(a, b), issued_at=time.time())

    def vote(self, pid: str, seq: int, side: str, response_time_ms: int | None = None,
             client: dict | None = None) -> VoteResult:
        """Commit the answer to pair ``seq``; returns after the commit.

        ``response_time_ms``: measured in the browser from both images painted to the answer (None
        when not measured: the store keeps the server time separately in any case). ``client``: the
        per-trial log sent with the answer (window/screen size, dpr, reloads, toggles)."""
        pid = validate_worker_id(pid)
        if side == "tie" and not self.cfg.allow_tie:
            raise InputError("this study does not allow ties")
        if self.cfg.design == "triplet":
            # the participant names the side that differs MORE from the reference; the store keeps
            # the votes convention (winner = the image closer to the reference) and the answer itself
            if side not in ("left", "right", "tie"):
                raise InputError(f"vote side {side!r}: expected left, right or tie")
            client = {**(client or {}), "answer": {"left": "left", "right": "right", "tie": "notsure"}[side]}
            side = {"left": "right", "right": "left", "tie": "tie"}[side]
        return self.store.record_vote(self.study_id, pid, int(seq), side, response_time_ms, client)

    def flags(self, pid: str) -> list[str]:
        """Quality-control reasons this participant is flagged (empty: clean); see :mod:`.qc`."""
        return flag_reasons(self.store.participant_votes(self.study_id, validate_worker_id(pid)), self.cfg.qc)

    def planned_pairs(self, session_no: int = 0) -> int:
        """Pairs a participant of this session is planned to answer (sampler pairs + traps)."""
        if self.cfg.design == "triplet":
            return self.cfg.trials_per_participant
        groups = self.cfg.session_groups(session_no)
        per = (lambda k: k - 1) if self.sampler.name == "adjacent" else (lambda k: k * (k - 1) // 2)
        cap = sum(per(len(g.conditions)) for g in groups)
        t = self.cfg.trials_per_participant
        t = min(t, cap) if t > 0 else cap
        k = min(self.cfg.traps_per_participant, len({g.content for g in groups} & set(self.cfg.traps)))
        return t + k

    def progress(self, pid: str) -> tuple[int, int]:
        """(answered, planned) pairs for the progress bar. Planned = min(trials, what the sampler
        can offer in the session: n-1 adjacent or n(n-1)/2 pairs per group) + traps; ``adjacent``
        may offer a few more when the estimated order changes, hence "about" on the page."""
        n = len(self.store.participant_votes(self.study_id, pid))
        p = self.participant(pid)
        return n, max(n, self.planned_pairs(p["session_no"]))

    def completion_code(self, pid: str) -> str:
        p = self.participant(pid)
        if p["stage"] != "done":
            raise InputError(f"participant {pid} has not finished the study")
        return completion_code(self.cfg.study_secret, self.study_id, pid)

    def stimulus_file(self, rel: str) -> Path:
        return safe_stimulus_path(self.cfg.dir, rel)
