"""Training: practice pairs with obvious differences, with feedback after each answer."""

import streamlit as st
from lossarena.study_app import components, ui
from lossarena.study_app import state as K

rt, pid = ui.require_participant()
ui.show_flash()
item = rt.practice_item(pid)
if item is None:
    rt.finish_training_if_empty(pid)
    st.rerun()
st.title("Training")
st.write(f"Practice pair {item.index + 1} of {item.total}. Which image has the **better quality**? "
         "Click a button or press ← / → on your keyboard.")


def answer(side: str) -> None:
    if rt.answer_practice(pid, item.index, side):
        ui.flash("success", "Correct, well done.")
    else:
        ui.flash("warning", "Not quite: the " + item.correct_side + " image was better. " + item.hint)


kkey = K.keys_component("practice", item.index)
action = ui.new_key_action(kkey, components.keys(key=kkey))
if action in ("left", "right"):
    answer(action)
    st.rerun()
c1, c2 = st.columns(2)
if c1.button("◀ Left is better", key=K.practice_button(item.index, "left"), use_container_width=True):
    answer("left")
    st.rerun()
if c2.button("Right is better ▶", key=K.practice_button(item.index, "right"), use_container_width=True):
    answer("right")
    st.rerun()
ui.image_pair(rt, item.left_path, item.right_path, ui.display_width(rt, pid))
