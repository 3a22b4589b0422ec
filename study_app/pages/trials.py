"""The comparisons: A and B side by side (or toggled), left/right randomised, keyboard shortcuts.
Each answer is committed to the store before the next pair is issued."""

import streamlit as st
from lossarena.study_app import components, ui
from lossarena.study_app import state as K

rt, pid = ui.require_participant()
ui.show_flash()
trial = rt.current_pair(pid)
if trial is None:
    st.rerun()
answered, planned = rt.progress(pid)
st.progress(min(1.0, answered / max(planned, 1)), text=f"Pair {answered + 1} of about {planned}")
st.write("Which image has the **better quality**? Click a button or press ← / → (T switches the toggle view).")

toggle_on = False
if rt.cfg.toggle:
    toggle_on = st.toggle("Toggle view: show the two images in the same place", key=K.TOGGLE_ON)
side_key = K.toggle_side(trial.seq)


def vote(side: str) -> None:
    rt.vote(pid, trial.seq, side)


kkey = K.keys_component("trial", trial.seq)
action = ui.new_key_action(kkey, components.keys(key=kkey))
if action in ("left", "right"):
    vote(action)
    st.rerun()
if action == "toggle" and toggle_on:
    st.session_state[side_key] = "right" if st.session_state.get(side_key, "left") == "left" else "left"

cols = st.columns(3 if rt.cfg.allow_tie else 2)
if cols[0].button("◀ A (left) is better", key=K.vote_button(trial.seq, "left"), use_container_width=True):
    vote("left")
    st.rerun()
if cols[-1].button("B (right) is better ▶", key=K.vote_button(trial.seq, "right"), use_container_width=True):
    vote("right")
    st.rerun()
if rt.cfg.allow_tie and cols[1].button("No difference", key=K.vote_button(trial.seq, "tie"), use_container_width=True):
    vote("tie")
    st.rerun()
if toggle_on:
    if st.button("Switch image [T]", key=K.toggle_button(trial.seq)):
        st.session_state[side_key] = "right" if st.session_state.get(side_key, "left") == "left" else "left"
    ui.image_pair(rt, trial.left_path, trial.right_path, ui.display_width(rt, pid),
                  toggle_side=st.session_state.get(side_key, "left"))
else:
    ui.image_pair(rt, trial.left_path, trial.right_path, ui.display_width(rt, pid))
