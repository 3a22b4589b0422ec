"""Quality control that acts: which participants are flagged, and why.

The rules (``study.yaml`` section ``qc``, all on by default; :class:`~.config.QualityControl`):

* **training gate** — fewer than ``training_min_correct`` practice pairs right in an attempt, after
  ``training_retries`` retries: the participant is politely ended (stage ``refused``, no completion
  code). Handled in :meth:`~.session.StudyRuntime.answer_practice`, not a flag.
* **trap failures** — more than ``max_trap_failures`` trap pairs (the reference against a heavy
  degradation) answered for the degradation (a "not sure" on a trap counts as a failure).
* **minimum viewing time** — more than ``max_fast_fraction`` of the answers came sooner than
  ``min_view_ms`` after both images were decoded and painted (measured in the browser).
* **side bias** — one side chosen in at least ``side_bias_fraction`` of at least
  ``side_bias_min_answers`` left/right answers (ties not counted).

Flagged participants are listed with their reasons on the admin page, left out of the default
export (``study export --include-flagged`` keeps them) and ``study verify-code`` exits 4 for them.
"""

from __future__ import annotations

from collections import defaultdict

from lossarena.data.schemas import REFERENCE

from .config import QualityControl

TRAP_GOOD = REFERENCE


def flag_reasons(votes: list[dict], qc: QualityControl) -> list[str]:
    """The reasons one participant is flagged (empty: clean), from their vote rows (store dicts with
    ``kind``, ``winner``, ``condition_a``, ``condition_b``, ``response_time_ms``)."""
    reasons = []
    traps = [v for v in votes if v["kind"] == "trap"]
    failed = sum(v["winner"] != TRAP_GOOD for v in traps)
    if failed > qc.max_trap_failures:
        reasons.append(f"trap pairs failed: {failed} of {len(traps)} (allowed {qc.max_trap_failures})")
    timed = [v["response_time_ms"] for v in votes if v.get("response_time_ms") is not None]
    if timed and qc.min_view_ms > 0:
        fast = sum(t < qc.min_view_ms for t in timed)
        if fast / len(timed) > qc.max_fast_fraction:
            reasons.append(f"answered faster than {qc.min_view_ms} ms after the images appeared: "
                           f"{fast} of {len(timed)} answers (allowed {qc.max_fast_fraction:.0%})")
    sides = [("left" if v["winner"] == v["condition_a"] else "right") for v in votes
             if v["winner"] != "tie" and v["condition_a"] != v["condition_b"]]
    if len(sides) >= qc.side_bias_min_answers:
        n_left = sides.count("left")
        share = max(n_left, len(sides) - n_left) / len(sides)
        if share >= qc.side_bias_fraction:
            side = "left" if n_left * 2 >= len(sides) else "right"
            reasons.append(f"side bias: {side} chosen in {share:.0%} of {len(sides)} answers "
                           f"(limit {qc.side_bias_fraction:.0%})")
    return reasons


def flags_by_participant(all_votes: list[dict], qc: QualityControl) -> dict[str, list[str]]:
    """participant -> reasons, for every participant with at least one vote (empty list: clean)."""
    by: dict[str, list[dict]] = defaultdict(list)
    for v in all_votes:
        by[v["participant"]].append(v)
    return {p: flag_reasons(vs, qc) for p, vs in by.items()}
