"""The comparisons, run in the browser by the study component: it shows the current pair (pixel-
exact), holds the next one, and sends every answer with its client timing and display log. Each run
of this page commits the answers received (idempotently), re-checks the display and sends the pair
after next; a reload shows the same open pairs again."""

import logging
import math

import streamlit as st
from lossarena.study_app import components, ui
from lossarena.study_app import state as K
from lossarena.study_app.core import display as D
from lossarena.study_app.core import triplets as T

from lossarena.errors import InputError

log = logging.getLogger("lossarena.study_app")
CLIENT_NUM = ("window_w", "window_h", "screen_w", "screen_h", "dpr", "reloads", "toggles", "blanked", "late")

rt, pid = ui.require_participant()
if not st.session_state.get(K.TRIALS_SEEN):
    st.session_state[K.TRIALS_SEEN] = True
    if rt.store.participant_assignments(rt.study_id, pid):  # pairs were shown before: a reload / return
        rt.store.bump_reloads(rt.study_id, pid)


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


raw = st.session_state.get(K.C_TRIALS)
raw = raw if isinstance(raw, dict) else {}
answers = [a for a in (raw.get("answers") or [])[:50] if isinstance(a, dict)] if isinstance(
    raw.get("answers"), list) else []
msg = ui.message(K.C_TRIALS)
acked = []
for a in answers:
    seq, side = a.get("id"), a.get("side")
    if not isinstance(seq, int) or isinstance(seq, bool) or side not in ("left", "right", "tie"):
        continue
    if msg is not None:  # a new message: commit its answers (a vote already committed is a no-op)
        rt_ms = _num(a.get("rt_ms"))
        client = {k: _num(a.get(k)) for k in CLIENT_NUM}
        try:
            rt.vote(pid, seq, side, int(min(rt_ms, 3.6e6)) if rt_ms is not None else None, client)
        except InputError as e:
            log.warning("participant %s: answer to pair %s not recorded: %s", pid, seq, e)
            continue
    acked.append(seq)
if msg is not None:
    disp = msg.get("display") if isinstance(msg.get("display"), dict) else (answers[-1] if answers else None)
    if disp:
        st.session_state["la_paused"] = rt.check_live_display(pid, disp)
pairs = rt.upcoming_pairs(pid, max(2, min(int(rt.cfg.prefetch), 5)))
if not pairs:
    st.rerun()  # finished: the stage is now done
held = set(raw.get("held") or []) if isinstance(raw.get("held"), list) else set()
answered, planned = rt.progress(pid)
triplet = rt.cfg.design == "triplet"
out = []
for t in pairs:
    d = {"id": t.seq, "kind": t.kind}
    if t.seq not in held:
        d["left"], d["right"] = ui.data_url(rt, t.left_path), ui.data_url(rt, t.right_path)
        if triplet:
            d["pivot"] = ui.data_url(rt, t.pivot_path)
    if triplet:  # how the browser presents it: zoom factor (the files are the zoom region) and flicker
        d.update(T.presentation(rt.cfg.triplet, t.boost))
    out.append(d)
p = rt.participant(pid)
if triplet:
    progress = f"Triplet {answered + 1} of {planned}"
    hint = ("Which image differs more from the reference in the middle? ← / → or click, N = not sure, "
            "T = " + ("pause the flicker / show the reference" if "flicker" in rt.cfg.triplet.boosts
                      else "show the reference"))
else:
    progress = f"Pair {answered + 1} of about {planned}"
    hint = ("Which image has the better quality? ← / → or click" + (", N = not sure" if rt.cfg.allow_tie else "")
            + (", T = toggle view" if rt.cfg.toggle else ""))
components.study(
    "pairs", key=K.C_TRIALS, kind="trial", pairs=out, acked=acked, scale=rt.cfg.scale,
    allow_tie=rt.cfg.allow_tie, toggle=rt.cfg.toggle, reloads=int(p.get("reloads") or 0),
    paused=st.session_state.get("la_paused"), design=rt.cfg.design, progress=progress, hint=hint,
    layout_controls_h=D.LAYOUT_CONTROLS_H)
