"""Completion: thank the participant and show the verifiable completion code."""

import streamlit as st
from lossarena.study_app import ui

rt, pid = ui.require_participant()
code = rt.completion_code(pid)
st.title("Thank you!")
st.success("You have completed the study. Please copy your completion code into your recruiting platform.")
st.subheader("Completion code")
st.code(code, language=None)
if rt.cfg.completion_url:
    st.link_button("Return to the recruiting platform", rt.cfg.completion_url.replace("{code}", code))
