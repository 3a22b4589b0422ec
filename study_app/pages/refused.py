"""A polite stop: declined consent or a display that does not meet the requirements."""

import streamlit as st
from lossarena.study_app import ui

rt, pid = ui.require_participant()
p = rt.participant(pid)
st.title("Thank you for your interest")
reason = p.get("refusal") or ""
if reason.startswith("declined"):
    st.info("You chose not to take part. You can close this page now.")
else:
    st.info("Unfortunately this study needs a larger screen than the one you are using, so we cannot "
            "include you this time. Thank you for your time; you can close this page now.")
    if reason:
        st.caption("Details: " + reason)
