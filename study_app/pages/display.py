"""Display check: resolution (with devicePixelRatio) from the browser, size by card calibration."""

import streamlit as st
from lossarena.study_app import components, ui
from lossarena.study_app import state as K

from lossarena.errors import InputError

rt, pid = ui.require_participant()
req = rt.cfg.requirements
st.title("Display check")
st.write(
    f"The study needs a screen of at least {req.min_width}×{req.min_height} pixels, larger than "
    f"{req.min_diagonal_in:g} inches. Please maximise your browser window, then calibrate the size below."
)
measurement = components.display_probe(key=K.DISPLAY_PROBE)
if measurement:
    try:
        rt.submit_display(pid, measurement)
    except InputError:
        st.error("The measurement could not be read. Please reload the page and try again.")
        st.stop()
    st.rerun()
