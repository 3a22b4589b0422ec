"""Consent: what the study is, what is recorded; agree or decline."""

import streamlit as st
from lossarena.study_app import state as K
from lossarena.study_app import ui

rt, pid = ui.require_participant()
cfg = rt.cfg
st.title(cfg.title)
st.subheader("Information and consent")
st.markdown(
    "In this study you will see pairs of images, side by side, and choose the one with the **better "
    "visual quality**. It takes about 10–15 minutes.\n\n"
    f"- You need a screen of at least **{cfg.requirements.min_width}×{cfg.requirements.min_height} pixels** "
    f"and larger than **{cfg.requirements.min_diagonal_in:g} inches**; we check this on the next page "
    "(you will need a bank or ID card to calibrate the size).\n"
    "- A short training with feedback comes first.\n"
    "- We record your choices, response times, your screen size and your participant id — nothing else. "
    "The data are used for research on image compression and published only in anonymous form.\n"
    "- You can stop at any time by closing the page; reopening the link resumes where you stopped."
)
st.caption("Participant id:")
st.code(pid, language=None)
agree = st.checkbox("I have read the information above and agree to take part.", key=K.CONSENT_BOX)
c1, c2 = st.columns([1, 3])
if c1.button("Continue", type="primary", disabled=not agree, key=K.CONSENT_GO):
    rt.consent(pid)
    st.rerun()
if c2.button("I do not want to take part", key=K.CONSENT_DECLINE):
    rt.decline(pid)
    st.rerun()
