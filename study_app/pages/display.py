"""Display check: screen, window and devicePixelRatio measured in the browser, size by card
calibration (starting from a value that cannot pass), touch devices refused unless allowed."""

import streamlit as st
from lossarena.study_app import components, ui
from lossarena.study_app import state as K
from lossarena.study_app.core import display as D

from lossarena.errors import InputError

rt, pid = ui.require_participant()
req = rt.cfg.requirements
msg = ui.message(K.C_DISPLAY)
if msg and msg["action"] == "display":
    try:
        check = rt.submit_display(pid, msg.get("measurement"))
    except InputError:
        st.session_state[K.DISPLAY_MESSAGE] = "The measurement could not be read. Please try again."
    else:
        if check.retry:
            st.session_state[K.DISPLAY_MESSAGE] = "; ".join(check.reasons).capitalize() + "."
        else:
            st.session_state.pop(K.DISPLAY_MESSAGE, None)
            st.rerun()
st.title("Display check")
st.write(f"The study needs a computer screen of at least {req.min_width}×{req.min_height} pixels, larger than "
         f"{req.min_diagonal_in:g} inches. Please maximise your browser window, then calibrate the size below.")
components.study("display", key=K.C_DISPLAY, card_start=40, crop=list(rt.cfg.crop), scale=rt.cfg.scale,
                 allow_touch=req.allow_touch, message=st.session_state.get(K.DISPLAY_MESSAGE, ""),
                 layout_gap=D.LAYOUT_GAP, layout_sides=D.LAYOUT_SIDES, layout_controls_h=D.LAYOUT_CONTROLS_H,
                 page_top=D.PAGE_TOP, page_margin_x=D.PAGE_MARGIN_X,
                 n_images=3 if rt.cfg.design == "triplet" else 2)
