"""Consent: what the study is, what is recorded; agree or decline (in the study component)."""

import streamlit as st
from lossarena.study_app import components, ui
from lossarena.study_app import state as K

rt, pid = ui.require_participant()
cfg = rt.cfg
msg = ui.message(K.C_CONSENT)
if msg and msg["action"] == "consent":
    rt.consent(pid)
    st.rerun()
if msg and msg["action"] == "decline":
    rt.decline(pid)
    st.rerun()
lo, hi = cfg.stated_minutes
req = cfg.requirements
st.title(cfg.title)
st.subheader("Information and consent")
components.study("consent", key=K.C_CONSENT, pid=pid, paragraphs=[
    "In this study you will see pairs of images, side by side, and choose the one with the better visual "
    f"quality. It takes about {lo}–{hi} minutes.",
    f"You need a computer screen of at least {req.min_width}×{req.min_height} pixels and larger than "
    f"{req.min_diagonal_in:g} inches, with the browser window maximised; we check this on the next page (you "
    "will need a bank or ID card to calibrate the size).",
    "A short training with feedback comes first. Some pairs check your attention.",
    "We record your choices, your response times, your screen and window size and your participant id, "
    "nothing else. The data are used for research on image compression and published only in anonymous form.",
    "You can stop at any time by closing the page; reopening the link resumes where you stopped.",
])
