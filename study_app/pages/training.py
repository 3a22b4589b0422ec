"""Training: practice pairs with obvious differences, drawn by the study component like the trials;
the feedback is shown on the pair just answered and names its degradation."""

import streamlit as st
from lossarena.study_app import components, ui
from lossarena.study_app import state as K
from lossarena.study_app.core import display as D

from lossarena.errors import InputError

rt, pid = ui.require_participant()


def pid_of(attempt: int, index: int) -> str:
    return f"p{attempt}-{index}"


msg = ui.message(K.C_PRACTICE)
p = rt.participant(pid)
attempt = int(p.get("training_attempt") or 0)
item = rt.practice_item(pid)
if msg and msg["action"] == "answers" and isinstance(msg.get("answers"), list):
    for a in msg["answers"][:10]:
        if not isinstance(a, dict) or item is None or a.get("id") != pid_of(attempt, item.index):
            continue
        try:
            f = rt.answer_practice_feedback(pid, item.index, a.get("side"))
        except InputError:
            continue
        if f.outcome != "stale":
            st.session_state[K.PRACTICE_FEEDBACK] = {
                "id": a["id"], "correct": f.correct, "text": f.text, "outcome": f.outcome,
                "left": item.left_path, "right": item.right_path, "pivot": item.pivot_path}
    p = rt.participant(pid)
    attempt = int(p.get("training_attempt") or 0)
    item = rt.practice_item(pid)
if msg and msg["action"] == "feedback_done":
    st.session_state.pop(K.PRACTICE_FEEDBACK, None)
    st.rerun()
fb = st.session_state.get(K.PRACTICE_FEEDBACK)
if item is None and fb is None:
    rt.finish_training_if_empty(pid)
    st.rerun()
pairs = []
triplet = rt.cfg.design == "triplet"
if fb:
    pairs.append({"id": fb["id"], "kind": "practice", "left": ui.data_url(rt, fb["left"]),
                  "right": ui.data_url(rt, fb["right"]),
                  **({"pivot": ui.data_url(rt, fb["pivot"])} if fb.get("pivot") else {})})
for it in (item, rt.practice_item_at(pid, attempt, item.index + 1) if item else None):
    if it is not None and (not fb or fb["id"] != pid_of(attempt, it.index)):
        pairs.append({"id": pid_of(attempt, it.index), "kind": "practice", "left": ui.data_url(rt, it.left_path),
                      "right": ui.data_url(rt, it.right_path),
                      **({"pivot": ui.data_url(rt, it.pivot_path)} if it.pivot_path else {})})
shown = item.index if item else len(rt.cfg.practice) - 1
components.study(
    "pairs", key=K.C_PRACTICE, kind="practice", pairs=pairs, scale=rt.cfg.scale, allow_tie=False, toggle=False,
    design=rt.cfg.design,
    progress=f"Training: practice pair {min(shown + 1, len(rt.cfg.practice))} of {len(rt.cfg.practice)}"
    + (" (second try)" if attempt else ""),
    hint=("Which image differs more from the reference in the middle? Click a button or press ← / →." if triplet
          else "Which image has the better quality? Click a button or press ← / →."),
    feedback={k: fb[k] for k in ("id", "correct", "text", "outcome")} if fb else None,
    layout_controls_h=D.LAYOUT_CONTROLS_H)
