"""Completion: thank the participant, show the verifiable completion code and the way back to the
recruiting platform (Prolific completion URL, or the MTurk ExternalQuestion submit form)."""

import streamlit as st
from lossarena.study_app import components, ui
from lossarena.study_app import state as K

rt, pid = ui.require_participant()
code = rt.completion_code(pid)
p = rt.participant(pid)
meta = p.get("meta") or {}
st.title("Thank you!")
st.success("You have completed the study.")
mturk = meta.get("turkSubmitTo") if p.get("platform") == "mturk" and meta.get("assignmentId") else None
if rt.cfg.completion_code:
    st.write(f"The study's completion code is **{rt.cfg.completion_code}**; your personal verification code is "
             "below. Please copy it into the platform's message/verification field.")
components.study("done", key=K.C_DONE, code=code,
                 completion_url=rt.cfg.completion_url_for(code) if rt.cfg.completion_url else "",
                 mturk_action=f"{mturk}/mturk/externalSubmit" if mturk else "",
                 assignment_id=meta.get("assignmentId", "") if mturk else "")
