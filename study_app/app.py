"""The study app's entry script: ``streamlit run app.py -- --study STUDY [--db URL]``.

Routes every participant to the page of the stage stored for them (consent, display, training,
trials, done, refused), so a reload or reconnect lands where they left off. ``/admin`` is the
researcher's page (behind the admin secret).
"""

from __future__ import annotations

import streamlit as st
from lossarena.study_app import ui

from lossarena.errors import LossarenaError

st.set_page_config(page_title="Image quality study", layout="wide", initial_sidebar_state="collapsed")

STAGE_PAGES = {
    "consent": ("pages/consent.py", "Consent"),
    "display": ("pages/display.py", "Display check"),
    "training": ("pages/training.py", "Training"),
    "trials": ("pages/trials.py", "Comparisons"),
    "done": ("pages/done.py", "Thank you"),
    "refused": ("pages/refused.py", "Thank you"),
}

try:
    rt = ui.runtime()
except LossarenaError as e:
    st.error(f"The study is not available: {e}")
    st.stop()

admin = st.Page("pages/admin.py", title="Admin", url_path="admin")
pid, why = ui.participant_id(rt)
if pid is None:
    page = st.Page("pages/gate.py", title="Welcome", url_path="study", default=True)
else:
    path, title = STAGE_PAGES[rt.stage(pid)]
    # one url_path for every stage: the page shown is always the stored stage's, also on a rerun
    page = st.Page(path, title=title, url_path="study", default=True)
st.navigation([page, admin], position="hidden").run()
