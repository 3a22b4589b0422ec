"""The study app's entry script: ``streamlit run app.py -- --study STUDY [--db URL]``.

Routes every participant to the page of the stage stored for them (consent, display, training,
trials, done, refused), so a reload or reconnect lands where they left off. ``/admin`` is the
researcher's page (behind the admin secret). Any unexpected error is shown to the participant as a
generic message with an error id; the admin page resolves the id (details in the event log).
"""

from __future__ import annotations

import streamlit as st
from lossarena.study_app import state as K
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
    ui.report_error(e)
    st.stop()

try:
    admin = st.Page("pages/admin.py", title="Admin", url_path="admin")
    pid, why = ui.participant_id(rt)
    if pid is None:
        page = st.Page("pages/gate.py", title="Welcome", url_path="study", default=True)
    else:
        stage = rt.stage(pid)
        fb = st.session_state.get(K.PRACTICE_FEEDBACK)
        if fb and stage in ("trials", "refused") and fb.get("outcome") in ("trials", "ended"):
            stage = "training"  # the feedback of the last practice pair is shown on that pair first
        path, title = STAGE_PAGES[stage]
        # one url_path for every stage: the page shown is always the stored stage's, also on a rerun
        page = st.Page(path, title=title, url_path="study", default=True)
    st.navigation([page, admin], position="hidden").run()
except Exception as e:  # noqa: BLE001 - participants see an id, never a traceback (details in the log)
    ui.report_error(e)
